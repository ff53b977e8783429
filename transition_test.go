package checkout_test

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/stellar/go-stellar-sdk/keypair"
)

// fixture holds what every transition test shares: a session's asset, the
// same code from another issuer, another code from the same issuer, and the
// session's expiry.
type fixture struct {
	asset       checkout.Asset
	otherIssuer checkout.Asset
	otherCode   checkout.Asset
	receiving   string
	customer    string
	expiresAt   time.Time
}

func newFixture() fixture {
	issuer := keypair.MustRandom().Address()
	return fixture{
		asset:       checkout.Asset{Code: "USDC", Issuer: issuer},
		otherIssuer: checkout.Asset{Code: "USDC", Issuer: keypair.MustRandom().Address()},
		otherCode:   checkout.Asset{Code: "EURC", Issuer: issuer},
		receiving:   keypair.MustRandom().Address(),
		customer:    keypair.MustRandom().Address(),
		expiresAt:   time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC),
	}
}

// sessionState is one consistent combination of status, payment status and
// amount received, for a session of 100 units.
type sessionState struct {
	name     string
	status   checkout.Status
	pay      checkout.PaymentStatus
	received checkout.Amount
}

const sessionAmount = 100 * unit

var (
	openUnpaid      = sessionState{"open/unpaid", checkout.StatusOpen, checkout.PaymentUnpaid, 0}
	openPartial     = sessionState{"open/partially_paid", checkout.StatusOpen, checkout.PaymentPartiallyPaid, 40 * unit}
	completePaid    = sessionState{"complete/paid", checkout.StatusComplete, checkout.PaymentPaid, 100 * unit}
	completeOver    = sessionState{"complete/overpaid", checkout.StatusComplete, checkout.PaymentOverpaid, 130 * unit}
	expiredUnpaid   = sessionState{"expired/unpaid", checkout.StatusExpired, checkout.PaymentUnpaid, 0}
	expiredPartial  = sessionState{"expired/partially_paid", checkout.StatusExpired, checkout.PaymentPartiallyPaid, 40 * unit}
	canceledUnpaid  = sessionState{"canceled/unpaid", checkout.StatusCanceled, checkout.PaymentUnpaid, 0}
	canceledPartial = sessionState{"canceled/partially_paid", checkout.StatusCanceled, checkout.PaymentPartiallyPaid, 40 * unit}

	allStates = []sessionState{
		openUnpaid, openPartial, completePaid, completeOver,
		expiredUnpaid, expiredPartial, canceledUnpaid, canceledPartial,
	}
)

// session returns a session in state st that expires at f.expiresAt.
func (f fixture) session(st sessionState) checkout.Session {
	s := checkout.Session{
		ID:               "cs_aaaaaaaaaaaaaaaaaaaaaaaa",
		MerchantID:       "mer_bbbbbbbbbbbbbbbbbbbbbbbb",
		Amount:           sessionAmount,
		Asset:            f.asset,
		ReceivingAccount: f.receiving,
		MemoType:         checkout.MemoText,
		Memo:             "KQ4XJ2MZ7NBVWE3R",
		Status:           st.status,
		PaymentStatus:    st.pay,
		AmountReceived:   st.received,
		ExpiresAt:        f.expiresAt,
		Metadata:         map[string]string{"order": "42"},
		SuccessURL:       "https://shop.example/success",
		CancelURL:        "https://shop.example/cancel",
		CreatedAt:        f.expiresAt.Add(-time.Hour),
		UpdatedAt:        f.expiresAt.Add(-30 * time.Minute),
		Version:          7,
	}
	switch st.status {
	case checkout.StatusComplete:
		s.ClosedAt = f.expiresAt.Add(-20 * time.Minute)
	case checkout.StatusExpired:
		s.ClosedAt = f.expiresAt
	case checkout.StatusCanceled:
		s.ClosedAt = f.expiresAt.Add(-15 * time.Minute)
	}
	return s
}

// payment returns a payment to s of amount in asset, in a ledger that closed
// at closedAt.
func (f fixture) payment(s checkout.Session, amount checkout.Amount, asset checkout.Asset, closedAt time.Time) checkout.Payment {
	return checkout.Payment{
		OperationID:     "123456789012",
		TransactionHash: "3389e9f0f1a65f19736cacf544c2e825313e8447f569233bb8db39aa607c8889",
		OperationType:   "payment",
		From:            f.customer,
		To:              f.receiving,
		Amount:          amount,
		Asset:           asset,
		MemoType:        "text",
		Memo:            s.Memo,
		LedgerClosedAt:  closedAt,
	}
}

// inputKind is one of the inputs every state is tested against.
type inputKind string

const (
	payExact         inputKind = "pay exact remaining"
	payPartial       inputKind = "pay partial"
	payOver          inputKind = "overpay"
	payWrongIssuer   inputKind = "pay same code, other issuer"
	payWrongCode     inputKind = "pay other code"
	payLedgerLate    inputKind = "pay in a ledger after expiry"
	payLedgerAtExp   inputKind = "pay in a ledger exactly at expiry"
	payObservedLater inputKind = "pay before expiry, observed after"
	expireBefore     inputKind = "expire, At before expiry"
	expireAt         inputKind = "expire, At at expiry"
	expireAfter      inputKind = "expire, At after expiry"
	cancel           inputKind = "cancel"
)

var allInputs = []inputKind{
	payExact, payPartial, payOver, payWrongIssuer, payWrongCode,
	payLedgerLate, payLedgerAtExp, payObservedLater,
	expireBefore, expireAt, expireAfter, cancel,
}

