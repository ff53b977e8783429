package api

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/checkoutd/checkoutd/persistence"
)

func TestAuthentication(t *testing.T) {
	e := newEnv(t, nil)
	k, revoked := persistence.NewAPIKey(e.a.ID, false, time.Now())
	if err := e.db.CreateAPIKey(context.Background(), k, revoked); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.RevokeAPIKey(context.Background(), k.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, unknown := persistence.NewAPIKey(e.a.ID, false, time.Now())
	for _, tc := range []struct {
		name, auth, code string
	}{
		{"missing", "", "api_key_missing"},
		{"basic scheme", "Basic " + e.a.key, "api_key_invalid"},
		{"no scheme", e.a.key, "api_key_invalid"},
		{"malformed key", "Bearer sk_test_nope", "api_key_invalid"},
		{"publishable-looking key", "Bearer pk_test_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "api_key_invalid"},
		{"unknown key", "Bearer " + unknown, "api_key_invalid"},
		{"revoked key", "Bearer " + revoked, "api_key_invalid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []request{
				{method: http.MethodGet, path: "/v1/checkout/sessions"},
				{method: http.MethodPost, path: "/v1/checkout/sessions", body: `{"amount":"1","asset":"XLM"}`},
				{method: http.MethodGet, path: "/v1/events"},
			} {
				r.header = map[string]string{}
				if tc.auth != "" {
					r.header["Authorization"] = tc.auth
				}
				res := e.do(r)
				res.wantError(t, http.StatusUnauthorized, "authentication_error", tc.code)
				if res.header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s %s: no WWW-Authenticate", r.method, r.path)
				}
			}
		})
	}
	if n := e.count(`SELECT count(*) FROM sessions`); n != 0 {
		t.Fatalf("%d sessions created without a valid key", n)
	}
	// The lower-case scheme is fine (RFC 7235: schemes are case-insensitive).
	res := e.do(request{method: http.MethodGet, path: "/v1/events", header: map[string]string{"Authorization": "bearer " + e.a.key}})
	if res.status != http.StatusOK {
		t.Fatalf("bearer in lower case: %d %s", res.status, res.body)
	}
}

// TestMerchantIsolation checks that B's key sees nothing of A's, and that
// every refusal is a 404 indistinguishable from a missing object.
func TestMerchantIsolation(t *testing.T) {
	e := newEnv(t, nil)
	s := e.createSession(e.a, `{"amount":"3","asset":"XLM"}`)
	if res := e.post("/v1/checkout/sessions/"+s.ID+"/cancel", e.a.key, ""); res.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", res.status, res.body)
	}
	events := decodeList(t, e.get("/v1/events", e.a.key))
	if len(events.Data) != 1 {
		t.Fatalf("A has %d events", len(events.Data))
	}
	eventID := events.ids(t)[0]

	missing := "cs_aaaaaaaaaaaaaaaaaaaaaaaa"
	for _, path := range []string{
		"/v1/checkout/sessions/" + s.ID,
		"/v1/checkout/sessions/" + s.ID + "/payments",
		"/v1/events/" + eventID,
	} {
		res := e.get(path, e.b.key)
		res.wantError(t, http.StatusNotFound, "not_found", "resource_missing")
		// Exactly what a missing id gets, bar the request id.
		other := e.get(replaceID(path, s.ID, eventID, missing), e.b.key)
		if string(res.body) != string(other.body) {
			t.Errorf("%s: B's 404 differs from a missing id's:\n%s\n%s", path, res.body, other.body)
		}
	}
	e.post("/v1/checkout/sessions/"+s.ID+"/cancel", e.b.key, "").wantError(t, http.StatusNotFound, "not_found", "resource_missing")

	if l := decodeList(t, e.get("/v1/checkout/sessions", e.b.key)); len(l.Data) != 0 {
		t.Fatalf("B lists A's sessions: %v", l.ids(t))
	}
	if l := decodeList(t, e.get("/v1/events", e.b.key)); len(l.Data) != 0 {
		t.Fatalf("B lists A's events: %v", l.ids(t))
	}
	e.get("/v1/checkout/sessions?starting_after="+s.ID, e.b.key).wantError(t, http.StatusBadRequest, "invalid_request_error", "resource_missing")
	e.get("/v1/events?ending_before="+eventID, e.b.key).wantError(t, http.StatusBadRequest, "invalid_request_error", "resource_missing")

	// A's idempotency keys are A's own: B reusing one runs B's request.
	hdr := map[string]string{"Idempotency-Key": "shared-key"}
	ra := e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions", key: e.a.key, body: `{"amount":"1","asset":"XLM"}`, header: hdr})
	rb := e.do(request{method: http.MethodPost, path: "/v1/checkout/sessions", key: e.b.key, body: `{"amount":"1","asset":"XLM"}`, header: hdr})
	if ra.status != http.StatusCreated || rb.status != http.StatusCreated || decodeSession(t, ra.body).ID == decodeSession(t, rb.body).ID {
		t.Fatalf("shared idempotency key across merchants: %d %s / %d %s", ra.status, ra.body, rb.status, rb.body)
	}
	// The session still belongs to A, untouched.
	if got := decodeSession(t, e.get("/v1/checkout/sessions/"+s.ID, e.a.key).body); got.Status != "canceled" {
		t.Fatalf("A's session is %s", got.Status)
	}
}

func replaceID(path, sessionID, eventID, missing string) string {
	out := []byte(path)
	for _, id := range []string{sessionID, eventID} {
		if i := indexOf(string(out), id); i >= 0 {
			repl := missing
			if id == eventID {
				repl = "evt_aaaaaaaaaaaaaaaaaaaaaaaa"
			}
			out = slices.Concat(out[:i], []byte(repl), out[i+len(id):])
		}
	}
	return string(out)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.RateLimit, c.RateBurst = 0.5, 3 })
	for i := range 3 {
		if res := e.get("/v1/checkout/sessions", e.a.key); res.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, res.status, res.body)
		}
	}
	res := e.get("/v1/checkout/sessions", e.a.key)
	res.wantError(t, http.StatusTooManyRequests, "rate_limited", "rate_limited")
	after, err := strconv.Atoi(res.header.Get("Retry-After"))
	if err != nil || after < 1 || after > 2 {
		t.Fatalf("Retry-After %q, want 1 or 2 (one token every 2 s)", res.header.Get("Retry-After"))
	}
	// Writes are limited too, and write nothing.
	e.post("/v1/checkout/sessions", e.a.key, `{"amount":"1","asset":"XLM"}`).wantError(t, http.StatusTooManyRequests, "rate_limited", "rate_limited")
	if n := e.count(`SELECT count(*) FROM sessions`); n != 0 {
		t.Fatalf("a rate-limited request created %d sessions", n)
	}
	// Another key has its own bucket.
	if res := e.get("/v1/checkout/sessions", e.b.key); res.status != http.StatusOK {
		t.Fatalf("B limited by A's traffic: %d %s", res.status, res.body)
	}
	// The bucket refills with time.
	e.advance(time.Duration(after) * time.Second)
	if res := e.get("/v1/checkout/sessions", e.a.key); res.status != http.StatusOK {
		t.Fatalf("after Retry-After: %d %s", res.status, res.body)
	}
}
