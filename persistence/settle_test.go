package persistence_test

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
)

const unit = checkout.Amount(checkout.StroopsPerUnit)

// settleStep is one input to a session and what Postgres must hold after it
// is settled.
type settleStep struct {
	expire bool // an Expire one second past the session's expiry, else a payment

	amount checkout.Amount
	asset  *checkout.Asset // nil: the session's asset
	// closed is when the payment's ledger closed, relative to the session's
	// expiry.
	closed time.Duration

	wantDisposition checkout.Disposition
	wantEvents      []checkout.EventType
	wantStatus      checkout.Status
	wantPayStatus   checkout.PaymentStatus
	wantReceived    checkout.Amount
	// wantClosed is when the session closed, relative to its expiry; nil
	// while it is open.
	wantClosed *time.Duration
}

func after(d time.Duration) *time.Duration { return &d }

func TestSettlePayment(t *testing.T) {
	t.Parallel()
	issuerA, issuerB := account(t, 0xA1), account(t, 0xB2)
	usdcA := checkout.Asset{Code: "USDC", Issuer: issuerA}
	usdcB := checkout.Asset{Code: "USDC", Issuer: issuerB}
	eurcA := checkout.Asset{Code: "EURC", Issuer: issuerA}

	const (
		received  = checkout.EventPaymentReceived
		completed = checkout.EventSessionCompleted
		expired   = checkout.EventSessionExpired
		late      = checkout.EventPaymentLate
		wrong     = checkout.EventPaymentWrongAsset
	)
	tests := []struct {
		name  string
		asset checkout.Asset
		steps []settleStep
	}{
		{"exact", usdcA, []settleStep{
			{amount: 100 * unit, closed: -10 * time.Minute, wantDisposition: checkout.DispositionApplied,
				wantEvents: []checkout.EventType{received, completed},
				wantStatus: checkout.StatusComplete, wantPayStatus: checkout.PaymentPaid, wantReceived: 100 * unit,
				wantClosed: after(-10 * time.Minute)},
		}},
		{"partial then completing", checkout.NativeAsset, []settleStep{
			{amount: 40 * unit, closed: -30 * time.Minute, wantDisposition: checkout.DispositionApplied,
				wantEvents: []checkout.EventType{received},
				wantStatus: checkout.StatusOpen, wantPayStatus: checkout.PaymentPartiallyPaid, wantReceived: 40 * unit},
			{amount: 60 * unit, closed: -20 * time.Minute, wantDisposition: checkout.DispositionApplied,
				wantEvents: []checkout.EventType{received, completed},
				wantStatus: checkout.StatusComplete, wantPayStatus: checkout.PaymentPaid, wantReceived: 100 * unit,
				wantClosed: after(-20 * time.Minute)},
		}},
		{"overpayment", usdcA, []settleStep{
			{amount: 100*unit + 1, closed: -time.Minute, wantDisposition: checkout.DispositionApplied,
				wantEvents: []checkout.EventType{received, completed},
				wantStatus: checkout.StatusComplete, wantPayStatus: checkout.PaymentOverpaid, wantReceived: 100*unit + 1,
				wantClosed: after(-time.Minute)},
		}},
		{"paid exactly at expiry", usdcA, []settleStep{
			{amount: 100 * unit, closed: 0, wantDisposition: checkout.DispositionApplied,
				wantEvents: []checkout.EventType{received, completed},
				wantStatus: checkout.StatusComplete, wantPayStatus: checkout.PaymentPaid, wantReceived: 100 * unit,
				wantClosed: after(0)},
		}},
		{"payment after completion is late", usdcA, []settleStep{
			{amount: 100 * unit, closed: -time.Minute, wantDisposition: checkout.DispositionApplied,
				wantEvents: []checkout.EventType{received, completed},
				wantStatus: checkout.StatusComplete, wantPayStatus: checkout.PaymentPaid, wantReceived: 100 * unit,
				wantClosed: after(-time.Minute)},
			{amount: 5 * unit, closed: -30 * time.Second, wantDisposition: checkout.DispositionLate,
				wantEvents: []checkout.EventType{late},
				wantStatus: checkout.StatusComplete, wantPayStatus: checkout.PaymentPaid, wantReceived: 100 * unit,
				wantClosed: after(-time.Minute)},
		}},
		{"late after expiry", usdcA, []settleStep{
			{expire: true, wantEvents: []checkout.EventType{expired},
				wantStatus: checkout.StatusExpired, wantPayStatus: checkout.PaymentUnpaid, wantClosed: after(0)},
			{amount: 100 * unit, closed: 2 * time.Second, wantDisposition: checkout.DispositionLate,
				wantEvents: []checkout.EventType{late},
				wantStatus: checkout.StatusExpired, wantPayStatus: checkout.PaymentUnpaid, wantClosed: after(0)},
		}},
		{"partially paid then expired keeps its amount", usdcA, []settleStep{
			{amount: 30 * unit, closed: -time.Minute, wantDisposition: checkout.DispositionApplied,
				wantEvents: []checkout.EventType{received},
				wantStatus: checkout.StatusOpen, wantPayStatus: checkout.PaymentPartiallyPaid, wantReceived: 30 * unit},
			{expire: true, wantEvents: []checkout.EventType{expired},
				wantStatus: checkout.StatusExpired, wantPayStatus: checkout.PaymentPartiallyPaid, wantReceived: 30 * unit,
				wantClosed: after(0)},
			{amount: 70 * unit, closed: time.Minute, wantDisposition: checkout.DispositionLate,
				wantEvents: []checkout.EventType{late},
				wantStatus: checkout.StatusExpired, wantPayStatus: checkout.PaymentPartiallyPaid, wantReceived: 30 * unit,
				wantClosed: after(0)},
		}},
		{"ledger closed past expiry on an open session", usdcA, []settleStep{
			{amount: 100 * unit, closed: time.Second, wantDisposition: checkout.DispositionLate,
				wantEvents: []checkout.EventType{late},
				wantStatus: checkout.StatusOpen, wantPayStatus: checkout.PaymentUnpaid},
			// A punctual payment whose hand-off was retried arrives after the
			// late one, and still counts.
			{amount: 100 * unit, closed: -time.Second, wantDisposition: checkout.DispositionApplied,
				wantEvents: []checkout.EventType{received, completed},
				wantStatus: checkout.StatusComplete, wantPayStatus: checkout.PaymentPaid, wantReceived: 100 * unit,
				wantClosed: after(-time.Second)},
		}},
		{"wrong issuer", usdcA, []settleStep{
			{amount: 100 * unit, asset: &usdcB, closed: -time.Minute, wantDisposition: checkout.DispositionWrongAsset,
				wantEvents: []checkout.EventType{wrong},
				wantStatus: checkout.StatusOpen, wantPayStatus: checkout.PaymentUnpaid},
			{amount: 25 * unit, closed: -time.Minute, wantDisposition: checkout.DispositionApplied,
				wantEvents: []checkout.EventType{received},
				wantStatus: checkout.StatusOpen, wantPayStatus: checkout.PaymentPartiallyPaid, wantReceived: 25 * unit},
		}},
		{"wrong code", usdcA, []settleStep{
			{amount: 100 * unit, asset: &eurcA, closed: -time.Minute, wantDisposition: checkout.DispositionWrongAsset,
				wantEvents: []checkout.EventType{wrong},
				wantStatus: checkout.StatusOpen, wantPayStatus: checkout.PaymentUnpaid},
		}},
		{"lumens to a credit session", usdcA, []settleStep{
			{amount: 100 * unit, asset: &checkout.NativeAsset, closed: -time.Minute, wantDisposition: checkout.DispositionWrongAsset,
				wantEvents: []checkout.EventType{wrong},
				wantStatus: checkout.StatusOpen, wantPayStatus: checkout.PaymentUnpaid},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := newStore(t)
			m := st.merchant(t, "Acme", account(t, 1))
			sess := st.session(t, m, 100*unit, tt.asset)
			var wantPayments []paymentRow
			seenEvents := 0
			for i, step := range tt.steps {
				var in checkout.Input
				var pay checkout.Payment
				if step.expire {
					in = checkout.Expire{At: sess.ExpiresAt.Add(time.Second)}
				} else {
					asset := tt.asset
					if step.asset != nil {
						asset = *step.asset
					}
					pay = payment(sess, step.amount, asset, sess.ExpiresAt.Add(step.closed))
					in = checkout.PaymentObserved{Payment: pay}
				}
				tr := st.mustApply(t, sess.ID, in)

				got := st.get(t, sess.ID)
				if got.Status != step.wantStatus || got.PaymentStatus != step.wantPayStatus || got.AmountReceived != step.wantReceived {
					t.Fatalf("step %d: session is %s/%s/%d, want %s/%s/%d", i, got.Status, got.PaymentStatus,
						got.AmountReceived, step.wantStatus, step.wantPayStatus, step.wantReceived)
				}
				if want := int64(i + 2); got.Version != want {
					t.Errorf("step %d: version = %d, want %d", i, got.Version, want)
				}
				var wantClosed time.Time
				if step.wantClosed != nil {
					wantClosed = sess.ExpiresAt.Add(*step.wantClosed)
				}
				if !got.ClosedAt.Equal(wantClosed) || !got.UpdatedAt.Equal(st.now) {
					t.Errorf("step %d: closed_at %v, updated_at %v; want %v, %v", i, got.ClosedAt, got.UpdatedAt, wantClosed, st.now)
				}
				// Fields no transition touches are as created.
				if got.ID != sess.ID || got.Amount != 100*unit || got.Asset != tt.asset || got.Memo != sess.Memo ||
					!got.ExpiresAt.Equal(sess.ExpiresAt) || got.Metadata["order"] != "A-1" {
					t.Errorf("step %d: settled session lost its fields: %+v", i, got)
				}
				sameSession(t, "stored session vs the transition's", got, tr.Session)

				if !step.expire {
					wantPayments = append(wantPayments, paymentRow{ID: tr.Payment.ID, OperationID: pay.OperationID,
						SessionID: sess.ID, Disposition: string(step.wantDisposition), Amount: int64(step.amount)})
				}
				if gotPayments := st.paymentRows(t); !slices.Equal(gotPayments, wantPayments) {
					t.Errorf("step %d: payments = %+v, want %+v", i, gotPayments, wantPayments)
				}

				events := st.eventRows(t)
				fresh := events[seenEvents:]
				seenEvents = len(events)
				var wantTypes []string
				for _, typ := range step.wantEvents {
					wantTypes = append(wantTypes, string(typ))
				}
				if !slices.Equal(eventTypes(fresh), wantTypes) {
					t.Fatalf("step %d: events %v, want %v", i, eventTypes(fresh), wantTypes)
				}
				for _, e := range fresh {
					if e.MerchantID != m.ID || e.SessionID != sess.ID {
						t.Errorf("step %d: %s event for merchant %s, session %s", i, e.Type, e.MerchantID, e.SessionID)
					}
					if e.Session == nil {
						t.Errorf("step %d: %s event has no session snapshot", i, e.Type)
					} else {
						sameSession(t, e.Type+" payload session", *e.Session, got)
					}
					if e.Type == string(expired) {
						if e.PaymentID != "<null>" || e.Payment != nil {
							t.Errorf("step %d: expiry event names payment %s", i, e.PaymentID)
						}
						continue
					}
					if e.PaymentID != tr.Payment.ID || e.Payment == nil ||
						e.Payment.OperationID != pay.OperationID || e.Payment.Disposition != step.wantDisposition ||
						e.Payment.Amount != step.amount {
						t.Errorf("step %d: %s event payment %s %+v, want %s (operation %s, %s)",
							i, e.Type, e.PaymentID, e.Payment, tr.Payment.ID, pay.OperationID, step.wantDisposition)
					}
				}
				sess = got
			}
		})
	}
}

