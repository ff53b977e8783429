package actors_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
)

func TestSessionActorSettlesPayments(t *testing.T) {
	e := newEnv(t, actors.Config{})
	now := time.Now()
	usd := usdc(t)
	otherIssuer := usdc(t)

	type pay struct {
		amount   string
		asset    checkout.Asset
		closedAt time.Duration // after now
		want     checkout.Disposition
	}
	tests := []struct {
		name          string
		amount        string
		asset         checkout.Asset
		payments      []pay
		status        checkout.Status
		paymentStatus checkout.PaymentStatus
		received      string
		events        []checkout.EventType
	}{
		{
			name: "exact", amount: "12.5", asset: checkout.NativeAsset,
			payments: []pay{{"12.5000000", checkout.NativeAsset, 0, checkout.DispositionApplied}},
			status:   checkout.StatusComplete, paymentStatus: checkout.PaymentPaid, received: "12.5000000",
			events: []checkout.EventType{checkout.EventPaymentReceived, checkout.EventSessionCompleted},
		},
		{
			name: "partial then completing", amount: "10", asset: usd,
			payments: []pay{
				{"4", usd, 0, checkout.DispositionApplied},
				{"6", usd, time.Second, checkout.DispositionApplied},
			},
			status: checkout.StatusComplete, paymentStatus: checkout.PaymentPaid, received: "10.0000000",
			events: []checkout.EventType{checkout.EventPaymentReceived, checkout.EventPaymentReceived, checkout.EventSessionCompleted},
		},
		{
			name: "overpaid", amount: "10", asset: checkout.NativeAsset,
			payments: []pay{{"10.0000001", checkout.NativeAsset, 0, checkout.DispositionApplied}},
			status:   checkout.StatusComplete, paymentStatus: checkout.PaymentOverpaid, received: "10.0000001",
			events: []checkout.EventType{checkout.EventPaymentReceived, checkout.EventSessionCompleted},
		},
		{
			name: "wrong issuer does not count", amount: "10", asset: usd,
			payments: []pay{{"10", otherIssuer, 0, checkout.DispositionWrongAsset}},
			status:   checkout.StatusOpen, paymentStatus: checkout.PaymentUnpaid, received: "0.0000000",
			events: []checkout.EventType{checkout.EventPaymentWrongAsset},
		},
		{
			name: "ledger closed after expiry is late", amount: "10", asset: checkout.NativeAsset,
			payments: []pay{{"10", checkout.NativeAsset, 2 * time.Hour, checkout.DispositionLate}},
			status:   checkout.StatusOpen, paymentStatus: checkout.PaymentUnpaid, received: "0.0000000",
			events: []checkout.EventType{checkout.EventPaymentLate},
		},
		{
			name: "payment after completion is late", amount: "1", asset: checkout.NativeAsset,
			payments: []pay{
				{"1", checkout.NativeAsset, 0, checkout.DispositionApplied},
				{"1", checkout.NativeAsset, time.Second, checkout.DispositionLate},
			},
			status: checkout.StatusComplete, paymentStatus: checkout.PaymentPaid, received: "1.0000000",
			events: []checkout.EventType{checkout.EventPaymentReceived, checkout.EventSessionCompleted, checkout.EventPaymentLate},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := e.session(tt.amount, tt.asset, time.Hour)
			for i, p := range tt.payments {
				reply, err := e.system.Sessions().Observe(s.ID, e.payment(s, p.amount, p.asset, now.Add(p.closedAt)), time.Now()).Wait()
				if err != nil {
					t.Fatalf("payment %d: %v", i, err)
				}
				if reply.Payment.Disposition != p.want || reply.AlreadyApplied {
					t.Fatalf("payment %d: disposition %s (already applied %v), want %s", i, reply.Payment.Disposition, reply.AlreadyApplied, p.want)
				}
			}
			got := e.load(s.ID)
			if got.Status != tt.status || got.PaymentStatus != tt.paymentStatus || got.AmountReceived.String() != tt.received {
				t.Fatalf("session = %s/%s/%s, want %s/%s/%s", got.Status, got.PaymentStatus, got.AmountReceived, tt.status, tt.paymentStatus, tt.received)
			}
			if want := int64(1 + len(tt.payments)); got.Version != want {
				t.Errorf("version = %d, want %d", got.Version, want)
			}
			inMemory, err := e.system.Sessions().Get(s.ID)
			if err != nil || inMemory.Version != got.Version || inMemory.AmountReceived != got.AmountReceived {
				t.Errorf("actor holds %+v (err %v), Postgres holds version %d", inMemory, err, got.Version)
			}
			assertEvents(t, e, s.ID, tt.events)
		})
	}
}

