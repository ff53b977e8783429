package chaos

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/webhooks"
)

// panicSteps are the points of a session actor's message handling where
// TestActorPanics panics, each payment at the next one in turn.
var panicSteps = []string{
	"before_settle",       // actors.Hooks.BeforeSettle, before the commit
	"store_before_commit", // in Store.Settle, before the journal commits
	"store_after_commit",  // in Store.Settle, after the commit: the reply is lost
	"after_settle",        // actors.Hooks.AfterSettle, before memory and reply
	"rehydrate",           // BeforeSettle, then GetSession in the restart's Started
}

// panicker decides where each payment's handling panics. Each operation
// panics once at its step (and once more where the step arms a second
// panic), so that every payment is eventually settled.
type panicker struct {
	mu       sync.Mutex
	next     int
	step     map[string]string // operation id -> step
	done     map[string]bool   // operation id + step -> panicked
	armedGet map[string]bool   // session id -> panic on next GetSession
	armedPBO map[string]bool   // operation id -> panic on next PaymentByOperation
	canceled map[string]bool   // session id -> cancel commit panicked
	counts   map[string]int
}

func newPanicker(offset int) *panicker {
	return &panicker{next: offset, step: map[string]string{}, done: map[string]bool{}, armedGet: map[string]bool{},
		armedPBO: map[string]bool{}, canceled: map[string]bool{}, counts: map[string]int{}}
}

// should reports whether op panics at step now, and marks it.
func (p *panicker) should(op, step string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.step[op]
	if !ok {
		s = panicSteps[p.next%len(panicSteps)]
		p.next++
		p.step[op] = s
	}
	if s != step || p.done[op+"/"+step] {
		return false
	}
	p.done[op+"/"+step] = true
	p.counts[step]++
	return true
}

func (p *panicker) hooks() actors.Hooks {
	return actors.Hooks{
		BeforeSettle: func(sessionID string, m *actors.ObservePayment) {
			op := m.Payment.OperationID
			if p.should(op, "before_settle") {
				panic("chaos: before_settle " + op)
			}
			if p.should(op, "rehydrate") {
				p.mu.Lock()
				p.armedGet[sessionID] = true
				p.mu.Unlock()
				panic("chaos: panic, then again in rehydration, " + op)
			}
		},
		AfterSettle: func(sessionID string, m *actors.ObservePayment) {
			if op := m.Payment.OperationID; p.should(op, "after_settle") {
				panic("chaos: after_settle " + op)
			}
		},
	}
}

// panicStore wraps the actors' store with panics.
type panicStore struct {
	actors.Store
	p *panicker
}

func (s panicStore) GetSession(ctx context.Context, id string) (checkout.Session, error) {
	s.p.mu.Lock()
	armed := s.p.armedGet[id]
	delete(s.p.armedGet, id)
	if armed {
		s.p.counts["rehydrate"]++
	}
	s.p.mu.Unlock()
	if armed {
		panic("chaos: rehydrate " + id)
	}
	return s.Store.GetSession(ctx, id)
}

func (s panicStore) Settle(ctx context.Context, t checkout.Transition, readVersion int64) error {
	if t.Payment == nil {
		if len(t.Events) > 0 && t.Events[0].Type == checkout.EventSessionCanceled {
			s.p.mu.Lock()
			first := !s.p.canceled[t.Session.ID]
			s.p.canceled[t.Session.ID] = true
			if first {
				s.p.counts["cancel_before_commit"]++
			}
			s.p.mu.Unlock()
			if first {
				panic("chaos: cancel before commit " + t.Session.ID)
			}
		}
		return s.Store.Settle(ctx, t, readVersion)
	}
	op := t.Payment.OperationID
	if s.p.should(op, "store_before_commit") {
		panic("chaos: store_before_commit " + op)
	}
	err := s.Store.Settle(ctx, t, readVersion)
	if err == nil && s.p.should(op, "store_after_commit") {
		s.p.mu.Lock()
		s.p.armedPBO[op] = true
		s.p.mu.Unlock()
		panic("chaos: store_after_commit " + op)
	}
	return err
}

func (s panicStore) PaymentByOperation(ctx context.Context, op string) (checkout.Payment, error) {
	s.p.mu.Lock()
	armed := s.p.armedPBO[op]
	delete(s.p.armedPBO, op)
	if armed {
		s.p.counts["already_applied_lookup"]++
	}
	s.p.mu.Unlock()
	if armed {
		panic("chaos: already_applied_lookup " + op)
	}
	return s.Store.PaymentByOperation(ctx, op)
}

func (p *panicker) summary() (int, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var parts []string
	total := 0
	for k, n := range p.counts {
		parts = append(parts, fmt.Sprintf("%s=%d", k, n))
		total += n
	}
	sort.Strings(parts)
	return total, strings.Join(parts, " ")
}

// startInProc runs checkoutd in this process for the scenario.
func (e *env) startInProc(cfg InProcConfig) *InProc {
	e.t.Helper()
	cfg.DatabaseURL, cfg.HorizonURL = e.dsn, e.sbURL
	logs := &lockedBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	e.t.Cleanup(func() {
		if e.t.Failed() {
			e.t.Logf("in-process checkoutd warnings (end):\n%s", logs.Tail(8000))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := StartInProc(ctx, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	var once sync.Once
	e.t.Cleanup(func() { once.Do(func() { _ = p.Stop() }) })
	e.setNodes(func() []string { return []string{p.URL} })
	return p
}

// TestActorPanics makes session actors panic at every step of their
// message handling in turn: before the commit (in the hook and in the
// store), after the commit with the reply lost, after the hook, in the
// rehydration that follows a restart, in the already-applied lookup of the
// redelivery, and in a cancel's commit.
func TestActorPanics(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := newPanicker(int(e.seed % uint64(len(panicSteps))))
	node := e.startInProc(InProcConfig{Hooks: p.hooks(), WrapStore: func(s actors.Store) actors.Store { return panicStore{s, p} }})
	e.setupTraffic(8)
	stop := e.runTraffic()
	time.Sleep(scale(40 * time.Second))
	stop()
	rep := e.settleWith(scale(120*time.Second), func() {
		n, kinds := p.summary()
		e.mu.Lock()
		e.faults["actor_panic"] = n
		e.mu.Unlock()
		t.Logf("panics: %s; supervisor restarts: %d", kinds, node.System().Restarts())
	})
	_ = rep
}

// TestWebhookLongOutage takes the receiver down for longer than several
// retry delays, then makes it slow, then brings it back. It runs in
// process with a retry schedule of seconds instead of minutes, so that the
// deliveries that failed many times come due within the run.
func TestWebhookLongOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	e.startInProc(InProcConfig{Backoff: webhooks.Backoff{Schedule: []time.Duration{time.Second, 2 * time.Second, 4 * time.Second}}})
	e.setupTraffic(8)
	stop := e.runTraffic()
	time.Sleep(5 * time.Second)
	e.receiver.SetMode(ReceiverDown, 0)
	e.fault("receiver_down_20s")
	time.Sleep(scale(20 * time.Second))
	e.receiver.SetMode(ReceiverSlow, 2*time.Second)
	e.fault("receiver_slow_10s")
	time.Sleep(scale(10 * time.Second))
	e.receiver.SetMode(ReceiverUp, 0)
	time.Sleep(5 * time.Second)
	stop()
	e.settle(scale(120 * time.Second))
}