// TestSettledPaymentReadsBack checks that the payment row keeps everything
// the transition recorded.
func TestSettledPaymentReadsBack(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 1))
	sess := st.session(t, m, 10*unit, checkout.NativeAsset)
	p := payment(sess, 3*unit, checkout.NativeAsset, st.now.Add(time.Second))
	p.ToMuxedID, p.OperationType = "12345", "path_payment_strict_receive"
	tr := st.mustApply(t, sess.ID, checkout.PaymentObserved{Payment: p})

	want := p
	want.ID, want.SessionID, want.Disposition, want.CreatedAt = tr.Payment.ID, sess.ID, checkout.DispositionApplied, st.now
	got, err := st.db.PaymentByOperation(t.Context(), p.OperationID)
	if err != nil {
		t.Fatalf("PaymentByOperation: %v", err)
	}
	if got != want {
		t.Errorf("PaymentByOperation:\n got  %+v\n want %+v", got, want)
	}
	list, err := st.db.SessionPayments(t.Context(), sess.ID)
	if err != nil {
		t.Fatalf("SessionPayments: %v", err)
	}
	if len(list) != 1 || list[0] != want {
		t.Errorf("SessionPayments = %+v, want [%+v]", list, want)
	}
	if _, err := st.db.PaymentByOperation(t.Context(), "999"); !errors.Is(err, checkout.ErrNotFound) {
		t.Errorf("PaymentByOperation of an unknown operation = %v, want ErrNotFound", err)
	}
}