func assertEvents(t *testing.T, e *env, sessionID string, want []checkout.EventType) {
	t.Helper()
	events, err := e.db.SessionEvents(t.Context(), sessionID)
	if err != nil {
		t.Fatal(err)
	}
	var got []checkout.EventType
	for _, ev := range events {
		got = append(got, ev.Type)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events = %v, want %v", got, want)
	}
}

func TestSameOperationIsAppliedOnce(t *testing.T) {
	e := newEnv(t, actors.Config{})
	s := e.session("5", checkout.NativeAsset, time.Hour)
	p := e.payment(s, "2", checkout.NativeAsset, time.Now())
	var first checkout.Payment
	for i := range 3 {
		reply, err := e.system.Sessions().Observe(s.ID, p, time.Now()).Wait()
		if err != nil {
			t.Fatal(err)
		}
		if reply.AlreadyApplied != (i > 0) {
			t.Fatalf("delivery %d: already applied = %v", i, reply.AlreadyApplied)
		}
		if i == 0 {
			first = reply.Payment
		} else if reply.Payment.ID != first.ID {
			t.Fatalf("delivery %d answered with payment %s, first was %s", i, reply.Payment.ID, first.ID)
		}
	}
	if n := e.count(`SELECT count(*) FROM payments WHERE operation_id = $1`, p.OperationID); n != 1 {
		t.Fatalf("%d payment rows, want 1", n)
	}
	if got := e.load(s.ID); got.AmountReceived.String() != "2.0000000" || got.Version != 2 {
		t.Fatalf("session received %s at version %d, want 2.0000000 at 2", got.AmountReceived, got.Version)
	}
	assertEvents(t, e, s.ID, []checkout.EventType{checkout.EventPaymentReceived})
}

func TestCancelAndExpire(t *testing.T) {
	e := newEnv(t, actors.Config{})
	sessions := e.system.Sessions()

	open := e.session("1", checkout.NativeAsset, time.Hour)
	got, err := sessions.Cancel(open.ID)
	if err != nil || got.Status != checkout.StatusCanceled {
		t.Fatalf("cancel open: %s, %v", got.Status, err)
	}
	if again, err := sessions.Cancel(open.ID); err != nil || again.Version != got.Version {
		t.Fatalf("replayed cancel: version %d (was %d), err %v; want a no-op", again.Version, got.Version, err)
	}
	assertEvents(t, e, open.ID, []checkout.EventType{checkout.EventSessionCanceled})

	paid := e.session("1", checkout.NativeAsset, time.Hour)
	if _, err := sessions.Observe(paid.ID, e.payment(paid, "1", checkout.NativeAsset, time.Now()), time.Now()).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := sessions.Cancel(paid.ID); !errors.Is(err, checkout.ErrSessionNotOpen) {
		t.Fatalf("cancel complete: err %v, want ErrSessionNotOpen", err)
	}

	exp := e.session("1", checkout.NativeAsset, time.Hour)
	if _, err := sessions.Expire(exp.ID, exp.ExpiresAt); !errors.Is(err, checkout.ErrNotYetExpired) {
		t.Fatalf("expire at expires_at: err %v, want ErrNotYetExpired", err)
	}
	if got, err := sessions.Expire(exp.ID, exp.ExpiresAt.Add(time.Second)); err != nil || got.Status != checkout.StatusExpired {
		t.Fatalf("expire after expires_at: %s, %v", got.Status, err)
	}

	if _, err := sessions.Get("cs_aaaaaaaaaaaaaaaaaaaaaaaa"); !errors.Is(err, checkout.ErrNotFound) {
		t.Fatalf("unknown session: err %v, want ErrNotFound", err)
	}
}

