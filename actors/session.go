package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	checkout "github.com/checkoutd/checkoutd"
)

// Store is what a session actor needs of Postgres. The persistence package
// implements it directly; the group-commit journal implements it by batching.
type Store interface {
	GetSession(ctx context.Context, id string) (checkout.Session, error)
	Settle(ctx context.Context, t checkout.Transition, readVersion int64) error
	PaymentByOperation(ctx context.Context, operationID string) (checkout.Payment, error)
	SessionPayments(ctx context.Context, sessionID string) ([]checkout.Payment, error)
}

// maxConflictRetries bounds the reload-and-decide loop on version conflicts.
// Conflicts come only from another writer of the same session (a second node
// during a topology change, or recovery racing an actor), so a handful of
// retries is plenty.
const maxConflictRetries = 16

// sessionActor serializes everything that happens to one session. It holds
// the session as last committed, and changes it only after a commit.
type sessionActor struct {
	id     string
	cfg    *Config
	logger *slog.Logger

	session checkout.Session
	// loadErr is why the session could not be loaded; every message is then
	// answered with it.
	loadErr error

	// lastActive and idleTimer implement passivation. protoactor's own
	// SetReceiveTimeout races with message processing (the race detector
	// reports it in actor_context.go), so the actor keeps its own timer,
	// which only ever sends it a message.
	lastActive time.Time
	idleTimer  *time.Timer
	// onIdle asks for the actor to be stopped once idle. Nil: ask the
	// supervisor (its parent). A cluster grain stops itself instead.
	onIdle func(ctx actor.Context)
}

// idleCheck is the session actor's idle timer firing.
type idleCheck struct{}

func newSessionActor(id string, cfg *Config) *sessionActor {
	return &sessionActor{id: id, cfg: cfg, logger: cfg.Logger.With("session_id", id)}
}

// Receive only dispatches.
func (a *sessionActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.started(ctx)
	case *actor.Restarting:
		a.logger.Warn("session actor restarting")
		a.stopIdleTimer()
	case *actor.Stopping:
		a.stopIdleTimer()
	case *actor.Stopped:
	case *idleCheck:
		a.idle(ctx)
	default:
		a.lastActive = time.Now()
		a.handle(ctx, m)
	}
}

func (a *sessionActor) handle(ctx actor.Context, msg any) {
	if reply := a.reply(msg); reply != nil {
		ctx.Respond(reply)
	}
}

// reply handles one of the session messages and returns its reply, or nil
// for a message it does not know.
func (a *sessionActor) reply(msg any) any {
	switch m := msg.(type) {
	case *ObservePayment:
		return a.observe(m)
	case *ExpireSession:
		return a.command(checkout.Expire{At: m.At})
	case *CancelSession:
		return a.command(checkout.Cancel{})
	case *GetSession:
		return &SessionReply{Session: a.session, Err: a.loadErr}
	case *RepairSession:
		return a.repair()
	}
	return nil
}

// started rehydrates the session from Postgres: on first activation, after a
// passivation, and after a restart. A failure to reach Postgres panics, so
// that the supervisor retries with backoff; a missing session is remembered
// and answered.
func (a *sessionActor) started(ctx actor.Context) {
	if err := a.reload(); err != nil {
		if !errors.Is(err, checkout.ErrNotFound) {
			panic(fmt.Errorf("rehydrate session %s: %w", a.id, err))
		}
		a.loadErr = err
	}
	a.lastActive = time.Now()
	a.armIdleTimer(ctx, a.cfg.IdleTimeout)
}

// idle asks the supervisor to passivate the actor once it has had no message
// for IdleTimeout, and otherwise checks again when it would be.
func (a *sessionActor) idle(ctx actor.Context) {
	quiet := time.Since(a.lastActive)
	if quiet < a.cfg.IdleTimeout {
		a.armIdleTimer(ctx, a.cfg.IdleTimeout-quiet)
		return
	}
	if a.onIdle != nil {
		a.onIdle(ctx)
		return
	}
	ctx.Send(ctx.Parent(), &passivate{sessionID: a.id, pid: ctx.Self()})
	// The supervisor may keep us (during a backed-off restart); ask again later.
	a.armIdleTimer(ctx, a.cfg.IdleTimeout)
}

func (a *sessionActor) armIdleTimer(ctx actor.Context, d time.Duration) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	a.idleTimer = time.AfterFunc(d, func() { root.Send(self, &idleCheck{}) })
}