func TestRecordUnmatched(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	shared, other := account(t, 1), account(t, 2)
	m1 := st.merchant(t, "Acme", shared)
	m2 := st.merchant(t, "Acme Outlet", shared)
	st.merchant(t, "Elsewhere", other)

	ids, err := st.db.MerchantIDsByAccount(t.Context(), shared)
	if err != nil {
		t.Fatalf("MerchantIDsByAccount: %v", err)
	}
	wantIDs := []string{m1.ID, m2.ID}
	slices.Sort(wantIDs)
	if !slices.Equal(ids, wantIDs) {
		t.Fatalf("MerchantIDsByAccount = %v, want %v", ids, wantIDs)
	}

	p := checkout.Payment{OperationID: "424242", TransactionHash: "tx", OperationType: "payment",
		From: "GSENDER", To: shared, Amount: 7 * unit, Asset: checkout.NativeAsset,
		MemoType: "text", Memo: "NOSUCHMEMO", LedgerClosedAt: st.now}
	rec, events := checkout.Unmatched(p, ids, st.now)
	if err := st.db.RecordUnmatched(t.Context(), rec, events); err != nil {
		t.Fatalf("RecordUnmatched: %v", err)
	}

	wantPayments := []paymentRow{{ID: rec.ID, OperationID: "424242", SessionID: "<null>",
		Disposition: "unmatched", Amount: int64(7 * unit)}}
	if got := st.paymentRows(t); !slices.Equal(got, wantPayments) {
		t.Fatalf("payments = %+v, want %+v", got, wantPayments)
	}
	assertUnmatchedEvents := func() {
		t.Helper()
		got := st.eventRows(t)
		var merchants []string
		for _, e := range got {
			merchants = append(merchants, e.MerchantID)
			if e.Type != string(checkout.EventPaymentUnmatched) || e.SessionID != "<null>" || e.PaymentID != rec.ID {
				t.Errorf("event %+v, want payment.unmatched for payment %s and no session", e, rec.ID)
			}
			if e.Session != nil || e.Payment == nil || e.Payment.OperationID != "424242" ||
				e.Payment.Amount != 7*unit || e.Payment.Disposition != checkout.DispositionUnmatched {
				t.Errorf("event payload session %+v, payment %+v", e.Session, e.Payment)
			}
		}
		slices.Sort(merchants)
		if !slices.Equal(merchants, wantIDs) {
			t.Errorf("unmatched events went to %v, want one each to %v", merchants, wantIDs)
		}
	}
	assertUnmatchedEvents()

	// Horizon replays the operation: the watcher decides again, with fresh
	// ids, and is told it was recorded already.
	rec2, events2 := checkout.Unmatched(p, ids, st.now.Add(time.Minute))
	err = st.db.RecordUnmatched(t.Context(), rec2, events2)
	if !errors.Is(err, checkout.ErrAlreadyApplied) {
		t.Fatalf("second RecordUnmatched = %v, want ErrAlreadyApplied", err)
	}
	if got := st.paymentRows(t); !slices.Equal(got, wantPayments) {
		t.Errorf("after the replay payments = %+v, want %+v", got, wantPayments)
	}
	assertUnmatchedEvents()
}