// TestPanicMidMessage makes a session actor panic after its commit and
// before its reply, and before its commit. Either way the supervisor
// restarts it, it rehydrates, and the redelivered payment counts once.
func TestPanicMidMessage(t *testing.T) {
	for _, where := range []string{"before settle", "after settle"} {
		t.Run(where, func(t *testing.T) {
			var armed atomic.Bool
			armed.Store(true)
			boom := func(string, *actors.ObservePayment) {
				if armed.CompareAndSwap(true, false) {
					panic("injected fault " + where)
				}
			}
			cfg := actors.Config{AskTimeout: 300 * time.Millisecond, RestartBackoff: time.Millisecond}
			if where == "before settle" {
				cfg.Hooks.BeforeSettle = boom
			} else {
				cfg.Hooks.AfterSettle = boom
			}
			e := newEnv(t, cfg)
			s := e.session("3", checkout.NativeAsset, time.Hour)
			p := e.payment(s, "3", checkout.NativeAsset, time.Now())

			if _, err := e.system.Sessions().Observe(s.ID, p, time.Now()).Wait(); err == nil {
				t.Fatal("the faulted delivery was answered; want a timeout")
			}
			// The watcher redelivers what it could not confirm.
			reply, err := e.system.Sessions().Observe(s.ID, p, time.Now()).Wait()
			if err != nil {
				t.Fatal(err)
			}
			if wantAlready := where == "after settle"; reply.AlreadyApplied != wantAlready {
				t.Fatalf("already applied = %v, want %v", reply.AlreadyApplied, wantAlready)
			}
			if reply.Session.Status != checkout.StatusComplete {
				t.Fatalf("reply session status %s, want complete", reply.Session.Status)
			}
			if n := e.count(`SELECT count(*) FROM payments WHERE session_id = $1 AND disposition = 'applied'`, s.ID); n != 1 {
				t.Fatalf("%d applied payments, want 1", n)
			}
			if e.system.Restarts() != 1 {
				t.Fatalf("restarts = %d, want 1", e.system.Restarts())
			}
			assertEvents(t, e, s.ID, []checkout.EventType{checkout.EventPaymentReceived, checkout.EventSessionCompleted})
		})
	}
}

// TestActorThatKeepsFailingIsStopped checks that a session failing on every
// message is stopped after MaxRestarts, and that the next message activates
// it afresh.
func TestActorThatKeepsFailingIsStopped(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	e := newEnv(t, actors.Config{
		AskTimeout: 200 * time.Millisecond, MaxRestarts: 2, RestartBackoff: time.Millisecond,
		Hooks: actors.Hooks{BeforeSettle: func(string, *actors.ObservePayment) {
			if failing.Load() {
				panic("always failing")
			}
		}},
	})
	s := e.session("3", checkout.NativeAsset, time.Hour)
	p := e.payment(s, "3", checkout.NativeAsset, time.Now())
	for range 3 {
		if _, err := e.system.Sessions().Observe(s.ID, p, time.Now()).Wait(); err == nil {
			t.Fatal("a failing delivery was answered")
		}
	}
	eventually(t, 5*time.Second, "the failing actor to be stopped", func() bool { return e.system.ActiveSessions() == 0 })
	failing.Store(false)
	reply, err := e.system.Sessions().Observe(s.ID, p, time.Now()).Wait()
	if err != nil || reply.Payment.Disposition != checkout.DispositionApplied {
		t.Fatalf("after the fault cleared: %+v, %v", reply, err)
	}
}

