package main

import (
	"strings"
	"testing"
	"time"
)

// finished builds a session run of kind k that ended as it should, with
// its API view and its webhooks; tests then break one thing in it.
func finished(k kind, lateMode string) (*sessionRun, sessionHooksCopy) {
	exp := expect(k, lateMode)
	now := time.Unix(1_900_000_000, 0)
	s := &sessionRun{Kind: k, ID: "cs_" + string(k), Amount: 10 * stroopsPerUnit, Scheduled: now}
	var amounts []stroops
	switch k {
	case kindPartial:
		amounts = []stroops{4 * stroopsPerUnit, 6 * stroopsPerUnit}
	case kindOverpaid:
		amounts = []stroops{115 * stroopsPerUnit / 10}
	case kindUnpaid:
	default:
		amounts = []stroops{10 * stroopsPerUnit}
	}
	var received stroops
	for i, a := range amounts {
		h := strings.Repeat(string(rune('a'+i)), 64)
		s.Payments = append(s.Payments, paymentRun{Amount: a, Hash: h, SubmitAt: now, AckAt: now})
		s.FinalPayments = append(s.FinalPayments, paymentObj{ID: "pay_" + h[:4], TransactionHash: h,
			OperationID: string(rune('1' + i)), Amount: a.String(), Disposition: exp.Dispositions[i]})
		if exp.Dispositions[i] == "applied" {
			received += a
		}
	}
	s.Final = &sessionObj{ID: s.ID, Status: exp.Status, PaymentStatus: exp.PaymentStatus, AmountReceived: received.String()}
	hooks := sessionHooksCopy{ByType: map[string]int{}}
	for t, n := range exp.Events {
		hooks.ByType[t] = n
	}
	return s, hooks
}

func TestVerifyAcceptsEveryKindEndingAsExpected(t *testing.T) {
	for _, mode := range []string{lateCancel, lateExpire} {
		for _, k := range kinds {
			s, hooks := finished(k, mode)
			if v := verifySession(s, hooks, mode); len(v) != 0 {
				t.Errorf("%s (late by %s): %v", k, mode, v)
			}
		}
	}
}

func TestVerifyFindsEachViolation(t *testing.T) {
	tests := []struct {
		name   string
		kind   kind
		break_ func(s *sessionRun, h *sessionHooksCopy)
		want   string
	}{
		{"wrong status", kindExact, func(s *sessionRun, h *sessionHooksCopy) { s.Final.Status = "open" }, "ended open/paid, want complete/paid"},
		{"wrong payment status", kindOverpaid, func(s *sessionRun, h *sessionHooksCopy) { s.Final.PaymentStatus = "paid" }, "want complete/overpaid"},
		{"amount received", kindPartial, func(s *sessionRun, h *sessionHooksCopy) { s.Final.AmountReceived = "4.0000000" }, "amount_received 4.0000000, want 10.0000000"},
		{"payment missing", kindPartial, func(s *sessionRun, h *sessionHooksCopy) { s.FinalPayments = s.FinalPayments[:1] }, "appears 0 times"},
		{"payment twice", kindExact, func(s *sessionRun, h *sessionHooksCopy) {
			p := s.FinalPayments[0]
			p.ID = "pay_other"
			s.FinalPayments = append(s.FinalPayments, p)
		}, "appears 2 times"},
		{"operation twice", kindPartial, func(s *sessionRun, h *sessionHooksCopy) {
			s.FinalPayments[1].OperationID = s.FinalPayments[0].OperationID
		}, "recorded 2 times"},
		{"wrong disposition", kindWrongAsset, func(s *sessionRun, h *sessionHooksCopy) { s.FinalPayments[0].Disposition = "applied" }, "is applied, want wrong_asset"},
		{"late applied", kindLate, func(s *sessionRun, h *sessionHooksCopy) { s.FinalPayments[0].Disposition = "applied" }, "is applied, want late"},
		{"wrong amount", kindExact, func(s *sessionRun, h *sessionHooksCopy) { s.FinalPayments[0].Amount = "1.0000000" }, "recorded 1.0000000, sent 10.0000000"},
		{"payment not sent", kindExact, func(s *sessionRun, h *sessionHooksCopy) {
			s.FinalPayments = append(s.FinalPayments, paymentObj{TransactionHash: strings.Repeat("f", 64), OperationID: "9"})
		}, "a payment this run did not send"},
		{"webhook missing", kindExact, func(s *sessionRun, h *sessionHooksCopy) { delete(h.ByType, "checkout.session.completed") }, "checkout.session.completed 0 (want 1)"},
		{"webhook extra", kindLate, func(s *sessionRun, h *sessionHooksCopy) { h.ByType["payment.received"] = 1 }, "payment.received 1 (want 0)"},
		{"webhook twice", kindPartial, func(s *sessionRun, h *sessionHooksCopy) { h.ByType["checkout.session.completed"] = 2 }, "completed 2 (want 1)"},
		{"driving failed", kindExact, func(s *sessionRun, h *sessionHooksCopy) { s.Err = "pay 10.0000000: tx_failed" }, "tx_failed"},
		{"final check failed", kindExact, func(s *sessionRun, h *sessionHooksCopy) { s.CheckErr = "GET: 500" }, "final check: GET: 500"},
		{"not listed", kindExact, func(s *sessionRun, h *sessionHooksCopy) { s.Final = nil }, "did not return the session"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, hooks := finished(tt.kind, lateCancel)
			tt.break_(s, &hooks)
			v := verifySession(s, hooks, lateCancel)
			if len(v) == 0 {
				t.Fatalf("no violation, want one saying %q", tt.want)
			}
			var all []string
			for _, x := range v {
				all = append(all, x.String())
			}
			if !strings.Contains(strings.Join(all, "\n"), tt.want) {
				t.Errorf("violations %q, want one saying %q", all, tt.want)
			}
		})
	}
}

func TestVerifyRunWide(t *testing.T) {
	s, hooks := finished(kindExact, lateCancel)
	notStarted := &sessionRun{Kind: kindExact, Index: 7} // --duration ran out first
	snap := hooksSnapshot{Sessions: map[string]sessionHooksCopy{s.ID: hooks},
		BadSigs: []string{"webhook evt_1 to /hooks/0: no matching signature found"}}
	v := verify([]*sessionRun{s, notStarted}, snap, lateCancel)
	if len(v) != 1 || !strings.Contains(v[0].Problem, "signature check failed") {
		t.Fatalf("violations %v, want only the bad signature", v)
	}
}
