package persistence_test

import (
	"slices"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

func TestExpirableSessions(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	mA := st.merchant(t, "Caught up", account(t, 1))
	mB := st.merchant(t, "No ledger time yet", account(t, 2))
	mC := st.merchant(t, "No cursor", account(t, 3))
	caughtUpTo := st.now.Add(2 * time.Hour)

	// Created out of expiry order, to check the listing's order.
	later := st.sessionExpiring(t, mA, unit, checkout.NativeAsset, 90*time.Minute)
	first := st.sessionExpiring(t, mA, unit, checkout.NativeAsset, time.Hour)
	st.sessionExpiring(t, mA, unit, checkout.NativeAsset, 2*time.Hour) // expires exactly at caughtUpTo
	st.sessionExpiring(t, mA, unit, checkout.NativeAsset, 3*time.Hour)
	canceled := st.sessionExpiring(t, mA, unit, checkout.NativeAsset, time.Hour)
	st.mustApply(t, canceled.ID, checkout.Cancel{})
	complete := st.sessionExpiring(t, mA, unit, checkout.NativeAsset, time.Hour)
	st.mustApply(t, complete.ID, checkout.PaymentObserved{Payment: payment(complete, unit, checkout.NativeAsset, st.now)})
	st.sessionExpiring(t, mB, unit, checkout.NativeAsset, time.Hour)
	st.sessionExpiring(t, mC, unit, checkout.NativeAsset, time.Hour)

	for _, a := range []string{mA.Account, mB.Account} {
		if err := st.db.EnsureCursor(t.Context(), a, "1"); err != nil {
			t.Fatal(err)
		}
	}
	st.exec(t, `UPDATE ledger_cursors SET caught_up_to = $2 WHERE account = $1`, mA.Account, caughtUpTo)

	list := func(limit int) []persistence.ExpirableSession {
		t.Helper()
		got, err := st.db.ExpirableSessions(t.Context(), limit)
		if err != nil {
			t.Fatalf("ExpirableSessions: %v", err)
		}
		return got
	}
	want := []persistence.ExpirableSession{{ID: first.ID, CaughtUpTo: caughtUpTo}, {ID: later.ID, CaughtUpTo: caughtUpTo}}
	if got := list(10); !slices.Equal(got, want) {
		t.Fatalf("ExpirableSessions = %+v, want %+v", got, want)
	}
	if got := list(1); !slices.Equal(got, want[:1]) {
		t.Errorf("ExpirableSessions(1) = %+v, want %+v", got, want[:1])
	}

	// Expiring one, as the recovery actor does, takes it off the list.
	st.mustApply(t, first.ID, checkout.Expire{At: caughtUpTo})
	if got := list(10); !slices.Equal(got, want[1:]) {
		t.Errorf("after expiring %s: ExpirableSessions = %+v, want %+v", first.ID, got, want[1:])
	}
}

func TestInconsistentSessionsRepair(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 1))
	pay := func(s checkout.Session, amount checkout.Amount) checkout.Transition {
		t.Helper()
		return st.mustApply(t, s.ID, checkout.PaymentObserved{Payment: payment(s, amount, checkout.NativeAsset, st.now)})
	}

	healthy := st.session(t, m, 100*unit, checkout.NativeAsset)
	pay(healthy, 60*unit)

	// amount_received lost track of a payment it applied.
	undercounted := st.session(t, m, 100*unit, checkout.NativeAsset)
	pay(undercounted, 60*unit)
	st.exec(t, `UPDATE sessions SET amount_received = $2 WHERE id = $1`, undercounted.ID, int64(10*unit))

	// A payment row committed without its session update: the session is
	// open although its payments cover it.
	unclosed := st.session(t, m, 100*unit, checkout.NativeAsset)
	pay(unclosed, 60*unit)
	completing := payment(unclosed, 40*unit, checkout.NativeAsset, st.now.Add(3*time.Second))
	completingID := checkout.NewID(checkout.PrefixPayment)
	st.exec(t, `INSERT INTO payments (id, operation_id, transaction_hash, operation_type, from_account,
		to_account, amount, asset_code, asset_issuer, ledger_closed_at, session_id, disposition, created_at)
		VALUES ($1, $2, 'tx', 'payment', 'GSENDER', $3, $4, 'XLM', '', $5, $6, 'applied', $7)`,
		completingID, completing.OperationID, unclosed.ReceivingAccount, int64(40*unit),
		completing.LedgerClosedAt, unclosed.ID, st.now.Add(time.Second))

	// Paid in full by what it counts, yet still open.
	paidOpen := st.session(t, m, 100*unit, checkout.NativeAsset)
	paidOpenTr := pay(paidOpen, 60*unit)
	st.exec(t, `UPDATE sessions SET amount = $2, payment_status = 'paid' WHERE id = $1`, paidOpen.ID, int64(60*unit))

	// A complete session that counts more than it was paid.
	overcounted := st.session(t, m, 100*unit, checkout.NativeAsset)
	pay(overcounted, 100*unit)
	st.exec(t, `UPDATE sessions SET amount_received = $2, payment_status = 'overpaid' WHERE id = $1`,
		overcounted.ID, int64(150*unit))

	// The same, long finished: the sweep reaches every session, however old.
	old := st.session(t, m, 100*unit, checkout.NativeAsset)
	pay(old, 100*unit)
	st.exec(t, `UPDATE sessions SET amount_received = $2, payment_status = 'overpaid',
		updated_at = now() - interval '2 days' WHERE id = $1`, old.ID, int64(150*unit))

	// sweep checks every session, n at a time, as recovery's runs do, and
	// says how many calls it took.
	sweep := func(n int) ([]string, int) {
		t.Helper()
		var all []string
		after, calls := "", 0
		for {
			bad, last, err := st.db.InconsistentSessions(t.Context(), after, n)
			if err != nil {
				t.Fatalf("InconsistentSessions: %v", err)
			}
			calls++
			if last != "" && last <= after {
				t.Fatalf("InconsistentSessions(%q, %d) went back to %q", after, n, last)
			}
			all = append(all, bad...)
			if last == "" {
				break
			}
			if calls > 100 {
				t.Fatal("the sweep does not end")
			}
			after = last
		}
		slices.Sort(all)
		return all, calls
	}
	inconsistent := func() []string {
		t.Helper()
		ids, calls := sweep(100)
		if calls != 1 {
			t.Fatalf("sweeping 6 sessions 100 at a time took %d calls", calls)
		}
		return ids
	}
	want := []string{undercounted.ID, unclosed.ID, paidOpen.ID, overcounted.ID, old.ID}
	slices.Sort(want)
	if got := inconsistent(); !slices.Equal(got, want) {
		t.Fatalf("InconsistentSessions = %v, want %v", got, want)
	}
	// Two at a time: six sessions take three full calls and one that
	// finds none left and ends the sweep.
	if got, calls := sweep(2); !slices.Equal(got, want) || calls != 4 {
		t.Errorf("sweeping 2 at a time found %v in %d calls, want %v in 4", got, calls, want)
	}

	repair := func(id string) checkout.Transition {
		t.Helper()
		s := st.get(t, id)
		payments, err := st.db.SessionPayments(t.Context(), id)
		if err != nil {
			t.Fatalf("SessionPayments: %v", err)
		}
		tr, err := checkout.Repair(s, payments, st.now)
		if err != nil {
			t.Fatalf("Repair: %v", err)
		}
		if !tr.Changed {
			t.Fatalf("Repair of %s changed nothing", id)
		}
		if err := st.db.Settle(t.Context(), tr, s.Version); err != nil {
			t.Fatalf("Settle the repair: %v", err)
		}
		got := st.get(t, id)
		if got.Version != s.Version+1 {
			t.Errorf("version after the repair = %d, want %d", got.Version, s.Version+1)
		}
		return tr
	}
	eventsStart := len(st.eventRows(t))
	eventsBefore := eventsStart

	repair(undercounted.ID)
	if got := st.get(t, undercounted.ID); got.AmountReceived != 60*unit || got.PaymentStatus != checkout.PaymentPartiallyPaid || got.Status != checkout.StatusOpen {
		t.Errorf("repaired undercounted session: %s/%s/%d, want open/partially_paid/%d", got.Status, got.PaymentStatus, got.AmountReceived, 60*unit)
	}

	repair(unclosed.ID)
	got := st.get(t, unclosed.ID)
	if got.AmountReceived != 100*unit || got.PaymentStatus != checkout.PaymentPaid || got.Status != checkout.StatusComplete ||
		!got.ClosedAt.Equal(completing.LedgerClosedAt) {
		t.Errorf("repaired unclosed session: %s/%s/%d closed %v, want complete/paid/%d closed %v",
			got.Status, got.PaymentStatus, got.AmountReceived, got.ClosedAt, 100*unit, completing.LedgerClosedAt)
	}
	events := st.eventRows(t)[eventsBefore:]
	if len(events) != 1 || events[0].Type != string(checkout.EventSessionCompleted) ||
		events[0].SessionID != unclosed.ID || events[0].PaymentID != completingID ||
		events[0].Session == nil || events[0].Session.Status != checkout.StatusComplete {
		t.Errorf("repair events = %+v, want one checkout.session.completed for %s naming payment %s", events, unclosed.ID, completingID)
	}

	eventsBefore = len(st.eventRows(t))
	repair(paidOpen.ID)
	got = st.get(t, paidOpen.ID)
	if got.AmountReceived != 60*unit || got.PaymentStatus != checkout.PaymentPaid || got.Status != checkout.StatusComplete ||
		!got.ClosedAt.Equal(st.now) {
		t.Errorf("repaired paid open session: %s/%s/%d closed %v, want complete/paid/%d closed %v",
			got.Status, got.PaymentStatus, got.AmountReceived, got.ClosedAt, 60*unit, st.now)
	}
	events = st.eventRows(t)[eventsBefore:]
	if len(events) != 1 || events[0].Type != string(checkout.EventSessionCompleted) || events[0].PaymentID != paidOpenTr.Payment.ID {
		t.Errorf("repair events = %+v, want one checkout.session.completed naming payment %s", events, paidOpenTr.Payment.ID)
	}

	repair(overcounted.ID)
	if got := st.get(t, overcounted.ID); got.AmountReceived != 100*unit || got.PaymentStatus != checkout.PaymentPaid || got.Status != checkout.StatusComplete {
		t.Errorf("repaired overcounted session: %s/%s/%d, want complete/paid/%d", got.Status, got.PaymentStatus, got.AmountReceived, 100*unit)
	}

	repair(old.ID)
	if got := st.get(t, old.ID); got.AmountReceived != 100*unit || got.PaymentStatus != checkout.PaymentPaid {
		t.Errorf("repaired old session: %s/%d, want paid/%d", got.PaymentStatus, got.AmountReceived, 100*unit)
	}

	if got := inconsistent(); len(got) != 0 {
		t.Errorf("InconsistentSessions after the repairs = %v, want none", got)
	}
	if n := len(st.eventRows(t)); n != eventsStart+2 {
		t.Errorf("%d events after the repairs, want %d: only the two completions", n, eventsStart+2)
	}
	h := st.get(t, healthy.ID)
	payments, err := st.db.SessionPayments(t.Context(), healthy.ID)
	if err != nil {
		t.Fatal(err)
	}
	if tr, err := checkout.Repair(h, payments, st.now); err != nil || tr.Changed {
		t.Errorf("Repair of a consistent session = %+v, %v; want no change", tr, err)
	}
}
