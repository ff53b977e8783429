package persistence_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/webhooks"
)

func (s *store) endpoint(t *testing.T, m checkout.Merchant, events ...string) persistence.WebhookEndpoint {
	t.Helper()
	e := persistence.WebhookEndpoint{
		ID: checkout.NewID(webhooks.PrefixEndpoint), MerchantID: m.ID, URL: "https://example.com/hooks",
		EventTypes: events, Secret: webhooks.NewSecret(), CreatedAt: s.now,
	}
	if err := s.db.CreateWebhookEndpoint(t.Context(), e); err != nil {
		t.Fatalf("CreateWebhookEndpoint: %v", err)
	}
	return e
}

// complete pays a fresh session of m in full: the outbox gets
// payment.received and checkout.session.completed.
func (s *store) complete(t *testing.T, m checkout.Merchant) checkout.Transition {
	t.Helper()
	sess := s.session(t, m, 10*unit, checkout.NativeAsset)
	return s.mustApply(t, sess.ID, checkout.PaymentObserved{Payment: payment(sess, 10*unit, checkout.NativeAsset, s.now)})
}

// deliveryTargets returns "endpoint event-type" for every delivery.
func (s *store) deliveryTargets(t *testing.T) []string {
	t.Helper()
	rows, err := s.raw.Query(t.Context(), `SELECT d.endpoint_id || ' ' || ev.type FROM webhook_deliveries d
		JOIN events ev ON ev.id = d.event_id ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestWebhookFanOut(t *testing.T) {
	s := newStore(t)
	a := s.merchant(t, "A", account(t, 1))
	b := s.merchant(t, "B", account(t, 2))
	all := s.endpoint(t, a, "*")
	completed := s.endpoint(t, a, "checkout.session.completed")
	canceled := s.endpoint(t, a, "checkout.session.canceled")
	disabled := s.endpoint(t, a, "*")
	s.exec(t, `UPDATE webhook_endpoints SET status = 'disabled', disabled_at = now() WHERE id = $1`, disabled.ID)
	other := s.endpoint(t, b, "*")

	s.complete(t, a)
	want := []string{
		all.ID + " checkout.session.completed", all.ID + " payment.received",
		completed.ID + " checkout.session.completed",
	}
	sort.Strings(want)
	if got := s.deliveryTargets(t); !slices.Equal(got, want) {
		t.Fatalf("deliveries:\n got  %v\n want %v", got, want)
	}
	_ = canceled
	_ = other

	// An endpoint created after an event does not get it.
	late := s.endpoint(t, a, "*")
	if got := s.deliveryTargets(t); !slices.Equal(got, want) {
		t.Fatalf("a later endpoint got an earlier event: %v", got)
	}
	ds, err := s.db.WebhookDeliveriesOfEvent(t.Context(), s.eventIDs(t)[1])
	if err != nil || len(ds) != 2 {
		t.Fatalf("deliveries of the completion: %v, %v", ds, err)
	}
	for _, d := range ds {
		if d.Status != persistence.DeliveryPending || d.Attempts != 0 || !d.NextAttemptAt.Equal(s.now) {
			t.Errorf("new delivery %+v: want pending, due at the event's time", d)
		}
		if d.EndpointID == late.ID {
			t.Error("the late endpoint has a delivery")
		}
	}
}

func (s *store) eventIDs(t *testing.T) []string {
	t.Helper()
	rows, err := s.raw.Query(t.Context(), `SELECT id FROM events ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		_ = rows.Scan(&id)
		out = append(out, id)
	}
	return out
}

func claim(t *testing.T, s *store, now time.Time, limit, per int) []persistence.ClaimedDelivery {
	t.Helper()
	cs, err := s.db.ClaimDeliveries(t.Context(), persistence.ClaimParams{Now: now, Lease: time.Minute, Limit: limit, PerEndpoint: per})
	if err != nil {
		t.Fatalf("ClaimDeliveries: %v", err)
	}
	return cs
}