// input builds the input of kind k for session s and the time it is applied.
func (f fixture) input(k inputKind, s checkout.Session) (checkout.Input, time.Time) {
	remaining := s.Amount - s.AmountReceived
	if remaining <= 0 {
		remaining = unit // nothing is owed; any real payment is positive
	}
	onTime := f.expiresAt.Add(-10 * time.Minute)
	observed := func(amount checkout.Amount, asset checkout.Asset, closed, now time.Time) (checkout.Input, time.Time) {
		return checkout.PaymentObserved{Payment: f.payment(s, amount, asset, closed)}, now
	}
	switch k {
	case payExact:
		return observed(remaining, f.asset, onTime, onTime.Add(5*time.Second))
	case payPartial:
		return observed(10*unit, f.asset, onTime, onTime.Add(5*time.Second))
	case payOver:
		return observed(remaining+25*unit, f.asset, onTime, onTime.Add(5*time.Second))
	case payWrongIssuer:
		return observed(remaining, f.otherIssuer, onTime, onTime.Add(5*time.Second))
	case payWrongCode:
		return observed(remaining, f.otherCode, onTime, onTime.Add(5*time.Second))
	case payLedgerLate:
		return observed(remaining, f.asset, f.expiresAt.Add(time.Second), f.expiresAt.Add(6*time.Second))
	case payLedgerAtExp:
		return observed(remaining, f.asset, f.expiresAt, f.expiresAt.Add(5*time.Second))
	case payObservedLater:
		return observed(remaining, f.asset, f.expiresAt.Add(-time.Second), f.expiresAt.Add(time.Hour))
	case expireBefore:
		return checkout.Expire{At: f.expiresAt.Add(-time.Second)}, f.expiresAt
	case expireAt:
		return checkout.Expire{At: f.expiresAt}, f.expiresAt.Add(time.Second)
	case expireAfter:
		return checkout.Expire{At: f.expiresAt.Add(time.Second)}, f.expiresAt.Add(2 * time.Second)
	case cancel:
		return checkout.Cancel{}, f.expiresAt.Add(-5 * time.Minute)
	}
	panic("unknown input kind " + string(k))
}

// closedRule says what ClosedAt must be after a change.
type closedRule int

const (
	closedZero   closedRule = iota // still open
	closedKept                     // already closed; unchanged
	closedLedger                   // completed: the payment's ledger close time
	closedExpiry                   // expired: the session's expires_at
	closedNow                      // canceled: the time of the cancel
)

// outcome is what Apply must do. A set err means Apply fails; noop means it
// succeeds with nothing to write; otherwise it changes the session.
type outcome struct {
	err      error
	noop     bool
	status   checkout.Status
	pay      checkout.PaymentStatus
	received checkout.Amount
	disp     checkout.Disposition // empty when no payment is recorded
	events   []checkout.EventType
	closed   closedRule
}

const (
	open     = checkout.StatusOpen
	complete = checkout.StatusComplete
	expired  = checkout.StatusExpired
	canceled = checkout.StatusCanceled

	unpaid   = checkout.PaymentUnpaid
	partial  = checkout.PaymentPartiallyPaid
	paid     = checkout.PaymentPaid
	overpaid = checkout.PaymentOverpaid

	applied    = checkout.DispositionApplied
	late       = checkout.DispositionLate
	wrongAsset = checkout.DispositionWrongAsset

	evReceived   = checkout.EventPaymentReceived
	evLate       = checkout.EventPaymentLate
	evWrongAsset = checkout.EventPaymentWrongAsset
	evCompleted  = checkout.EventSessionCompleted
	evExpired    = checkout.EventSessionExpired
	evCanceled   = checkout.EventSessionCanceled
)

func evs(types ...checkout.EventType) []checkout.EventType { return types }

// lateOn is the outcome of any payment to a session that is no longer open:
// recorded as late, the session untouched but for its version.
func lateOn(st sessionState) outcome {
	return outcome{status: st.status, pay: st.pay, received: st.received, disp: late, events: evs(evLate), closed: closedKept}
}

func fails(err error) outcome { return outcome{err: err} }

var noop = outcome{noop: true}