// TestSettleTwice replays an operation that was settled already: the
// second attempt is acknowledged with ErrAlreadyApplied and writes nothing,
// whether it comes from a fresh decision or a retried commit.
func TestSettleTwice(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 1))
	sess := st.session(t, m, 100*unit, checkout.NativeAsset)
	p := payment(sess, 40*unit, checkout.NativeAsset, st.now)

	first := st.mustApply(t, sess.ID, checkout.PaymentObserved{Payment: p})
	settled := st.get(t, sess.ID)
	if settled.Version != 2 || settled.AmountReceived != 40*unit {
		t.Fatalf("after the first settle: version %d, received %d; want 2, %d", settled.Version, settled.AmountReceived, 40*unit)
	}
	payments, events := st.paymentRows(t), st.eventRows(t)
	if len(payments) != 1 || len(events) != 1 {
		t.Fatalf("after the first settle: %d payments, %d events; want 1, 1", len(payments), len(events))
	}

	t.Run("decided again on the new version", func(t *testing.T) {
		_, err := st.apply(t, sess.ID, checkout.PaymentObserved{Payment: p})
		if !errors.Is(err, checkout.ErrAlreadyApplied) {
			t.Fatalf("Settle = %v, want ErrAlreadyApplied", err)
		}
	})
	t.Run("same transition committed again", func(t *testing.T) {
		err := st.db.Settle(t.Context(), first, sess.Version)
		if !errors.Is(err, checkout.ErrAlreadyApplied) {
			t.Fatalf("Settle = %v, want ErrAlreadyApplied", err)
		}
	})
	sameSession(t, "session after the replays", st.get(t, sess.ID), settled)
	if got := st.paymentRows(t); !slices.Equal(got, payments) {
		t.Errorf("payments after the replays = %+v, want %+v", got, payments)
	}
	if got := eventTypes(st.eventRows(t)); !slices.Equal(got, eventTypes(events)) {
		t.Errorf("events after the replays = %v, want %v", got, eventTypes(events))
	}

	t.Run("replayed expire is a no-op", func(t *testing.T) {
		expire := checkout.Expire{At: sess.ExpiresAt.Add(time.Second)}
		st.mustApply(t, sess.ID, expire)
		expired := st.get(t, sess.ID)
		tr := st.mustApply(t, sess.ID, expire)
		if tr.Changed {
			t.Errorf("replayed expire changed the session: %+v", tr.Session)
		}
		sameSession(t, "session after a replayed expire", st.get(t, sess.ID), expired)
		if n := st.count(t, "events"); n != 2 {
			t.Errorf("%d events, want 2: payment.received and one expiry", n)
		}
	})
}

