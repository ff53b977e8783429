package checkout

import "time"

// Repair brings a session back in line with its recorded payments, should
// the two ever disagree: amount_received becomes the sum of the applied
// payments, and payment_status and status follow from it as Apply would have
// decided. A session that agrees with its payments is left unchanged.
func Repair(s Session, payments []Payment, now time.Time) (Transition, error) {
	var (
		received   Amount
		completing *Payment
	)
	for i := range payments {
		p := &payments[i]
		if p.SessionID != s.ID || p.Disposition != DispositionApplied {
			continue
		}
		sum, ok := received.Add(p.Amount)
		if !ok {
			return Transition{}, ErrAmountOverflow
		}
		received = sum
		if completing == nil && received >= s.Amount {
			completing = p
		}
	}
	next := s
	next.AmountReceived = received
	next.PaymentStatus = paymentStatus(received, s.Amount)
	var events []Event
	if s.IsOpen() && completing != nil {
		next.Status = StatusComplete
		next.ClosedAt = completing.LedgerClosedAt
		events = append(events, newEvent(EventSessionCompleted, next, completing, now))
	}
	if next.AmountReceived == s.AmountReceived && next.PaymentStatus == s.PaymentStatus && next.Status == s.Status {
		return Transition{Session: s}, nil
	}
	next.Version++
	next.UpdatedAt = now
	for i := range events {
		events[i].Session = &next
	}
	return Transition{Session: next, Events: events, Changed: true}, nil
}
