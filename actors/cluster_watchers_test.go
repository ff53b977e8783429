package actors_test

import (
	"context"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/txnbuild"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/persistence"
)

// lockedWatchers starts watchers as a cluster node runs them: each account
// is watched only while this node holds its lock.
func (e *wenv) lockedWatchers() *actors.Watchers {
	e.t.Helper()
	locks := persistence.StartAccountLocks(e.sql.Config().ConnString(), 100*time.Millisecond, nil)
	e.t.Cleanup(locks.Close)
	ws, err := actors.NewWatchers(actors.WatchersConfig{
		DB: e.db, Horizon: e.horizon, Sessions: e.system.Sessions(), Logger: testLogger(),
		FlushInterval: 50 * time.Millisecond, CaughtUpInterval: 100 * time.Millisecond,
		WatchdogTimeout: 10 * time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		Locks: locks, LockRetry: 100 * time.Millisecond,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := ws.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = ws.Stop(ctx)
	})
	return ws
}

// TestLockedWatchersOneWatcherPerAccountAndFailover runs two nodes'
// watchers over one account: only the node holding the account's lock
// watches it, the other finds the account and waits, and takes the watcher
// over from the cursor when the first node stops. Each payment is applied
// once.
func TestLockedWatchersOneWatcherPerAccountAndFailover(t *testing.T) {
	e := newWatcherEnv(t)
	a := e.lockedWatchers()
	b := e.lockedWatchers()

	s1 := e.session(a, "10", checkout.MemoText)
	waitFor(t, 10*time.Second, "node a to watch the account", func() bool { return a.Running() == 1 })
	customer := e.funded()
	e.pay(customer, e.kp.Address(), "10", txnbuild.MemoText(s1.Memo))
	e.received(s1.ID, 100_000_000)
	// Node b has had many lock retries (every 100 ms) to find the account
	// and try its lock by now.
	time.Sleep(time.Second)
	if n := b.Running(); n != 0 {
		t.Fatalf("node b runs %d watchers while node a holds the lock", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "node b to take the watcher over", func() bool { return b.Running() == 1 })
	s2 := e.session(b, "5", checkout.MemoText)
	e.pay(customer, e.kp.Address(), "5", txnbuild.MemoText(s2.Memo))
	e.received(s2.ID, 50_000_000)
	if n := e.count(`SELECT count(*) FROM payments WHERE session_id IN ($1, $2)`, s1.ID, s2.ID); n != 2 {
		t.Fatalf("%d payments recorded, want 2", n)
	}
}
