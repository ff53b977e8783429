package actors

import (
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors/clusterpb"
)

// Sessions is how the watchers, recovery and the API reach session actors.
// Calls for one session are handled in the order they are made. A single
// node reaches them through its supervisor; a cluster node through the
// session grains, wherever the cluster placed them (cluster.go).
type Sessions interface {
	// Observe hands a payment to its session's actor and returns at once.
	Observe(sessionID string, p checkout.Payment, receivedAt time.Time) *PendingPayment
	// Get returns the session as its actor holds it.
	Get(sessionID string) (checkout.Session, error)
	// Cancel cancels an open session.
	Cancel(sessionID string) (checkout.Session, error)
	// Expire expires a session whose account has been watched through at.
	Expire(sessionID string, at time.Time) (checkout.Session, error)
	// Repair has a session's actor reload it and commit what its payments
	// call for.
	Repair(sessionID string) (checkout.Session, error)
}

// localSessions reaches the session actors of this node: each call goes
// through the supervisor, which activates the session on demand.
type localSessions struct {
	root       *actor.RootContext
	supervisor *actor.PID
	timeout    time.Duration
}

// PendingPayment is a payment handed to its session actor, whose commit has
// not been awaited yet.
type PendingPayment struct {
	future *actor.Future
	// err is why the payment could not be handed off at all.
	err error
	// resend, when set, hands the payment off again after a dead letter: the
	// message never reached an actor (a grain that moved or stopped), so
	// sending it again cannot apply it twice.
	resend func() (*actor.Future, error)
}

// deadLetterResends bounds how often Wait resends a dead-lettered payment.
const deadLetterResends = 20

// Observe hands a payment to its session's actor and returns at once. The
// hand-off is ordered: payments observed one after another for the same
// session are applied in that order.
func (s *localSessions) Observe(sessionID string, p checkout.Payment, receivedAt time.Time) *PendingPayment {
	f := s.root.RequestFuture(s.supervisor, deliver{sessionID: sessionID,
		msg: &ObservePayment{Payment: p, ReceivedAt: receivedAt}}, s.timeout)
	return &PendingPayment{future: f}
}

// Wait blocks until the payment is durably recorded, or fails. A timeout
// means the outcome is unknown: observe the payment again, and the unique
// operation id absorbs the duplicate.
func (pp *PendingPayment) Wait() (*PaymentReply, error) {
	if pp.err != nil {
		return nil, fmt.Errorf("hand off payment: %w", pp.err)
	}
	res, err := pp.future.Result()
	for i := 0; pp.resend != nil && errors.Is(err, actor.ErrDeadLetter) && i < deadLetterResends; i++ {
		time.Sleep(min(time.Duration(i+1)*50*time.Millisecond, 500*time.Millisecond))
		f, ferr := pp.resend()
		if ferr != nil {
			return nil, fmt.Errorf("hand off payment: %w", ferr)
		}
		res, err = f.Result()
	}
	if err != nil {
		return nil, fmt.Errorf("await payment: %w", err)
	}
	if pb, ok := res.(*clusterpb.PaymentReply); ok {
		res = paymentReplyFromProto(pb)
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
func (s *localSessions) Get(sessionID string) (checkout.Session, error) {
	return s.ask(sessionID, &GetSession{})
}

// Cancel cancels an open session. Canceling a canceled session is a no-op;
// any other status is checkout.ErrSessionNotOpen.
func (s *localSessions) Cancel(sessionID string) (checkout.Session, error) {
	return s.ask(sessionID, &CancelSession{})
}

// Expire expires a session whose account has been watched through ledger
// time at.
func (s *localSessions) Expire(sessionID string, at time.Time) (checkout.Session, error) {
	return s.ask(sessionID, &ExpireSession{At: at})
}

// Repair has a session's actor reload it and commit whatever its payments
// call for.
func (s *localSessions) Repair(sessionID string) (checkout.Session, error) {
	return s.ask(sessionID, &RepairSession{})
}

func (s *localSessions) ask(sessionID string, msg any) (checkout.Session, error) {
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
