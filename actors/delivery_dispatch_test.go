package actors_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/webhooks"
)

// countingStore is the real store, counting the claim queries made.
type countingStore struct {
	*persistence.DB
	claims atomic.Int64
}

func (s *countingStore) ClaimDeliveries(ctx context.Context, p persistence.ClaimParams) ([]persistence.ClaimedDelivery, error) {
	s.claims.Add(1)
	return s.DB.ClaimDeliveries(ctx, p)
}

// TestBacklogHeldBackByLimitsDrainsWithoutPolling: deliveries a claim left
// behind because a limit was reached (the endpoint's, the engine's
// in-flight room, the claim batch) are claimed as attempts finish, not at
// the next poll, which here is an hour away.
func TestBacklogHeldBackByLimitsDrainsWithoutPolling(t *testing.T) {
	for _, tc := range []struct {
		name      string
		endpoints int
		events    int
		cfg       actors.DeliveryConfig
	}{
		{"endpoint limit", 1, 30, actors.DeliveryConfig{PerEndpoint: 2}},
		{"in-flight limit", 6, 10, actors.DeliveryConfig{MaxInFlight: 3}},
		{"claim batch", 6, 10, actors.DeliveryConfig{ClaimBatch: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newHookEnv(t)
			rv := newRecv(t, nil)
			for i := range tc.endpoints {
				e.endpoint(fmt.Sprintf("%s/ep%d", rv.URL, i))
			}
			// Due before the engine starts: its first claim (when LISTEN is
			// up) is the only wake-up it gets from outside.
			for range tc.events {
				e.event(time.Now())
			}
			cfg := tc.cfg
			cfg.PollInterval = time.Hour
			e.engine(cfg)
			want := tc.endpoints * tc.events
			eventually(t, 30*time.Second, "the whole backlog", func() bool {
				return e.count(`SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'`) == want
			})
			if got := rv.count(); got != want {
				t.Fatalf("receiver got %d requests, want %d", got, want)
			}
		})
	}
}

// TestIdleEngineClaimsOnlyWhenWoken: with nothing held back, a finished
// attempt does not query for more; each event costs the one claim its
// notification asks for.
func TestIdleEngineClaimsOnlyWhenWoken(t *testing.T) {
	e := newHookEnv(t)
	rv := newRecv(t, nil)
	e.endpoint(rv.URL)
	store := &countingStore{DB: e.db}
	eng := e.engine(actors.DeliveryConfig{Store: store, PollInterval: time.Hour})
	eventually(t, 10*time.Second, "the claim when LISTEN is up", func() bool { return store.claims.Load() >= 1 })
	const events = 10
	for i := range events {
		e.event(time.Now())
		eventually(t, 10*time.Second, fmt.Sprintf("delivery %d", i+1), func() bool {
			return eng.Stats().Succeeded.Load() == int64(i+1)
		})
	}
	time.Sleep(200 * time.Millisecond) // a claim after the last attempt would be done by now
	if rv.count() != events {
		t.Fatalf("receiver got %d requests, want %d", rv.count(), events)
	}
	// One at start, one per notification.
	if n := store.claims.Load(); n > events+1 {
		t.Fatalf("%d claim queries for %d events one after another, want at most %d", n, events, events+1)
	}
}