// TestApply runs every input against every state. Each row is written out:
// the expectations are the spec, not derived from the code.
func TestApply(t *testing.T) {
	f := newFixture()
	tests := []struct {
		state sessionState
		input inputKind
		want  outcome
	}{
		{openUnpaid, payExact, outcome{status: complete, pay: paid, received: 100 * unit, disp: applied, events: evs(evReceived, evCompleted), closed: closedLedger}},
		{openUnpaid, payPartial, outcome{status: open, pay: partial, received: 10 * unit, disp: applied, events: evs(evReceived), closed: closedZero}},
		{openUnpaid, payOver, outcome{status: complete, pay: overpaid, received: 125 * unit, disp: applied, events: evs(evReceived, evCompleted), closed: closedLedger}},
		{openUnpaid, payWrongIssuer, outcome{status: open, pay: unpaid, received: 0, disp: wrongAsset, events: evs(evWrongAsset), closed: closedZero}},
		{openUnpaid, payWrongCode, outcome{status: open, pay: unpaid, received: 0, disp: wrongAsset, events: evs(evWrongAsset), closed: closedZero}},
		{openUnpaid, payLedgerLate, lateOn(openUnpaid)},
		{openUnpaid, payLedgerAtExp, outcome{status: complete, pay: paid, received: 100 * unit, disp: applied, events: evs(evReceived, evCompleted), closed: closedLedger}},
		{openUnpaid, payObservedLater, outcome{status: complete, pay: paid, received: 100 * unit, disp: applied, events: evs(evReceived, evCompleted), closed: closedLedger}},
		{openUnpaid, expireBefore, fails(checkout.ErrNotYetExpired)},
		{openUnpaid, expireAt, fails(checkout.ErrNotYetExpired)},
		{openUnpaid, expireAfter, outcome{status: expired, pay: unpaid, received: 0, events: evs(evExpired), closed: closedExpiry}},
		{openUnpaid, cancel, outcome{status: canceled, pay: unpaid, received: 0, events: evs(evCanceled), closed: closedNow}},

		{openPartial, payExact, outcome{status: complete, pay: paid, received: 100 * unit, disp: applied, events: evs(evReceived, evCompleted), closed: closedLedger}},
		{openPartial, payPartial, outcome{status: open, pay: partial, received: 50 * unit, disp: applied, events: evs(evReceived), closed: closedZero}},
		{openPartial, payOver, outcome{status: complete, pay: overpaid, received: 125 * unit, disp: applied, events: evs(evReceived, evCompleted), closed: closedLedger}},
		{openPartial, payWrongIssuer, outcome{status: open, pay: partial, received: 40 * unit, disp: wrongAsset, events: evs(evWrongAsset), closed: closedZero}},
		{openPartial, payWrongCode, outcome{status: open, pay: partial, received: 40 * unit, disp: wrongAsset, events: evs(evWrongAsset), closed: closedZero}},
		{openPartial, payLedgerLate, lateOn(openPartial)},
		{openPartial, payLedgerAtExp, outcome{status: complete, pay: paid, received: 100 * unit, disp: applied, events: evs(evReceived, evCompleted), closed: closedLedger}},
		{openPartial, payObservedLater, outcome{status: complete, pay: paid, received: 100 * unit, disp: applied, events: evs(evReceived, evCompleted), closed: closedLedger}},
		{openPartial, expireBefore, fails(checkout.ErrNotYetExpired)},
		{openPartial, expireAt, fails(checkout.ErrNotYetExpired)},
		{openPartial, expireAfter, outcome{status: expired, pay: partial, received: 40 * unit, events: evs(evExpired), closed: closedExpiry}},
		{openPartial, cancel, outcome{status: canceled, pay: partial, received: 40 * unit, events: evs(evCanceled), closed: closedNow}},

		{completePaid, payExact, lateOn(completePaid)},
		{completePaid, payPartial, lateOn(completePaid)},
		{completePaid, payOver, lateOn(completePaid)},
		{completePaid, payWrongIssuer, lateOn(completePaid)},
		{completePaid, payWrongCode, lateOn(completePaid)},
		{completePaid, payLedgerLate, lateOn(completePaid)},
		{completePaid, payLedgerAtExp, lateOn(completePaid)},
		{completePaid, payObservedLater, lateOn(completePaid)},
		{completePaid, expireBefore, fails(checkout.ErrSessionNotOpen)},
		{completePaid, expireAt, fails(checkout.ErrSessionNotOpen)},
		{completePaid, expireAfter, fails(checkout.ErrSessionNotOpen)},
		{completePaid, cancel, fails(checkout.ErrSessionNotOpen)},

		{completeOver, payExact, lateOn(completeOver)},
		{completeOver, payPartial, lateOn(completeOver)},
		{completeOver, payOver, lateOn(completeOver)},
		{completeOver, payWrongIssuer, lateOn(completeOver)},
		{completeOver, payWrongCode, lateOn(completeOver)},
		{completeOver, payLedgerLate, lateOn(completeOver)},
		{completeOver, payLedgerAtExp, lateOn(completeOver)},
		{completeOver, payObservedLater, lateOn(completeOver)},
		{completeOver, expireBefore, fails(checkout.ErrSessionNotOpen)},
		{completeOver, expireAt, fails(checkout.ErrSessionNotOpen)},
		{completeOver, expireAfter, fails(checkout.ErrSessionNotOpen)},
		{completeOver, cancel, fails(checkout.ErrSessionNotOpen)},

		{expiredUnpaid, payExact, lateOn(expiredUnpaid)},
		{expiredUnpaid, payPartial, lateOn(expiredUnpaid)},
		{expiredUnpaid, payOver, lateOn(expiredUnpaid)},
		{expiredUnpaid, payWrongIssuer, lateOn(expiredUnpaid)},
		{expiredUnpaid, payWrongCode, lateOn(expiredUnpaid)},
		{expiredUnpaid, payLedgerLate, lateOn(expiredUnpaid)},
		{expiredUnpaid, payLedgerAtExp, lateOn(expiredUnpaid)},
		{expiredUnpaid, payObservedLater, lateOn(expiredUnpaid)},
		{expiredUnpaid, expireBefore, noop},
		{expiredUnpaid, expireAt, noop},
		{expiredUnpaid, expireAfter, noop},
		{expiredUnpaid, cancel, fails(checkout.ErrSessionNotOpen)},

		{expiredPartial, payExact, lateOn(expiredPartial)},
		{expiredPartial, payPartial, lateOn(expiredPartial)},
		{expiredPartial, payOver, lateOn(expiredPartial)},
		{expiredPartial, payWrongIssuer, lateOn(expiredPartial)},
		{expiredPartial, payWrongCode, lateOn(expiredPartial)},
		{expiredPartial, payLedgerLate, lateOn(expiredPartial)},
		{expiredPartial, payLedgerAtExp, lateOn(expiredPartial)},
		{expiredPartial, payObservedLater, lateOn(expiredPartial)},
		{expiredPartial, expireBefore, noop},
		{expiredPartial, expireAt, noop},
		{expiredPartial, expireAfter, noop},
		{expiredPartial, cancel, fails(checkout.ErrSessionNotOpen)},

		{canceledUnpaid, payExact, lateOn(canceledUnpaid)},
		{canceledUnpaid, payPartial, lateOn(canceledUnpaid)},
		{canceledUnpaid, payOver, lateOn(canceledUnpaid)},
		{canceledUnpaid, payWrongIssuer, lateOn(canceledUnpaid)},
		{canceledUnpaid, payWrongCode, lateOn(canceledUnpaid)},
		{canceledUnpaid, payLedgerLate, lateOn(canceledUnpaid)},
		{canceledUnpaid, payLedgerAtExp, lateOn(canceledUnpaid)},
		{canceledUnpaid, payObservedLater, lateOn(canceledUnpaid)},
		{canceledUnpaid, expireBefore, fails(checkout.ErrSessionNotOpen)},
		{canceledUnpaid, expireAt, fails(checkout.ErrSessionNotOpen)},
		{canceledUnpaid, expireAfter, fails(checkout.ErrSessionNotOpen)},
		{canceledUnpaid, cancel, noop},

		{canceledPartial, payExact, lateOn(canceledPartial)},
		{canceledPartial, payPartial, lateOn(canceledPartial)},
		{canceledPartial, payOver, lateOn(canceledPartial)},
		{canceledPartial, payWrongIssuer, lateOn(canceledPartial)},
		{canceledPartial, payWrongCode, lateOn(canceledPartial)},
		{canceledPartial, payLedgerLate, lateOn(canceledPartial)},
		{canceledPartial, payLedgerAtExp, lateOn(canceledPartial)},
		{canceledPartial, payObservedLater, lateOn(canceledPartial)},
		{canceledPartial, expireBefore, fails(checkout.ErrSessionNotOpen)},
		{canceledPartial, expireAt, fails(checkout.ErrSessionNotOpen)},
		{canceledPartial, expireAfter, fails(checkout.ErrSessionNotOpen)},
		{canceledPartial, cancel, noop},
	}

	// The table must be exhaustive: every state against every input, once.
	covered := make(map[string]int)
	for _, tt := range tests {
		covered[tt.state.name+" × "+string(tt.input)]++
	}
	for _, st := range allStates {
		for _, in := range allInputs {
			if n := covered[st.name+" × "+string(in)]; n != 1 {
				t.Errorf("table has %d rows for %s × %s, want 1", n, st.name, in)
			}
		}
	}

	for _, tt := range tests {
		t.Run(tt.state.name+"/"+string(tt.input), func(t *testing.T) {
			s := f.session(tt.state)
			in, now := f.input(tt.input, s)
			before := cloneSession(s)

			tr, err := checkout.Apply(s, in, now)

			if !reflect.DeepEqual(s, before) {
				t.Errorf("Apply mutated its input session:\n got %+v\nwant %+v", s, before)
			}
			checkOutcome(t, before, in, now, tr, err, tt.want)
		})
	}
}