// TestPassivationUnderLoad passivates sessions every few milliseconds while
// payments keep arriving: every payment is applied exactly once.
func TestPassivationUnderLoad(t *testing.T) {
	e := newEnv(t, actors.Config{IdleTimeout: 5 * time.Millisecond})
	const sessionsN, paymentsEach = 40, 10
	var list []checkout.Session
	for range sessionsN {
		list = append(list, e.session("10", checkout.NativeAsset, time.Hour))
	}
	var wg sync.WaitGroup
	errs := make(chan error, sessionsN*paymentsEach)
	for _, s := range list {
		wg.Go(func() {
			for i := range paymentsEach {
				if _, err := e.system.Sessions().Observe(s.ID, e.payment(s, "1", checkout.NativeAsset, time.Now()), time.Now()).Wait(); err != nil {
					errs <- err
				}
				if i%3 == 0 {
					time.Sleep(10 * time.Millisecond) // long enough to passivate
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM payments WHERE disposition = 'applied'`); n != sessionsN*paymentsEach {
		t.Fatalf("%d applied payments, want %d", n, sessionsN*paymentsEach)
	}
	if n := e.count(`SELECT count(*) FROM sessions WHERE status = 'complete' AND amount_received = 100000000`); n != sessionsN {
		t.Fatalf("%d sessions complete with 10 received, want %d", n, sessionsN)
	}
	eventually(t, 5*time.Second, "every session to passivate", func() bool { return e.system.ActiveSessions() == 0 })
}

// TestThousandSessionsPaidConcurrently pays 1,000 sessions at once.
func TestThousandSessionsPaidConcurrently(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 sessions")
	}
	e := newEnv(t, actors.Config{})
	const n = 1000
	list := make([]checkout.Session, n)
	for i := range list {
		list[i] = e.session("1", checkout.NativeAsset, time.Hour)
	}
	pending := make([]*actors.PendingPayment, n)
	for i, s := range list {
		pending[i] = e.system.Sessions().Observe(s.ID, e.payment(s, "1", checkout.NativeAsset, time.Now()), time.Now())
	}
	for i, p := range pending {
		if _, err := p.Wait(); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}
	if got := e.count(`SELECT count(*) FROM sessions s WHERE s.status = 'complete'
		AND (SELECT count(*) FROM payments p WHERE p.session_id = s.id AND p.disposition = 'applied') = 1`); got != n {
		t.Fatalf("%d sessions complete with exactly one applied payment, want %d", got, n)
	}
}

// TestTwoNodesFenceOneSession runs two actor systems over one database, as
// during a cluster topology change, each paying the same session: the
// version check makes the loser reload, and every payment counts once.
func TestTwoNodesFenceOneSession(t *testing.T) {
	e := newEnv(t, actors.Config{})
	other := e.start(actors.Config{})
	s := e.session("20", checkout.NativeAsset, time.Hour)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		node := e.system
		if i%2 == 1 {
			node = other
		}
		p := e.payment(s, "1", checkout.NativeAsset, time.Now())
		wg.Go(func() {
			if _, err := node.Sessions().Observe(s.ID, p, time.Now()).Wait(); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := e.load(s.ID)
	if got.AmountReceived.String() != "20.0000000" || got.Status != checkout.StatusComplete || got.Version != 21 {
		t.Fatalf("session %s received at version %d status %s; want 20.0000000 at 21, complete", got.AmountReceived, got.Version, got.Status)
	}
	assertEventCount(t, e, s.ID, checkout.EventSessionCompleted, 1)
}

func assertEventCount(t *testing.T, e *env, sessionID string, typ checkout.EventType, want int) {
	t.Helper()
	if n := e.count(`SELECT count(*) FROM events WHERE session_id = $1 AND type = $2`, sessionID, typ); n != want {
		t.Fatalf("%d %s events, want %d", n, typ, want)
	}
}

// TestHardStopDropsQueuedWork stops the system with a context that has
// already ended: queued payments are not drained, what was committed stays,
// and stopping again is harmless.
func TestHardStopDropsQueuedWork(t *testing.T) {
	cfg := actors.Config{AskTimeout: 30 * time.Second, Hooks: actors.Hooks{
		BeforeSettle: func(string, *actors.ObservePayment) { time.Sleep(20 * time.Millisecond) },
	}}
	e := newEnv(t, cfg)
	s := e.session("1000", checkout.NativeAsset, time.Hour)
	const n = 100
	for range n {
		e.system.Sessions().Observe(s.ID, e.payment(s, "1", checkout.NativeAsset, time.Now()), time.Now())
	}
	eventually(t, 10*time.Second, "the first commit", func() bool {
		return e.count(`SELECT count(*) FROM payments WHERE session_id = $1`, s.ID) > 0
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.system.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("hard stop: err %v, want context.Canceled", err)
	}
	if err := e.system.Stop(context.Background()); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	committed := e.count(`SELECT count(*) FROM payments WHERE session_id = $1`, s.ID)
	time.Sleep(100 * time.Millisecond) // no actor may still be committing
	if after := e.count(`SELECT count(*) FROM payments WHERE session_id = $1`, s.ID); after != committed || committed >= n {
		t.Fatalf("%d payments committed at stop, %d later; want fewer than %d and no change", committed, after, n)
	}
	if got := e.load(s.ID); got.AmountReceived != checkout.Amount(committed)*checkout.StroopsPerUnit {
		t.Fatalf("amount received %s with %d payments recorded", got.AmountReceived, committed)
	}
}