func TestClaimDeliveries(t *testing.T) {
	s := newStore(t)
	m := s.merchant(t, "A", account(t, 1))
	busy := s.endpoint(t, m, "*")
	quiet := s.endpoint(t, m, "checkout.session.completed")
	for range 5 {
		s.complete(t, m) // 10 deliveries to busy, 5 to quiet
	}
	if cs := claim(t, s, s.now.Add(-time.Second), 100, 4); len(cs) != 0 {
		t.Fatalf("claimed %d deliveries before they were due", len(cs))
	}
	first := claim(t, s, s.now, 100, 4)
	per := map[string]int{}
	for _, c := range first {
		per[c.Endpoint.ID]++
		if c.Attempts != 0 || !c.FirstAttemptAt.IsZero() || c.ClaimToken == "" {
			t.Errorf("claim %+v", c)
		}
		if c.Event.Session == nil || c.Event.MerchantID != m.ID || c.Endpoint.Secret == "" {
			t.Errorf("claim lacks its event or endpoint: %+v", c)
		}
	}
	if per[busy.ID] != 4 || per[quiet.ID] != 4 {
		t.Fatalf("claimed per endpoint %v, want 4 each", per)
	}
	held := map[string]int{busy.ID: 4, quiet.ID: 4}
	full, err := s.db.ClaimDeliveries(t.Context(), persistence.ClaimParams{Now: s.now, Lease: time.Minute, Limit: 100, PerEndpoint: 4, InFlight: held})
	if err != nil || len(full) != 0 {
		t.Fatalf("claimed %d more while every endpoint was at its limit (%v)", len(full), err)
	}

	// Recording one attempt frees one slot.
	out, err := s.db.RecordAttempt(t.Context(), persistence.AttemptResult{Delivery: first[0],
		Attempt: persistence.WebhookAttempt{AttemptedAt: s.now, StatusCode: 200, Succeeded: true, Latency: 3 * time.Millisecond}})
	if err != nil || out.Stale || out.Status != persistence.DeliverySucceeded {
		t.Fatalf("RecordAttempt: %+v, %v", out, err)
	}
	held[first[0].Endpoint.ID]--
	again, err := s.db.ClaimDeliveries(t.Context(), persistence.ClaimParams{Now: s.now, Lease: time.Minute, Limit: 100, PerEndpoint: 4, InFlight: held})
	if err != nil || len(again) != 1 || again[0].Endpoint.ID != first[0].Endpoint.ID {
		t.Fatalf("after one result, claimed %d (%v)", len(again), err)
	}

	// When the leases lapse, the claims come due again for anyone; the old
	// claim's result is then stale.
	later := claim(t, s, s.now.Add(time.Minute+time.Second), 100, 100)
	if len(later) != 14 {
		t.Fatalf("after the lease, claimed %d, want all 14 pending", len(later))
	}
	out, err = s.db.RecordAttempt(t.Context(), persistence.AttemptResult{Delivery: first[1],
		Attempt: persistence.WebhookAttempt{AttemptedAt: s.now, StatusCode: 200, Succeeded: true}})
	if err != nil || !out.Stale {
		t.Fatalf("a lapsed claim's result: %+v, %v; want stale", out, err)
	}

	// Released claims are due at once.
	refs := []persistence.ClaimRef{{DeliveryID: later[0].ID, Token: later[0].ClaimToken},
		{DeliveryID: later[1].ID, Token: later[1].ClaimToken}, {DeliveryID: later[2].ID, Token: later[1].ClaimToken}}
	if n, err := s.db.ReleaseClaims(t.Context(), refs); err != nil || n != 2 {
		t.Fatalf("ReleaseClaims = %d, %v; want the two claims named with their own tokens", n, err)
	}
	again = claim(t, s, s.now, 100, 100)
	if len(again) != 2 || !sameIDs(again, later[:2]) {
		t.Fatalf("after releasing two claims, claimed %d at once, want those two", len(again))
	}
}

