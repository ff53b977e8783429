package actors

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	checkout "github.com/checkoutd/checkoutd"
)

// Sessions is how code outside the actor system reaches session actors. Each
// call goes through the supervisor, which activates the session on demand.
// Calls for one session are handled in the order they are made.
type Sessions struct {
	root       *actor.RootContext
	supervisor *actor.PID
	timeout    time.Duration
}

// PendingPayment is a payment handed to its session actor, whose commit has
// not been awaited yet.
type PendingPayment struct{ future *actor.Future }

// Observe hands a payment to its session's actor and returns at once. The
// hand-off is ordered: payments observed one after another for the same
// session are applied in that order.
func (s *Sessions) Observe(sessionID string, p checkout.Payment, receivedAt time.Time) *PendingPayment {
	f := s.root.RequestFuture(s.supervisor, deliver{sessionID: sessionID,
		msg: &ObservePayment{Payment: p, ReceivedAt: receivedAt}}, s.timeout)
	return &PendingPayment{future: f}
}

// Wait blocks until the payment is durably recorded, or fails. A timeout
// means the outcome is unknown: observe the payment again, and the unique
// operation id absorbs the duplicate.
func (pp *PendingPayment) Wait() (*PaymentReply, error) {
	res, err := pp.future.Result()
	if err != nil {
		return nil, fmt.Errorf("await payment: %w", err)
	}
	reply, ok := res.(*PaymentReply)
	if !ok {
		return nil, fmt.Errorf("await payment: unexpected reply %T", res)
	}
	if reply.Err != nil {
		return reply, reply.Err
	}
	return reply, nil
}

// Get returns the session as its actor holds it.
func (s *Sessions) Get(sessionID string) (checkout.Session, error) {
	return s.ask(sessionID, &GetSession{})
}

// Cancel cancels an open session. Canceling a canceled session is a no-op;
// any other status is checkout.ErrSessionNotOpen.
func (s *Sessions) Cancel(sessionID string) (checkout.Session, error) {
	return s.ask(sessionID, &CancelSession{})
}

// Expire expires a session whose account has been watched through ledger
// time at.
func (s *Sessions) Expire(sessionID string, at time.Time) (checkout.Session, error) {
	return s.ask(sessionID, &ExpireSession{At: at})
}

// Repair has a session's actor reload it and commit whatever its payments
// call for.
func (s *Sessions) Repair(sessionID string) (checkout.Session, error) {
	return s.ask(sessionID, &RepairSession{})
}

func (s *Sessions) ask(sessionID string, msg any) (checkout.Session, error) {
	res, err := s.root.RequestFuture(s.supervisor, deliver{sessionID: sessionID, msg: msg}, s.timeout).Result()
	if err != nil {
		return checkout.Session{}, fmt.Errorf("session %s: %T: %w", sessionID, msg, err)
	}
	reply, ok := res.(*SessionReply)
	if !ok {
		return checkout.Session{}, fmt.Errorf("session %s: unexpected reply %T", sessionID, res)
	}
	return reply.Session, reply.Err
}
