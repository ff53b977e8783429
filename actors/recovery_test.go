package actors_test

import (
	"slices"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
)

// TestRecoverySweepsSessionsAcrossRuns: each recovery run checks the next
// RecoveryAuditBatch sessions in id order against their payments, so a
// session that disagrees with them is repaired by the run whose batch
// reaches it, not before, and the sweep then starts over.
func TestRecoverySweepsSessionsAcrossRuns(t *testing.T) {
	e := newWatcherEnv(t)
	sys, _ := e.startSystem(actors.Config{AskTimeout: 5 * time.Second, RecoveryInterval: time.Hour, RecoveryAuditBatch: 2})
	ws := e.watchers()
	var ids []string
	for range 5 {
		ids = append(ids, e.session(ws, "10", checkout.MemoText).ID)
	}
	slices.Sort(ids)
	// The last session in id order counts 3 XLM it never received: the
	// third run's batch (sessions 5 and after) is the one to reach it.
	broken := ids[4]
	if _, err := e.sql.Exec(t.Context(), `UPDATE sessions SET amount_received = 30000000, payment_status = 'partially_paid'
		WHERE id = $1`, broken); err != nil {
		t.Fatal(err)
	}
	run := func() {
		t.Helper()
		if err := sys.RunRecovery(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 2; i++ {
		run()
		if n := sys.RecoveryStats().Repaired.Load(); n != 0 {
			t.Fatalf("run %d repaired %d sessions; its batch does not reach %s", i, n, broken)
		}
		if got := e.load(broken); got.AmountReceived != 3*checkout.StroopsPerUnit {
			t.Fatalf("run %d changed %s: received %s", i, broken, got.AmountReceived)
		}
	}
	run()
	if n := sys.RecoveryStats().Repaired.Load(); n != 1 {
		t.Fatalf("the third run repaired %d sessions, want 1", n)
	}
	got := e.load(broken)
	if got.AmountReceived != 0 || got.PaymentStatus != checkout.PaymentUnpaid || got.Status != checkout.StatusOpen {
		t.Fatalf("repaired session: %s/%s received %s, want open/unpaid with 0", got.Status, got.PaymentStatus, got.AmountReceived)
	}
	// The sweep starts over: the next run checks the first sessions again
	// and finds nothing to repair.
	run()
	if st := sys.RecoveryStats(); st.Repaired.Load() != 1 || st.Failed.Load() != 0 {
		t.Fatalf("after the sweep started over: repaired %d, failed %d; want 1 and 0", st.Repaired.Load(), st.Failed.Load())
	}
}
