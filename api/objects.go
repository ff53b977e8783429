package api

import (
	"fmt"
	"strconv"
	"time"

	"github.com/stellar/go-stellar-sdk/strkey"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/stellar/sep7"
)

// The objects below are the API's wire format. They are kept apart from the
// domain types so that a change inside checkoutd never changes the API by
// accident; openapi.json describes each of them.

// timestamp is a time in RFC 3339, UTC, to the second.
type timestamp time.Time

func (t timestamp) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Time(t).UTC().Format(time.RFC3339) + `"`), nil
}

// sessionObject is a checkout session as merchants see it.
type sessionObject struct {
	ID             string            `json:"id"`
	Object         string            `json:"object"`
	Status         checkout.Status   `json:"status"`
	PaymentStatus  string            `json:"payment_status"`
	Amount         string            `json:"amount"`
	AmountReceived string            `json:"amount_received"`
	Asset          string            `json:"asset"`
	PayTo          payTo             `json:"pay_to"`
	PaymentURI     string            `json:"payment_uri"`
	URL            string            `json:"url"`
	ExpiresAt      timestamp         `json:"expires_at"`
	CreatedAt      timestamp         `json:"created_at"`
	ClosedAt       *timestamp        `json:"closed_at"`
	Metadata       map[string]string `json:"metadata"`
	SuccessURL     string            `json:"success_url"`
	CancelURL      string            `json:"cancel_url"`
}

// payTo says where and how a customer pays a session.
type payTo struct {
	Destination string `json:"destination"`
	Memo        string `json:"memo,omitempty"`
	MemoType    string `json:"memo_type"`
}

// paymentObject is a payment seen on the ledger for a session.
type paymentObject struct {
	ID              string    `json:"id"`
	Object          string    `json:"object"`
	Session         *string   `json:"session"`
	OperationID     string    `json:"operation_id"`
	OperationType   string    `json:"operation_type"`
	TransactionHash string    `json:"transaction_hash"`
	From            string    `json:"from"`
	To              string    `json:"to"`
	Amount          string    `json:"amount"`
	Asset           string    `json:"asset"`
	Memo            string    `json:"memo"`
	MemoType        string    `json:"memo_type"`
	Disposition     string    `json:"disposition"`
	LedgerClosedAt  timestamp `json:"ledger_closed_at"`
	CreatedAt       timestamp `json:"created_at"`
}

// eventObject is an entry of the merchant's event log.
type eventObject struct {
	ID        string    `json:"id"`
	Object    string    `json:"object"`
	Type      string    `json:"type"`
	CreatedAt timestamp `json:"created_at"`
	Data      eventData `json:"data"`
}

// eventData is the state an event left behind.
type eventData struct {
	Session *sessionObject `json:"session,omitempty"`
	Payment *paymentObject `json:"payment,omitempty"`
}

// listObject is one page of a list.
type listObject[T any] struct {
	Object  string `json:"object"`
	Data    []T    `json:"data"`
	HasMore bool   `json:"has_more"`
	URL     string `json:"url"`
}

// muxedAddress is the M-address (SEP-23) of account with the given id.
func muxedAddress(account, id string) (string, error) {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return "", fmt.Errorf("muxed id %q: %w", id, err)
	}
	var m strkey.MuxedAccount
	if err := m.SetAccountID(account); err != nil {
		return "", fmt.Errorf("muxed address of %s: %w", account, err)
	}
	m.SetID(n)
	return m.Address()
}

// sessionObject renders a session. A muxed session is paid at its M-address
// with no memo; text and id sessions at the account with the memo.
func (s *Server) sessionObject(sess checkout.Session) (sessionObject, error) {
	pay, err := sep7.ForSession(sess, sess.Amount, s.cfg.NetworkPassphrase)
	if err != nil {
		return sessionObject{}, err
	}
	to := payTo{Destination: pay.Destination, Memo: pay.Memo, MemoType: string(sess.MemoType)}
	metadata := sess.Metadata
	if metadata == nil {
		metadata = map[string]string{}
	}
	o := sessionObject{
		ID:             sess.ID,
		Object:         "checkout.session",
		Status:         sess.Status,
		PaymentStatus:  string(sess.PaymentStatus),
		Amount:         sess.Amount.String(),
		AmountReceived: sess.AmountReceived.String(),
		Asset:          sess.Asset.String(),
		PayTo:          to,
		PaymentURI:     pay.String(),
		URL:            s.cfg.PublicURL + "/c/" + sess.ID,
		ExpiresAt:      timestamp(sess.ExpiresAt),
		CreatedAt:      timestamp(sess.CreatedAt),
		Metadata:       metadata,
		SuccessURL:     sess.SuccessURL,
		CancelURL:      sess.CancelURL,
	}
	if !sess.ClosedAt.IsZero() {
		t := timestamp(sess.ClosedAt)
		o.ClosedAt = &t
	}
	return o, nil
}

// paymentObject renders a payment.
func paymentObjectOf(p checkout.Payment) paymentObject {
	o := paymentObject{
		ID:              p.ID,
		Object:          "payment",
		OperationID:     p.OperationID,
		OperationType:   p.OperationType,
		TransactionHash: p.TransactionHash,
		From:            p.From,
		To:              p.To,
		Amount:          p.Amount.String(),
		Asset:           p.Asset.String(),
		Memo:            p.Memo,
		MemoType:        p.MemoType,
		Disposition:     string(p.Disposition),
		LedgerClosedAt:  timestamp(p.LedgerClosedAt),
		CreatedAt:       timestamp(p.CreatedAt),
	}
	if p.ToMuxedID != "" {
		if m, err := muxedAddress(p.To, p.ToMuxedID); err == nil {
			o.To = m
		}
	}
	if p.SessionID != "" {
		id := p.SessionID
		o.Session = &id
	}
	return o
}

// eventObject renders an event.
func (s *Server) eventObject(e checkout.Event) (eventObject, error) {
	o := eventObject{ID: e.ID, Object: "event", Type: string(e.Type), CreatedAt: timestamp(e.CreatedAt)}
	if e.Session != nil {
		so, err := s.sessionObject(*e.Session)
		if err != nil {
			return eventObject{}, fmt.Errorf("event %s: %w", e.ID, err)
		}
		o.Data.Session = &so
	}
	if e.Payment != nil {
		po := paymentObjectOf(*e.Payment)
		o.Data.Payment = &po
	}
	return o, nil
}
