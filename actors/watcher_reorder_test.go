package actors_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
	"github.com/stellar/go-stellar-sdk/txnbuild"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/stellar/horizon"
	"github.com/checkoutd/checkoutd/stellar/sandbox"
)

// TestWatcherSurvivesReorderedHorizon runs a watcher against the sandbox
// over HTTP while it breaks Horizon's ordering contract: JSON pages come
// back shuffled, adjacent stream events are swapped, and streams are cut
// at random, so a cut often falls between the two events of a swapped pair
// and the earlier operation never comes by that connection. The watchers
// are also stopped hard (hand-offs abandoned) and restarted now and then.
// Throughout, a sampler checks that the durable cursor never passes an
// operation that is not recorded; at the end every payment is recorded
// exactly once, each session applied its payments in ledger order (a
// session of 2 XLM paid 1 XLM at a time: its first two operations applied,
// the rest late), and the cursor reaches the last payment.
func TestWatcherSurvivesReorderedHorizon(t *testing.T) {
	e := newWatcherEnv(t)
	if err := e.net.SetFaults(sandbox.Faults{Reorder: 0.5, StreamCutProbability: 0.25}); err != nil {
		t.Fatal(err)
	}
	ws := e.watchers()
	const sessionsN = 8
	sessions := make([]checkout.Session, sessionsN)
	for i := range sessions {
		sessions[i] = e.session(ws, "2", checkout.MemoText)
	}
	start := e.cursor().PagingToken

	var (
		mu       sync.Mutex
		current  = ws
		stats    []actors.WatcherStats
		violated string
		samples  int
	)
	stopSampler := make(chan struct{})
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		for {
			select {
			case <-stopSampler:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if v := e.cursorPassesUnrecorded(start); v != "" {
				mu.Lock()
				violated = v
				mu.Unlock()
				return
			}
			mu.Lock()
			samples++
			mu.Unlock()
		}
	}()

	customer := e.funded()
	const txs, perTx = 24, 4
	for i := range txs {
		ops := make([]txnbuild.Operation, perTx)
		for j := range ops {
			ops[j] = &txnbuild.Payment{Destination: e.kp.Address(), Amount: "1", Asset: txnbuild.NativeAsset{}}
		}
		e.submit(customer, txnbuild.MemoText(sessions[i%sessionsN].Memo), ops...)
		if i%8 == 7 {
			// A hard stop: the stop context is already over, so hand-offs
			// in flight are abandoned, then a new set of watchers resumes
			// from the durable cursor.
			mu.Lock()
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			_ = current.Stop(ctx)
			stats = append(stats, current.Stats())
			current = e.watchers()
			if err := current.Ensure(context.Background(), e.kp.Address()); err != nil {
				t.Fatal(err)
			}
			mu.Unlock()
		}
	}
	const payments = txs * perTx
	waitFor(t, 60*time.Second, "every payment", func() bool {
		return e.count(`SELECT count(*) FROM payments WHERE session_id IS NOT NULL`) >= payments
	})
	last := e.lastCredit()
	waitFor(t, 30*time.Second, "the cursor to reach the last payment", func() bool {
		return horizon.ComparePagingTokens(e.cursor().PagingToken, last) >= 0
	})
	close(stopSampler)
	<-samplerDone
	mu.Lock()
	defer mu.Unlock()
	if violated != "" {
		t.Fatal(violated)
	}
	if v := e.cursorPassesUnrecorded(start); v != "" {
		t.Fatal(v)
	}
	if n, d := e.count(`SELECT count(*) FROM payments`), e.count(`SELECT count(DISTINCT operation_id) FROM payments`); n != payments || d != payments {
		t.Fatalf("%d payment rows for %d operations, want %d of each", n, d, payments)
	}
	for _, s := range sessions {
		if got := e.load(s.ID); got.AmountReceived != 2*checkout.StroopsPerUnit || got.Status != checkout.StatusComplete {
			t.Errorf("session %s: received %s, %s; want 2 XLM, complete", s.ID, got.AmountReceived, got.Status)
		}
		pays, err := e.db.SessionPayments(context.Background(), s.ID)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(pays, func(a, b checkout.Payment) int { return horizon.ComparePagingTokens(a.OperationID, b.OperationID) })
		for i, p := range pays {
			want := checkout.DispositionLate
			if i < 2 {
				want = checkout.DispositionApplied
			}
			if p.Disposition != want {
				t.Errorf("session %s: operation %d (%s) is %s, want %s: applied out of ledger order", s.ID, i, p.OperationID, p.Disposition, want)
			}
		}
	}
	stats = append(stats, current.Stats())
	sum := map[string]int64{}
	for _, st := range stats {
		for k, v := range st.OutOfOrder {
			sum[k] += v
		}
	}
	t.Logf("out of order: %v; %d cursor samples", sum, samples)
	if sum["stream"] == 0 || sum["page"] == 0 {
		t.Errorf("out-of-order counts %v: the fault did not reach the watcher", sum)
	}
}

// cursorPassesUnrecorded returns a description of the first credit of the
// watched account after start and at or before the durable cursor that has
// no payment row, or "". The cursor is read first: payments only ever get
// recorded, so what the cursor had passed must be recorded by the time the
// table is read.
func (e *wenv) cursorPassesUnrecorded(start string) string {
	cursor := e.cursor().PagingToken
	recorded := map[string]bool{}
	rows, err := e.sql.Query(context.Background(), `SELECT operation_id FROM payments`)
	if err != nil {
		return err.Error()
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err.Error()
		}
		recorded[id] = true
	}
	rows.Close()
	for _, op := range e.credits(start) {
		if horizon.ComparePagingTokens(op.PagingToken(), cursor) > 0 {
			break
		}
		if !recorded[op.GetID()] {
			return "the durable cursor " + cursor + " passed operation " + op.GetID() + ", which is not recorded"
		}
	}
	return ""
}

// credits lists the payments to the watched account after start, in
// paging-token order, reading the sandbox's pages (sorted: the reorder
// fault may be on).
func (e *wenv) credits(start string) []operations.Operation {
	e.t.Helper()
	var out []operations.Operation
	cursor := start
	for {
		var ops []operations.Operation
		var err error
		for attempt := 0; attempt < 50; attempt++ {
			if ops, err = e.horizon.PaymentsPage(context.Background(), e.kp.Address(), cursor, horizon.MaxPageLimit); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			e.t.Error(err)
			return out
		}
		slices.SortFunc(ops, func(a, b operations.Operation) int {
			return horizon.ComparePagingTokens(a.PagingToken(), b.PagingToken())
		})
		for _, op := range ops {
			if p, ok := op.(operations.Payment); ok && p.To == e.kp.Address() {
				out = append(out, op)
			}
		}
		if len(ops) < horizon.MaxPageLimit {
			return out
		}
		cursor = ops[len(ops)-1].PagingToken()
	}
}

// lastCredit is the paging token of the last payment to the watched account.
func (e *wenv) lastCredit() string {
	e.t.Helper()
	ops := e.credits("0")
	if len(ops) == 0 {
		e.t.Fatal("no payments")
	}
	return ops[len(ops)-1].PagingToken()
}