// TestSettleStaleVersion commits a decision made on a session that has
// changed since it was read.
func TestSettleStaleVersion(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 1))
	sess := st.session(t, m, 100*unit, checkout.NativeAsset)

	stale := st.get(t, sess.ID)
	st.mustApply(t, sess.ID, checkout.PaymentObserved{Payment: payment(sess, 10*unit, checkout.NativeAsset, st.now)})
	current := st.get(t, sess.ID)
	payments, events := st.paymentRows(t), st.eventRows(t)

	late := payment(sess, 90*unit, checkout.NativeAsset, st.now)
	tr, err := checkout.Apply(stale, checkout.PaymentObserved{Payment: late}, st.now)
	if err != nil {
		t.Fatal(err)
	}
	err = st.db.Settle(t.Context(), tr, stale.Version)
	if !errors.Is(err, checkout.ErrVersionConflict) {
		t.Fatalf("Settle on version %d = %v, want ErrVersionConflict", stale.Version, err)
	}
	sameSession(t, "session after the refused write", st.get(t, sess.ID), current)
	if got := st.paymentRows(t); !slices.Equal(got, payments) {
		t.Errorf("payments after the refused write = %+v, want %+v (the rolled back payment must be gone)", got, payments)
	}
	if got := st.eventRows(t); len(got) != len(events) {
		t.Errorf("events after the refused write = %v, want %v", eventTypes(got), eventTypes(events))
	}
	if _, err := st.db.PaymentByOperation(t.Context(), late.OperationID); !errors.Is(err, checkout.ErrNotFound) {
		t.Errorf("PaymentByOperation of the refused payment = %v, want ErrNotFound", err)
	}

	// Decided again on the current version, the same payment settles.
	st.mustApply(t, sess.ID, checkout.PaymentObserved{Payment: late})
	if got := st.get(t, sess.ID); got.Status != checkout.StatusComplete || got.AmountReceived != 100*unit || got.Version != 3 {
		t.Errorf("after the retry: %s, received %d, version %d; want complete, %d, 3", got.Status, got.AmountReceived, got.Version, 100*unit)
	}
}

