package checkout

import "time"

// EventType names what happened. Webhook endpoints subscribe by type.
type EventType string

// Event types.
const (
	EventPaymentReceived   EventType = "payment.received"
	EventPaymentLate       EventType = "payment.late"
	EventPaymentWrongAsset EventType = "payment.wrong_asset"
	EventPaymentUnmatched  EventType = "payment.unmatched"
	EventSessionCompleted  EventType = "checkout.session.completed"
	EventSessionExpired    EventType = "checkout.session.expired"
	EventSessionCanceled   EventType = "checkout.session.canceled"
)

// EventTypes lists every event type, for validating subscriptions.
var EventTypes = []EventType{
	EventPaymentReceived, EventPaymentLate, EventPaymentWrongAsset, EventPaymentUnmatched,
	EventSessionCompleted, EventSessionExpired, EventSessionCanceled,
}

// Event is an entry in the outbox: it commits with the state change it
// records and is delivered to the merchant afterwards.
type Event struct {
	ID         string    `json:"id"`
	Type       EventType `json:"type"`
	MerchantID string    `json:"merchant_id"`
	SessionID  string    `json:"session_id,omitempty"`
	PaymentID  string    `json:"payment_id,omitempty"`
	// Session is the session as the transition left it; nil for an
	// unmatched payment.
	Session *Session `json:"session,omitempty"`
	// Payment is the payment the event is about, if any.
	Payment   *Payment  `json:"payment,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}
