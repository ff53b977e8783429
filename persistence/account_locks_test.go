package persistence_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/persistence/pgtest"
)

// TestAccountLocks checks that an account's lock has one holder at a time,
// passes to another holder when given back or when its holder closes, and
// that a holder whose connection dies learns that it lost its locks.
func TestAccountLocks(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.New(t)
	// The URL is the one the pool takes, pool settings included.
	a := persistence.StartAccountLocks(dsn+"&application_name=locks-a&pool_max_conns=12", 100*time.Millisecond, nil)
	defer a.Close()
	b := persistence.StartAccountLocks(dsn, 100*time.Millisecond, nil)
	defer b.Close()
	const acct = "GACCOUNT"

	lost, ok, err := a.TryLock(ctx, acct)
	if err != nil || !ok {
		t.Fatalf("a takes a free lock: ok %v, err %v", ok, err)
	}
	if _, ok, err := a.TryLock(ctx, acct); err != nil || !ok {
		t.Fatalf("a takes its own lock again: ok %v, err %v", ok, err)
	}
	if _, ok, err := b.TryLock(ctx, acct); err != nil || ok {
		t.Fatalf("b takes a's lock: ok %v, err %v", ok, err)
	}
	if _, ok, err := b.TryLock(ctx, "GOTHER"); err != nil || !ok {
		t.Fatalf("b takes another account's lock: ok %v, err %v", ok, err)
	}
	if err := a.Unlock(ctx, acct); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := b.TryLock(ctx, acct); err != nil || !ok {
		t.Fatalf("b takes the lock a gave back: ok %v, err %v", ok, err)
	}
	if err := b.Unlock(ctx, acct); err != nil {
		t.Fatal(err)
	}

	// a takes the lock again, then its connection is killed from the server
	// side, as when Postgres restarts or the network cuts it.
	lost, ok, err = a.TryLock(ctx, acct)
	if err != nil || !ok {
		t.Fatalf("a takes the lock back: ok %v, err %v", ok, err)
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'locks-a'`); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(30 * time.Second):
		t.Fatal("a was not told that its connection, and its locks, were lost")
	}
	if _, ok, err := b.TryLock(ctx, acct); err != nil || !ok {
		t.Fatalf("b takes the lock a lost: ok %v, err %v", ok, err)
	}
	// a reconnects on its next try, and finds the lock taken.
	if _, ok, err := a.TryLock(ctx, acct); err != nil || ok {
		t.Fatalf("a takes b's lock after reconnecting: ok %v, err %v", ok, err)
	}
}