// TestSettleConcurrentPayments has two writers settle different payments
// into one session at once, each reading the same version first. Postgres
// lets exactly one commit; the other reloads and decides again.
func TestSettleConcurrentPayments(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 1))
	const rounds = 50
	amounts := [2]checkout.Amount{30 * unit, 45 * unit}

	for round := range rounds {
		sess := st.session(t, m, 100*unit, checkout.NativeAsset)
		var (
			loaded   sync.WaitGroup
			done     sync.WaitGroup
			firstErr [2]error
			retryErr [2]error
			attempts [2]int
		)
		loaded.Add(2)
		for w := range 2 {
			p := payment(sess, amounts[w], checkout.NativeAsset, st.now)
			done.Go(func() {
				ctx := t.Context()
				read, err := st.db.GetSession(ctx, sess.ID)
				// Both read before either writes, so both decide on version 1.
				loaded.Done()
				loaded.Wait()
				for attempts[w] = 1; ; attempts[w]++ {
					if err != nil {
						retryErr[w] = err
						return
					}
					var tr checkout.Transition
					if tr, err = checkout.Apply(read, checkout.PaymentObserved{Payment: p}, st.now); err == nil {
						err = st.db.Settle(ctx, tr, read.Version)
					}
					if attempts[w] == 1 {
						firstErr[w] = err
					}
					if !errors.Is(err, checkout.ErrVersionConflict) || attempts[w] == 5 {
						retryErr[w] = err
						return
					}
					read, err = st.db.GetSession(ctx, sess.ID)
				}
			})
		}
		done.Wait()

		wins := 0
		for w := range 2 {
			if retryErr[w] != nil {
				t.Fatalf("round %d: writer %d failed after %d attempts: %v", round, w, attempts[w], retryErr[w])
			}
			switch {
			case firstErr[w] == nil:
				wins++
			case !errors.Is(firstErr[w], checkout.ErrVersionConflict):
				t.Fatalf("round %d: writer %d's first attempt: %v, want nil or ErrVersionConflict", round, w, firstErr[w])
			}
		}
		if wins != 1 || attempts[0]+attempts[1] != 3 {
			t.Fatalf("round %d: %d first attempts won, attempts %v; want exactly one win and one retry", round, wins, attempts)
		}
		got := st.get(t, sess.ID)
		if got.AmountReceived != amounts[0]+amounts[1] || got.PaymentStatus != checkout.PaymentPartiallyPaid || got.Version != 3 {
			t.Fatalf("round %d: received %d (%s), version %d; want %d (partially_paid), 3",
				round, got.AmountReceived, got.PaymentStatus, got.Version, amounts[0]+amounts[1])
		}
		ps, err := st.db.SessionPayments(t.Context(), sess.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 2 || ps[0].Amount+ps[1].Amount != amounts[0]+amounts[1] {
			t.Fatalf("round %d: payments %+v, want the two of them", round, ps)
		}
	}
	if n := st.count(t, "events"); n != 2*rounds {
		t.Errorf("%d events, want %d: one payment.received per payment", n, 2*rounds)
	}
}

// TestSettleBreakingACheck commits a transition the schema forbids: the
// error is a domain error and the payment and events roll back with it.
func TestSettleBreakingACheck(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 1))
	sess := st.session(t, m, 100*unit, checkout.NativeAsset)

	tr, err := checkout.Apply(sess, checkout.PaymentObserved{Payment: payment(sess, 10*unit, checkout.NativeAsset, st.now)}, st.now)
	if err != nil {
		t.Fatal(err)
	}
	// Apply would leave it open and partially paid; claim it is complete.
	tr.Session.Status = checkout.StatusComplete
	tr.Session.ClosedAt = st.now
	err = st.db.Settle(t.Context(), tr, sess.Version)
	wantCode(t, err, checkout.EINVALID)

	sameSession(t, "session after the refused write", st.get(t, sess.ID), sess)
	if n, e := st.count(t, "payments"), st.count(t, "events"); n != 0 || e != 0 {
		t.Errorf("%d payments and %d events written, want none", n, e)
	}
}
