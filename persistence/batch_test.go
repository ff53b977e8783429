package persistence_test

import (
	"errors"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

// decide applies in to the session as loaded now, without settling it.
func (s *store) decide(t *testing.T, id string, in checkout.Input) persistence.Settlement {
	t.Helper()
	sess := s.get(t, id)
	tr, err := checkout.Apply(sess, in, s.now)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return persistence.Settlement{Transition: tr, ReadVersion: sess.Version}
}

// TestSettleBatchRowsFailAlone mixes good rows with every way a row can be
// refused: each bad row gets its own error, and every good row commits
// exactly as Settle would have committed it.
func TestSettleBatchRowsFailAlone(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 1))
	pay := func(sess checkout.Session, amount checkout.Amount) checkout.PaymentObserved {
		return checkout.PaymentObserved{Payment: payment(sess, amount, checkout.NativeAsset, st.now)}
	}

	good1 := st.session(t, m, 100*unit, checkout.NativeAsset)
	good2 := st.session(t, m, 100*unit, checkout.NativeAsset)
	good3 := st.session(t, m, 100*unit, checkout.NativeAsset)
	dup := st.session(t, m, 100*unit, checkout.NativeAsset)
	stale := st.session(t, m, 100*unit, checkout.NativeAsset)
	broken := st.session(t, m, 100*unit, checkout.NativeAsset)
	expiring := st.session(t, m, 100*unit, checkout.NativeAsset)

	// dup's payment is already recorded; stale moved on after being read.
	dupPay := pay(dup, 10*unit)
	st.mustApply(t, dup.ID, dupPay)
	staleRow := st.decide(t, stale.ID, pay(stale, 10*unit))
	st.mustApply(t, stale.ID, pay(stale, 5*unit))

	brokenRow := st.decide(t, broken.ID, pay(broken, 10*unit))
	brokenRow.Transition.Session.Status = checkout.StatusComplete // partially paid is not complete
	brokenRow.Transition.Session.ClosedAt = st.now

	good1Row := st.decide(t, good1.ID, pay(good1, 100*unit))
	// The same operation twice in one batch: the second is already applied.
	sameOp := good1Row
	sameOp.Transition.Payment = new(checkout.Payment)
	*sameOp.Transition.Payment = *good1Row.Transition.Payment
	sameOp.Transition.Payment.ID = checkout.NewID(checkout.PrefixPayment)

	rows := []persistence.Settlement{
		good1Row,
		st.decide(t, dup.ID, dupPay),
		st.decide(t, good2.ID, pay(good2, 40*unit)),
		staleRow,
		brokenRow,
		sameOp,
		st.decide(t, expiring.ID, checkout.Expire{At: expiring.ExpiresAt.Add(time.Second)}),
		st.decide(t, good3.ID, pay(good3, 120*unit)),
		{Transition: checkout.Transition{Session: good3}}, // unchanged: nothing to write
	}
	before := map[string]checkout.Session{}
	for _, id := range []string{dup.ID, stale.ID, broken.ID} {
		before[id] = st.get(t, id)
	}
	errs := st.db.SettleBatch(t.Context(), rows)
	if len(errs) != len(rows) {
		t.Fatalf("%d outcomes for %d rows", len(errs), len(rows))
	}
	wants := []func(error) bool{
		isNil,
		is(checkout.ErrAlreadyApplied),
		isNil,
		is(checkout.ErrVersionConflict),
		hasCode(checkout.EINVALID),
		is(checkout.ErrAlreadyApplied),
		isNil,
		isNil,
		isNil,
	}
	for i, want := range wants {
		if !want(errs[i]) {
			t.Errorf("row %d: %v", i, errs[i])
		}
	}

	for i, r := range rows {
		if errs[i] != nil || !r.Transition.Changed {
			continue
		}
		sameSession(t, "committed row's session", st.get(t, r.Transition.Session.ID), r.Transition.Session)
	}
	for id, want := range before {
		sameSession(t, "refused row's session", st.get(t, id), want)
	}
	if n := st.count(t, "payments"); n != 5 { // dup, stale's second, good1, good2, good3
		t.Errorf("%d payments, want 5", n)
	}
	// payment.received for dup, stale, good1, good2, good3; completed for
	// good1 and good3; expired for expiring.
	if n := st.count(t, "events"); n != 8 {
		t.Errorf("%d events, want 8", n)
	}
	if _, err := st.db.PaymentByOperation(t.Context(), brokenRow.Transition.Payment.OperationID); !errors.Is(err, checkout.ErrNotFound) {
		t.Errorf("the refused row's payment: %v, want ErrNotFound", err)
	}
}

