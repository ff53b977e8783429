package actors_test

// End-to-end proofs of the actor core: real Postgres, the sandbox network
// over real HTTP, payments built and signed by the wallet, the real
// actors.System (with its recovery actor where expiry matters) and
// actors.Watchers. They reuse wenv from watcher_test.go.
//
// Two proofs asked for alongside these live elsewhere:
//   - the same operation delivered several times is applied once:
//     TestWatcherAbsorbsReplaysAndStreamCuts (stream replays and cuts) and
//     TestSameOperationIsAppliedOnce (three deliveries to Settle);
//   - a cut stream resumes from its cursor and misses nothing:
//     TestWatcherAbsorbsReplaysAndStreamCuts and
//     TestWatcherRestartResumesFromCursor.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/stellar/horizon"
	"github.com/checkoutd/checkoutd/stellar/sandbox"
	"github.com/checkoutd/checkoutd/stellar/sandbox/wallet"
)

// startSystem starts another actor system on e's database, with the
// recovery actor, and makes it the one e.watchers hands payments to. The
// system newWatcherEnv started stays up, idle, until cleanup. stop stops the
// new system once; cleanup calls it too (System.Stop panics when called
// twice).
func (e *wenv) startSystem(cfg actors.Config) (sys *actors.System, stop func(context.Context) error) {
	e.t.Helper()
	cfg.Store, cfg.Logger = e.db, testLogger()
	sys, err := actors.Start(cfg, e.db)
	if err != nil {
		e.t.Fatal(err)
	}
	var once sync.Once
	stop = func(ctx context.Context) error {
		err := errors.New("actor system already stopped")
		once.Do(func() { err = sys.Stop(ctx) })
		return err
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = stop(ctx)
	})
	e.system = sys
	return sys, stop
}

// wallet returns a wallet that submits over HTTP to the sandbox through
// horizonclient, with enough idle connections for many parallel payers.
func (e *wenv) wallet() *wallet.Wallet {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	hc := &horizonclient.Client{HorizonURL: e.horizon.URL() + "/", HTTP: &http.Client{Transport: tr}}
	// horizonclient fills in a zero timeout on each request, a data race
	// when the client is shared; set it before any goroutine uses it.
	hc.SetHorizonTimeout(horizonclient.HorizonTimeout)
	return wallet.New(hc, e.net.Passphrase())
}

// customers creates n accounts holding 100 XLM each, a hundred per
// transaction from one funded bank, instead of n friendbot ledgers.
func (e *wenv) customers(n int) []*keypair.Full {
	e.t.Helper()
	bank := e.funded()
	kps := make([]*keypair.Full, 0, n)
	for len(kps) < n {
		var ops []txnbuild.Operation
		for i := 0; i < 100 && len(kps) < n; i++ {
			kp := keypair.MustRandom()
			kps = append(kps, kp)
			ops = append(ops, &txnbuild.CreateAccount{Destination: kp.Address(), Amount: "100"})
		}
		e.submit(bank, nil, ops...)
	}
	return kps
}