// cloneSession copies s deeply enough to notice any change to it.
func cloneSession(s checkout.Session) checkout.Session {
	s.Metadata = maps.Clone(s.Metadata)
	return s
}

// checkOutcome checks the transition Apply returned for session s, input in
// and time now against want.
func checkOutcome(t *testing.T, s checkout.Session, in checkout.Input, now time.Time, tr checkout.Transition, err error, want outcome) {
	t.Helper()
	if want.err != nil {
		if !errors.Is(err, want.err) {
			t.Fatalf("Apply error = %v, want %v", err, want.err)
		}
		if tr.Changed || len(tr.Events) != 0 || tr.Payment != nil {
			t.Fatalf("failed Apply returned Changed=%v, %d events, payment %v; want nothing", tr.Changed, len(tr.Events), tr.Payment)
		}
		return
	}
	if err != nil {
		t.Fatalf("Apply error = %v, want nil", err)
	}
	if want.noop {
		if tr.Changed {
			t.Errorf("Changed = true, want a no-op")
		}
		if !reflect.DeepEqual(tr.Session, s) {
			t.Errorf("no-op changed the session:\n got %+v\nwant %+v", tr.Session, s)
		}
		if len(tr.Events) != 0 || tr.Payment != nil {
			t.Errorf("no-op returned %d events and payment %v, want none", len(tr.Events), tr.Payment)
		}
		return
	}
	if !tr.Changed {
		t.Errorf("Changed = false, want true")
	}

	// The session: exactly the expected fields change.
	wantSession := cloneSession(s)
	wantSession.Status = want.status
	wantSession.PaymentStatus = want.pay
	wantSession.AmountReceived = want.received
	wantSession.Version = s.Version + 1
	wantSession.UpdatedAt = now
	switch want.closed {
	case closedZero:
		wantSession.ClosedAt = time.Time{}
	case closedKept:
		wantSession.ClosedAt = s.ClosedAt
	case closedLedger:
		wantSession.ClosedAt = in.(checkout.PaymentObserved).Payment.LedgerClosedAt
	case closedExpiry:
		wantSession.ClosedAt = s.ExpiresAt
	case closedNow:
		wantSession.ClosedAt = now
	}
	if !reflect.DeepEqual(tr.Session, wantSession) {
		t.Errorf("session:\n got %+v\nwant %+v", tr.Session, wantSession)
	}

	// The payment, as it is to be recorded.
	if want.disp == "" {
		if tr.Payment != nil {
			t.Errorf("Payment = %+v, want nil", tr.Payment)
		}
	} else {
		if tr.Payment == nil {
			t.Fatalf("Payment = nil, want one with disposition %q", want.disp)
		}
		if !checkout.HasPrefix(tr.Payment.ID, checkout.PrefixPayment) {
			t.Errorf("Payment.ID = %q, want a %s_ id", tr.Payment.ID, checkout.PrefixPayment)
		}
		wantPayment := in.(checkout.PaymentObserved).Payment
		wantPayment.ID = tr.Payment.ID
		wantPayment.SessionID = s.ID
		wantPayment.Disposition = want.disp
		wantPayment.CreatedAt = now
		if !reflect.DeepEqual(*tr.Payment, wantPayment) {
			t.Errorf("payment:\n got %+v\nwant %+v", *tr.Payment, wantPayment)
		}
	}

	// The events, in order, each carrying the new session and, when a
	// payment caused it, the payment.
	gotTypes := make([]checkout.EventType, len(tr.Events))
	for i, e := range tr.Events {
		gotTypes[i] = e.Type
	}
	if !slices.Equal(gotTypes, want.events) {
		t.Fatalf("event types = %v, want %v", gotTypes, want.events)
	}
	ids := make(map[string]bool)
	for _, e := range tr.Events {
		if !checkout.HasPrefix(e.ID, checkout.PrefixEvent) || ids[e.ID] {
			t.Errorf("%s: ID = %q, want a fresh %s_ id", e.Type, e.ID, checkout.PrefixEvent)
		}
		ids[e.ID] = true
		if e.MerchantID != s.MerchantID || e.SessionID != s.ID {
			t.Errorf("%s: merchant %q session %q, want %q %q", e.Type, e.MerchantID, e.SessionID, s.MerchantID, s.ID)
		}
		if !e.CreatedAt.Equal(now) {
			t.Errorf("%s: CreatedAt = %v, want %v", e.Type, e.CreatedAt, now)
		}
		if e.Session == nil || !reflect.DeepEqual(*e.Session, tr.Session) {
			t.Errorf("%s: Session = %+v, want the transition's session %+v", e.Type, e.Session, tr.Session)
		}
		switch e.Type {
		case evExpired, evCanceled:
			if e.Payment != nil || e.PaymentID != "" {
				t.Errorf("%s: carries payment %q, want none", e.Type, e.PaymentID)
			}
		default:
			if e.Payment == nil || tr.Payment == nil || !reflect.DeepEqual(*e.Payment, *tr.Payment) || e.PaymentID != tr.Payment.ID {
				t.Errorf("%s: Payment = %+v (id %q), want the recorded payment %+v", e.Type, e.Payment, e.PaymentID, tr.Payment)
			}
		}
	}
}