// TestDeliveryFailsAfterRetryHorizon walks a delivery through the default
// schedule on the injected clock (jitter off): a receiver that always
// answers 503 gets 12 attempts, 5 s, 5 min, 30 min, 2 h, 5 h and then 10 h
// apart, and the delivery is failed after the 12th, since a 13th would fall
// past 72 h. Each attempt keeps 1 KB of the response body. The endpoint,
// failing for under 72 h, stays enabled.
func TestDeliveryFailsAfterRetryHorizon(t *testing.T) {
	e := newHookEnv(t)
	big := strings.Repeat("x", 4096)
	rv := newRecv(t, func(_ int, w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(big))
	})
	ep := e.endpoint(rv.URL)
	t0 := time.Now().UTC().Truncate(time.Second)
	clk := newClock(t0)
	eng := e.engine(actors.DeliveryConfig{Clock: clk.Now, PollInterval: time.Hour, Backoff: webhooks.Backoff{Jitter: -1}})
	id := e.event(t0)

	schedule := webhooks.DefaultSchedule()
	at := t0
	var d persistence.WebhookDelivery
	for n := 1; n <= 12; n++ {
		clk.Set(at)
		eng.Wake()
		eventually(t, 10*time.Second, fmt.Sprintf("attempt %d", n), func() bool { return eng.Stats().Attempts.Load() == int64(n) })
		d = e.deliveries(id)[0]
		if d.Attempts != n {
			t.Fatalf("after attempt %d: %+v", n, d)
		}
		if n == 12 {
			break
		}
		wait := schedule[min(n, len(schedule))-1]
		if d.Status != persistence.DeliveryPending || !d.NextAttemptAt.Equal(at.Add(wait)) {
			t.Fatalf("after attempt %d: %s, next at +%s, want pending and +%s", n, d.Status, d.NextAttemptAt.Sub(at), wait)
		}
		// Just before it is due, nothing is sent.
		clk.Set(d.NextAttemptAt.Add(-time.Second))
		eng.Wake()
		time.Sleep(20 * time.Millisecond)
		if rv.count() != n {
			t.Fatalf("attempt %d was sent before it was due", n+1)
		}
		at = d.NextAttemptAt
	}
	if got := at.Sub(t0); got != 67*time.Hour+35*time.Minute+5*time.Second {
		t.Fatalf("12th attempt at +%s", got)
	}
	if d.Status != persistence.DeliveryFailed || !d.CompletedAt.Equal(at) || eng.Stats().Failed.Load() != 1 {
		t.Fatalf("after the 12th attempt: %+v, want failed at +%s", d, at.Sub(t0))
	}
	if rv.count() != 12 {
		t.Fatalf("receiver got %d requests, want 12", rv.count())
	}
	as := e.attempts(d.ID)
	if len(as) != 12 {
		t.Fatalf("%d attempts recorded", len(as))
	}
	for i, a := range as {
		if a.StatusCode != http.StatusServiceUnavailable || len(a.ResponseBody) != persistence.MaxResponseBody || !strings.Contains(a.Error, "503") {
			t.Fatalf("attempt %d: status %d, %d bytes of body, error %q", i+1, a.StatusCode, len(a.ResponseBody), a.Error)
		}
	}
	// Nothing more is sent, however late.
	clk.Set(t0.Add(100 * time.Hour))
	eng.Wake()
	time.Sleep(100 * time.Millisecond)
	if rv.count() != 12 {
		t.Fatal("a failed delivery was sent again")
	}
	got, err := e.db.GetWebhookEndpoint(context.Background(), e.merchant.ID, ep.ID)
	if err != nil || got.Status != persistence.EndpointEnabled {
		t.Fatalf("endpoint %+v, %v: failing for under 72 h, it stays enabled", got, err)
	}
}

