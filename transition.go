package checkout

import (
	"fmt"
	"time"
)

// Input is something that can happen to an existing session: a payment
// observed on the ledger, an expiry or a cancel.
type Input interface{ isInput() }

// PaymentObserved says a payment naming the session was seen on the ledger.
type PaymentObserved struct{ Payment Payment }

// Expire says the session's account has been watched through every ledger
// that closed up to At. A session expires only once At is past its expiry, so
// a payment whose ledger closed in time is never made late by a slow watcher.
type Expire struct{ At time.Time }

// Cancel is the merchant calling the session off.
type Cancel struct{}

func (PaymentObserved) isInput() {}
func (Expire) isInput()          {}
func (Cancel) isInput()          {}

// Transition is what Apply decided: the session after the input, the payment
// as it is to be recorded (for PaymentObserved), and the events to emit. The
// caller commits all three in one transaction, naming the version it read.
type Transition struct {
	Session Session
	Payment *Payment
	Events  []Event
	// Changed is false for a replayed expire or cancel: nothing to write.
	Changed bool
}

// Apply decides what in does to s at time now. It is the only place that
// changes a session's status, payment status or amount received. It is pure:
// the same session, input and time always give the same transition, except
// for the fresh ids of recorded payments and events.
func Apply(s Session, in Input, now time.Time) (Transition, error) {
	switch in := in.(type) {
	case PaymentObserved:
		return applyPayment(s, in.Payment, now)
	case Expire:
		return applyExpire(s, in.At, now)
	case Cancel:
		return applyCancel(s, now)
	default:
		return Transition{}, fmt.Errorf("apply %T: unknown input", in)
	}
}

func applyPayment(s Session, p Payment, now time.Time) (Transition, error) {
	if p.OperationID == "" {
		return Transition{}, Errorf(EINVALID, "payment has no operation id")
	}
	if p.Amount < 0 {
		return Transition{}, Errorf(EINVALID, "payment %s has a negative amount", p.OperationID)
	}
	p.SessionID = s.ID
	p.CreatedAt = now
	if p.ID == "" {
		p.ID = NewID(PrefixPayment)
	}
	next := s
	next.Version++
	next.UpdatedAt = now

	var types []EventType
	switch {
	case !s.IsOpen() || p.LedgerClosedAt.After(s.ExpiresAt):
		// The session had closed, or ledger time had passed its expiry, when
		// this payment's ledger closed. A payment late by ledger time does
		// not expire the session itself: an earlier, punctual payment may
		// still be on its way (a retried hand-off), and must find the
		// session open. Expiry waits for the recovery actor, which acts
		// only once the account's watcher has recorded every ledger up to
		// past the expiry.
		p.Disposition = DispositionLate
		types = []EventType{EventPaymentLate}
	case p.Asset != s.Asset:
		p.Disposition = DispositionWrongAsset
		types = []EventType{EventPaymentWrongAsset}
	default:
		received, ok := s.AmountReceived.Add(p.Amount)
		if !ok {
			return Transition{}, ErrAmountOverflow
		}
		p.Disposition = DispositionApplied
		next.AmountReceived = received
		next.PaymentStatus = paymentStatus(received, s.Amount)
		types = []EventType{EventPaymentReceived}
		if received >= s.Amount {
			next.Status = StatusComplete
			next.ClosedAt = p.LedgerClosedAt
			types = append(types, EventSessionCompleted)
		}
	}
	t := Transition{Session: next, Payment: &p, Changed: true}
	for _, typ := range types {
		t.Events = append(t.Events, newEvent(typ, next, &p, now))
	}
	return t, nil
}

func applyExpire(s Session, at, now time.Time) (Transition, error) {
	switch {
	case s.Status == StatusExpired:
		return Transition{Session: s}, nil
	case !s.IsOpen():
		return Transition{}, ErrSessionNotOpen
	case !at.After(s.ExpiresAt):
		return Transition{}, ErrNotYetExpired
	}
	next := s
	next.Status = StatusExpired
	next.ClosedAt = s.ExpiresAt
	next.Version++
	next.UpdatedAt = now
	return Transition{
		Session: next,
		Events:  []Event{newEvent(EventSessionExpired, next, nil, now)},
		Changed: true,
	}, nil
}

func applyCancel(s Session, now time.Time) (Transition, error) {
	switch {
	case s.Status == StatusCanceled:
		return Transition{Session: s}, nil
	case !s.IsOpen():
		return Transition{}, ErrSessionNotOpen
	}
	next := s
	next.Status = StatusCanceled
	next.ClosedAt = now
	next.Version++
	next.UpdatedAt = now
	return Transition{
		Session: next,
		Events:  []Event{newEvent(EventSessionCanceled, next, nil, now)},
		Changed: true,
	}, nil
}

// Unmatched records a payment whose memo names no session on its account.
// It is raised to every merchant receiving on that account and never dropped.
func Unmatched(p Payment, merchantIDs []string, now time.Time) (Payment, []Event) {
	p.SessionID = ""
	p.Disposition = DispositionUnmatched
	p.CreatedAt = now
	if p.ID == "" {
		p.ID = NewID(PrefixPayment)
	}
	events := make([]Event, 0, len(merchantIDs))
	for _, m := range merchantIDs {
		events = append(events, Event{
			ID: NewID(PrefixEvent), Type: EventPaymentUnmatched, MerchantID: m,
			PaymentID: p.ID, Payment: &p, CreatedAt: now,
		})
	}
	return p, events
}

func paymentStatus(received, amount Amount) PaymentStatus {
	switch {
	case received == 0:
		return PaymentUnpaid
	case received < amount:
		return PaymentPartiallyPaid
	case received == amount:
		return PaymentPaid
	default:
		return PaymentOverpaid
	}
}

func newEvent(typ EventType, s Session, p *Payment, now time.Time) Event {
	e := Event{
		ID: NewID(PrefixEvent), Type: typ, MerchantID: s.MerchantID,
		SessionID: s.ID, Session: &s, CreatedAt: now,
	}
	if p != nil {
		e.PaymentID = p.ID
		e.Payment = p
	}
	return e
}