// TestApplySequences applies inputs one after another to the same session.
func TestApplySequences(t *testing.T) {
	f := newFixture()
	type step struct {
		input   func(s checkout.Session) (checkout.Input, time.Time)
		wantErr error
		status  checkout.Status
		pay     checkout.PaymentStatus
		recv    checkout.Amount
		version int64 // relative to the starting session's version
		events  []checkout.EventType
	}
	pay := func(amount checkout.Amount) func(checkout.Session) (checkout.Input, time.Time) {
		return func(s checkout.Session) (checkout.Input, time.Time) {
			closed := f.expiresAt.Add(-10 * time.Minute)
			return checkout.PaymentObserved{Payment: f.payment(s, amount, f.asset, closed)}, closed.Add(time.Second)
		}
	}
	kind := func(k inputKind) func(checkout.Session) (checkout.Input, time.Time) {
		return func(s checkout.Session) (checkout.Input, time.Time) { return f.input(k, s) }
	}

	tests := []struct {
		name  string
		steps []step
	}{
		{name: "partial then completing", steps: []step{
			{input: pay(40 * unit), status: open, pay: partial, recv: 40 * unit, version: 1, events: evs(evReceived)},
			{input: pay(60 * unit), status: complete, pay: paid, recv: 100 * unit, version: 2, events: evs(evReceived, evCompleted)},
		}},
		{name: "partials then overpaying", steps: []step{
			{input: pay(30 * unit), status: open, pay: partial, recv: 30 * unit, version: 1, events: evs(evReceived)},
			{input: pay(30 * unit), status: open, pay: partial, recv: 60 * unit, version: 2, events: evs(evReceived)},
			{input: pay(50 * unit), status: complete, pay: overpaid, recv: 110 * unit, version: 3, events: evs(evReceived, evCompleted)},
			{input: pay(1), status: complete, pay: overpaid, recv: 110 * unit, version: 4, events: evs(evLate)},
		}},
		{name: "one stroop short then one stroop", steps: []step{
			{input: pay(100*unit - 1), status: open, pay: partial, recv: 100*unit - 1, version: 1, events: evs(evReceived)},
			{input: pay(1), status: complete, pay: paid, recv: 100 * unit, version: 2, events: evs(evReceived, evCompleted)},
		}},
		{name: "wrong asset does not count", steps: []step{
			{input: kind(payWrongIssuer), status: open, pay: unpaid, version: 1, events: evs(evWrongAsset)},
			{input: pay(100 * unit), status: complete, pay: paid, recv: 100 * unit, version: 2, events: evs(evReceived, evCompleted)},
		}},
		{name: "cancel replayed", steps: []step{
			{input: kind(cancel), status: canceled, pay: unpaid, version: 1, events: evs(evCanceled)},
			{input: kind(cancel), status: canceled, pay: unpaid, version: 1},
			{input: kind(cancel), status: canceled, pay: unpaid, version: 1},
		}},
		{name: "expire replayed", steps: []step{
			{input: kind(expireAfter), status: expired, pay: unpaid, version: 1, events: evs(evExpired)},
			{input: kind(expireAfter), status: expired, pay: unpaid, version: 1},
			{input: kind(expireBefore), status: expired, pay: unpaid, version: 1},
		}},
		{name: "late ledger is late but leaves expiry to Expire", steps: []step{
			{input: pay(10 * unit), status: open, pay: partial, recv: 10 * unit, version: 1, events: evs(evReceived)},
			{input: kind(payLedgerLate), status: open, pay: partial, recv: 10 * unit, version: 2, events: evs(evLate)},
			{input: pay(90 * unit), status: complete, pay: paid, recv: 100 * unit, version: 3, events: evs(evReceived, evCompleted)},
			{input: kind(expireAfter), status: complete, pay: paid, recv: 100 * unit, version: 3, wantErr: checkout.ErrSessionNotOpen},
		}},
		{name: "too early expire, then on time", steps: []step{
			{input: kind(expireAt), wantErr: checkout.ErrNotYetExpired, status: open, pay: unpaid},
			{input: kind(expireAfter), status: expired, pay: unpaid, version: 1, events: evs(evExpired)},
		}},
		{name: "complete, then cancel and expire refused", steps: []step{
			{input: pay(100 * unit), status: complete, pay: paid, recv: 100 * unit, version: 1, events: evs(evReceived, evCompleted)},
			{input: kind(cancel), wantErr: checkout.ErrSessionNotOpen, status: complete, pay: paid, recv: 100 * unit, version: 1},
			{input: kind(expireAfter), wantErr: checkout.ErrSessionNotOpen, status: complete, pay: paid, recv: 100 * unit, version: 1},
		}},
		{name: "canceled, then payment is late and expire refused", steps: []step{
			{input: kind(cancel), status: canceled, pay: unpaid, version: 1, events: evs(evCanceled)},
			{input: pay(100 * unit), status: canceled, pay: unpaid, version: 2, events: evs(evLate)},
			{input: kind(expireAfter), wantErr: checkout.ErrSessionNotOpen, status: canceled, pay: unpaid, version: 2},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := f.session(openUnpaid)
			s := start
			for i, st := range tt.steps {
				in, now := st.input(s)
				tr, err := checkout.Apply(s, in, now)
				if st.wantErr != nil {
					if !errors.Is(err, st.wantErr) {
						t.Fatalf("step %d: error = %v, want %v", i, err, st.wantErr)
					}
				} else {
					if err != nil {
						t.Fatalf("step %d: error = %v", i, err)
					}
					wantChanged := len(st.events) > 0
					if tr.Changed != wantChanged {
						t.Fatalf("step %d: Changed = %v, want %v", i, tr.Changed, wantChanged)
					}
					s = tr.Session
				}
				var types []checkout.EventType
				for _, e := range tr.Events {
					types = append(types, e.Type)
				}
				if !slices.Equal(types, st.events) {
					t.Fatalf("step %d: events = %v, want %v", i, types, st.events)
				}
				if s.Status != st.status || s.PaymentStatus != st.pay || s.AmountReceived != st.recv || s.Version != start.Version+st.version {
					t.Fatalf("step %d: session %s/%s received %d version %d, want %s/%s received %d version %d",
						i, s.Status, s.PaymentStatus, s.AmountReceived, s.Version,
						st.status, st.pay, st.recv, start.Version+st.version)
				}
			}
		})
	}
}