// TestClaimDeliveriesConcurrently: engines claiming at once never get the
// same delivery.
func TestClaimDeliveriesConcurrently(t *testing.T) {
	s := newStore(t)
	m := s.merchant(t, "A", account(t, 1))
	for range 20 {
		s.endpoint(t, m, "*")
	}
	for range 5 {
		s.complete(t, m) // 200 deliveries
	}
	var claimed atomic.Int64
	seen := make(chan string, 400)
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				cs, err := s.db.ClaimDeliveries(t.Context(), persistence.ClaimParams{Now: s.now, Lease: time.Minute, Limit: 7, PerEndpoint: 100})
				if err != nil {
					t.Error(err)
					return
				}
				if len(cs) == 0 {
					return
				}
				for _, c := range cs {
					seen <- c.ID
					claimed.Add(1)
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	close(seen)
	ids := map[string]bool{}
	for id := range seen {
		if ids[id] {
			t.Fatalf("delivery %s claimed twice", id)
		}
		ids[id] = true
	}
	if len(ids) != 200 {
		t.Fatalf("claimed %d deliveries, want 200", len(ids))
	}
}

func TestRecordAttemptRetriesFailsAndDisables(t *testing.T) {
	s := newStore(t)
	m := s.merchant(t, "A", account(t, 1))
	ep := s.endpoint(t, m, "checkout.session.completed")
	watcher := s.endpoint(t, m, string(webhooks.EventEndpointDisabled))
	s.complete(t, m)
	s.complete(t, m)

	now := s.now
	cs := claim(t, s, now, 1, 4)
	fail := func(c persistence.ClaimedDelivery, at, next time.Time) persistence.AttemptOutcome {
		t.Helper()
		out, err := s.db.RecordAttempt(t.Context(), persistence.AttemptResult{Delivery: c, NextAttemptAt: next,
			DisableAfter: 72 * time.Hour,
			Attempt: persistence.WebhookAttempt{AttemptedAt: at, StatusCode: 500, Latency: time.Millisecond,
				ResponseBody: "oops\x00\xff" + string(make([]byte, 5000)), Error: "status 500"}})
		if err != nil {
			t.Fatalf("RecordAttempt: %v", err)
		}
		return out
	}
	out := fail(cs[0], now, now.Add(5*time.Second))
	if out.Status != persistence.DeliveryPending || out.Disabled {
		t.Fatalf("first failure: %+v", out)
	}
	as, err := s.db.WebhookAttempts(t.Context(), cs[0].ID)
	if err != nil || len(as) != 1 || as[0].StatusCode != 500 || len(as[0].ResponseBody) > persistence.MaxResponseBody {
		t.Fatalf("attempts %+v, %v", as, err)
	}
	if cs := claim(t, s, now.Add(4*time.Second), 10, 4); len(cs) != 0 && cs[0].ID == as[0].DeliveryID {
		t.Fatal("claimed before the retry was due")
	}

	// A failure 72 h into the streak disables the endpoint.
	c2 := claim(t, s, now.Add(80*time.Hour), 10, 4)
	var again persistence.ClaimedDelivery
	for _, c := range c2 {
		if c.ID == cs[0].ID {
			again = c
		}
	}
	if again.ID == "" || again.Attempts != 1 || !again.FirstAttemptAt.Equal(now) {
		t.Fatalf("retry claim %+v", again)
	}
	out = fail(again, now.Add(72*time.Hour), time.Time{})
	if out.Status != persistence.DeliveryFailed || !out.Disabled || out.DisabledEventID == "" {
		t.Fatalf("failure at 72 h: %+v", out)
	}
	got, err := s.db.GetWebhookEndpoint(t.Context(), m.ID, ep.ID)
	if err != nil || got.Status != persistence.EndpointDisabled || got.DisabledAt.IsZero() {
		t.Fatalf("endpoint after 72 h of failures: %+v, %v", got, err)
	}
	// Its other deliveries failed with it; the disabled event fanned out to
	// the endpoint that subscribes to it.
	var pending int
	_ = s.raw.QueryRow(t.Context(), `SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'pending'`, ep.ID).Scan(&pending)
	if pending != 0 {
		t.Fatalf("%d deliveries still pending on a disabled endpoint", pending)
	}
	ds, err := s.db.WebhookDeliveriesOfEvent(t.Context(), out.DisabledEventID)
	if err != nil || len(ds) != 1 || ds[0].EndpointID != watcher.ID || ds[0].EventType != webhooks.EventEndpointDisabled {
		t.Fatalf("deliveries of the disabled event: %+v, %v", ds, err)
	}
	cs = claim(t, s, now.Add(80*time.Hour), 10, 4)
	if len(cs) != 1 || cs[0].Event.Endpoint == nil || cs[0].Event.Endpoint.ID != ep.ID {
		t.Fatalf("claim of the disabled event: %+v", cs)
	}
}

func TestRecordAttemptSuccessEndsStreak(t *testing.T) {
	s := newStore(t)
	m := s.merchant(t, "A", account(t, 1))
	ep := s.endpoint(t, m, "*")
	s.complete(t, m)
	cs := claim(t, s, s.now, 10, 4)
	_, err := s.db.RecordAttempt(t.Context(), persistence.AttemptResult{Delivery: cs[0], NextAttemptAt: s.now.Add(time.Hour),
		DisableAfter: time.Hour, Attempt: persistence.WebhookAttempt{AttemptedAt: s.now, Error: "timeout"}})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := s.db.GetWebhookEndpoint(t.Context(), m.ID, ep.ID); !e.FailingSince.Equal(s.now) {
		t.Fatalf("failing_since = %v", e.FailingSince)
	}
	_, err = s.db.RecordAttempt(t.Context(), persistence.AttemptResult{Delivery: cs[1],
		Attempt: persistence.WebhookAttempt{AttemptedAt: s.now.Add(30 * time.Minute), StatusCode: 204, Succeeded: true}})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := s.db.GetWebhookEndpoint(t.Context(), m.ID, ep.ID); !e.FailingSince.IsZero() || e.Status != persistence.EndpointEnabled {
		t.Fatalf("after a success: %+v", e)
	}
}

func TestWebhookEndpointCRUD(t *testing.T) {
	s := newStore(t)
	a := s.merchant(t, "A", account(t, 1))
	b := s.merchant(t, "B", account(t, 2))
	var made []persistence.WebhookEndpoint
	for i := range 5 {
		s.now = s.now.Add(time.Second)
		e := s.endpoint(t, a, "*")
		e.Description = ""
		made = append(made, e)
		_ = i
	}
	bs := s.endpoint(t, b, "*")

	got, err := s.db.GetWebhookEndpoint(t.Context(), a.ID, made[0].ID)
	if err != nil || got.Secret != made[0].Secret || got.URL != made[0].URL || !slices.Equal(got.EventTypes, []string{"*"}) {
		t.Fatalf("GetWebhookEndpoint: %+v, %v", got, err)
	}
	if _, err := s.db.GetWebhookEndpoint(t.Context(), a.ID, bs.ID); !errors.Is(err, checkout.ErrNotFound) {
		t.Fatalf("another merchant's endpoint: %v", err)
	}

	page1, more, err := s.db.ListWebhookEndpoints(t.Context(), persistence.ListParams{MerchantID: a.ID, Limit: 3})
	if err != nil || !more || len(page1) != 3 || page1[0].ID != made[4].ID {
		t.Fatalf("page 1: %d, %v, %v", len(page1), more, err)
	}
	page2, more, err := s.db.ListWebhookEndpoints(t.Context(), persistence.ListParams{MerchantID: a.ID, Limit: 3, StartingAfter: page1[2].ID})
	if err != nil || more || len(page2) != 2 || page2[1].ID != made[0].ID {
		t.Fatalf("page 2: %d, %v, %v", len(page2), more, err)
	}
	if _, _, err := s.db.ListWebhookEndpoints(t.Context(), persistence.ListParams{MerchantID: a.ID, Limit: 3, StartingAfter: bs.ID}); err == nil {
		t.Fatal("another merchant's endpoint worked as a cursor")
	}

	// Rotation keeps the old secret signing for the overlap.
	rotated, err := s.db.RotateWebhookSecret(t.Context(), a.ID, made[0].ID, webhooks.NewSecret(), s.now, 24*time.Hour)
	if err != nil || rotated.PreviousSecret != made[0].Secret || rotated.Secret == made[0].Secret {
		t.Fatalf("RotateWebhookSecret: %+v, %v", rotated, err)
	}
	if n := len(rotated.SigningSecrets(s.now.Add(23 * time.Hour))); n != 2 {
		t.Fatalf("%d secrets sign during the overlap", n)
	}
	if n := len(rotated.SigningSecrets(s.now.Add(24 * time.Hour))); n != 1 {
		t.Fatalf("%d secrets sign after the overlap", n)
	}
	if _, err := s.db.RotateWebhookSecret(t.Context(), b.ID, made[0].ID, webhooks.NewSecret(), s.now, time.Hour); !errors.Is(err, checkout.ErrNotFound) {
		t.Fatalf("rotating another merchant's endpoint: %v", err)
	}

	// Deleting takes the deliveries along.
	s.complete(t, a)
	if err := s.db.DeleteWebhookEndpoint(t.Context(), b.ID, made[0].ID); !errors.Is(err, checkout.ErrNotFound) {
		t.Fatalf("deleting another merchant's endpoint: %v", err)
	}
	if err := s.db.DeleteWebhookEndpoint(t.Context(), a.ID, made[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.GetWebhookEndpoint(t.Context(), a.ID, made[0].ID); !errors.Is(err, checkout.ErrNotFound) {
		t.Fatalf("deleted endpoint: %v", err)
	}
	var n int
	_ = s.raw.QueryRow(t.Context(), `SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1`, made[0].ID).Scan(&n)
	if n != 0 {
		t.Fatalf("%d deliveries outlived their endpoint", n)
	}
}

func TestRedeliverAndListDeliveries(t *testing.T) {
	s := newStore(t)
	a := s.merchant(t, "A", account(t, 1))
	b := s.merchant(t, "B", account(t, 2))
	all := s.endpoint(t, a, "*")
	onlyCanceled := s.endpoint(t, a, "checkout.session.canceled")
	bs := s.endpoint(t, b, "*")
	s.complete(t, a)
	evs := s.eventIDs(t)

	ds, err := s.db.RedeliverEvent(t.Context(), a.ID, evs[0], "", s.now)
	if err != nil || len(ds) != 1 || ds[0].EndpointID != all.ID || !ds[0].Redelivery || ds[0].EventID != evs[0] {
		t.Fatalf("redeliver to matching endpoints: %+v, %v", ds, err)
	}
	// Naming an endpoint sends there whatever its filter.
	ds, err = s.db.RedeliverEvent(t.Context(), a.ID, evs[0], onlyCanceled.ID, s.now)
	if err != nil || len(ds) != 1 || ds[0].EndpointID != onlyCanceled.ID {
		t.Fatalf("redeliver to a named endpoint: %+v, %v", ds, err)
	}
	for name, args := range map[string][2]string{
		"another merchant's endpoint": {evs[0], bs.ID},
		"no such event":               {"evt_nope", ""},
	} {
		if _, err := s.db.RedeliverEvent(t.Context(), a.ID, args[0], args[1], s.now); !errors.Is(err, checkout.ErrNotFound) {
			t.Errorf("%s: %v, want not found", name, err)
		}
	}
	if _, err := s.db.RedeliverEvent(t.Context(), b.ID, evs[0], "", s.now); !errors.Is(err, checkout.ErrNotFound) {
		t.Errorf("merchant B redelivering A's event: %v", err)
	}
	s.exec(t, `UPDATE webhook_endpoints SET status = 'disabled', disabled_at = now() WHERE id = $1`, onlyCanceled.ID)
	if _, err := s.db.RedeliverEvent(t.Context(), a.ID, evs[0], onlyCanceled.ID, s.now); !errors.Is(err, persistence.ErrEndpointDisabled) {
		t.Errorf("redeliver to a disabled endpoint: %v", err)
	}

	// all has three deliveries: two events and one redelivery.
	list, more, err := s.db.ListWebhookDeliveries(t.Context(), all.ID, persistence.ListParams{MerchantID: a.ID, Limit: 2})
	if err != nil || len(list) != 2 || !more {
		t.Fatalf("list deliveries: %d, %v, %v", len(list), more, err)
	}
	rest, more, err := s.db.ListWebhookDeliveries(t.Context(), all.ID, persistence.ListParams{MerchantID: a.ID, Limit: 2, StartingAfter: list[1].ID})
	if err != nil || len(rest) != 1 || more {
		t.Fatalf("list deliveries page 2: %d, %v, %v", len(rest), more, err)
	}
	cs := claim(t, s, s.now, 10, 10)
	for _, c := range cs {
		if c.Endpoint.ID == all.ID {
			_, _ = s.db.RecordAttempt(t.Context(), persistence.AttemptResult{Delivery: c,
				Attempt: persistence.WebhookAttempt{AttemptedAt: s.now, StatusCode: 200, Succeeded: true}})
			break
		}
	}
	for status, want := range map[string]int{"succeeded": 1, "pending": 2, "failed": 0, "": 3} {
		l, _, err := s.db.ListWebhookDeliveries(t.Context(), all.ID, persistence.ListParams{MerchantID: a.ID, Limit: 10, Filter: status})
		if err != nil || len(l) != want {
			t.Errorf("status %q: %d deliveries, %v; want %d", status, len(l), err, want)
		}
	}
	if _, _, err := s.db.ListWebhookDeliveries(t.Context(), all.ID, persistence.ListParams{MerchantID: b.ID, Limit: 10}); !errors.Is(err, checkout.ErrNotFound) {
		t.Fatalf("listing another merchant's deliveries: %v", err)
	}
}

func TestListenDeliveries(t *testing.T) {
	s := newStore(t)
	m := s.merchant(t, "A", account(t, 1))
	s.endpoint(t, m, "*")
	wakes := make(chan struct{}, 16)
	errc := make(chan error, 1)
	lctx, stop := context.WithCancel(t.Context())
	go func() {
		errc <- s.db.ListenDeliveries(lctx, func() { wakes <- struct{}{} })
	}()
	wait := func(what string) {
		t.Helper()
		select {
		case <-wakes:
		case <-time.After(10 * time.Second):
			t.Fatalf("no wake-up for %s", what)
		}
	}
	wait("listening")
	s.complete(t, m)
	wait("a committed event")
	stop()
	if err := <-errc; err != nil {
		t.Fatalf("ListenDeliveries after cancel: %v", err)
	}
}

func TestWebhookDeliveryIDs(t *testing.T) {
	s := newStore(t)
	m := s.merchant(t, "A", account(t, 1))
	s.endpoint(t, m, "*")
	s.endpoint(t, m, "*")
	s.complete(t, m)
	ds, err := s.db.WebhookDeliveriesOfEvent(t.Context(), s.eventIDs(t)[0])
	if err != nil || len(ds) != 2 {
		t.Fatalf("deliveries %v, %v", ds, err)
	}
	for _, d := range ds {
		if !checkout.HasPrefix(d.ID, webhooks.PrefixDelivery) {
			t.Errorf("delivery id %q is not shaped like NewID's", d.ID)
		}
	}
	if ds[0].ID == ds[1].ID {
		t.Fatal("two deliveries share an id")
	}
}

func TestRecordSuccessesInOneBatch(t *testing.T) {
	s := newStore(t)
	m := s.merchant(t, "A", account(t, 1))
	ep := s.endpoint(t, m, "*")
	s.exec(t, `UPDATE webhook_endpoints SET failing_since = $2 WHERE id = $1`, ep.ID, s.now)
	for range 3 {
		s.complete(t, m) // 6 deliveries
	}
	cs := claim(t, s, s.now, 10, 10)
	if len(cs) != 6 {
		t.Fatalf("claimed %d", len(cs))
	}
	stale := cs[5]
	stale.ClaimToken = "00000000-0000-0000-0000-000000000000"
	var rs []persistence.AttemptResult
	for _, c := range append(cs[:5], stale) {
		rs = append(rs, persistence.AttemptResult{Delivery: c, Attempt: persistence.WebhookAttempt{
			AttemptedAt: s.now, StatusCode: 202, Succeeded: true, Latency: 2 * time.Millisecond, ResponseBody: "ok"}})
	}
	outs, err := s.db.RecordSuccesses(t.Context(), rs)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range outs {
		if o.Stale != (i == 5) || o.Status != persistence.DeliverySucceeded {
			t.Errorf("outcome %d: %+v", i, o)
		}
	}
	if n := s.count(t, "webhook_attempts"); n != 6 {
		t.Fatalf("%d attempts recorded, want 6 (the stale one too)", n)
	}
	var succeeded int
	_ = s.raw.QueryRow(t.Context(), `SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'`).Scan(&succeeded)
	if succeeded != 5 {
		t.Fatalf("%d deliveries succeeded, want 5", succeeded)
	}
	if e, _ := s.db.GetWebhookEndpoint(t.Context(), m.ID, ep.ID); !e.FailingSince.IsZero() {
		t.Fatal("a success left the failing streak")
	}
	if _, err := s.db.RecordSuccesses(t.Context(), []persistence.AttemptResult{{Delivery: cs[0],
		Attempt: persistence.WebhookAttempt{AttemptedAt: s.now, StatusCode: 500}}}); err == nil {
		t.Fatal("a failure was recorded as a success")
	}
}

// TestRecordFailuresInOneTransaction: failures recorded together each get
// RecordAttempt's effects; one that Postgres refuses (a status code its
// CHECK rejects) gets its own error and leaves the others recorded; a
// stale claim is Stale; the ClaimedUntil of a claim is its lease's end.
func TestRecordFailuresInOneTransaction(t *testing.T) {
	s := newStore(t)
	m := s.merchant(t, "A", account(t, 1))
	ep := s.endpoint(t, m, "*")
	for range 2 {
		s.complete(t, m) // 4 deliveries
	}
	cs := claim(t, s, s.now, 10, 10)
	if len(cs) != 4 {
		t.Fatalf("claimed %d", len(cs))
	}
	for _, c := range cs {
		if !c.ClaimedUntil.Equal(s.now.Add(time.Minute)) {
			t.Fatalf("claimed until %s, want %s", c.ClaimedUntil, s.now.Add(time.Minute))
		}
	}
	stale := cs[3]
	stale.ClaimToken = "00000000-0000-0000-0000-000000000000"
	next := s.now.Add(5 * time.Second)
	var rs []persistence.AttemptResult
	for i, c := range append(cs[:3], stale) {
		code := 500
		if i == 1 {
			code = 42 // refused by webhook_attempts' CHECK
		}
		rs = append(rs, persistence.AttemptResult{Delivery: c, NextAttemptAt: next, DisableAfter: 72 * time.Hour,
			Attempt: persistence.WebhookAttempt{AttemptedAt: s.now, StatusCode: code, Error: "status 500"}})
	}
	rs[2].NextAttemptAt = time.Time{} // given up
	outs, errs, err := s.db.RecordFailures(t.Context(), rs)
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[2] != nil || errs[3] != nil || errs[1] == nil {
		t.Fatalf("errors %v, want only the second", errs)
	}
	want := []persistence.AttemptOutcome{{Status: persistence.DeliveryPending}, {},
		{Status: persistence.DeliveryFailed}, {Status: persistence.DeliveryPending, Stale: true}}
	for i, o := range outs {
		if o != want[i] {
			t.Errorf("outcome %d: %+v, want %+v", i, o, want[i])
		}
	}
	if n := s.count(t, "webhook_attempts"); n != 3 {
		t.Fatalf("%d attempts recorded, want 3 (not the refused one)", n)
	}
	statuses := map[string]string{}
	for _, c := range cs {
		var st string
		var attempts int
		if err := s.raw.QueryRow(t.Context(), `SELECT status, attempts FROM webhook_deliveries WHERE id = $1`,
			c.ID).Scan(&st, &attempts); err != nil {
			t.Fatal(err)
		}
		statuses[c.ID] = fmt.Sprintf("%s/%d", st, attempts)
	}
	for i, w := range []string{"pending/1", "pending/0", "failed/1", "pending/0"} {
		if statuses[cs[i].ID] != w {
			t.Errorf("delivery %d is %s, want %s", i, statuses[cs[i].ID], w)
		}
	}
	if e, _ := s.db.GetWebhookEndpoint(t.Context(), m.ID, ep.ID); !e.FailingSince.Equal(s.now) {
		t.Fatalf("failing since %s, want %s", e.FailingSince, s.now)
	}
	if _, _, err := s.db.RecordFailures(t.Context(), []persistence.AttemptResult{{Delivery: cs[0],
		Attempt: persistence.WebhookAttempt{AttemptedAt: s.now, StatusCode: 200, Succeeded: true}}}); err == nil {
		t.Fatal("a success was recorded as a failure")
	}
}

// sameIDs reports whether a and b claim the same deliveries, in any order.
func sameIDs(a, b []persistence.ClaimedDelivery) bool {
	ids := map[string]int{}
	for _, c := range a {
		ids[c.ID]++
	}
	for _, c := range b {
		ids[c.ID]--
	}
	for _, n := range ids {
		if n != 0 {
			return false
		}
	}
	return len(a) == len(b)
}

// TestWebhookQueueDeadRows: completing deliveries leaves dead rows in
// webhook_deliveries, and WebhookQueueDeadRows counts them until a vacuum
// clears them.
func TestWebhookQueueDeadRows(t *testing.T) {
	s := newStore(t)
	m := s.merchant(t, "A", account(t, 1))
	s.endpoint(t, m, "*")
	for range 3 {
		s.complete(t, m) // 6 deliveries
	}
	s.exec(t, `VACUUM webhook_deliveries`)
	// Postgres's table counters reach the shared statistics about a
	// second after a commit; the VACUUM's report resets the count.
	waitDead := func(want func(int64) bool) int64 {
		t.Helper()
		var n int64
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			var err error
			if n, err = s.db.WebhookQueueDeadRows(t.Context()); err != nil {
				t.Fatal(err)
			}
			if want(n) {
				return n
			}
		}
		t.Fatalf("dead rows stayed at %d", n)
		return n
	}
	waitDead(func(n int64) bool { return n == 0 })
	cs := claim(t, s, s.now, 10, 10)
	if len(cs) != 6 {
		t.Fatalf("claimed %d, want 6", len(cs))
	}
	var rs []persistence.AttemptResult
	for _, c := range cs {
		rs = append(rs, persistence.AttemptResult{Delivery: c, Attempt: persistence.WebhookAttempt{
			AttemptedAt: s.now, StatusCode: 200, Succeeded: true, ResponseBody: "ok"}})
	}
	if _, err := s.db.RecordSuccesses(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
	// Each delivery was updated twice (claimed, then completed).
	waitDead(func(n int64) bool { return n >= int64(len(cs)) })
	s.exec(t, `VACUUM webhook_deliveries`)
	waitDead(func(n int64) bool { return n == 0 })
}
