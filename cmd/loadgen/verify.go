package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// violation is one thing the run found wrong. Session is empty for
// problems of the run as a whole.
type violation struct {
	Session string `json:"session,omitempty"`
	Kind    kind   `json:"kind,omitempty"`
	Problem string `json:"problem"`
}

func (v violation) String() string {
	if v.Session == "" {
		return v.Problem
	}
	return fmt.Sprintf("%s (%s): %s", v.Session, v.Kind, v.Problem)
}

// verify checks the outcome of every session that was started against
// what its kind must end in:
//   - the session's status, payment_status and amount_received, as the
//     API shows them at the end;
//   - its payments: each submitted transaction appears exactly once, with
//     the disposition and amount its kind expects, and nothing else does;
//   - its webhooks: exactly the expected number of events of each type;
//
// and across the run, that no webhook failed its signature check.
func verify(runs []*sessionRun, snap hooksSnapshot, lateMode string) []violation {
	var out []violation
	for _, s := range runs {
		if s.Scheduled.IsZero() {
			continue // never started: --duration ran out first
		}
		out = append(out, verifySession(s, snap.Sessions[s.ID], lateMode)...)
	}
	for _, b := range snap.BadSigs {
		out = append(out, violation{Problem: "signature check failed: " + b})
	}
	for _, u := range snap.Unreadable {
		out = append(out, violation{Problem: u})
	}
	return out
}

func verifySession(s *sessionRun, hooks sessionHooksCopy, lateMode string) []violation {
	var out []violation
	name := s.ID
	if name == "" {
		name = fmt.Sprintf("session #%d", s.Index)
	}
	add := func(format string, args ...any) {
		out = append(out, violation{Session: name, Kind: s.Kind, Problem: fmt.Sprintf(format, args...)})
	}
	if s.Err != "" {
		add("%s", s.Err)
	}
	if s.ID == "" {
		return out
	}
	exp := expect(s.Kind, lateMode)

	switch {
	case s.CheckErr != "":
		add("final check: %s", s.CheckErr)
	case s.Final == nil:
		add("final check: the API did not return the session")
	default:
		if s.Final.Status != exp.Status || s.Final.PaymentStatus != exp.PaymentStatus {
			add("ended %s/%s, want %s/%s", s.Final.Status, s.Final.PaymentStatus, exp.Status, exp.PaymentStatus)
		}
		var applied stroops
		for i, p := range s.Payments {
			if i < len(exp.Dispositions) && exp.Dispositions[i] == "applied" && p.Err == "" {
				applied += p.Amount
			}
		}
		if len(s.Payments) == len(exp.Dispositions) && s.Final.AmountReceived != applied.String() {
			add("amount_received %s, want %s", s.Final.AmountReceived, applied)
		}
	}

	if s.CheckErr == "" && s.Final != nil {
		verifyPayments(s, exp, add)
	}

	got, want := hooks.ByType, exp.Events
	var types []string
	for t := range want {
		types = append(types, t)
	}
	for t := range got {
		if _, ok := want[t]; !ok {
			types = append(types, t)
		}
	}
	sort.Strings(types)
	var diffs []string
	for _, t := range types {
		if got[t] != want[t] {
			diffs = append(diffs, fmt.Sprintf("%s %d (want %d)", t, got[t], want[t]))
		}
	}
	if len(diffs) > 0 {
		add("webhooks: %s", strings.Join(diffs, ", "))
	}
	return out
}

// verifyPayments checks the payments the API lists for s against the
// transactions submitted for it; problems go through add.
func verifyPayments(s *sessionRun, exp expectation, add func(string, ...any)) {
	byHash := map[string][]paymentObj{}
	ops := map[string]int{}
	for _, p := range s.FinalPayments {
		byHash[p.TransactionHash] = append(byHash[p.TransactionHash], p)
		ops[p.OperationID]++
	}
	var submitted []string
	for i, p := range s.Payments {
		if p.Hash == "" {
			continue // never made it onto the ledger; s.Err says why
		}
		submitted = append(submitted, p.Hash)
		got := byHash[p.Hash]
		if len(got) != 1 {
			add("transaction %s appears %d times in the session's payments, want once", short(p.Hash), len(got))
			continue
		}
		if i < len(exp.Dispositions) && got[0].Disposition != exp.Dispositions[i] {
			add("payment %d (%s) is %s, want %s", i+1, short(p.Hash), got[0].Disposition, exp.Dispositions[i])
		}
		if got[0].Amount != p.Amount.String() {
			add("payment %d (%s) recorded %s, sent %s", i+1, short(p.Hash), got[0].Amount, p.Amount)
		}
	}
	for h, ps := range byHash {
		if !slices.Contains(submitted, h) {
			add("a payment this run did not send: %s (%d)", short(h), len(ps))
		}
	}
	for op, n := range ops {
		if n > 1 {
			add("operation %s recorded %d times", op, n)
		}
	}
}

func short(hash string) string {
	if len(hash) > 12 {
		return hash[:12] + "…"
	}
	return hash
}