// TestApplyRejects covers the inputs Apply refuses outright.
func TestApplyRejects(t *testing.T) {
	f := newFixture()
	now := f.expiresAt.Add(-time.Minute)
	onTime := f.expiresAt.Add(-2 * time.Minute)

	nearMax := f.session(openPartial)
	nearMax.Amount = math.MaxInt64
	nearMax.AmountReceived = math.MaxInt64 - 1

	tests := []struct {
		name     string
		session  checkout.Session
		input    checkout.Input
		wantErr  error  // checked with errors.Is when set
		wantCode string // checked with ErrorCode
	}{
		{
			name:     "amount received would overflow",
			session:  nearMax,
			input:    checkout.PaymentObserved{Payment: f.payment(nearMax, 2, f.asset, onTime)},
			wantErr:  checkout.ErrAmountOverflow,
			wantCode: checkout.EINVALID,
		},
		{
			name:     "amount received would overflow by max",
			session:  nearMax,
			input:    checkout.PaymentObserved{Payment: f.payment(nearMax, math.MaxInt64, f.asset, onTime)},
			wantErr:  checkout.ErrAmountOverflow,
			wantCode: checkout.EINVALID,
		},
		{
			name:    "payment without operation id",
			session: f.session(openUnpaid),
			input: checkout.PaymentObserved{Payment: func() checkout.Payment {
				p := f.payment(f.session(openUnpaid), unit, f.asset, onTime)
				p.OperationID = ""
				return p
			}()},
			wantCode: checkout.EINVALID,
		},
		{
			name:     "negative payment",
			session:  f.session(openUnpaid),
			input:    checkout.PaymentObserved{Payment: f.payment(f.session(openUnpaid), -1, f.asset, onTime)},
			wantCode: checkout.EINVALID,
		},
		{
			name:     "nil input",
			session:  f.session(openUnpaid),
			input:    nil,
			wantCode: checkout.EINTERNAL,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cloneSession(tt.session)
			tr, err := checkout.Apply(tt.session, tt.input, now)
			if err == nil {
				t.Fatalf("Apply() = %+v, want an error", tr)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Apply() error = %v, want %v", err, tt.wantErr)
			}
			if got := checkout.ErrorCode(err); got != tt.wantCode {
				t.Fatalf("ErrorCode(%v) = %q, want %q", err, got, tt.wantCode)
			}
			if tr.Changed || tr.Payment != nil || len(tr.Events) != 0 {
				t.Fatalf("failed Apply returned Changed=%v, payment %v, %d events", tr.Changed, tr.Payment, len(tr.Events))
			}
			if !reflect.DeepEqual(tt.session, before) {
				t.Fatalf("Apply mutated its input session")
			}
		})
	}
}

