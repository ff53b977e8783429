// Package actors runs checkoutd's in-memory half: one actor per checkout
// session, the supervisor that owns them, the ledger watchers that feed them
// payments, and the recovery actor that repairs what a crash left behind.
// Every state change an actor makes is a Postgres commit first.
package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	"time"

	checkout "github.com/checkoutd/checkoutd"
)

// ObservePayment asks a session actor to apply a payment seen on the ledger.
// The reply is a *PaymentReply.
type ObservePayment struct {
	Payment checkout.Payment
	// ReceivedAt is when the watcher received the payment from Horizon.
	ReceivedAt time.Time
}

// ExpireSession asks a session actor to expire its session, because its
// account's watcher has seen every ledger that closed up to At. The reply is
// a *SessionReply.
type ExpireSession struct{ At time.Time }

// CancelSession asks a session actor to cancel its session. The reply is a
// *SessionReply.
type CancelSession struct{}

// GetSession asks a session actor for its session. The reply is a
// *SessionReply.
type GetSession struct{}

// RepairSession asks a session actor to reload its session and payments from
// Postgres and commit whatever repair they call for. The reply is a
// *SessionReply.
type RepairSession struct{}

// PaymentReply answers ObservePayment once the payment is durably recorded.
type PaymentReply struct {
	// Payment is the payment as recorded, with its disposition.
	Payment checkout.Payment
	// Session is the session after the payment.
	Session checkout.Session
	// AlreadyApplied is true when the operation was recorded before; the
	// reply then describes the earlier record.
	AlreadyApplied bool
	Err            error
}

// SessionReply answers the session commands and queries.
type SessionReply struct {
	Session checkout.Session
	Err     error
}

// deliver is how the outside world reaches a session: the supervisor routes
// msg to the session's actor, activating it if need be. The actor replies to
// the deliver's sender.
type deliver struct {
	sessionID string
	msg       any
}

// passivate is a session actor telling its supervisor it has been idle.
type passivate struct {
	sessionID string
	pid       *actor.PID
}

// restartChild is the supervisor's timer firing for a backed-off restart.
type restartChild struct{ sessionID string }

// drain asks the supervisor to stop every session actor after the messages
// already queued for it, and to answer once all have stopped.
type drain struct{}

// drained answers drain.
type drained struct{}
