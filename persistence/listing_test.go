package persistence_test

import (
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

func TestListSessionsPages(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	m := s.merchant(t, "List shop", account(t, 5))
	other := s.merchant(t, "Other shop", account(t, 6))
	// Five sessions one second apart, and two sharing a created_at so that
	// the id breaks the tie.
	var ids []string // oldest first
	for i := range 7 {
		at := s.now.Add(time.Duration(min(i, 5)) * time.Second)
		sess, err := checkout.NewSession(checkout.SessionParams{MerchantID: m.ID, ReceivingAccount: m.Account,
			Amount: 10, Asset: checkout.NativeAsset, ExpiresIn: time.Hour}, at)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.db.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, sess.ID)
	}
	s.session(t, other, 10, checkout.NativeAsset)
	all, more, err := s.db.ListSessions(ctx, persistence.ListParams{MerchantID: m.ID, Limit: 100})
	if err != nil || more || len(all) != 7 {
		t.Fatalf("all = %d sessions, more %v, %v", len(all), more, err)
	}
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if a.CreatedAt.Before(b.CreatedAt) || a.CreatedAt.Equal(b.CreatedAt) && a.ID < b.ID {
			t.Fatalf("not newest first at %d: %s %s / %s %s", i, a.CreatedAt, a.ID, b.CreatedAt, b.ID)
		}
	}
	order := func(ss []checkout.Session) []string {
		out := make([]string, len(ss))
		for i, x := range ss {
			out[i] = x.ID
		}
		return out
	}
	want := order(all)

	// Walk forward three at a time, then back.
	var walked []string
	after := ""
	for {
		page, more, err := s.db.ListSessions(ctx, persistence.ListParams{MerchantID: m.ID, Limit: 3, StartingAfter: after})
		if err != nil {
			t.Fatal(err)
		}
		walked = append(walked, order(page)...)
		if !more {
			break
		}
		after = page[len(page)-1].ID
	}
	if !equalStrings(walked, want) {
		t.Fatalf("forward walk %v, want %v", walked, want)
	}
	page, more, err := s.db.ListSessions(ctx, persistence.ListParams{MerchantID: m.ID, Limit: 2, EndingBefore: want[4]})
	if err != nil || !more || !equalStrings(order(page), want[2:4]) {
		t.Fatalf("ending_before %s = %v more %v, %v; want %v", want[4], order(page), more, err, want[2:4])
	}
	page, more, err = s.db.ListSessions(ctx, persistence.ListParams{MerchantID: m.ID, Limit: 5, EndingBefore: want[2]})
	if err != nil || more || !equalStrings(order(page), want[:2]) {
		t.Fatalf("ending_before %s = %v more %v, %v", want[2], order(page), more, err)
	}

	// Filters, and cursors that are not the merchant's.
	page, _, err = s.db.ListSessions(ctx, persistence.ListParams{MerchantID: m.ID, Limit: 10, Filter: "complete"})
	if err != nil || len(page) != 0 {
		t.Fatalf("complete = %v, %v", order(page), err)
	}
	otherPage, _, _ := s.db.ListSessions(ctx, persistence.ListParams{MerchantID: other.ID, Limit: 10})
	_, _, err = s.db.ListSessions(ctx, persistence.ListParams{MerchantID: m.ID, Limit: 10, StartingAfter: otherPage[0].ID})
	wantCode(t, err, checkout.EINVALID)
	if _, err := s.db.GetMerchantSession(ctx, m.ID, otherPage[0].ID); checkout.ErrorCode(err) != checkout.ENOTFOUND {
		t.Fatalf("GetMerchantSession of another merchant's session: %v", err)
	}
}

func TestListEvents(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	m := s.merchant(t, "Events shop", account(t, 7))
	other := s.merchant(t, "Other shop", account(t, 8))
	var sessions []checkout.Session
	for range 3 {
		sess := s.session(t, m, 10, checkout.NativeAsset)
		s.mustApply(t, sess.ID, checkout.Cancel{})
		sessions = append(sessions, sess)
	}
	paid := s.session(t, m, 10, checkout.NativeAsset)
	s.mustApply(t, paid.ID, checkout.PaymentObserved{Payment: payment(paid, 10, checkout.NativeAsset, s.now)})
	os2 := s.session(t, other, 10, checkout.NativeAsset)
	s.mustApply(t, os2.ID, checkout.Cancel{})

	all, more, err := s.db.ListEvents(ctx, persistence.ListParams{MerchantID: m.ID, Limit: 100})
	if err != nil || more {
		t.Fatal(err, more)
	}
	if len(all) != 5 { // three cancels, payment.received, completed
		t.Fatalf("%d events, want 5", len(all))
	}
	if all[len(all)-1].SessionID != sessions[0].ID || all[len(all)-1].Session == nil {
		t.Fatalf("oldest event %+v", all[len(all)-1])
	}
	canceled, _, err := s.db.ListEvents(ctx, persistence.ListParams{MerchantID: m.ID, Limit: 100, Filter: string(checkout.EventSessionCanceled)})
	if err != nil || len(canceled) != 3 {
		t.Fatalf("canceled events = %d, %v", len(canceled), err)
	}
	page, more, err := s.db.ListEvents(ctx, persistence.ListParams{MerchantID: m.ID, Limit: 2, StartingAfter: all[1].ID})
	if err != nil || !more || page[0].ID != all[2].ID || page[1].ID != all[3].ID {
		t.Fatalf("starting_after page %v more %v, %v", page, more, err)
	}
	page, more, err = s.db.ListEvents(ctx, persistence.ListParams{MerchantID: m.ID, Limit: 2, EndingBefore: all[2].ID})
	if err != nil || more || page[0].ID != all[0].ID || page[1].ID != all[1].ID {
		t.Fatalf("ending_before page %v more %v, %v", page, more, err)
	}
	e, err := s.db.GetEvent(ctx, m.ID, all[0].ID)
	if err != nil || e.ID != all[0].ID {
		t.Fatalf("GetEvent = %+v, %v", e, err)
	}
	otherEvents, _, _ := s.db.ListEvents(ctx, persistence.ListParams{MerchantID: other.ID, Limit: 10})
	if _, err := s.db.GetEvent(ctx, m.ID, otherEvents[0].ID); checkout.ErrorCode(err) != checkout.ENOTFOUND {
		t.Fatalf("GetEvent of another merchant's event: %v", err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