func TestUnmatched(t *testing.T) {
	f := newFixture()
	now := f.expiresAt.Add(-time.Minute)
	base := f.payment(f.session(openUnpaid), unit, f.asset, now.Add(-5*time.Second))
	// Whatever a caller left in these fields, an unmatched payment names no
	// session and is unmatched.
	base.SessionID = "cs_cccccccccccccccccccccccc"
	base.Disposition = checkout.DispositionApplied

	tests := []struct {
		name      string
		paymentID string
		merchants []string
	}{
		{name: "no merchants", merchants: nil},
		{name: "one merchant", merchants: []string{"mer_aaaaaaaaaaaaaaaaaaaaaaaa"}},
		{name: "three merchants", merchants: []string{"mer_aaaaaaaaaaaaaaaaaaaaaaaa", "mer_bbbbbbbbbbbbbbbbbbbbbbbb", "mer_cccccccccccccccccccccccc"}},
		{name: "payment id kept", paymentID: "pay_dddddddddddddddddddddddd", merchants: []string{"mer_aaaaaaaaaaaaaaaaaaaaaaaa"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			in.ID = tt.paymentID
			merchants := slices.Clone(tt.merchants)

			p, events := checkout.Unmatched(in, merchants, now)

			if tt.paymentID != "" && p.ID != tt.paymentID {
				t.Errorf("ID = %q, want the given %q", p.ID, tt.paymentID)
			}
			if !checkout.HasPrefix(p.ID, checkout.PrefixPayment) {
				t.Errorf("ID = %q, want a %s_ id", p.ID, checkout.PrefixPayment)
			}
			want := in
			want.ID = p.ID
			want.SessionID = ""
			want.Disposition = checkout.DispositionUnmatched
			want.CreatedAt = now
			if !reflect.DeepEqual(p, want) {
				t.Errorf("payment:\n got %+v\nwant %+v", p, want)
			}
			if !slices.Equal(merchants, tt.merchants) {
				t.Errorf("Unmatched changed its merchant list to %v", merchants)
			}

			if len(events) != len(tt.merchants) {
				t.Fatalf("%d events, want one per merchant (%d)", len(events), len(tt.merchants))
			}
			ids := make(map[string]bool)
			for i, e := range events {
				if e.Type != checkout.EventPaymentUnmatched {
					t.Errorf("event %d: type %q, want %q", i, e.Type, checkout.EventPaymentUnmatched)
				}
				if e.MerchantID != tt.merchants[i] {
					t.Errorf("event %d: merchant %q, want %q", i, e.MerchantID, tt.merchants[i])
				}
				if !checkout.HasPrefix(e.ID, checkout.PrefixEvent) || ids[e.ID] {
					t.Errorf("event %d: ID = %q, want a fresh %s_ id", i, e.ID, checkout.PrefixEvent)
				}
				ids[e.ID] = true
				if e.SessionID != "" || e.Session != nil {
					t.Errorf("event %d: names session %q %v, want none", i, e.SessionID, e.Session)
				}
				if e.PaymentID != p.ID || e.Payment == nil || !reflect.DeepEqual(*e.Payment, p) {
					t.Errorf("event %d: payment %q %+v, want %+v", i, e.PaymentID, e.Payment, p)
				}
				if !e.CreatedAt.Equal(now) {
					t.Errorf("event %d: CreatedAt = %v, want %v", i, e.CreatedAt, now)
				}
			}
		})
	}
}