// TestDeliveryReusesConnections: deliveries to one endpoint, one after
// another, travel on one kept-alive connection.
func TestDeliveryReusesConnections(t *testing.T) {
	e := newHookEnv(t)
	var (
		mu    sync.Mutex
		conns = map[string]int{}
	)
	rv := newRecv(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conns[r.RemoteAddr]++
		mu.Unlock()
	})
	e.endpoint(rv.URL)
	eng := e.engine(actors.DeliveryConfig{PollInterval: time.Hour})
	const events = 10
	for i := range events {
		e.event(time.Now())
		eventually(t, 10*time.Second, fmt.Sprintf("delivery %d", i+1), func() bool {
			return eng.Stats().Succeeded.Load() == int64(i+1)
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) > 2 {
		t.Fatalf("%d deliveries came on %d connections: %v", events, len(conns), conns)
	}
}

// deafStore is the real store whose notifications never arrive: LISTEN
// fails every time.
type deafStore struct {
	*persistence.DB
	listens atomic.Int64
}

func (s *deafStore) ListenDeliveries(context.Context, func()) error {
	s.listens.Add(1)
	return errors.New("listen: connection refused")
}

// TestPollingCoversLostNotifications: with LISTEN failing, the poll alone
// delivers.
func TestPollingCoversLostNotifications(t *testing.T) {
	e := newHookEnv(t)
	rv := newRecv(t, nil)
	e.endpoint(rv.URL)
	store := &deafStore{DB: e.db}
	e.engine(actors.DeliveryConfig{Store: store, PollInterval: 200 * time.Millisecond})
	for range 3 {
		e.event(time.Now())
	}
	eventually(t, 10*time.Second, "every delivery, by polling", func() bool { return rv.count() == 3 })
	if store.listens.Load() == 0 {
		t.Fatal("the engine never tried to listen")
	}
}

// TestDeleteEndpointWithAttemptInFlight: the attempt finishes, its result
// is dropped, and nothing of the endpoint is left.
func TestDeleteEndpointWithAttemptInFlight(t *testing.T) {
	e := newHookEnv(t)
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	rv := newRecv(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	ep := e.endpoint(rv.URL)
	eng := e.engine(actors.DeliveryConfig{PollInterval: time.Hour})
	e.event(time.Now())
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no attempt")
	}
	if err := e.db.DeleteWebhookEndpoint(context.Background(), e.merchant.ID, ep.ID); err != nil {
		t.Fatal(err)
	}
	close(release)
	eventually(t, 10*time.Second, "the attempt's result to be dropped", func() bool { return eng.Stats().Stale.Load() == 1 })
	if n := e.count(`SELECT (SELECT count(*) FROM webhook_deliveries) + (SELECT count(*) FROM webhook_attempts)`); n != 0 {
		t.Fatalf("%d delivery and attempt rows left after the endpoint was deleted", n)
	}
}

// TestQueuedClaimTooNearItsLeaseEndIsNotSent: a claim that waited in its
// worker's queue until its lease could end during the attempt is left to
// lapse, and sent once, after the lease, when it is claimed again; sending
// it then could overlap another engine's attempt of it.
func TestQueuedClaimTooNearItsLeaseEndIsNotSent(t *testing.T) {
	e := newHookEnv(t)
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	rv := newRecv(t, func(n int, _ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived[r.Header.Get("webhook-id")] = time.Now()
		mu.Unlock()
		if n == 1 {
			time.Sleep(1200 * time.Millisecond)
		}
	})
	e.endpoint(rv.URL)
	for range 2 {
		e.event(time.Now())
	}
	// One request at a time: both are claimed at once, the second queued
	// behind the first, which takes 1.2 s; by then 2 s of attempt would
	// outlast the 2.5 s lease.
	eng := e.engine(actors.DeliveryConfig{PerEndpoint: 1, AttemptTimeout: 2 * time.Second, Lease: 2500 * time.Millisecond})
	eventually(t, 20*time.Second, "both deliveries", func() bool {
		return e.count(`SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'`) == 2
	})
	if got := rv.count(); got != 2 {
		t.Fatalf("receiver got %d requests, want 2", got)
	}
	if eng.Stats().Stale.Load() < 1 {
		t.Fatal("no claim was left to lapse")
	}
	mu.Lock()
	defer mu.Unlock()
	var at []time.Time
	for _, a := range arrived {
		at = append(at, a)
	}
	if len(at) != 2 {
		t.Fatalf("%d webhook-ids arrived, want 2", len(at))
	}
	if gap := at[1].Sub(at[0]).Abs(); gap < 2*time.Second {
		t.Fatalf("the queued delivery arrived %s after the first, inside its first lease", gap)
	}
}
