package api

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestIdempotentReplay(t *testing.T) {
	e := newEnv(t, nil)
	body := `{"amount":"7.5","asset":"XLM","metadata":{"order":"42"}}`
	hdr := map[string]string{"Idempotency-Key": "order-42"}
	first := e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions", key: e.a.key, body: body, header: hdr})
	if first.status != http.StatusCreated {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	for range 2 {
		again := e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions", key: e.a.key, body: body, header: hdr})
		if again.status != first.status || string(again.body) != string(first.body) {
			t.Fatalf("replay differs:\n%d %s\n%d %s", first.status, first.body, again.status, again.body)
		}
		if again.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replay lacks Idempotent-Replayed")
		}
		if again.header.Get("Request-Id") == first.header.Get("Request-Id") {
			t.Errorf("replay reused the request id")
		}
	}
	if n := e.count(`SELECT count(*) FROM sessions`); n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}

	// The same key with another body, or on another path, is refused.
	res := e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions", key: e.a.key, body: `{"amount":"8","asset":"XLM"}`, header: hdr})
	res.wantError(t, http.StatusConflict, "conflict", "idempotency_key_reused")
	id := decodeSession(t, first.body).ID
	res = e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions/" + id + "/cancel", key: e.a.key, header: hdr})
	res.wantError(t, http.StatusConflict, "conflict", "idempotency_key_reused")
	if n := e.count(`SELECT count(*) FROM sessions`); n != 1 {
		t.Fatalf("%d sessions, want 1", n)
	}

	// An error response is replayed as well: the request is not run again.
	bad := map[string]string{"Idempotency-Key": "bad-1"}
	r1 := e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions", key: e.a.key, body: `{"amount":"0","asset":"XLM"}`, header: bad})
	r2 := e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions", key: e.a.key, body: `{"amount":"0","asset":"XLM"}`, header: bad})
	if r1.status != http.StatusBadRequest || r2.status != r1.status || string(r1.body) != string(r2.body) {
		t.Fatalf("error replay: %d %s / %d %s", r1.status, r1.body, r2.status, r2.body)
	}

	// A cancel with a key replays too.
	cancelHdr := map[string]string{"Idempotency-Key": "cancel-1"}
	c1 := e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions/" + id + "/cancel", key: e.a.key, header: cancelHdr})
	c2 := e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions/" + id + "/cancel", key: e.a.key, header: cancelHdr})
	if c1.status != http.StatusOK || string(c1.body) != string(c2.body) {
		t.Fatalf("cancel replay: %d %s / %d %s", c1.status, c1.body, c2.status, c2.body)
	}

	e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions", key: e.a.key, body: body,
		header: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}}).
		wantError(t, http.StatusBadRequest, "invalid_request_error", "idempotency_key_invalid")
}

// TestIdempotentConcurrent sends one request with one key from many
// goroutines at once: one session is created and every caller gets its
// response.
func TestIdempotentConcurrent(t *testing.T) {
	e := newEnv(t, nil)
	const callers = 8
	body := `{"amount":"1","asset":"XLM"}`
	hdr := map[string]string{"Idempotency-Key": "race"}
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		responses []response
	)
	start := make(chan struct{})
	for range callers {
		wg.Go(func() {
			<-start
			r := e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions", key: e.a.key, body: body, header: hdr})
			mu.Lock()
			responses = append(responses, r)
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	if n := e.count(`SELECT count(*) FROM sessions`); n != 1 {
		t.Fatalf("%d concurrent requests with one key created %d sessions", callers, n)
	}
	for _, r := range responses {
		if r.status != http.StatusCreated || string(r.body) != string(responses[0].body) {
			t.Fatalf("responses differ:\n%d %s\n%d %s", r.status, r.body, responses[0].status, responses[0].body)
		}
	}
}

// TestIdempotencyInProgress holds a claim open and checks that a second
// request waits, then gets 409 idempotency_request_in_progress.
func TestIdempotencyInProgress(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.IdempotencyWait = 200 * time.Millisecond })
	body := `{"amount":"1","asset":"XLM"}`
	hash := requestHash(mustRequest(t, http.MethodPost, "/v1/checkout/sessions"), []byte(body))
	now := time.Now()
	if _, claimed, err := e.db.ClaimIdempotencyKey(t.Context(), e.a.ID, "held", hash, now, now.Add(-time.Minute)); err != nil || !claimed {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	start := time.Now()
	res := e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions", key: e.a.key, body: body,
		header: map[string]string{"Idempotency-Key": "held"}})
	res.wantError(t, http.StatusConflict, "conflict", "idempotency_request_in_progress")
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("answered after %s without waiting", waited)
	}
	if n := e.count(`SELECT count(*) FROM sessions`); n != 0 {
		t.Fatalf("%d sessions", n)
	}
	// Once the claim is stale (its process died), a retry runs.
	e.advance(10 * time.Minute)
	res = e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions", key: e.a.key, body: body,
		header: map[string]string{"Idempotency-Key": "held"}})
	if res.status != http.StatusCreated {
		t.Fatalf("after the claim went stale: %d %s", res.status, res.body)
	}
}

func TestIdempotencyCleanup(t *testing.T) {
	e := newEnv(t, nil)
	for _, k := range []string{"a", "b"} {
		e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions", key: e.a.key, body: `{"amount":"1","asset":"XLM"}`,
			header: map[string]string{"Idempotency-Key": k}})
	}
	e.api.CleanupIdempotencyKeys()
	if n := e.count(`SELECT count(*) FROM idempotency_keys`); n != 2 {
		t.Fatalf("fresh keys deleted: %d left", n)
	}
	e.advance(23 * time.Hour)
	e.api.CleanupIdempotencyKeys()
	if n := e.count(`SELECT count(*) FROM idempotency_keys`); n != 2 {
		t.Fatalf("keys deleted before 24 h: %d left", n)
	}
	e.advance(2 * time.Hour)
	e.api.CleanupIdempotencyKeys()
	if n := e.count(`SELECT count(*) FROM idempotency_keys`); n != 0 {
		t.Fatalf("keys older than 24 h kept: %d left", n)
	}
}

func mustRequest(t *testing.T, method, path string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