// TestApplyInvariants applies random sequences of inputs and checks after
// every step that Apply kept the session's invariants, against a model kept
// by the test itself.
func TestApplyInvariants(t *testing.T) {
	const seed = 0x636865636b6f7574 // fixed, so a failure reproduces
	const runs, steps = 500, 40
	f := newFixture()

	for run := range runs {
		rng := rand.New(rand.NewPCG(seed, uint64(run)))
		var history []string
		fail := func(step int, format string, args ...any) {
			t.Helper()
			t.Fatalf("seed %#x run %d step %d: %s\ninputs:\n  %s", uint64(seed), run, step,
				fmt.Sprintf(format, args...), strings.Join(history, "\n  "))
		}

		s := f.session(openUnpaid)
		s.Amount = checkout.Amount(rng.Int64N(int64(200*unit))) + 1
		s.Version = 1
		now := f.expiresAt.Add(-time.Hour)

		var sumApplied checkout.Amount
		completedByPayment := false

		for step := range steps {
			now = now.Add(time.Duration(rng.Int64N(int64(10 * time.Minute))))
			var in checkout.Input
			switch r := rng.IntN(100); {
			case r < 70:
				amount := checkout.Amount(rng.Int64N(int64(s.Amount)/2 + 2))
				if owed := s.Amount - s.AmountReceived; owed > 0 && rng.IntN(4) == 0 {
					amount = owed // land exactly on paid, not only past it
				}
				asset := f.asset
				switch rng.IntN(10) {
				case 0:
					asset = f.otherIssuer
				case 1:
					asset = f.otherCode
				}
				// The ledger closed a little before the watcher saw it;
				// sometimes exactly at the expiry.
				closed := now.Add(-time.Duration(rng.Int64N(int64(2 * time.Minute))))
				if rng.IntN(20) == 0 {
					closed = s.ExpiresAt
				}
				p := f.payment(s, amount, asset, closed)
				p.OperationID = fmt.Sprint(run*steps + step)
				in = checkout.PaymentObserved{Payment: p}
				history = append(history, fmt.Sprintf("pay %s %s ledger %s now %s", amount, asset.Code, closed.Format(time.TimeOnly), now.Format(time.TimeOnly)))
			case r < 97:
				at := now.Add(-time.Duration(rng.Int64N(int64(time.Minute))))
				if rng.IntN(10) == 0 {
					at = s.ExpiresAt
				}
				in = checkout.Expire{At: at}
				history = append(history, fmt.Sprintf("expire at %s now %s", at.Format(time.TimeOnly), now.Format(time.TimeOnly)))
			default:
				in = checkout.Cancel{}
				history = append(history, fmt.Sprintf("cancel now %s", now.Format(time.TimeOnly)))
			}

			prev := cloneSession(s)
			tr, err := checkout.Apply(s, in, now)
			if !reflect.DeepEqual(s, prev) {
				fail(step, "Apply mutated its input session")
			}

			if err != nil {
				switch in := in.(type) {
				case checkout.Expire:
					notOpen := errors.Is(err, checkout.ErrSessionNotOpen) && prev.Status != open && prev.Status != expired
					early := errors.Is(err, checkout.ErrNotYetExpired) && prev.Status == open && !in.At.After(prev.ExpiresAt)
					if !notOpen && !early {
						fail(step, "expire error %v on %s session (at %v, expires %v)", err, prev.Status, in.At, prev.ExpiresAt)
					}
				case checkout.Cancel:
					if !errors.Is(err, checkout.ErrSessionNotOpen) || prev.Status == open || prev.Status == canceled {
						fail(step, "cancel error %v on %s session", err, prev.Status)
					}
				default:
					fail(step, "payment error %v", err)
				}
				continue
			}
			next := tr.Session

			if tr.Changed {
				if next.Version != prev.Version+1 {
					fail(step, "changed: version %d after %d, want +1", next.Version, prev.Version)
				}
				if len(tr.Events) == 0 {
					fail(step, "changed but no events")
				}
			} else {
				if !reflect.DeepEqual(next, prev) || len(tr.Events) != 0 || tr.Payment != nil {
					fail(step, "unchanged transition altered the session or emitted %d events", len(tr.Events))
				}
			}

			if po, ok := in.(checkout.PaymentObserved); ok {
				if tr.Payment == nil {
					fail(step, "payment not recorded")
				}
				p := po.Payment
				wantApplied := prev.Status == open && !p.LedgerClosedAt.After(prev.ExpiresAt) && p.Asset == prev.Asset
				if got := tr.Payment.Disposition == applied; got != wantApplied {
					fail(step, "disposition %q on %s session (ledger %v, expires %v, asset %v)",
						tr.Payment.Disposition, prev.Status, p.LedgerClosedAt, prev.ExpiresAt, p.Asset)
				}
				if wantApplied {
					sumApplied += p.Amount
					if sumApplied >= prev.Amount {
						completedByPayment = true
					}
				}
			}
			if ex, ok := in.(checkout.Expire); ok && tr.Changed && !ex.At.After(prev.ExpiresAt) {
				fail(step, "expired at %v, not after expires_at %v", ex.At, prev.ExpiresAt)
			}

			if next.AmountReceived != sumApplied {
				fail(step, "amount_received %d, want sum of applied payments %d", next.AmountReceived, sumApplied)
			}
			var wantPay checkout.PaymentStatus
			switch {
			case sumApplied == 0:
				wantPay = unpaid
			case sumApplied < next.Amount:
				wantPay = partial
			case sumApplied == next.Amount:
				wantPay = paid
			default:
				wantPay = overpaid
			}
			if next.PaymentStatus != wantPay {
				fail(step, "payment_status %q with %d of %d received, want %q", next.PaymentStatus, next.AmountReceived, next.Amount, wantPay)
			}
			if prev.Status != open && next.Status != prev.Status {
				fail(step, "terminal status %q became %q", prev.Status, next.Status)
			}
			if (next.Status == complete) != completedByPayment {
				fail(step, "status %q, but applied payments reaching the amount: %v", next.Status, completedByPayment)
			}
			if (next.Status == open) != next.ClosedAt.IsZero() {
				fail(step, "status %q with closed_at %v", next.Status, next.ClosedAt)
			}
			s = next
		}
	}
}