// TestSettleBatchWritesWhatSettleWrites settles the same decisions through
// Settle and through SettleBatch, on twin sessions, and compares every row
// written.
func TestSettleBatchWritesWhatSettleWrites(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 1))
	a := st.session(t, m, 100*unit, checkout.NativeAsset)
	b := st.session(t, m, 100*unit, checkout.NativeAsset)
	steps := []func(sess checkout.Session) checkout.Input{
		func(s checkout.Session) checkout.Input {
			return checkout.PaymentObserved{Payment: payment(s, 30*unit, checkout.NativeAsset, st.now)}
		},
		func(s checkout.Session) checkout.Input {
			return checkout.PaymentObserved{Payment: payment(s, 80*unit, checkout.NativeAsset, st.now)}
		},
	}
	for _, step := range steps {
		st.mustApply(t, a.ID, step(a))
		row := st.decide(t, b.ID, step(b))
		if errs := st.db.SettleBatch(t.Context(), []persistence.Settlement{row}); errs[0] != nil {
			t.Fatalf("SettleBatch: %v", errs[0])
		}
	}
	ga, gb := st.get(t, a.ID), st.get(t, b.ID)
	if ga.AmountReceived != gb.AmountReceived || ga.Status != gb.Status || ga.PaymentStatus != gb.PaymentStatus ||
		ga.Version != gb.Version || !ga.ClosedAt.Equal(gb.ClosedAt) {
		t.Errorf("Settle left %+v\nSettleBatch left %+v", ga, gb)
	}
	pa, err := st.db.SessionPayments(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := st.db.SessionPayments(t.Context(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(pa) != 2 || len(pb) != 2 {
		t.Fatalf("%d and %d payments, want 2 and 2", len(pa), len(pb))
	}
	for i := range pa {
		x, y := pa[i], pb[i]
		x.ID, x.OperationID, x.TransactionHash, x.Memo, x.SessionID = "", "", "", "", ""
		y.ID, y.OperationID, y.TransactionHash, y.Memo, y.SessionID = "", "", "", "", ""
		if !reflect.DeepEqual(x, y) {
			t.Errorf("payment %d: Settle wrote %+v, SettleBatch wrote %+v", i, x, y)
		}
	}
	ea, err := st.db.SessionEvents(t.Context(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := st.db.SessionEvents(t.Context(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ea) != len(eb) || len(eb) != 3 {
		t.Fatalf("%d and %d events, want 3 and 3", len(ea), len(eb))
	}
	for i := range ea {
		if ea[i].Type != eb[i].Type || ea[i].MerchantID != eb[i].MerchantID || (ea[i].PaymentID == "") != (eb[i].PaymentID == "") ||
			eb[i].Session == nil || eb[i].Session.ID != b.ID || !eb[i].CreatedAt.Equal(ea[i].CreatedAt) {
			t.Errorf("event %d: Settle wrote %+v, SettleBatch wrote %+v", i, ea[i], eb[i])
		}
	}
}

// TestSettleBatchOneStatement settles a batch that SettleBatch sends as
// one statement (only payments, no session or operation twice): the rows
// written are those Settle writes for the same decisions on twin sessions,
// the refused rows write nothing, and the events follow the batch's order.
// The same batch with a row that breaks a CHECK commits the others.
func TestSettleBatchOneStatement(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 1))
	pay := func(sess checkout.Session, amount checkout.Amount) checkout.PaymentObserved {
		return checkout.PaymentObserved{Payment: payment(sess, amount, checkout.NativeAsset, st.now)}
	}
	// Exact, partial, over, a stroop, and more: enough rows for one statement.
	amounts := []checkout.Amount{100 * unit, 30 * unit, 150 * unit, 1, 2, 50 * unit, 99 * unit, 101 * unit}
	var rows []persistence.Settlement
	var twins []checkout.Session
	for _, amt := range amounts {
		a := st.session(t, m, 100*unit, checkout.NativeAsset)
		b := st.session(t, m, 100*unit, checkout.NativeAsset)
		st.mustApply(t, a.ID, pay(a, amt))
		rows = append(rows, st.decide(t, b.ID, pay(b, amt)))
		twins = append(twins, a)
	}
	dup := st.session(t, m, 100*unit, checkout.NativeAsset)
	dupPay := pay(dup, 10*unit)
	st.mustApply(t, dup.ID, dupPay)
	stale := st.session(t, m, 100*unit, checkout.NativeAsset)
	staleRow := st.decide(t, stale.ID, pay(stale, 10*unit))
	st.mustApply(t, stale.ID, pay(stale, 5*unit))
	rows = append(rows, st.decide(t, dup.ID, dupPay), staleRow)
	before := map[string]checkout.Session{dup.ID: st.get(t, dup.ID), stale.ID: st.get(t, stale.ID)}
	eventsBefore := st.count(t, "events")

	errs := st.db.SettleBatch(t.Context(), rows)
	var wants []func(error) bool
	for range amounts {
		wants = append(wants, isNil)
	}
	wants = append(wants, is(checkout.ErrAlreadyApplied), is(checkout.ErrVersionConflict))
	for i, want := range wants {
		if !want(errs[i]) {
			t.Errorf("row %d: %v", i, errs[i])
		}
	}
	for k, a := range twins {
		b := rows[k].Transition.Session
		ga, gb := st.get(t, a.ID), st.get(t, b.ID)
		sameSession(t, "committed row's session", gb, b)
		if ga.AmountReceived != gb.AmountReceived || ga.Status != gb.Status || ga.PaymentStatus != gb.PaymentStatus ||
			ga.Version != gb.Version || ga.ClosedAt.IsZero() != gb.ClosedAt.IsZero() {
			t.Errorf("row %d: Settle left %+v\nSettleBatch left %+v", k, ga, gb)
		}
		pa, err := st.db.SessionPayments(t.Context(), a.ID)
		if err != nil {
			t.Fatal(err)
		}
		pb, err := st.db.SessionPayments(t.Context(), b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(pa) != 1 || len(pb) != 1 || pb[0] != *rows[k].Transition.Payment {
			t.Errorf("row %d: payments %+v, want %+v", k, pb, rows[k].Transition.Payment)
		}
		ea, err := st.db.SessionEvents(t.Context(), a.ID)
		if err != nil {
			t.Fatal(err)
		}
		eb, err := st.db.SessionEvents(t.Context(), b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ea) != len(eb) || len(eb) != len(rows[k].Transition.Events) {
			t.Fatalf("row %d: %d and %d events, want %d", k, len(ea), len(eb), len(rows[k].Transition.Events))
		}
		for i := range eb {
			want := rows[k].Transition.Events[i]
			if ea[i].Type != eb[i].Type || eb[i].ID != want.ID || eb[i].PaymentID != want.PaymentID ||
				eb[i].Session == nil || eb[i].Session.ID != b.ID {
				t.Errorf("row %d event %d: Settle wrote %+v, SettleBatch wrote %+v", k, i, ea[i], eb[i])
			}
		}
	}
	for id, want := range before {
		sameSession(t, "refused row's session", st.get(t, id), want)
	}
	// The batch's events, in sequence order, follow the rows.
	var got, want []string
	for _, e := range st.eventRows(t)[eventsBefore:] {
		got = append(got, e.SessionID+" "+e.Type)
	}
	for _, r := range rows[:len(twins)] {
		for _, e := range r.Transition.Events {
			want = append(want, e.SessionID+" "+string(e.Type))
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events in sequence:\n got  %v\n want %v", got, want)
	}

	t.Run("a row breaks a check", func(t *testing.T) {
		broken := st.session(t, m, 100*unit, checkout.NativeAsset)
		brokenRow := st.decide(t, broken.ID, pay(broken, 10*unit))
		brokenRow.Transition.Session.Status = checkout.StatusComplete // partially paid is not complete
		brokenRow.Transition.Session.ClosedAt = st.now
		rows := []persistence.Settlement{brokenRow}
		for range 9 {
			good := st.session(t, m, 100*unit, checkout.NativeAsset)
			rows = append(rows, st.decide(t, good.ID, pay(good, 10*unit)))
		}
		errs := st.db.SettleBatch(t.Context(), rows)
		if !hasCode(checkout.EINVALID)(errs[0]) {
			t.Errorf("broken row: %v, want EINVALID", errs[0])
		}
		for i, r := range rows[1:] {
			if errs[i+1] != nil {
				t.Errorf("good row %d: %v", i+1, errs[i+1])
				continue
			}
			sameSession(t, "good row's session", st.get(t, r.Transition.Session.ID), r.Transition.Session)
		}
		if _, err := st.db.PaymentByOperation(t.Context(), brokenRow.Transition.Payment.OperationID); !errors.Is(err, checkout.ErrNotFound) {
			t.Errorf("the refused row's payment: %v, want ErrNotFound", err)
		}
	})
}

func TestSessionIDsByMemo(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 1))
	s1 := st.session(t, m, 10*unit, checkout.NativeAsset)
	s2 := st.session(t, m, 10*unit, checkout.NativeAsset)
	keys := []persistence.MemoKey{
		{Type: s1.MemoType, Memo: s1.Memo},
		{Type: s2.MemoType, Memo: s2.Memo},
		{Type: checkout.MemoID, Memo: s1.Memo}, // right memo, wrong type
		{Type: checkout.MemoText, Memo: "NOSUCHMEMO"},
	}
	got, err := st.db.SessionIDsByMemo(t.Context(), m.Account, keys)
	if err != nil {
		t.Fatal(err)
	}
	want := map[persistence.MemoKey]string{keys[0]: s1.ID, keys[1]: s2.ID}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SessionIDsByMemo = %v, want %v", got, want)
	}
	if got, err := st.db.SessionIDsByMemo(t.Context(), account(t, 2), keys); err != nil || len(got) != 0 {
		t.Errorf("another account: %v, %v; want nothing", got, err)
	}
}

func isNil(err error) bool { return err == nil }

func is(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func hasCode(code string) func(error) bool {
	return func(err error) bool {
		var e *checkout.Error
		return errors.As(err, &e) && e.Code == code
	}
}

// TestSettleBatchFansOutEveryEvent commits a batch as one statement to a
// merchant with webhook endpoints: every event of every row gets one
// delivery per matching enabled endpoint (the fan-out trigger runs once
// for the statement), and a refused row's events get none.
func TestSettleBatchFansOutEveryEvent(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 1))
	other := st.merchant(t, "Other", account(t, 2))
	all := st.endpoint(t, m, "*")
	completed := st.endpoint(t, m, string(checkout.EventSessionCompleted))
	disabled := st.endpoint(t, m, "*")
	st.exec(t, `UPDATE webhook_endpoints SET status = 'disabled', disabled_at = now() WHERE id = $1`, disabled.ID)
	st.endpoint(t, other, "*")

	var rows []persistence.Settlement
	for i := range 12 {
		s := st.session(t, m, 100*unit, checkout.NativeAsset)
		amount := checkout.Amount(100 * unit) // completes: two events
		if i%3 == 0 {
			amount = 40 * unit // partial: one event
		}
		rows = append(rows, st.decide(t, s.ID, checkout.PaymentObserved{Payment: payment(s, amount, checkout.NativeAsset, st.now)}))
	}
	stale := st.session(t, m, 100*unit, checkout.NativeAsset)
	staleRow := st.decide(t, stale.ID, checkout.PaymentObserved{Payment: payment(stale, 100*unit, checkout.NativeAsset, st.now)})
	st.mustApply(t, stale.ID, checkout.PaymentObserved{Payment: payment(stale, 5*unit, checkout.NativeAsset, st.now)})
	before := st.deliveryTargets(t)
	rows = append(rows, staleRow)

	errs := st.db.SettleBatch(t.Context(), rows)
	var want []string
	want = append(want, before...)
	for i, r := range rows[:len(rows)-1] {
		if errs[i] != nil {
			t.Fatalf("row %d: %v", i, errs[i])
		}
		for _, e := range r.Transition.Events {
			want = append(want, all.ID+" "+string(e.Type))
			if e.Type == checkout.EventSessionCompleted {
				want = append(want, completed.ID+" "+string(e.Type))
			}
		}
	}
	if !errors.Is(errs[len(rows)-1], checkout.ErrVersionConflict) {
		t.Fatalf("stale row: %v, want a version conflict", errs[len(rows)-1])
	}
	sort.Strings(want)
	if got := st.deliveryTargets(t); !slices.Equal(got, want) {
		t.Fatalf("deliveries:\n got  %v\n want %v", got, want)
	}
}
