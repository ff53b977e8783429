package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/checkoutd/checkoutd/persistence"
)

// bWorld is what merchant B owns: a session with a distinctive amount and
// metadata, its cancel event, a webhook endpoint with its secret, and a
// delivery of the event to the endpoint.
type bWorld struct {
	session, event, endpoint, secret, delivery string
}

// secrets are the values no answer to anyone else may contain.
func (w bWorld) secrets(e *env) []string {
	return []string{w.session, w.event, w.endpoint, w.secret, w.delivery, e.b.ID, e.b.key, e.b.Account,
		"4321.1234567", "b-order-7731", "hooks.b.example"}
}

func newBWorld(t *testing.T, e *env) bWorld {
	t.Helper()
	var w bWorld
	w.session = e.createSession(e.b, `{"amount":"4321.1234567","asset":"XLM","metadata":{"order":"b-order-7731"}}`).ID
	if res := e.post("/v1/checkout/sessions/"+w.session+"/cancel", e.b.key, ""); res.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", res.status, res.body)
	}
	w.event = decodeList(t, e.get("/v1/events", e.b.key)).ids(t)[0]
	res := e.post("/v1/webhook_endpoints", e.b.key, `{"url":"https://hooks.b.example/in","events":["*"]}`)
	if res.status != http.StatusCreated {
		t.Fatalf("create endpoint: %d %s", res.status, res.body)
	}
	m := res.json(t)
	w.endpoint, w.secret = m["id"].(string), m["secret"].(string)
	res = e.post("/v1/events/"+w.event+"/redeliver", e.b.key, `{"endpoint_id":"`+w.endpoint+`"}`)
	if res.status != http.StatusOK {
		t.Fatalf("redeliver: %d %s", res.status, res.body)
	}
	w.delivery = decodeList(t, res).ids(t)[0]
	return w
}

