package actors_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/keypair"
	hProtocol "github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/txnbuild"
	"github.com/stellar/go-stellar-sdk/xdr"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/persistence/pgtest"
	"github.com/checkoutd/checkoutd/stellar/horizon"
	"github.com/checkoutd/checkoutd/stellar/sandbox"
)

// wenv is one watcher test's world: a database, a sandbox network served
// over real HTTP, a funded merchant account, the session actors and the
// watchers.
type wenv struct {
	t        *testing.T
	db       *persistence.DB
	sql      *pgxpool.Pool
	net      *sandbox.Network
	horizon  *horizon.Client
	system   *actors.System
	merchant checkout.Merchant
	kp       *keypair.Full
	// clockSkew moves the sandbox's ledger clock forward.
	clockSkew atomic.Int64
}

// newWatcherEnv builds the world; opts, if given, configures the session
// actors (its store and logger are filled in).
func newWatcherEnv(t *testing.T, opts ...actors.Config) *wenv {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.New(t)
	db, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	e := &wenv{t: t, db: db, sql: pool}
	n, err := sandbox.New(sandbox.Config{
		LedgerClose: 100 * time.Millisecond,
		Clock:       func() time.Time { return time.Now().Add(time.Duration(e.clockSkew.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = n.Close() }) // first: ends streams so srv.Close does not wait
	nctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if err := n.Start(nctx); err != nil {
		t.Fatal(err)
	}
	e.net = n
	e.horizon, err = horizon.New(horizon.Config{URL: srv.URL, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	e.kp = e.funded()
	e.merchant = e.newMerchant("Watched shop")
	acfg := actors.Config{AskTimeout: 5 * time.Second}
	if len(opts) > 0 {
		acfg = opts[0]
	}
	acfg.Store, acfg.Logger = db, testLogger()
	sys, err := actors.Start(acfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sys.Stop(ctx)
	})
	e.system = sys
	return e
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func (e *wenv) newMerchant(name string) checkout.Merchant {
	e.t.Helper()
	m, err := checkout.NewMerchant(name, e.kp.Address(), time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.CreateMerchant(context.Background(), m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// watchers starts a fresh set of watchers on the environment, stopped at
// cleanup unless the test stops them first.
func (e *wenv) watchers() *actors.Watchers {
	e.t.Helper()
	return e.watchersOn(e.db)
}

// watchersOn is watchers with another store in front of the database.
func (e *wenv) watchersOn(store actors.WatcherStore) *actors.Watchers {
	e.t.Helper()
	ws, err := actors.NewWatchers(actors.WatchersConfig{
		DB: store, Horizon: e.horizon, Sessions: e.system.Sessions(), Logger: testLogger(),
		FlushInterval: 50 * time.Millisecond, CaughtUpInterval: 100 * time.Millisecond,
		WatchdogTimeout: 10 * time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
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

func (e *wenv) funded() *keypair.Full {
	e.t.Helper()
	kp := keypair.MustRandom()
	if err := e.net.Fund(context.Background(), kp.Address()); err != nil {
		e.t.Fatal(err)
	}
	return kp
}

// session creates an open session of amount XLM on the merchant's account.
func (e *wenv) session(ws *actors.Watchers, amount string, memoType checkout.MemoType) checkout.Session {
	e.t.Helper()
	ctx := context.Background()
	if err := ws.Ensure(ctx, e.kp.Address()); err != nil {
		e.t.Fatal(err)
	}
	a, err := checkout.ParseAmount(amount)
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := checkout.NewSession(checkout.SessionParams{
		MerchantID: e.merchant.ID, ReceivingAccount: e.kp.Address(), Amount: a,
		Asset: checkout.NativeAsset, ExpiresIn: time.Hour, MemoType: memoType,
	}, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.CreateSession(ctx, s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// submit builds, signs and submits a transaction from kp without HTTP (so
// injected HTTP faults do not hit it), and waits for its ledger to close.
func (e *wenv) submit(kp *keypair.Full, memo txnbuild.Memo, ops ...txnbuild.Operation) hProtocol.Transaction {
	e.t.Helper()
	acc, err := e.net.Account(kp.Address())
	if err != nil {
		e.t.Fatal(err)
	}
	src := txnbuild.SimpleAccount{AccountID: kp.Address(), Sequence: acc.Sequence}
	tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
		SourceAccount: &src, IncrementSequenceNum: true, BaseFee: txnbuild.MinBaseFee,
		Preconditions: txnbuild.Preconditions{TimeBounds: txnbuild.NewInfiniteTimeout()},
		Memo:          memo, Operations: ops,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := e.net.SubmitTransaction(ctx, tx, kp)
	if err != nil {
		e.t.Fatalf("submit: %v", err)
	}
	return res
}

// pay pays amount XLM from kp to dest (G or M address) with memo.
func (e *wenv) pay(kp *keypair.Full, dest, amount string, memo txnbuild.Memo) hProtocol.Transaction {
	e.t.Helper()
	return e.submit(kp, memo, &txnbuild.Payment{Destination: dest, Amount: amount, Asset: txnbuild.NativeAsset{}})
}

func (e *wenv) load(id string) checkout.Session {
	e.t.Helper()
	s, err := e.db.GetSession(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *wenv) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.sql.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *wenv) cursor() persistence.Cursor {
	e.t.Helper()
	c, err := e.db.GetCursor(context.Background(), e.kp.Address())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// received waits until session id has received want stroops.
func (e *wenv) received(id string, want checkout.Amount) checkout.Session {
	e.t.Helper()
	var s checkout.Session
	waitFor(e.t, 15*time.Second, "session "+id+" to receive "+want.String(), func() bool {
		s = e.load(id)
		return s.AmountReceived >= want
	})
	if s.AmountReceived != want {
		e.t.Fatalf("session %s received %s, want %s", id, s.AmountReceived, want)
	}
	return s
}

func TestWatcherEnsureFixesCursorAtLatestLedger(t *testing.T) {
	e := newWatcherEnv(t)
	ws := e.watchers()
	if ws.Running() != 0 {
		t.Fatalf("Running = %d before Ensure", ws.Running())
	}
	before := e.net.LatestLedger()
	if err := ws.Ensure(context.Background(), e.kp.Address()); err != nil {
		t.Fatal(err)
	}
	c := e.cursor()
	l, err := horizon.LedgerOf(c.PagingToken)
	if err != nil || l < before || l > e.net.LatestLedger() || c.PagingToken != horizon.CursorAfterLedger(l) {
		t.Fatalf("cursor %s (ledger %d), want just after a ledger in [%d, %d]", c.PagingToken, l, before, e.net.LatestLedger())
	}
	// Ensure again is a no-op, and the friendbot payment that created the
	// account (before the cursor) is never replayed.
	if err := ws.Ensure(context.Background(), e.kp.Address()); err != nil {
		t.Fatal(err)
	}
	if ws.Running() != 1 {
		t.Fatalf("Running = %d, want 1", ws.Running())
	}
	waitFor(t, 10*time.Second, "caught_up_to", func() bool { return !e.cursor().CaughtUpTo.IsZero() })
	if n := e.count(`SELECT count(*) FROM payments`); n != 0 {
		t.Fatalf("%d payments recorded from before the cursor", n)
	}
}

func TestWatcherExactPaymentCompletes(t *testing.T) {
	e := newWatcherEnv(t)
	ws := e.watchers()
	s := e.session(ws, "10", checkout.MemoText)
	customer := e.funded()
	tx := e.pay(customer, e.kp.Address(), "10", txnbuild.MemoText(s.Memo))

	got := e.received(s.ID, 100_000_000)
	if got.Status != checkout.StatusComplete || got.PaymentStatus != checkout.PaymentPaid {
		t.Fatalf("session is %s/%s, want complete/paid", got.Status, got.PaymentStatus)
	}
	if !got.ClosedAt.Equal(tx.LedgerCloseTime) {
		t.Errorf("closed_at = %s, want the ledger close time %s", got.ClosedAt, tx.LedgerCloseTime)
	}
	pays, err := e.db.SessionPayments(context.Background(), s.ID)
	if err != nil || len(pays) != 1 {
		t.Fatalf("payments = %v, %v", pays, err)
	}
	p := pays[0]
	if p.TransactionHash != tx.Hash || p.From != customer.Address() || p.To != e.kp.Address() ||
		p.MemoType != "text" || p.Memo != s.Memo || p.Disposition != checkout.DispositionApplied {
		t.Errorf("payment = %+v", p)
	}
	// The durable cursor reaches the payment, and caught_up_to its ledger.
	waitFor(t, 10*time.Second, "the cursor to pass the payment", func() bool {
		c := e.cursor()
		return horizon.ComparePagingTokens(c.PagingToken, p.OperationID) >= 0 && !c.CaughtUpTo.Before(tx.LedgerCloseTime)
	})
	if st := ws.Stats(); st.Payments["applied"] != 1 {
		t.Errorf("stats = %+v", st)
	}
}

func TestWatcherRoutesByMemoMuxedIDAndMerge(t *testing.T) {
	e := newWatcherEnv(t)
	ws := e.watchers()
	text := e.session(ws, "5", checkout.MemoText)
	id := e.session(ws, "5", checkout.MemoID)
	muxed := e.session(ws, "5", checkout.MemoMuxed)
	merged := e.session(ws, "5000", checkout.MemoText)
	customer := e.funded()

	idMemo, _ := strconv.ParseUint(id.Memo, 10, 64)
	muxedID, _ := strconv.ParseUint(muxed.Memo, 10, 64)
	m, err := xdr.MuxedAccountFromAccountId(e.kp.Address(), muxedID)
	if err != nil {
		t.Fatal(err)
	}
	mAddress, err := m.GetAddress()
	if err != nil {
		t.Fatal(err)
	}
	e.pay(customer, e.kp.Address(), "1", txnbuild.MemoText(text.Memo))
	e.pay(customer, e.kp.Address(), "2", txnbuild.MemoID(idMemo))
	e.pay(customer, mAddress, "3", nil)
	// A path payment (strict send, native to native) counts what it delivered.
	e.submit(customer, txnbuild.MemoText(text.Memo), &txnbuild.PathPaymentStrictSend{
		SendAsset: txnbuild.NativeAsset{}, SendAmount: "0.5", Destination: e.kp.Address(),
		DestAsset: txnbuild.NativeAsset{}, DestMin: "0.5",
	})
	// An account merge carries no amount: it comes from the merge's effect.
	leaving := e.funded()
	e.submit(leaving, txnbuild.MemoText(merged.Memo), &txnbuild.AccountMerge{Destination: e.kp.Address()})

	e.received(text.ID, 15_000_000)
	e.received(id.ID, 20_000_000)
	e.received(muxed.ID, 30_000_000)
	var ms checkout.Session
	waitFor(t, 10*time.Second, "the merge", func() bool { ms = e.load(merged.ID); return ms.AmountReceived > 0 })
	// friendbot gave 10,000 XLM; the merge moved that less one fee.
	if want := checkout.Amount(10_000*checkout.StroopsPerUnit - 100); ms.AmountReceived != want {
		t.Errorf("merge credited %s, want %s", ms.AmountReceived, want)
	}
	pays, err := e.db.SessionPayments(context.Background(), muxed.ID)
	if err != nil || len(pays) != 1 || pays[0].ToMuxedID != muxed.Memo {
		t.Fatalf("muxed payments = %+v, %v", pays, err)
	}
	if n := e.count(`SELECT count(*) FROM payments WHERE disposition = 'unmatched'`); n != 0 {
		t.Fatalf("%d unmatched payments", n)
	}
}

func TestWatcherRecordsUnmatchedPayments(t *testing.T) {
	e := newWatcherEnv(t)
	second := e.newMerchant("Second shop on the same account")
	ws := e.watchers()
	s := e.session(ws, "5", checkout.MemoText)
	customer := e.funded()
	unknown := e.pay(customer, e.kp.Address(), "1", txnbuild.MemoText("NOSUCHSESSION"))
	none := e.pay(customer, e.kp.Address(), "2", nil)
	e.pay(customer, e.kp.Address(), "5", txnbuild.MemoText(s.Memo))
	e.received(s.ID, 50_000_000)

	for _, tx := range []hProtocol.Transaction{unknown, none} {
		waitFor(t, 10*time.Second, "the unmatched payment of "+tx.Hash, func() bool {
			return e.count(`SELECT count(*) FROM payments WHERE transaction_hash = $1 AND disposition = 'unmatched' AND session_id IS NULL`, tx.Hash) == 1
		})
		n := e.count(`SELECT count(DISTINCT merchant_id) FROM events e JOIN payments p ON p.id = e.payment_id
			WHERE p.transaction_hash = $1 AND e.type = 'payment.unmatched' AND e.merchant_id IN ($2, $3)`,
			tx.Hash, e.merchant.ID, second.ID)
		if n != 2 {
			t.Errorf("payment.unmatched raised to %d merchants, want 2", n)
		}
	}
}

func TestWatcherAbsorbsReplaysAndStreamCuts(t *testing.T) {
	e := newWatcherEnv(t)
	// Every stream ends after five events, and every reconnect first
	// resends the three events before its cursor, so each connection
	// brings at most two new payments.
	if err := e.net.SetFaults(sandbox.Faults{StreamCutAfter: 5, ReplayOnReconnect: 3}); err != nil {
		t.Fatal(err)
	}
	ws := e.watchers()
	s := e.session(ws, "100", checkout.MemoText)
	customer := e.funded()
	const payments = 12
	for range payments {
		e.pay(customer, e.kp.Address(), "1", txnbuild.MemoText(s.Memo))
	}
	e.received(s.ID, payments*checkout.StroopsPerUnit)
	// Wait a little for stray replays, then check nothing was doubled.
	time.Sleep(300 * time.Millisecond)
	if got := e.load(s.ID).AmountReceived; got != payments*checkout.StroopsPerUnit {
		t.Fatalf("received %s after replays", got)
	}
	if n := e.count(`SELECT count(*) FROM payments WHERE session_id = $1`, s.ID); n != payments {
		t.Fatalf("%d payments recorded, want %d", n, payments)
	}
	st := ws.Stats()
	if st.Reconnects["closed"] == 0 || st.Payments["replayed"] == 0 {
		t.Errorf("stats = %+v, want stream cuts and replays", st)
	}
}

func TestWatcherRestartResumesFromCursor(t *testing.T) {
	e := newWatcherEnv(t)
	ws := e.watchers()
	s := e.session(ws, "100", checkout.MemoText)
	customer := e.funded()
	for range 3 {
		e.pay(customer, e.kp.Address(), "1", txnbuild.MemoText(s.Memo))
	}
	e.received(s.ID, 3*checkout.StroopsPerUnit)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ws.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	stoppedAt := e.cursor()
	if err := ws.Ensure(ctx, e.kp.Address()); err == nil {
		t.Fatal("Ensure after Stop: want an error")
	}

	// Payments while nobody watches, then a new set of watchers.
	for range 4 {
		e.pay(customer, e.kp.Address(), "1", txnbuild.MemoText(s.Memo))
	}
	if got := e.load(s.ID).AmountReceived; got != 3*checkout.StroopsPerUnit {
		t.Fatalf("received %s while stopped", got)
	}
	if c := e.cursor(); c.PagingToken != stoppedAt.PagingToken {
		t.Fatalf("cursor moved from %s to %s while stopped", stoppedAt.PagingToken, c.PagingToken)
	}
	ws2 := e.watchers()
	if ws2.Running() != 1 {
		t.Fatalf("Running = %d after Start, want 1", ws2.Running())
	}
	e.received(s.ID, 7*checkout.StroopsPerUnit)
	if n := e.count(`SELECT count(*) FROM payments WHERE session_id = $1`, s.ID); n != 7 {
		t.Fatalf("%d payments recorded, want 7", n)
	}
}

func TestWatcherBacksOffOnRateLimitsAndOutages(t *testing.T) {
	e := newWatcherEnv(t)
	ws := e.watchers()
	s := e.session(ws, "100", checkout.MemoText)
	customer := e.funded()
	if err := e.net.SetFaults(sandbox.Faults{Rate429: 0.4, Rate503: 0.4, StreamCutAfter: 1, RetryAfter: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		e.pay(customer, e.kp.Address(), "1", txnbuild.MemoText(s.Memo))
	}
	waitFor(t, 10*time.Second, "rate limits and outages", func() bool {
		st := ws.Stats()
		return st.Reconnects["rate_limited"] > 0 && st.Reconnects["unavailable"] > 0
	})
	if err := e.net.SetFaults(sandbox.Faults{}); err != nil {
		t.Fatal(err)
	}
	e.received(s.ID, 5*checkout.StroopsPerUnit)
	waitFor(t, 10*time.Second, "a stream to reopen", func() bool { return ws.Streaming() == 1 })
}

func TestWatcherCaughtUpWaitsForUnacknowledgedPayment(t *testing.T) {
	e := newWatcherEnv(t)
	ws := e.watchers()
	s := e.session(ws, "100", checkout.MemoText)
	customer := e.funded()
	waitFor(t, 10*time.Second, "caught_up_to while idle", func() bool { return !e.cursor().CaughtUpTo.IsZero() })
	idle := e.cursor().CaughtUpTo
	waitFor(t, 10*time.Second, "caught_up_to to advance while idle", func() bool { return e.cursor().CaughtUpTo.After(idle) })

	// Hold the account's stream, and close the payment's ledger well after
	// every earlier one, so that caught_up_to reaching it would show.
	if err := e.net.SetFaults(sandbox.Faults{Hold: []string{e.kp.Address()}}); err != nil {
		t.Fatal(err)
	}
	e.clockSkew.Store(int64(time.Minute))
	tx := e.pay(customer, e.kp.Address(), "1", txnbuild.MemoText(s.Memo))
	before := ws.Stats().CaughtUp
	time.Sleep(time.Second) // ten caught-up intervals; ledgers keep closing
	c := e.cursor()
	if !c.CaughtUpTo.Before(tx.LedgerCloseTime) {
		t.Fatalf("caught_up_to %s passed the ledger (%s) of a payment not yet received", c.CaughtUpTo, tx.LedgerCloseTime)
	}
	if after := ws.Stats().CaughtUp; after > before+1 { // one check may have been in flight
		t.Fatalf("caught_up_to advanced %d times while a payment was held", after-before)
	}

	if err := e.net.SetFaults(sandbox.Faults{}); err != nil {
		t.Fatal(err)
	}
	e.received(s.ID, checkout.StroopsPerUnit)
	waitFor(t, 10*time.Second, "caught_up_to to pass the payment's ledger", func() bool {
		return !e.cursor().CaughtUpTo.Before(tx.LedgerCloseTime)
	})
}

func TestWatcherHoldsCursorForUnacknowledgedPaymentAndRetries(t *testing.T) {
	var calls atomic.Int64
	release := make(chan struct{})
	e := newWatcherEnv(t, actors.Config{
		AskTimeout: 500 * time.Millisecond,
		Hooks: actors.Hooks{BeforeSettle: func(string, *actors.ObservePayment) {
			if calls.Add(1) == 1 {
				<-release // the first hand-off is stuck: received, not acknowledged
			}
		}},
	})
	ws := e.watchers()
	s := e.session(ws, "1", checkout.MemoText)
	customer := e.funded()
	waitFor(t, 10*time.Second, "caught_up_to while idle", func() bool { return !e.cursor().CaughtUpTo.IsZero() })
	e.clockSkew.Store(int64(time.Minute))
	tx := e.pay(customer, e.kp.Address(), "1", txnbuild.MemoText(s.Memo))
	waitFor(t, 10*time.Second, "the payment to reach its session actor", func() bool { return calls.Load() >= 1 })

	time.Sleep(time.Second) // flushes and caught-up checks run meanwhile
	c := e.cursor()
	l, _ := horizon.LedgerOf(c.PagingToken)
	if want := ledgerOf(t, e, tx); l >= want {
		t.Fatalf("cursor %s (ledger %d) passed the unacknowledged payment's ledger %d", c.PagingToken, l, want)
	}
	if !c.CaughtUpTo.Before(tx.LedgerCloseTime) {
		t.Fatalf("caught_up_to %s passed the unacknowledged payment's ledger (%s)", c.CaughtUpTo, tx.LedgerCloseTime)
	}
	close(release)
	got := e.received(s.ID, checkout.StroopsPerUnit)
	if got.Status != checkout.StatusComplete {
		t.Fatalf("session is %s", got.Status)
	}
	if n := e.count(`SELECT count(*) FROM payments WHERE session_id = $1`, s.ID); n != 1 {
		t.Fatalf("%d payments recorded, want 1", n)
	}
	if st := ws.Stats(); st.Retries == 0 {
		t.Errorf("stats = %+v, want the timed-out hand-off retried", st)
	}
	waitFor(t, 10*time.Second, "the cursor and caught_up_to to pass the payment", func() bool {
		c := e.cursor()
		l, _ := horizon.LedgerOf(c.PagingToken)
		return l >= ledgerOf(t, e, tx) && !c.CaughtUpTo.Before(tx.LedgerCloseTime)
	})
}

func ledgerOf(t *testing.T, e *wenv, tx hProtocol.Transaction) uint32 {
	t.Helper()
	if tx.Ledger <= 0 {
		t.Fatalf("transaction %s has no ledger", tx.Hash)
	}
	return uint32(tx.Ledger)
}

func TestWatcherKeepsSessionOrder(t *testing.T) {
	e := newWatcherEnv(t)
	ws := e.watchers()
	s := e.session(ws, "2", checkout.MemoText)
	customer := e.funded()
	// Four payments of 1 XLM in one transaction: the first two complete the
	// session, so the last two, and only they, are late.
	ops := make([]txnbuild.Operation, 4)
	for i := range ops {
		ops[i] = &txnbuild.Payment{Destination: e.kp.Address(), Amount: "1", Asset: txnbuild.NativeAsset{}}
	}
	e.submit(customer, txnbuild.MemoText(s.Memo), ops...)
	waitFor(t, 15*time.Second, "four payments", func() bool {
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
			t.Fatalf("operation %d (%s) is %s, want %s", i, p.OperationID, p.Disposition, want[i])
		}
	}
	if got := e.load(s.ID); got.AmountReceived != 2*checkout.StroopsPerUnit || got.Status != checkout.StatusComplete {
		t.Fatalf("session = %s, %s", got.AmountReceived, got.Status)
	}
}

// flakyStore fails the first calls of the lookups and writes a watcher
// makes, as a Postgres outage would.
type flakyStore struct {
	*persistence.DB
	lookups, unmatched atomic.Int64
}

var errOutage = errors.New("injected database outage")

func (f *flakyStore) SessionIDByMemo(ctx context.Context, account string, t checkout.MemoType, memo string) (string, error) {
	if f.lookups.Add(1) <= 3 {
		return "", errOutage
	}
	return f.DB.SessionIDByMemo(ctx, account, t, memo)
}

func (f *flakyStore) RecordUnmatched(ctx context.Context, p checkout.Payment, events []checkout.Event) error {
	if f.unmatched.Add(1) <= 3 {
		return errOutage
	}
	return f.DB.RecordUnmatched(ctx, p, events)
}

func TestWatcherRetriesThroughDatabaseErrors(t *testing.T) {
	e := newWatcherEnv(t)
	store := &flakyStore{DB: e.db}
	ws := e.watchersOn(store)
	s := e.session(ws, "1", checkout.MemoText)
	customer := e.funded()
	lost := e.pay(customer, e.kp.Address(), "3", txnbuild.MemoText("NOSUCHSESSION"))
	e.pay(customer, e.kp.Address(), "1", txnbuild.MemoText(s.Memo))
	e.received(s.ID, checkout.StroopsPerUnit)
	waitFor(t, 10*time.Second, "the unmatched payment", func() bool {
		return e.count(`SELECT count(*) FROM payments WHERE transaction_hash = $1 AND disposition = 'unmatched'`, lost.Hash) == 1
	})
	if st := ws.Stats(); st.Retries < 6 {
		t.Errorf("stats = %+v, want at least 6 retries", st)
	}
}

func TestWatcherStopAbandonsUnacknowledgedAndReplaysIt(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	e := newWatcherEnv(t, actors.Config{
		AskTimeout: 10 * time.Second,
		Hooks: actors.Hooks{BeforeSettle: func(string, *actors.ObservePayment) {
			once.Do(func() { <-release })
		}},
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	ws := e.watchers()
	s := e.session(ws, "5", checkout.MemoText)
	customer := e.funded()
	first := e.pay(customer, e.kp.Address(), "1", txnbuild.MemoText(s.Memo))
	e.pay(customer, e.kp.Address(), "1", txnbuild.MemoText(s.Memo))
	time.Sleep(300 * time.Millisecond) // both handed off; the first is stuck
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := ws.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want the deadline", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Stop took %s with an expired context", d)
	}
	c := e.cursor()
	l, _ := horizon.LedgerOf(c.PagingToken)
	if l >= ledgerOf(t, e, first) {
		t.Fatalf("cursor %s (ledger %d) passed the unacknowledged payment of ledger %d", c.PagingToken, l, ledgerOf(t, e, first))
	}
	close(release)
	e.watchers()
	e.received(s.ID, 2*checkout.StroopsPerUnit)
	if n := e.count(`SELECT count(*) FROM payments WHERE session_id = $1`, s.ID); n != 2 {
		t.Fatalf("%d payments recorded, want 2", n)
	}
}
