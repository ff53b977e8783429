package actors_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/txnbuild"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/stellar/horizon"
)

// TestWatcherKeepsSessionOrderThroughActorPanic is the regression test for
// a fault the chaos suite found (TestActorPanics): a session actor that
// panics loses the payment it was handling, but not the later payments of
// its session already queued behind it, which were then applied first; the
// retried hand-off came last. Four payments of 1 XLM to a session of 2 must
// still be applied, applied, late, late in ledger order when the first one
// panics.
func TestWatcherKeepsSessionOrderThroughActorPanic(t *testing.T) {
	var once sync.Once
	e := newWatcherEnv(t, actors.Config{AskTimeout: 2 * time.Second, Hooks: actors.Hooks{
		BeforeSettle: func(string, *actors.ObservePayment) {
			once.Do(func() { panic("injected: the first payment's handling panics") })
		},
	}})
	ws := e.watchers()
	s := e.session(ws, "2", checkout.MemoText)
	customer := e.funded()
	ops := make([]txnbuild.Operation, 4)
	for i := range ops {
		ops[i] = &txnbuild.Payment{Destination: e.kp.Address(), Amount: "1", Asset: txnbuild.NativeAsset{}}
	}
	e.submit(customer, txnbuild.MemoText(s.Memo), ops...)
	waitFor(t, 30*time.Second, "four payments", func() bool {
		return e.count(`SELECT count(*) FROM payments WHERE session_id = $1`, s.ID) == 4
	})
	pays, err := e.db.SessionPayments(context.Background(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(pays, func(a, b checkout.Payment) int { return horizon.ComparePagingTokens(a.OperationID, b.OperationID) })
	want := []checkout.Disposition{checkout.DispositionApplied, checkout.DispositionApplied, checkout.DispositionLate, checkout.DispositionLate}
	for i, p := range pays {
		if p.Disposition != want[i] {
			t.Errorf("operation %d (%s) is %s, want %s", i, p.OperationID, p.Disposition, want[i])
		}
	}
	if got := e.load(s.ID); got.AmountReceived != 2*checkout.StroopsPerUnit || got.Status != checkout.StatusComplete {
		t.Fatalf("session = %s, %s", got.AmountReceived, got.Status)
	}
}