// openSession creates an open session on the merchant's account for amount
// of asset, expiring in expiresIn, with a text memo.
func (e *wenv) openSession(ws *actors.Watchers, amount string, asset checkout.Asset, expiresIn time.Duration) checkout.Session {
	e.t.Helper()
	ctx := context.Background()
	if err := ws.Ensure(ctx, e.kp.Address()); err != nil {
		e.t.Fatal(err)
	}
	s, err := checkout.NewSession(checkout.SessionParams{
		MerchantID: e.merchant.ID, ReceivingAccount: e.kp.Address(), Amount: mustAmount(e.t, amount),
		Asset: asset, ExpiresIn: expiresIn, MemoType: checkout.MemoText,
	}, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.CreateSession(ctx, s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// eventTypes lists a session's events in the order they were raised.
func eventTypes(t *testing.T, db *persistence.DB, sessionID string) []checkout.EventType {
	t.Helper()
	events, err := db.SessionEvents(context.Background(), sessionID)
	if err != nil {
		t.Fatal(err)
	}
	var got []checkout.EventType
	for _, ev := range events {
		got = append(got, ev.Type)
	}
	return got
}

func wantEvents(t *testing.T, db *persistence.DB, sessionID string, want ...checkout.EventType) {
	t.Helper()
	if got := eventTypes(t, db, sessionID); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events of %s = %v, want %v", sessionID, got, want)
	}
}

// onlyPayment waits for the session's single recorded payment and returns it.
func (e *wenv) onlyPayment(sessionID string) checkout.Payment {
	e.t.Helper()
	waitFor(e.t, 15*time.Second, "a payment of "+sessionID, func() bool {
		return e.count(`SELECT count(*) FROM payments WHERE session_id = $1`, sessionID) > 0
	})
	pays, err := e.db.SessionPayments(context.Background(), sessionID)
	if err != nil || len(pays) != 1 {
		e.t.Fatalf("payments of %s = %+v, %v; want exactly one", sessionID, pays, err)
	}
	return pays[0]
}

func (e *wenv) latestLedger() horizon.Ledger {
	e.t.Helper()
	l, err := e.horizon.LatestLedger(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// TestE2EWrongIssuerDoesNotCount pays a USDC session with USDC of another
// issuer: the payment is recorded wrong_asset and counts for nothing; the
// right issuer's USDC then completes the session.
func TestE2EWrongIssuerDoesNotCount(t *testing.T) {
	e := newWatcherEnv(t)
	ctx := context.Background()
	w := e.wallet()
	right, err := e.net.IssueAsset(ctx, "USDC")
	if err != nil {
		t.Fatal(err)
	}
	wrong, err := e.net.IssueAsset(ctx, "USDC")
	if err != nil {
		t.Fatal(err)
	}
	customer := e.funded()
	for _, kp := range []*keypair.Full{e.kp, customer} {
		for _, iss := range []*sandbox.Issuer{right, wrong} {
			if _, err := w.Trust(ctx, kp, iss.Asset); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, iss := range []*sandbox.Issuer{right, wrong} {
		if _, err := w.Pay(ctx, iss.Keypair, customer.Address(), iss.Asset, "10", nil); err != nil {
			t.Fatal(err)
		}
	}
	ws := e.watchers()
	asset := checkout.Asset{Code: "USDC", Issuer: right.Keypair.Address()}
	s := e.openSession(ws, "10", asset, time.Hour)

	tx, err := w.Pay(ctx, customer, e.kp.Address(), wrong.Asset, "10", txnbuild.MemoText(s.Memo))
	if err != nil {
		t.Fatal(err)
	}
	p := e.onlyPayment(s.ID)
	if p.Disposition != checkout.DispositionWrongAsset || p.TransactionHash != tx.Hash ||
		p.Asset != (checkout.Asset{Code: "USDC", Issuer: wrong.Keypair.Address()}) || p.Amount != 10*checkout.StroopsPerUnit {
		t.Fatalf("payment = %+v, want 10 USDC of %s recorded wrong_asset", p, wrong.Keypair.Address())
	}
	got := e.load(s.ID)
	if got.AmountReceived != 0 || got.Status != checkout.StatusOpen || got.PaymentStatus != checkout.PaymentUnpaid {
		t.Fatalf("after the wrong issuer: %s/%s received %s, want open/unpaid received 0", got.Status, got.PaymentStatus, got.AmountReceived)
	}
	wantEvents(t, e.db, s.ID, checkout.EventPaymentWrongAsset)

	if _, err := w.Pay(ctx, customer, e.kp.Address(), right.Asset, "10", txnbuild.MemoText(s.Memo)); err != nil {
		t.Fatal(err)
	}
	got = e.received(s.ID, 10*checkout.StroopsPerUnit)
	if got.Status != checkout.StatusComplete || got.PaymentStatus != checkout.PaymentPaid {
		t.Fatalf("after the right issuer: %s/%s, want complete/paid", got.Status, got.PaymentStatus)
	}
	wantEvents(t, e.db, s.ID, checkout.EventPaymentWrongAsset, checkout.EventPaymentReceived, checkout.EventSessionCompleted)
}

// TestE2EPaymentAfterExpiryIsLate lets ledger time pass a session's expiry:
// recovery expires it once the watcher is caught up past expires_at, and a
// payment afterwards is recorded late and leaves it expired.
func TestE2EPaymentAfterExpiryIsLate(t *testing.T) {
	e := newWatcherEnv(t)
	sys, _ := e.startSystem(actors.Config{AskTimeout: 5 * time.Second, RecoveryInterval: 100 * time.Millisecond})
	ws := e.watchers()
	s := e.openSession(ws, "5", checkout.NativeAsset, checkout.MinExpiresIn)
	customer := e.funded()
	waitFor(t, 10*time.Second, "caught_up_to", func() bool { return !e.cursor().CaughtUpTo.IsZero() })
	if c := e.cursor(); !c.CaughtUpTo.Before(s.ExpiresAt) {
		t.Fatalf("caught_up_to %s already past expires_at %s", c.CaughtUpTo, s.ExpiresAt)
	}

	// Ledger time jumps two minutes: the next ledgers close after expires_at.
	e.clockSkew.Store(int64(2 * time.Minute))
	var got checkout.Session
	waitFor(t, 15*time.Second, "recovery to expire the session", func() bool {
		got = e.load(s.ID)
		return got.Status != checkout.StatusOpen
	})
	if got.Status != checkout.StatusExpired || !got.ClosedAt.Equal(s.ExpiresAt) {
		t.Fatalf("session %s closed at %s, want expired at %s", got.Status, got.ClosedAt, s.ExpiresAt)
	}
	if c := e.cursor(); !c.CaughtUpTo.After(s.ExpiresAt) {
		t.Fatalf("expired with caught_up_to %s not past expires_at %s", c.CaughtUpTo, s.ExpiresAt)
	}
	if n := sys.RecoveryStats().Expired.Load(); n != 1 {
		t.Fatalf("recovery expired %d sessions, want 1", n)
	}
	wantEvents(t, e.db, s.ID, checkout.EventSessionExpired)

	tx, err := e.wallet().Pay(context.Background(), customer, e.kp.Address(), txnbuild.NativeAsset{}, "5", txnbuild.MemoText(s.Memo))
	if err != nil {
		t.Fatal(err)
	}
	if !tx.LedgerCloseTime.After(s.ExpiresAt) {
		t.Fatalf("payment ledger closed at %s, not after expires_at %s", tx.LedgerCloseTime, s.ExpiresAt)
	}
	p := e.onlyPayment(s.ID)
	if p.Disposition != checkout.DispositionLate || p.TransactionHash != tx.Hash || !p.LedgerClosedAt.Equal(tx.LedgerCloseTime) {
		t.Fatalf("payment = %+v, want transaction %s recorded late", p, tx.Hash)
	}
	if err := sys.RunRecovery(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	got = e.load(s.ID)
	if got.Status != checkout.StatusExpired || got.AmountReceived != 0 || got.PaymentStatus != checkout.PaymentUnpaid {
		t.Fatalf("after the late payment: %s/%s received %s, want expired/unpaid received 0", got.Status, got.PaymentStatus, got.AmountReceived)
	}
	wantEvents(t, e.db, s.ID, checkout.EventSessionExpired, checkout.EventPaymentLate)
}

// TestE2EPunctualPaymentObservedAfterExpiry holds the account's stream while
// a payment closes in a ledger before expires_at and ledger time then passes
// it: recovery must not expire the session, because the watcher cannot be
// caught up past a payment it has not received; once released, the payment
// completes the session, and recovery leaves it complete.
func TestE2EPunctualPaymentObservedAfterExpiry(t *testing.T) {
	e := newWatcherEnv(t)
	sys, _ := e.startSystem(actors.Config{AskTimeout: 5 * time.Second, RecoveryInterval: time.Hour})
	ws := e.watchers()
	s := e.openSession(ws, "5", checkout.NativeAsset, checkout.MinExpiresIn)
	customer := e.funded()
	waitFor(t, 10*time.Second, "caught_up_to", func() bool { return !e.cursor().CaughtUpTo.IsZero() })

	if err := e.net.SetFaults(sandbox.Faults{Hold: []string{e.kp.Address()}}); err != nil {
		t.Fatal(err)
	}
	tx, err := e.wallet().Pay(context.Background(), customer, e.kp.Address(), txnbuild.NativeAsset{}, "5", txnbuild.MemoText(s.Memo))
	if err != nil {
		t.Fatal(err)
	}
	if tx.LedgerCloseTime.After(s.ExpiresAt) {
		t.Fatalf("payment ledger closed at %s, after expires_at %s", tx.LedgerCloseTime, s.ExpiresAt)
	}

	// Ledger time passes expires_at and ten more ledgers close (about ten
	// caught-up checks) while the payment is held back.
	e.clockSkew.Store(int64(2 * time.Minute))
	waitFor(t, 10*time.Second, "ledger time past expires_at", func() bool { return e.latestLedger().ClosedAt.After(s.ExpiresAt) })
	past := e.net.LatestLedger()
	waitFor(t, 10*time.Second, "ten more ledgers", func() bool { return e.net.LatestLedger() >= past+10 })
	if err := sys.RunRecovery(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Close times have whole seconds, so a ledger before the payment's may
	// share its close time; caught_up_to must not pass it, nor expires_at.
	if c := e.cursor(); c.CaughtUpTo.After(tx.LedgerCloseTime) || c.CaughtUpTo.After(s.ExpiresAt) {
		t.Fatalf("caught_up_to %s passed the held payment's ledger (%s) or expires_at (%s)", c.CaughtUpTo, tx.LedgerCloseTime, s.ExpiresAt)
	}
	if got := e.load(s.ID); got.Status != checkout.StatusOpen || got.AmountReceived != 0 {
		t.Fatalf("while held: %s received %s, want open with nothing received", got.Status, got.AmountReceived)
	}
	if n := sys.RecoveryStats().Expired.Load(); n != 0 {
		t.Fatalf("recovery expired %d sessions while the payment was held", n)
	}

	if err := e.net.SetFaults(sandbox.Faults{}); err != nil {
		t.Fatal(err)
	}
	got := e.received(s.ID, 5*checkout.StroopsPerUnit)
	if got.Status != checkout.StatusComplete || got.PaymentStatus != checkout.PaymentPaid || !got.ClosedAt.Equal(tx.LedgerCloseTime) {
		t.Fatalf("after release: %s/%s closed at %s, want complete/paid at %s", got.Status, got.PaymentStatus, got.ClosedAt, tx.LedgerCloseTime)
	}
	if p := e.onlyPayment(s.ID); p.Disposition != checkout.DispositionApplied || p.TransactionHash != tx.Hash {
		t.Fatalf("payment = %+v, want transaction %s applied", p, tx.Hash)
	}

	waitFor(t, 10*time.Second, "caught_up_to past expires_at", func() bool { return e.cursor().CaughtUpTo.After(s.ExpiresAt) })
	if err := sys.RunRecovery(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := e.load(s.ID); got.Status != checkout.StatusComplete || got.Version != 2 {
		t.Fatalf("after recovery: %s at version %d, want complete at 2", got.Status, got.Version)
	}
	if st := sys.RecoveryStats(); st.Expired.Load() != 0 || st.Failed.Load() != 0 {
		t.Fatalf("recovery expired %d and failed %d, want 0 and 0", st.Expired.Load(), st.Failed.Load())
	}
	wantEvents(t, e.db, s.ID, checkout.EventPaymentReceived, checkout.EventSessionCompleted)
}

// TestE2EThousandSessionsPaidConcurrently has 50 customers pay 20 sessions
// each, all at once, through the sandbox.
func TestE2EThousandSessionsPaidConcurrently(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 payments through the sandbox")
	}
	const customersN, each = 50, 20
	const n = customersN * each
	e := newWatcherEnv(t)
	ws := e.watchers()
	sessions := make([]checkout.Session, n)
	for i := range sessions {
		sessions[i] = e.openSession(ws, "1", checkout.NativeAsset, time.Hour)
	}
	customers := e.customers(customersN)
	w := e.wallet()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for c, kp := range customers {
		wg.Go(func() {
			for _, s := range sessions[c*each : (c+1)*each] {
				if _, err := w.Pay(context.Background(), kp, e.kp.Address(), txnbuild.NativeAsset{}, "1", txnbuild.MemoText(s.Memo)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	submitted := time.Since(start)
	waitFor(t, 60*time.Second, "every session to complete", func() bool {
		return e.count(`SELECT count(*) FROM sessions WHERE status = 'complete'`) == n
	})
	t.Logf("%d payments submitted in %s, all settled after %s", n, submitted, time.Since(start))
	if got := e.count(`SELECT count(*) FROM sessions s WHERE s.status = 'complete' AND s.payment_status = 'paid'
		AND s.amount_received = $1
		AND (SELECT count(*) FROM payments p WHERE p.session_id = s.id AND p.disposition = 'applied') = 1`,
		checkout.StroopsPerUnit); got != n {
		t.Fatalf("%d sessions paid with exactly one applied payment, want %d", got, n)
	}
	if got := e.count(`SELECT count(*) FROM payments`); got != n {
		t.Fatalf("%d payments recorded, want %d", got, n)
	}
	if got := e.count(`SELECT count(*) FROM events WHERE type = 'checkout.session.completed'`); got != n {
		t.Fatalf("%d completion events, want %d", got, n)
	}
}

// TestE2EPanicAfterCommitIsAppliedOnce makes the session actor panic after
// its commit and before its reply: the supervisor restarts it, the watcher's
// hand-off times out and is redelivered, and the rehydrated actor answers it
// as already applied.
func TestE2EPanicAfterCommitIsAppliedOnce(t *testing.T) {
	var panicked atomic.Bool
	e := newWatcherEnv(t, actors.Config{
		AskTimeout: 300 * time.Millisecond, RestartBackoff: 10 * time.Millisecond,
		Hooks: actors.Hooks{AfterSettle: func(string, *actors.ObservePayment) {
			if panicked.CompareAndSwap(false, true) {
				panic("injected fault after settle")
			}
		}},
	})
	ws := e.watchers()
	s := e.openSession(ws, "3", checkout.NativeAsset, time.Hour)
	customer := e.funded()
	tx, err := e.wallet().Pay(context.Background(), customer, e.kp.Address(), txnbuild.NativeAsset{}, "3", txnbuild.MemoText(s.Memo))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 15*time.Second, "the redelivery to be acknowledged as already applied", func() bool {
		return ws.Stats().Payments["already_applied"] == 1
	})
	if !panicked.Load() {
		t.Fatal("the fault never fired")
	}
	if n := e.system.Restarts(); n != 1 {
		t.Fatalf("restarts = %d, want 1", n)
	}
	if st := ws.Stats(); st.Retries < 1 || st.Payments["applied"] != 0 {
		t.Fatalf("watcher stats = %+v, want a retried hand-off and no second application", st)
	}
	if n := e.count(`SELECT count(*) FROM payments WHERE session_id = $1 AND disposition = 'applied'`, s.ID); n != 1 {
		t.Fatalf("%d applied payments, want 1", n)
	}
	got := e.load(s.ID)
	if got.Status != checkout.StatusComplete || got.AmountReceived != 3*checkout.StroopsPerUnit || got.Version != 2 {
		t.Fatalf("session %s received %s at version %d, want complete, 3 XLM, version 2", got.Status, got.AmountReceived, got.Version)
	}
	if inMemory, err := e.system.Sessions().Get(s.ID); err != nil || inMemory.Version != got.Version || inMemory.Status != checkout.StatusComplete {
		t.Fatalf("the restarted actor holds %s at version %d (err %v)", inMemory.Status, inMemory.Version, err)
	}
	wantEvents(t, e.db, s.ID, checkout.EventPaymentReceived, checkout.EventSessionCompleted)
	waitFor(t, 10*time.Second, "the cursor to pass the payment", func() bool {
		l, _ := horizon.LedgerOf(e.cursor().PagingToken)
		return l >= ledgerOf(t, e, tx)
	})
}

// TestE2EPassivationBetweenPayments pays 50 sessions in four partial
// payments each through the sandbox, with a 20 ms idle timeout: between
// rounds every actor passivates, so each payment reaches a fresh activation
// that rehydrates from Postgres; within a round payments arrive over
// several ledgers while other actors are passivating.
func TestE2EPassivationBetweenPayments(t *testing.T) {
	const sessionsN, parts = 50, 4
	e := newWatcherEnv(t, actors.Config{IdleTimeout: 20 * time.Millisecond, AskTimeout: 5 * time.Second})
	ws := e.watchers()
	sessions := make([]checkout.Session, sessionsN)
	for i := range sessions {
		sessions[i] = e.openSession(ws, "4", checkout.NativeAsset, time.Hour)
	}
	customers := e.customers(sessionsN)
	w := e.wallet()
	for round := 1; round <= parts; round++ {
		var wg sync.WaitGroup
		errs := make(chan error, sessionsN)
		for i, s := range sessions {
			wg.Go(func() {
				time.Sleep(rand.N(150 * time.Millisecond)) // spread over ledgers
				if _, err := w.Pay(context.Background(), customers[i], e.kp.Address(), txnbuild.NativeAsset{}, "1", txnbuild.MemoText(s.Memo)); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		want := int64(round) * checkout.StroopsPerUnit
		waitFor(t, 15*time.Second, fmt.Sprintf("round %d to settle", round), func() bool {
			return e.count(`SELECT count(*) FROM sessions WHERE amount_received = $1`, want) == sessionsN
		})
		waitFor(t, 10*time.Second, fmt.Sprintf("every actor to passivate after round %d", round), func() bool {
			return e.system.ActiveSessions() == 0
		})
	}
	if n := e.count(`SELECT count(*) FROM sessions s WHERE s.status = 'complete' AND s.payment_status = 'paid'
		AND (SELECT count(*) FROM payments p WHERE p.session_id = s.id AND p.disposition = 'applied') = $1`, parts); n != sessionsN {
		t.Fatalf("%d sessions complete with %d applied payments, want %d", n, parts, sessionsN)
	}
	if n := e.count(`SELECT count(*) FROM payments`); n != sessionsN*parts {
		t.Fatalf("%d payments recorded, want %d", n, sessionsN*parts)
	}
}

// TestE2EHardStopMidStream stops the watchers and the actors with an
// expired context while 200 payments stream in and settle, then starts a
// new system and new watchers on the same database and network: every
// payment is applied exactly once. The watcher takes operations from JSON
// pages (the stream only rings the bell), so all 200 are handed off at
// once; settlements are serialized at 5 ms each so that the stop lands with
// many of them still in flight.
func TestE2EHardStopMidStream(t *testing.T) {
	const customersN, each = 20, 10
	const n = customersN * each
	e := newWatcherEnv(t)
	var slow sync.Mutex
	_, stopFirst := e.startSystem(actors.Config{AskTimeout: 5 * time.Second, Hooks: actors.Hooks{
		BeforeSettle: func(string, *actors.ObservePayment) {
			slow.Lock()
			defer slow.Unlock()
			time.Sleep(5 * time.Millisecond)
		},
	}})
	ws := e.watchers()
	sessions := make([]checkout.Session, n)
	for i := range sessions {
		sessions[i] = e.openSession(ws, "1", checkout.NativeAsset, time.Hour)
	}
	customers := e.customers(customersN)

	// All 200 payments are on the ledger before the stream sees any; then
	// the stream is released in slices of ten, each reconnect 30 ms late, so
	// the watcher is mid-stream for a good second.
	if err := e.net.SetFaults(sandbox.Faults{Hold: []string{e.kp.Address()}}); err != nil {
		t.Fatal(err)
	}
	w := e.wallet()
	var wg sync.WaitGroup
	var lastLedger atomic.Int32
	errs := make(chan error, n)
	for c, kp := range customers {
		wg.Go(func() {
			for _, s := range sessions[c*each : (c+1)*each] {
				tx, err := w.Pay(context.Background(), kp, e.kp.Address(), txnbuild.NativeAsset{}, "1", txnbuild.MemoText(s.Memo))
				if err != nil {
					errs <- err
					return
				}
				for old := lastLedger.Load(); tx.Ledger > old && !lastLedger.CompareAndSwap(old, tx.Ledger); old = lastLedger.Load() {
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := e.net.SetFaults(sandbox.Faults{StreamCutAfter: 10, Latency: 30 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "some payments to settle", func() bool {
		return e.count(`SELECT count(*) FROM payments`) >= 30
	})

	expired, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	beforeStop := e.count(`SELECT count(*) FROM payments`)
	stopStart := time.Now()
	if err := ws.Stop(expired); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Watchers.Stop = %v, want the deadline", err)
	}
	sysErr := stopFirst(expired)
	stopTook := time.Since(stopStart)
	atStop := e.count(`SELECT count(*) FROM payments`)
	t.Logf("hard stop took %s (System.Stop: %v) with %d of %d payments recorded before it, %d after", stopTook, sysErr,
		beforeStop, n, atStop)
	if beforeStop >= n {
		t.Fatalf("all %d payments were recorded before the stop; the stop was not mid-stream", n)
	}
	// Settlements already queued in the actors may finish during their stop.
	if l, _ := horizon.LedgerOf(e.cursor().PagingToken); atStop < n && l > uint32(lastLedger.Load()) {
		t.Fatalf("the cursor (ledger %d) is past the last payment's ledger %d although not all were recorded", l, lastLedger.Load())
	}

	if err := e.net.SetFaults(sandbox.Faults{}); err != nil {
		t.Fatal(err)
	}
	e.startSystem(actors.Config{AskTimeout: 5 * time.Second})
	ws2 := e.watchers()
	if ws2.Running() != 1 {
		t.Fatalf("Running = %d after restart, want 1", ws2.Running())
	}
	waitFor(t, 30*time.Second, "every session to complete", func() bool {
		return e.count(`SELECT count(*) FROM sessions WHERE status = 'complete'`) == n
	})
	t.Logf("after the restart: %+v", ws2.Stats().Payments)
	if got := e.count(`SELECT count(*) FROM (SELECT operation_id FROM payments GROUP BY operation_id HAVING count(*) = 1) once`); got != n {
		t.Fatalf("%d operations recorded exactly once, want %d", got, n)
	}
	if got := e.count(`SELECT count(*) FROM payments`); got != n {
		t.Fatalf("%d payments recorded, want %d", got, n)
	}
	if got := e.count(`SELECT count(*) FROM sessions s WHERE s.amount_received = $1
		AND (SELECT count(*) FROM payments p WHERE p.session_id = s.id AND p.disposition = 'applied') = 1`,
		checkout.StroopsPerUnit); got != n {
		t.Fatalf("%d sessions with exactly one applied payment of 1 XLM, want %d", got, n)
	}
	if got := e.count(`SELECT count(*) FROM events WHERE type = 'checkout.session.completed'`); got != n {
		t.Fatalf("%d completion events, want %d", got, n)
	}
}
