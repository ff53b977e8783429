package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

// gatedCreator holds its first batch until release closes, so that the
// creates sent meanwhile queue up into one batch. It refuses the rows whose
// session amount is 13 with a taken memo.
type gatedCreator struct {
	release chan struct{}
	mu      sync.Mutex
	sizes   []int
}

func (g *gatedCreator) CreateSessions(_ context.Context, rows []persistence.SessionCreate) []error {
	g.mu.Lock()
	first := len(g.sizes) == 0
	g.sizes = append(g.sizes, len(rows))
	g.mu.Unlock()
	if first {
		<-g.release
	}
	errs := make([]error, len(rows))
	for i, r := range rows {
		if r.Session.Amount == 13 {
			errs[i] = checkout.ErrMemoTaken
		}
	}
	return errs
}

// TestCreateBatcherGroupsAndAnswersEachRow: creates that arrive while a
// batch commits share the next one, each gets its own row's answer, and
// stop commits what is queued before it returns.
func TestCreateBatcherGroupsAndAnswersEachRow(t *testing.T) {
	g := &gatedCreator{release: make(chan struct{})}
	b := startCreateBatcher(g, 1, 64, 5*time.Second)
	const n = 20
	errs := make([]error, n)
	var wg sync.WaitGroup
	first := make(chan struct{})
	wg.Go(func() {
		close(first)
		errs[0] = b.create(t.Context(), persistence.SessionCreate{Session: checkout.Session{Amount: 1}})
	})
	<-first
	for !func() bool { g.mu.Lock(); defer g.mu.Unlock(); return len(g.sizes) == 1 }() {
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < n; i++ {
		amount := checkout.Amount(1)
		if i%5 == 0 {
			amount = 13
		}
		wg.Go(func() {
			errs[i] = b.create(t.Context(), persistence.SessionCreate{Session: checkout.Session{Amount: amount}})
		})
	}
	for len(b.queue) < n-1 {
		time.Sleep(time.Millisecond)
	}
	close(g.release)
	wg.Wait()
	b.stop()
	if len(g.sizes) != 2 || g.sizes[0] != 1 || g.sizes[1] != n-1 {
		t.Errorf("batch sizes %v, want [1 %d]", g.sizes, n-1)
	}
	for i, err := range errs {
		if want := i > 0 && i%5 == 0; errors.Is(err, checkout.ErrMemoTaken) != want || (!want && err != nil) {
			t.Errorf("create %d: %v", i, err)
		}
	}
	if err := b.create(t.Context(), persistence.SessionCreate{}); !errors.Is(err, errCreatesStopped) {
		t.Errorf("create after stop: %v", err)
	}
}

// TestIdempotentCreatesConcurrentMixed sends, all at once, creates without
// a key, several callers per key, and one key with two different bodies.
// Each key makes one session whose answer every caller of that key gets;
// the key reused with another body is refused; keyless creates each make
// their own session.
func TestIdempotentCreatesConcurrentMixed(t *testing.T) {
	e := newEnv(t, nil)
	const keys, perKey, keyless = 6, 4, 6
	type call struct {
		key, body string
	}
	var calls []call
	for k := range keys {
		for range perKey {
			calls = append(calls, call{fmt.Sprintf("mixed-%d", k), fmt.Sprintf(`{"amount":"%d","asset":"XLM"}`, k+1)})
		}
	}
	for range keyless {
		calls = append(calls, call{"", `{"amount":"7","asset":"XLM"}`})
	}
	calls = append(calls, call{"two-bodies", `{"amount":"1","asset":"XLM"}`}, call{"two-bodies", `{"amount":"2","asset":"XLM"}`})
	responses := make([]response, len(calls))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range calls {
		wg.Go(func() {
			<-start
			hdr := map[string]string{}
			if c.key != "" {
				hdr["Idempotency-Key"] = c.key
			}
			responses[i] = e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions", key: e.a.key, body: c.body, header: hdr})
		})
	}
	close(start)
	wg.Wait()

	byKey := map[string]string{}
	created, reused := 0, 0
	for i, c := range calls {
		r := responses[i]
		switch {
		case c.key == "two-bodies" && r.status == http.StatusConflict:
			r.wantError(t, http.StatusConflict, "conflict", "idempotency_key_reused")
			reused++
			continue
		case r.status != http.StatusCreated:
			t.Fatalf("call %d (%q): %d %s", i, c.key, r.status, r.body)
		}
		if c.key == "" {
			created++
			continue
		}
		if prev, ok := byKey[c.key]; ok && prev != string(r.body) {
			t.Fatalf("key %s answered two ways:\n%s\n%s", c.key, prev, r.body)
		}
		byKey[c.key] = string(r.body)
	}
	if reused != 1 || len(byKey) != keys+1 || created != keyless {
		t.Fatalf("%d reused, %d keys answered, %d keyless created", reused, len(byKey), created)
	}
	if n := e.count(`SELECT count(*) FROM sessions`); n != keys+1+keyless {
		t.Fatalf("%d sessions, want %d", n, keys+1+keyless)
	}
	if n := e.count(`SELECT count(*) FROM idempotency_keys WHERE response_status = 201`); n != keys+1 {
		t.Fatalf("%d stored answers, want %d", n, keys+1)
	}
	// A later retry of each key is a replay of the same bytes.
	for k := range keys {
		key := fmt.Sprintf("mixed-%d", k)
		r := e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions", key: e.a.key,
			body: fmt.Sprintf(`{"amount":"%d","asset":"XLM"}`, k+1), header: map[string]string{"Idempotency-Key": key}})
		if r.status != http.StatusCreated || string(r.body) != byKey[key] || r.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry of %s: %d %q %s", key, r.status, r.header.Get("Idempotent-Replayed"), r.body)
		}
	}
}

// TestRevokedKeyStopsWithinAuthCacheTTL: a key revoked while it is in the
// auth cache keeps working until the cache's TTL has passed, and not after;
// without the cache it stops at once.
func TestRevokedKeyStopsWithinAuthCacheTTL(t *testing.T) {
	for _, tc := range []struct {
		name      string
		ttl       time.Duration
		stillWork bool
	}{{"cached for a minute", time.Minute, true}, {"no cache", -1, false}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.AuthCacheTTL = tc.ttl })
			k, secret := persistence.NewAPIKey(e.a.ID, false, time.Now())
			if err := e.db.CreateAPIKey(t.Context(), k, secret); err != nil {
				t.Fatal(err)
			}
			list := request{method: http.MethodGet, path: "/v1/checkout/sessions", key: secret}
			if r := e.do(list); r.status != http.StatusOK {
				t.Fatalf("before revocation: %d %s", r.status, r.body)
			}
			if _, err := e.db.RevokeAPIKey(t.Context(), k.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
			r := e.do(list)
			if tc.stillWork && r.status != http.StatusOK {
				t.Fatalf("revoked key refused within the TTL: %d", r.status)
			}
			if !tc.stillWork {
				r.wantError(t, http.StatusUnauthorized, "authentication_error", "api_key_invalid")
			}
			e.advance(tc.ttl + time.Second)
			e.do(list).wantError(t, http.StatusUnauthorized, "authentication_error", "api_key_invalid")
			e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions", key: secret, body: `{"amount":"1","asset":"XLM"}`}).
				wantError(t, http.StatusUnauthorized, "authentication_error", "api_key_invalid")
		})
	}
}
