package actors_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stellar/go-stellar-sdk/keypair"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/persistence/pgtest"
	"github.com/checkoutd/checkoutd/webhooks"
)

// hookEnv is one test's database and merchant, for the delivery engine.
type hookEnv struct {
	t        *testing.T
	db       *persistence.DB
	sql      *pgxpool.Pool
	merchant checkout.Merchant
	ops      atomic.Int64
}

func newHookEnv(t *testing.T) *hookEnv {
	t.Helper()
	dsn := pgtest.New(t)
	db, err := persistence.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	m, err := checkout.NewMerchant("Hook shop", keypair.MustRandom().Address(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateMerchant(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	return &hookEnv{t: t, db: db, sql: pool, merchant: m}
}

// event commits an event (an unmatched payment) created at at, and returns
// its id.
func (e *hookEnv) event(at time.Time) string {
	e.t.Helper()
	op := e.ops.Add(1)
	p, events := checkout.Unmatched(checkout.Payment{
		OperationID: strconv.FormatInt(7<<32+op, 10), TransactionHash: fmt.Sprintf("%064x", op),
		OperationType: "payment", From: keypair.MustRandom().Address(), To: e.merchant.Account,
		Amount: 1, Asset: checkout.NativeAsset, LedgerClosedAt: at.UTC().Truncate(time.Second),
	}, []string{e.merchant.ID}, at.UTC().Truncate(time.Microsecond))
	if err := e.db.RecordUnmatched(context.Background(), p, events); err != nil {
		e.t.Fatal(err)
	}
	return events[0].ID
}

func (e *hookEnv) endpoint(url string) persistence.WebhookEndpoint {
	e.t.Helper()
	ep := persistence.WebhookEndpoint{ID: checkout.NewID(webhooks.PrefixEndpoint), MerchantID: e.merchant.ID,
		URL: url, EventTypes: []string{"*"}, Secret: webhooks.NewSecret(), CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := e.db.CreateWebhookEndpoint(context.Background(), ep); err != nil {
		e.t.Fatal(err)
	}
	return ep
}

func (e *hookEnv) deliveries(eventID string) []persistence.WebhookDelivery {
	e.t.Helper()
	ds, err := e.db.WebhookDeliveriesOfEvent(context.Background(), eventID)
	if err != nil {
		e.t.Fatal(err)
	}
	return ds
}

func (e *hookEnv) attempts(deliveryID string) []persistence.WebhookAttempt {
	e.t.Helper()
	as, err := e.db.WebhookAttempts(context.Background(), deliveryID)
	if err != nil {
		e.t.Fatal(err)
	}
	return as
}

// testRender is the tests' stand-in for the API presenter.
func testRender(ev persistence.OutboxEvent) (any, error) {
	return map[string]string{"payment_id": ev.PaymentID}, nil
}

// loopbackPolicy lets tests reach receivers on 127.0.0.1 over http.
func loopbackPolicy(t *testing.T) webhooks.Policy {
	p, err := webhooks.Policy{AllowInsecure: true}.ParseAllowlist([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(at time.Time) *clock { return &clock{now: at.UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (e *hookEnv) engine(cfg actors.DeliveryConfig) *actors.DeliveryEngine {
	e.t.Helper()
	if cfg.Store == nil {
		cfg.Store = e.db
	}
	if cfg.Render == nil {
		cfg.Render = testRender
	}
	if cfg.Client == nil {
		cfg.Client = webhooks.NewClient(webhooks.ClientConfig{Policy: loopbackPolicy(e.t)})
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.Logger == nil && testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	eng, err := actors.StartDeliveryEngine(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = eng.Stop(ctx)
	})
	return eng
}

// hit is one request a receiver got.
type hit struct {
	header http.Header
	body   []byte
}

// recv is a real HTTP receiver on 127.0.0.1 that records what it gets and
// answers with respond (200 when nil).
type recv struct {
	*httptest.Server
	mu      sync.Mutex
	hits    []hit
	respond func(n int, w http.ResponseWriter, r *http.Request)
}

func newRecv(t *testing.T, respond func(n int, w http.ResponseWriter, r *http.Request)) *recv {
	rv := &recv{respond: respond}
	rv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rv.mu.Lock()
		rv.hits = append(rv.hits, hit{header: r.Header.Clone(), body: body})
		n := len(rv.hits)
		rv.mu.Unlock()
		if rv.respond != nil {
			rv.respond(n, w, r)
		}
	}))
	t.Cleanup(rv.Close)
	return rv
}

func (rv *recv) all() []hit {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return append([]hit(nil), rv.hits...)
}

func (rv *recv) count() int { return len(rv.all()) }

func TestDeliverySignedAndVerifiedByReferenceLibrary(t *testing.T) {
	e := newHookEnv(t)
	rv := newRecv(t, nil)
	ep := e.endpoint(rv.URL + "/hooks")
	e.engine(actors.DeliveryConfig{})
	id := e.event(time.Now())

	eventually(t, 10*time.Second, "a delivery", func() bool { return rv.count() == 1 })
	h := rv.all()[0]
	if got := h.header.Get("webhook-id"); got != id {
		t.Fatalf("webhook-id = %q, want the event id %q", got, id)
	}
	wh, err := standardwebhooks.NewWebhook(ep.Secret.Reveal())
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(h.body, h.header); err != nil {
		t.Fatalf("the reference library refused our webhook: %v", err)
	}
	tampered := []byte(strings.Replace(string(h.body), `"payment.unmatched"`, `"payment.received"`, 1))
	if err := wh.Verify(tampered, h.header); err == nil {
		t.Fatal("a tampered body verified")
	}
	if !strings.HasPrefix(string(h.body), `{"type":"payment.unmatched","timestamp":"`) || !strings.Contains(string(h.body), `"data":{"payment_id":"pay_`) {
		t.Fatalf("body %s", h.body)
	}
	eventually(t, 5*time.Second, "the delivery to be recorded", func() bool {
		ds := e.deliveries(id)
		return len(ds) == 1 && ds[0].Status == persistence.DeliverySucceeded
	})
	as := e.attempts(e.deliveries(id)[0].ID)
	if len(as) != 1 || as[0].StatusCode != 200 || !as[0].Succeeded {
		t.Fatalf("attempts %+v", as)
	}
}

// TestDeliveryRetriesWithBackoff: 500, 500, then 200 gives three attempts,
// spaced by the schedule on the injected clock, and a succeeded delivery.
func TestDeliveryRetriesWithBackoff(t *testing.T) {
	e := newHookEnv(t)
	rv := newRecv(t, func(n int, w http.ResponseWriter, _ *http.Request) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "try later")
		}
	})
	ep := e.endpoint(rv.URL)
	t0 := time.Now().UTC().Truncate(time.Second)
	clk := newClock(t0)
	eng := e.engine(actors.DeliveryConfig{Clock: clk.Now, PollInterval: time.Hour})
	id := e.event(t0)

	step := func(at time.Time, wantHits int) persistence.WebhookDelivery {
		t.Helper()
		clk.Set(at)
		eng.Wake()
		eventually(t, 10*time.Second, fmt.Sprintf("attempt %d", wantHits), func() bool {
			return int(eng.Stats().Attempts.Load()) == wantHits
		})
		if got := rv.count(); got != wantHits {
			t.Fatalf("receiver got %d requests, want %d", got, wantHits)
		}
		return e.deliveries(id)[0]
	}
	d := step(t0, 1)
	if d.Status != persistence.DeliveryPending || d.Attempts != 1 {
		t.Fatalf("after a 500: %+v", d)
	}
	if wait := d.NextAttemptAt.Sub(t0); wait < 4500*time.Millisecond || wait > 5500*time.Millisecond {
		t.Fatalf("second attempt due %s after the first, want 5 s ±10%%", wait)
	}
	// Not due yet: nothing is sent.
	clk.Set(t0.Add(4 * time.Second))
	eng.Wake()
	time.Sleep(100 * time.Millisecond)
	if rv.count() != 1 {
		t.Fatal("retried before the backoff")
	}
	t1 := t0.Add(6 * time.Second)
	d = step(t1, 2)
	if wait := d.NextAttemptAt.Sub(t1); wait < 270*time.Second || wait > 330*time.Second {
		t.Fatalf("third attempt due %s after the second, want 5 min ±10%%", wait)
	}
	t2 := t1.Add(6 * time.Minute)
	d = step(t2, 3)
	if d.Status != persistence.DeliverySucceeded || d.Attempts != 3 || !d.FirstAttemptAt.Equal(t0) {
		t.Fatalf("after the 200: %+v", d)
	}

	hits := rv.all()
	wh, _ := standardwebhooks.NewWebhook(ep.Secret.Reveal())
	for i, h := range hits {
		if h.header.Get("webhook-id") != id || string(h.body) != string(hits[0].body) {
			t.Errorf("attempt %d: webhook-id %q, body changed: %v", i+1, h.header.Get("webhook-id"), string(h.body) != string(hits[0].body))
		}
		want := strconv.FormatInt([]time.Time{t0, t1, t2}[i].Unix(), 10)
		if got := h.header.Get("webhook-timestamp"); got != want {
			t.Errorf("attempt %d: webhook-timestamp %s, want the attempt's time %s", i+1, got, want)
		}
		if err := wh.VerifyIgnoringTimestamp(h.body, h.header); err != nil {
			t.Errorf("attempt %d does not verify: %v", i+1, err)
		}
	}
	as := e.attempts(d.ID)
	if len(as) != 3 || as[0].StatusCode != 500 || as[0].ResponseBody != "try later" || !strings.Contains(as[0].Error, "500") ||
		as[2].StatusCode != 200 || !as[2].Succeeded {
		t.Fatalf("attempts %+v", as)
	}
}

// TestDeliveryTimeout: a receiver that hangs past the timeout has its
// attempt recorded as a timeout.
func TestDeliveryTimeout(t *testing.T) {
	e := newHookEnv(t)
	release := make(chan struct{})
	rv := newRecv(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) })
	e.endpoint(rv.URL)
	eng := e.engine(actors.DeliveryConfig{AttemptTimeout: 200 * time.Millisecond, PollInterval: time.Hour})
	id := e.event(time.Now())
	eng.Wake()
	eventually(t, 10*time.Second, "the attempt", func() bool { return eng.Stats().Attempts.Load() == 1 })
	d := e.deliveries(id)[0]
	as := e.attempts(d.ID)
	if len(as) != 1 || as[0].StatusCode != 0 || !strings.HasPrefix(as[0].Error, "timeout") || as[0].Latency < 200*time.Millisecond {
		t.Fatalf("attempts %+v, want one timeout", as)
	}
	if d.Status != persistence.DeliveryPending || d.LastError != as[0].Error {
		t.Fatalf("delivery %+v", d)
	}
}

// TestDeliveryAfterCrash: claims of a process that died are delivered by
// another after their lease, with the same webhook-id, and no more than
// at-least-once requires.
func TestDeliveryAfterCrash(t *testing.T) {
	t.Run("died after claiming", func(t *testing.T) {
		e := newHookEnv(t)
		rv := newRecv(t, nil)
		e.endpoint(rv.URL)
		t0 := time.Now().UTC().Truncate(time.Second)
		id := e.event(t0)
		// The dead process: it claimed and never sent.
		cs, err := e.db.ClaimDeliveries(context.Background(), persistence.ClaimParams{Now: t0, Lease: time.Minute, Limit: 10, PerEndpoint: 4})
		if err != nil || len(cs) != 1 {
			t.Fatalf("claim: %v, %v", cs, err)
		}
		clk := newClock(t0.Add(30 * time.Second))
		eng := e.engine(actors.DeliveryConfig{Clock: clk.Now, Lease: time.Minute, AttemptTimeout: 5 * time.Second, PollInterval: time.Hour})
		eng.Wake()
		time.Sleep(200 * time.Millisecond)
		if rv.count() != 0 {
			t.Fatal("a live claim was taken over")
		}
		clk.Set(t0.Add(61 * time.Second))
		eng.Wake()
		eventually(t, 10*time.Second, "the delivery", func() bool {
			return e.deliveries(id)[0].Status == persistence.DeliverySucceeded
		})
		if hits := rv.all(); len(hits) != 1 || hits[0].header.Get("webhook-id") != id {
			t.Fatalf("%d hits, want exactly one", len(hits))
		}
	})
	t.Run("died after sending", func(t *testing.T) {
		e := newHookEnv(t)
		rv := newRecv(t, nil)
		e.endpoint(rv.URL)
		t0 := time.Now().UTC().Truncate(time.Second)
		clk := newClock(t0)
		dead := e.engine(actors.DeliveryConfig{Clock: clk.Now, PollInterval: time.Hour,
			Hooks: actors.DeliveryHooks{AfterSend: func(persistence.ClaimedDelivery) bool { return false }}})
		id := e.event(t0)
		dead.Wake()
		eventually(t, 10*time.Second, "the first send", func() bool { return rv.count() == 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = dead.Stop(ctx)
		cancel()

		clk.Set(t0.Add(2 * time.Minute)) // past the default lease of 70 s
		eng := e.engine(actors.DeliveryConfig{Clock: clk.Now, PollInterval: time.Hour})
		eng.Wake()
		eventually(t, 10*time.Second, "the redelivery", func() bool {
			return e.deliveries(id)[0].Status == persistence.DeliverySucceeded
		})
		hits := rv.all()
		if len(hits) != 2 || hits[0].header.Get("webhook-id") != id || hits[1].header.Get("webhook-id") != id {
			t.Fatalf("%d hits, want the lost one and its repeat, both with webhook-id %s", len(hits), id)
		}
	})
}

// TestTwoEnginesNeverSendOneAttemptTwice runs two engines on one database
// and counts, per webhook-id, the requests and how many were in flight at
// once.
func TestTwoEnginesNeverSendOneAttemptTwice(t *testing.T) {
	e := newHookEnv(t)
	var (
		mu       sync.Mutex
		inFlight = map[string]int{}
		total    = map[string]int{}
		overlaps atomic.Int64
	)
	rv := newRecv(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		key := r.URL.Path + " " + r.Header.Get("webhook-id")
		mu.Lock()
		inFlight[key]++
		total[key]++
		if inFlight[key] > 1 {
			overlaps.Add(1)
		}
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		inFlight[key]--
		mu.Unlock()
	})
	const endpoints, events = 4, 150
	for i := range endpoints {
		e.endpoint(fmt.Sprintf("%s/ep%d", rv.URL, i))
	}
	a := e.engine(actors.DeliveryConfig{ClaimBatch: 8})
	b := e.engine(actors.DeliveryConfig{ClaimBatch: 8})
	for range events {
		e.event(time.Now())
	}
	eventually(t, 60*time.Second, "every delivery", func() bool {
		return e.count(`SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'`) == endpoints*events
	})
	mu.Lock()
	defer mu.Unlock()
	if len(total) != endpoints*events {
		t.Fatalf("%d distinct deliveries received, want %d", len(total), endpoints*events)
	}
	for k, n := range total {
		if n != 1 {
			t.Errorf("%s received %d times", k, n)
		}
	}
	if overlaps.Load() != 0 {
		t.Fatalf("%d requests overlapped another with the same webhook-id", overlaps.Load())
	}
	ca, cb := a.Stats().Claimed.Load(), b.Stats().Claimed.Load()
	t.Logf("engine a claimed %d, engine b %d", ca, cb)
	if ca+cb != endpoints*events {
		t.Fatalf("claimed %d in all, want %d", ca+cb, endpoints*events)
	}
}

func (e *hookEnv) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.sql.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// TestSlowEndpointDoesNotStarveOthers: one endpoint takes a second per
// request; another's deliveries flow meanwhile, and the slow one never has
// more than PerEndpoint requests in flight.
func TestSlowEndpointDoesNotStarveOthers(t *testing.T) {
	e := newHookEnv(t)
	var cur, peak atomic.Int64
	slow := newRecv(t, func(_ int, _ http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		select {
		case <-time.After(time.Second):
		case <-r.Context().Done():
		}
		cur.Add(-1)
	})
	fast := newRecv(t, nil)
	e.endpoint(slow.URL)
	e.endpoint(fast.URL)
	e.engine(actors.DeliveryConfig{PerEndpoint: 4, MaxInFlight: 16})
	const events = 40
	start := time.Now()
	for range events {
		e.event(time.Now())
	}
	eventually(t, 20*time.Second, "every fast delivery", func() bool { return fast.count() == events })
	took := time.Since(start)
	if slowDone := slow.count(); slowDone > events/2 {
		t.Fatalf("the slow endpoint got %d of %d before the fast one finished", slowDone, events)
	}
	t.Logf("fast endpoint got all %d in %s while the slow one had %d", events, took, slow.count())
	if took > 5*time.Second {
		t.Fatalf("the fast endpoint took %s", took)
	}
	if p := peak.Load(); p > 4 {
		t.Fatalf("the slow endpoint had %d requests in flight, limit 4", p)
	}
}

// TestDeliveryRefusesInternalAddresses: whatever URL is stored (validation
// can be bypassed by DNS), the dialer refuses internal addresses, and a
// redirect is a failure, not followed.
func TestDeliveryRefusesInternalAddresses(t *testing.T) {
	t.Run("connect-time check", func(t *testing.T) {
		e := newHookEnv(t)
		rv := newRecv(t, nil)
		port := rv.Listener.Addr().(*net.TCPAddr).Port
		urls := []string{
			fmt.Sprintf("http://localhost:%d/", port), // a name resolving to loopback
			fmt.Sprintf("http://[::1]:%d/", port),
			fmt.Sprintf("http://0.0.0.0:%d/", port),
			fmt.Sprintf("http://127.0.0.1:%d/", port),
			"http://10.0.0.1/",
			"http://169.254.169.254/latest/meta-data/",
		}
		for _, u := range urls {
			e.endpoint(u)
		}
		// No allowlist: the production policy with http allowed.
		client := webhooks.NewClient(webhooks.ClientConfig{Policy: webhooks.Policy{AllowInsecure: true}})
		eng := e.engine(actors.DeliveryConfig{Client: client})
		id := e.event(time.Now())
		eventually(t, 10*time.Second, "every attempt", func() bool { return eng.Stats().Attempts.Load() >= int64(len(urls)) })
		if rv.count() != 0 {
			t.Fatalf("an internal receiver was reached %d times", rv.count())
		}
		for _, d := range e.deliveries(id) {
			if d.Status != persistence.DeliveryPending || !strings.Contains(d.LastError, "internal address") {
				t.Errorf("delivery to %s: %+v", d.EndpointID, d)
			}
		}
	})
	t.Run("redirect", func(t *testing.T) {
		e := newHookEnv(t)
		inside := newRecv(t, nil)
		outside := newRecv(t, func(_ int, w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, inside.URL+"/admin", http.StatusFound)
		})
		e.endpoint(outside.URL)
		eng := e.engine(actors.DeliveryConfig{})
		id := e.event(time.Now())
		eventually(t, 10*time.Second, "the attempt", func() bool { return eng.Stats().Attempts.Load() >= 1 })
		d := e.deliveries(id)[0]
		if d.Status != persistence.DeliveryPending || d.LastStatusCode != http.StatusFound || inside.count() != 0 {
			t.Fatalf("delivery %+v, inside hits %d", d, inside.count())
		}
	})
}

// TestRedeliveryKeepsWebhookID: a redelivery sends the event again at once
// with the same webhook-id.
func TestRedeliveryKeepsWebhookID(t *testing.T) {
	e := newHookEnv(t)
	rv := newRecv(t, nil)
	ep := e.endpoint(rv.URL)
	e.engine(actors.DeliveryConfig{PollInterval: time.Hour})
	id := e.event(time.Now())
	eventually(t, 10*time.Second, "the first delivery", func() bool { return rv.count() == 1 })
	ds, err := e.db.RedeliverEvent(context.Background(), e.merchant.ID, id, ep.ID, time.Now())
	if err != nil || len(ds) != 1 {
		t.Fatalf("RedeliverEvent: %v, %v", ds, err)
	}
	// Woken by the notification alone (the poll is an hour away).
	eventually(t, 10*time.Second, "the redelivery", func() bool { return rv.count() == 2 })
	hits := rv.all()
	if hits[0].header.Get("webhook-id") != id || hits[1].header.Get("webhook-id") != id || string(hits[0].body) != string(hits[1].body) {
		t.Fatal("the redelivery differs from the delivery")
	}
}

// TestRotationSignsWithBothSecretsFor24Hours, on the injected clock.
func TestRotationSignsWithBothSecretsFor24Hours(t *testing.T) {
	e := newHookEnv(t)
	rv := newRecv(t, nil)
	ep := e.endpoint(rv.URL)
	t0 := time.Now().UTC().Truncate(time.Second)
	rotated, err := e.db.RotateWebhookSecret(context.Background(), e.merchant.ID, ep.ID, webhooks.NewSecret(), t0, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clk := newClock(t0)
	eng := e.engine(actors.DeliveryConfig{Clock: clk.Now, PollInterval: time.Hour})
	oldWH, _ := standardwebhooks.NewWebhook(ep.Secret.Reveal())
	newWH, _ := standardwebhooks.NewWebhook(rotated.Secret.Reveal())

	for _, tc := range []struct {
		at    time.Duration
		sigs  int
		oldOK bool
	}{{time.Hour, 2, true}, {23*time.Hour + 59*time.Minute, 2, true}, {24 * time.Hour, 1, false}, {25 * time.Hour, 1, false}} {
		clk.Set(t0.Add(tc.at))
		before := rv.count()
		e.event(clk.Now())
		eng.Wake()
		eventually(t, 10*time.Second, "a delivery", func() bool { return rv.count() == before+1 })
		// The receiver sees an attempt before the engine records it. Move
		// the clock on only after that, or the jump ends the attempt's
		// lease and its delivery is claimed, and sent, again.
		eventually(t, 10*time.Second, "the attempt recorded", func() bool { return eng.Stats().Succeeded.Load() == int64(before+1) })
		h := rv.all()[before]
		if n := len(strings.Fields(h.header.Get("webhook-signature"))); n != tc.sigs {
			t.Errorf("at +%s: %d signatures, want %d", tc.at, n, tc.sigs)
		}
		if err := newWH.VerifyIgnoringTimestamp(h.body, h.header); err != nil {
			t.Errorf("at +%s: the new secret does not verify: %v", tc.at, err)
		}
		if err := oldWH.VerifyIgnoringTimestamp(h.body, h.header); (err == nil) != tc.oldOK {
			t.Errorf("at +%s: the old secret verifies: %v, want %v", tc.at, err == nil, tc.oldOK)
		}
	}
}

// TestEndpointDisabledAfterThreeDaysOfFailures, on the injected clock: an
// endpoint whose every attempt fails for 72 h is disabled, and
// webhook_endpoint.disabled is recorded for its merchant.
func TestEndpointDisabledAfterThreeDaysOfFailures(t *testing.T) {
	e := newHookEnv(t)
	rv := newRecv(t, func(_ int, w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	ep := e.endpoint(rv.URL)
	t0 := time.Now().UTC().Truncate(time.Second)
	clk := newClock(t0)
	eng := e.engine(actors.DeliveryConfig{Clock: clk.Now, PollInterval: time.Hour})
	first := e.event(t0)
	eng.Wake()
	eventually(t, 10*time.Second, "the first attempt", func() bool { return eng.Stats().Attempts.Load() == 1 })

	at := t0.Add(72 * time.Hour)
	clk.Set(at)
	second := e.event(at)
	eng.Wake()
	eventually(t, 10*time.Second, "the endpoint to be disabled", func() bool { return eng.Stats().Disabled.Load() == 1 })
	got, err := e.db.GetWebhookEndpoint(context.Background(), e.merchant.ID, ep.ID)
	if err != nil || got.Status != persistence.EndpointDisabled || !got.DisabledAt.Equal(at) {
		t.Fatalf("endpoint %+v, %v", got, err)
	}
	for _, id := range []string{first, second} {
		if d := e.deliveries(id)[0]; d.Status != persistence.DeliveryFailed {
			t.Errorf("delivery of %s: %s, want failed", id, d.Status)
		}
	}
	if n := e.count(`SELECT count(*) FROM events WHERE type = 'webhook_endpoint.disabled' AND merchant_id = $1`, e.merchant.ID); n != 1 {
		t.Fatalf("%d webhook_endpoint.disabled events", n)
	}
	// Nothing more is sent to it.
	before := rv.count()
	clk.Set(at.Add(time.Hour))
	e.event(at.Add(time.Hour))
	eng.Wake()
	time.Sleep(200 * time.Millisecond)
	if rv.count() != before {
		t.Fatal("a disabled endpoint was sent to")
	}
}