// authedRoutes lists every route that takes an API key, with B's ids in
// its path, from the router itself, so that a route added later is
// covered without editing this test.
func authedRoutes(t *testing.T, e *env, w bWorld) []request {
	t.Helper()
	var out []request
	err := e.api.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, _ := route.GetMethods()
		if !strings.HasPrefix(tpl, "/v1/") || strings.HasPrefix(tpl, "/v1/public/") || len(methods) == 0 {
			return nil
		}
		path := tpl
		if strings.Contains(tpl, "{id}") {
			id := w.session
			switch {
			case strings.HasPrefix(tpl, "/v1/events/"):
				id = w.event
			case strings.HasPrefix(tpl, "/v1/webhook_endpoints/"):
				id = w.endpoint
			}
			path = strings.Replace(tpl, "{id}", id, 1)
		}
		for _, m := range methods {
			r := request{method: m, path: path}
			if m == http.MethodPost && tpl == "/v1/checkout/sessions" {
				r.body = `{"amount":"1","asset":"XLM"}`
			}
			if m == http.MethodPost && tpl == "/v1/webhook_endpoints" {
				r.body = `{"url":"https://hooks.a.example/in","events":["*"]}`
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 14 {
		t.Fatalf("found only %d authenticated routes: %+v", len(out), out)
	}
	return out
}

// noLeak fails when body holds any of B's values.
func noLeak(t *testing.T, what string, body []byte, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(string(body), s) {
			t.Errorf("%s: the answer contains B's %q: %s", what, s, body)
		}
	}
}

// TestAuthenticationOnEveryRoute: with no key, a malformed key, a revoked
// key, an unknown key and a key one character off B's, every authenticated
// route answers 401 authentication_error, with nothing of B's in the body,
// and writes nothing.
func TestAuthenticationOnEveryRoute(t *testing.T) {
	e := newEnv(t, nil)
	w := newBWorld(t, e)
	ctx := context.Background()
	k, revoked := persistence.NewAPIKey(e.b.ID, false, time.Now())
	if err := e.db.CreateAPIKey(ctx, k, revoked); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.RevokeAPIKey(ctx, k.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, unknown := persistence.NewAPIKey(e.b.ID, false, time.Now())
	nearMiss := []byte(e.b.key)
	nearMiss[len(nearMiss)-1] = map[bool]byte{true: 'b', false: 'a'}[nearMiss[len(nearMiss)-1] == 'a']

	before := countAll(e)
	for _, auth := range []struct{ name, header string }{
		{"no key", ""},
		{"empty bearer", "Bearer "},
		{"malformed", "Bearer sk_test_" + strings.Repeat("!", 32)},
		{"wrong length", "Bearer " + e.b.key + "a"},
		{"key with a line break", "Bearer " + e.b.key[:20] + "\n" + e.b.key[21:]},
		{"revoked", "Bearer " + revoked},
		{"unknown", "Bearer " + unknown},
		{"near miss of B's key", "Bearer " + string(nearMiss)},
		{"B's key with another scheme", "Token " + e.b.key},
	} {
		for _, r := range authedRoutes(t, e, w) {
			r.header = map[string]string{}
			if auth.header != "" {
				r.header["Authorization"] = auth.header
			}
			if strings.ContainsAny(auth.header, "\n") {
				continue // net/http will not send it; LooksLikeAPIKey refuses it (persistence tests)
			}
			res := e.do(r)
			what := auth.name + ": " + r.method + " " + r.path
			if res.status != http.StatusUnauthorized {
				t.Errorf("%s: %d, want 401: %s", what, res.status, res.body)
				continue
			}
			if typ, _, _ := res.errorFields(t); typ != "authentication_error" || res.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: type %q, WWW-Authenticate %q", what, typ, res.header.Get("WWW-Authenticate"))
			}
			noLeak(t, what, res.body, w.secrets(e))
		}
	}
	if after := countAll(e); after != before {
		t.Fatalf("unauthenticated requests changed the database: %v → %v", before, after)
	}
}

// TestMerchantIsolationEveryRoute: A's valid key on every route that names
// one of B's objects is 404, exactly the answer a missing id gets; A's
// lists show nothing of B's; and B's objects are unchanged after A tried to
// cancel, delete, rotate and redeliver them.
func TestMerchantIsolationEveryRoute(t *testing.T) {
	e := newEnv(t, nil)
	w := newBWorld(t, e)
	aSession := e.createSession(e.a, `{"amount":"1","asset":"XLM"}`)
	before := countAll(e)
	for _, r := range authedRoutes(t, e, w) {
		r.key = e.a.key
		res := e.do(r)
		what := "A's key: " + r.method + " " + r.path
		noLeak(t, what, res.body, w.secrets(e))
		if !strings.Contains(r.path, w.session) && !strings.Contains(r.path, w.event) && !strings.Contains(r.path, w.endpoint) {
			// a list or a create: A's own
			if res.status >= 400 {
				t.Errorf("%s: %d %s", what, res.status, res.body)
			}
			continue
		}
		res.wantError(t, http.StatusNotFound, "not_found", "resource_missing")
	}
	// A's own event, redelivered to B's endpoint, is refused.
	if res := e.post("/v1/checkout/sessions/"+aSession.ID+"/cancel", e.a.key, ""); res.status != http.StatusOK {
		t.Fatalf("cancel A's session: %d %s", res.status, res.body)
	}
	var aEvent string
	for _, id := range decodeList(t, e.get("/v1/events", e.a.key)).ids(t) {
		aEvent = id
	}
	res := e.post("/v1/events/"+aEvent+"/redeliver", e.a.key, `{"endpoint_id":"`+w.endpoint+`"}`)
	if res.status < 400 || res.status >= 500 {
		t.Fatalf("A's event redelivered to B's endpoint: %d %s", res.status, res.body)
	}
	noLeak(t, "redeliver to B's endpoint", res.body, w.secrets(e))
	// Only A's own writes happened: the session create, the endpoint
	// create, A's cancel and its event.
	after := countAll(e)
	if after.endpoints != before.endpoints+1 {
		t.Fatalf("A's requests changed the endpoints: %+v → %+v", before, after)
	}
	if n := e.count(`SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1`, w.endpoint); n != 1 {
		t.Fatalf("B's endpoint has %d deliveries, want only B's own redelivery", n)
	}
	// B's objects are as B left them.
	if s := decodeSession(t, e.get("/v1/checkout/sessions/"+w.session, e.b.key).body); s.Status != "canceled" || s.Amount != "4321.1234567" {
		t.Fatalf("B's session: %+v", s)
	}
	ep := e.get("/v1/webhook_endpoints/"+w.endpoint, e.b.key)
	if ep.status != http.StatusOK || ep.json(t)["previous_secret_expires_at"] != nil {
		t.Fatalf("B's endpoint was changed: %d %s", ep.status, ep.body)
	}
	var secret string
	if err := e.sql.QueryRow(context.Background(), `SELECT secret FROM webhook_endpoints WHERE id = $1`, w.endpoint).Scan(&secret); err != nil || secret != w.secret {
		t.Fatalf("B's endpoint secret changed (%v)", err)
	}
}

type rowCounts struct{ sessions, events, endpoints, deliveries, idempotency int }

func countAll(e *env) rowCounts {
	e.t.Helper()
	return rowCounts{
		sessions:    e.count(`SELECT count(*) FROM sessions`),
		events:      e.count(`SELECT count(*) FROM events`),
		endpoints:   e.count(`SELECT count(*) FROM webhook_endpoints`),
		deliveries:  e.count(`SELECT count(*) FROM webhook_deliveries`),
		idempotency: e.count(`SELECT count(*) FROM idempotency_keys`),
	}
}

// TestRedactPath: a key or signing secret pasted into a URL is cut from the
// access log's path, and ordinary paths pass unchanged.
func TestRedactPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/v1/checkout/sessions/cs_abc", "/v1/checkout/sessions/cs_abc"},
		{"/v1/events/sk_test_zgke54k2k4pjehxercfqmcdinyork2wn", "/v1/events/sk_[redacted]"},
		{"/v1/events/sk_live_zgke54k2k4pjehxercfqmcdinyork2wn/x", "/v1/events/sk_[redacted]/x"},
		{"/v1/nope/Bearer sk_test_abc", "/v1/nope/Bearer sk_[redacted]"},
		{"/v1/webhook_endpoints/whsec_c2VjcmV0c2VjcmV0c2VjcmV0", "/v1/webhook_endpoints/whsec_[redacted]"},
		{"/", "/"},
	} {
		if got := redactPath(tc.in); got != tc.want {
			t.Errorf("redactPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