func (a *sessionActor) stopIdleTimer() {
	if a.idleTimer != nil {
		a.idleTimer.Stop()
	}
}

func (a *sessionActor) reload() error {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.StoreTimeout)
	defer cancel()
	s, err := a.cfg.Store.GetSession(ctx, a.id)
	if err != nil {
		return err
	}
	a.session = s
	return nil
}

func (a *sessionActor) observe(m *ObservePayment) *PaymentReply {
	if a.loadErr != nil {
		return &PaymentReply{Err: a.loadErr}
	}
	a.cfg.Hooks.beforeSettle(a.id, m)
	for range maxConflictRetries {
		t, err := checkout.Apply(a.session, checkout.PaymentObserved{Payment: m.Payment}, a.cfg.Clock())
		if err != nil {
			return &PaymentReply{Err: err}
		}
		err = a.settle(t)
		switch {
		case err == nil:
			a.cfg.metrics.settled(t, m.ReceivedAt)
			a.cfg.Hooks.afterSettle(a.id, m)
			a.session = t.Session
			return &PaymentReply{Payment: *t.Payment, Session: a.session}
		case errors.Is(err, checkout.ErrAlreadyApplied):
			return a.alreadyApplied(m.Payment.OperationID)
		case errors.Is(err, checkout.ErrVersionConflict):
			if err := a.reload(); err != nil {
				return &PaymentReply{Err: err}
			}
		default:
			// The commit's outcome may be unknown. Whatever it was, the next
			// attempt either finds the operation recorded or a version that
			// moved, so the reply never lies.
			a.logger.Warn("settle payment failed", "operation_id", m.Payment.OperationID, "err", err)
			return &PaymentReply{Err: err}
		}
	}
	return &PaymentReply{Err: fmt.Errorf("settle payment %s: %w", m.Payment.OperationID, checkout.ErrVersionConflict)}
}

// alreadyApplied answers a redelivered operation with what was recorded the
// first time, and refreshes the session in case another writer recorded it.
func (a *sessionActor) alreadyApplied(operationID string) *PaymentReply {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.StoreTimeout)
	defer cancel()
	p, err := a.cfg.Store.PaymentByOperation(ctx, operationID)
	if err != nil {
		return &PaymentReply{Err: err}
	}
	if err := a.reload(); err != nil {
		return &PaymentReply{Err: err}
	}
	return &PaymentReply{Payment: p, Session: a.session, AlreadyApplied: true}
}

func (a *sessionActor) command(in checkout.Input) *SessionReply {
	if a.loadErr != nil {
		return &SessionReply{Err: a.loadErr}
	}
	for range maxConflictRetries {
		t, err := checkout.Apply(a.session, in, a.cfg.Clock())
		if err != nil {
			return &SessionReply{Session: a.session, Err: err}
		}
		err = a.settle(t)
		switch {
		case err == nil:
			a.cfg.metrics.committed(t)
			a.session = t.Session
			return &SessionReply{Session: a.session}
		case errors.Is(err, checkout.ErrVersionConflict):
			if err := a.reload(); err != nil {
				return &SessionReply{Err: err}
			}
		default:
			return &SessionReply{Session: a.session, Err: err}
		}
	}
	return &SessionReply{Session: a.session, Err: checkout.ErrVersionConflict}
}

func (a *sessionActor) repair() *SessionReply {
	if err := a.reload(); err != nil {
		return &SessionReply{Err: err}
	}
	a.loadErr = nil
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.StoreTimeout)
	defer cancel()
	payments, err := a.cfg.Store.SessionPayments(ctx, a.id)
	if err != nil {
		return &SessionReply{Session: a.session, Err: err}
	}
	t, err := checkout.Repair(a.session, payments, a.cfg.Clock())
	if err != nil {
		return &SessionReply{Session: a.session, Err: err}
	}
	if err := a.settle(t); err != nil {
		return &SessionReply{Session: a.session, Err: err}
	}
	a.cfg.metrics.committed(t)
	if t.Changed {
		a.logger.Warn("session repaired from its payments",
			"amount_received", t.Session.AmountReceived.String(), "status", t.Session.Status)
		a.session = t.Session
	}
	return &SessionReply{Session: a.session}
}

func (a *sessionActor) settle(t checkout.Transition) error {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.StoreTimeout)
	defer cancel()
	return a.cfg.Store.Settle(ctx, t, a.session.Version)
}
