package api

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/keypair"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/persistence/pgtest"
)

// fuzzAPI is the real router and middleware over a test database, with two
// merchants. The actors and watchers are stubbed: the fuzz targets are the
// API's parsing and validation, and what reaches Postgres. Requests go
// straight to ServeHTTP, with no sockets, so that a worker runs thousands
// a second.
type fuzzAPI struct {
	api  *Server
	sql  *pgxpool.Pool
	a, b fuzzMerchant
}

type fuzzMerchant struct {
	id, key, session string
}

func newFuzzAPI(tb testing.TB) *fuzzAPI {
	tb.Helper()
	ctx := context.Background()
	dsn := pgtest.New(tb)
	db, err := persistence.Open(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(db.Close)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	s, err := New(Config{Store: db, Sessions: nopSessions{}, Watchers: nopWatchers{},
		PublicURL: "https://pay.example.test", RateLimit: 1e9, RateBurst: 1 << 30,
		IdempotencyWait: 100 * time.Millisecond, CallTimeout: 5 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Close)
	f := &fuzzAPI{api: s, sql: pool}
	for _, m := range []*fuzzMerchant{&f.a, &f.b} {
		mm, err := checkout.NewMerchant("Fuzz shop", keypair.MustRandom().Address(), time.Now())
		if err != nil {
			tb.Fatal(err)
		}
		k, secret := persistence.NewAPIKey(mm.ID, false, time.Now())
		if err := db.CreateMerchantWithKey(ctx, mm, k, secret); err != nil {
			tb.Fatal(err)
		}
		m.id, m.key = mm.ID, secret
		rec := f.serve(http.MethodPost, "/v1/checkout/sessions", "", secret, `{"amount":"7.77","asset":"XLM","metadata":{"order":"seed"}}`, nil)
		if rec.Code != http.StatusCreated {
			tb.Fatalf("seed session: %d %s", rec.Code, rec.Body)
		}
		var o struct{ ID string }
		if err := json.Unmarshal(rec.Body.Bytes(), &o); err != nil {
			tb.Fatal(err)
		}
		m.session = o.ID
	}
	return f
}

// serve runs one request through the real handler.
func (f *fuzzAPI) serve(method, path, rawQuery, key, body string, header map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, "/", strings.NewReader(body))
	r.URL.Path, r.URL.RawQuery = path, rawQuery
	r.RequestURI = r.URL.RequestURI()
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.api.ServeHTTP(rec, r)
	return rec
}

// state counts the rows a request could change.
type dbState struct{ sessions, events, endpoints, deliveries int }

func (f *fuzzAPI) state(t testing.TB) dbState {
	t.Helper()
	var s dbState
	err := f.sql.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM sessions), (SELECT count(*) FROM events),
		(SELECT count(*) FROM webhook_endpoints), (SELECT count(*) FROM webhook_deliveries)`).
		Scan(&s.sessions, &s.events, &s.endpoints, &s.deliveries)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkResponse holds for every answer: no 5xx, a JSON body, an error
// object on every 4xx, and nothing of merchant B in A's answers. A request
// that names B's session itself (sent holds the path and query) may hear
// its own path echoed in an error message; B's session as a value, "cs_…",
// is still a leak.
func (f *fuzzAPI) checkResponse(t *testing.T, what, sent string, rec *httptest.ResponseRecorder) {
	t.Helper()
	body := rec.Body.String()
	if rec.Code >= 500 {
		t.Fatalf("%s: status %d: %s", what, rec.Code, body)
	}
	session := f.b.session
	if strings.Contains(sent, session) {
		session = `"` + session + `"`
	}
	if strings.Contains(body, session) || strings.Contains(body, f.b.id) {
		t.Fatalf("%s: A's answer shows B's session or id: %s", what, body)
	}
	if rec.Code < 300 {
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s: %d with a body that is not JSON: %q", what, rec.Code, body)
		}
		return
	}
	if rec.Code >= 400 {
		var e errorBody
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Type == "" || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("%s: %d without an error object: %q", what, rec.Code, body)
		}
	}
}

// FuzzSessionCreate posts arbitrary bodies, content types and idempotency
// keys to POST /v1/checkout/sessions. Nothing may answer 5xx; a refusal
// (4xx) writes no session and no event; an acceptance writes exactly one
// session, which reads back as created.
func FuzzSessionCreate(f *testing.F) {
	for _, s := range []struct{ body, ctype, idem string }{
		{`{"amount":"12.50","asset":"XLM"}`, "application/json", ""},
		{`{"amount":"0.0000001","asset":"USDC:GAM6G54QCQDCSTBRM6I4FA7CCKYD7FUK27FJN6CB2YHOEVHBIUKM2OSX","memo_type":"id","expires_in":60}`, "application/json", "k1"},
		{`{"amount":"1","asset":"XLM","memo_type":"muxed","metadata":{"a":"b"},"success_url":"https://x.test/ok","cancel_url":"http://x.test/no"}`, "application/json; charset=utf-8", ""},
		{`{"amount":"922337203685.4775807","asset":"XLM"}`, "application/json", ""},
		{`{"amount":"922337203685.4775808","asset":"XLM"}`, "application/json", ""},
		{`{"amount":"1","asset":"XLM","metadata":{"k":"\u0000"}}`, "application/json", ""},
		{`{"amount":"1","asset":"XLM","metadata":{"\u0000":"v"}}`, "application/json", ""},
		{`{"amount":"1","asset":"XLM","metadata":{"k":"\ud800"}}`, "application/json", ""},
		{`{"amount":"1","asset":"XLM","success_url":"https://x.test/\u0000"}`, "application/json", ""},
		{`{"amount":"1","asset":"XLM","expires_in":1e99}`, "application/json", ""},
		{`{"amount":"1","asset":"XLM","expires_in":-9223372036854775808}`, "application/json", ""},
		{`{"amount":1,"asset":"XLM"}`, "application/json", ""},
		{`{"amount":"1","asset":"native"}`, "application/json", ""},
		{`{"amount":"1","asset":"XLM"} {}`, "application/json", ""},
		{`{"amount":"1","asset":"XLM","amount":"2"}`, "application/json", ""},
		{`{"AMOUNT":"1","Asset":"XLM"}`, "application/json", ""},
		{`[]`, "application/json", ""},
		{`{"amount":"1","asset":"XLM"}`, "text/plain", ""},
		{`{"amount":"1","asset":"XLM"}`, "application/json", "\x00"},
		{`{"amount":"1","asset":"XLM"}`, "application/json", strings.Repeat("k", 256)},
		{strings.Repeat("[", 10000), "application/json", ""},
		{"", "", ""},
	} {
		f.Add(s.body, s.ctype, s.idem)
	}
	api := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body, ctype, idem string) {
		before := api.state(t)
		hdr := map[string]string{"Content-Type": ctype}
		if idem != "" {
			hdr["Idempotency-Key"] = idem
		}
		rec := api.serve(http.MethodPost, "/v1/checkout/sessions", "", api.a.key, body, hdr)
		api.checkResponse(t, "POST /v1/checkout/sessions", "", rec)
		after := api.state(t)
		replayed := rec.Header().Get("Idempotent-Replayed") == "true"
		switch {
		case rec.Code == http.StatusCreated && !replayed:
			if after.sessions != before.sessions+1 || after.events != before.events {
				t.Fatalf("201 changed sessions %d→%d, events %d→%d", before.sessions, after.sessions, before.events, after.events)
			}
			var o struct{ ID string }
			if err := json.Unmarshal(rec.Body.Bytes(), &o); err != nil {
				t.Fatal(err)
			}
			got := api.serve(http.MethodGet, "/v1/checkout/sessions/"+o.ID, "", api.a.key, "", nil)
			if got.Code != http.StatusOK || got.Body.String() != rec.Body.String() {
				t.Fatalf("created %s, read back %d %s", rec.Body, got.Code, got.Body)
			}
		default:
			if after != before {
				t.Fatalf("%d changed the database: %+v → %+v", rec.Code, before, after)
			}
		}
	})
}

// FuzzListQuery sends arbitrary query strings, and ids in the path, to the
// GET routes with A's key. Nothing may answer 5xx, change a row, or show
// anything of B's.
func FuzzListQuery(f *testing.F) {
	for _, s := range []struct {
		route     uint8
		id, query string
	}{
		{0, "", "limit=3"}, {0, "", "limit=0"}, {0, "", "limit=101"}, {0, "", "limit=-1"}, {0, "", "limit=1e2"},
		{0, "", "limit=%00"}, {0, "", "status=open&status=complete"}, {0, "", "starting_after=cs_x&ending_before=cs_y"},
		{0, "", "starting_after=cs_" + strings.Repeat("z", 300)}, {0, "", "starting_after=cs_'%3B--"},
		{0, "", "%zz=1"}, {0, "", ";;;&&&==="}, {0, "", "unknown=1"},
		{1, "", "type=checkout.session.completed"}, {1, "", "type=%27"}, {1, "", "ending_before=evt_\x00"},
		{2, "", "status=enabled"}, {2, "", "status=disabled&limit=100"},
		{3, "cs_aaaaaaaaaaaaaaaaaaaaaaaa", ""}, {3, "cs_", ""}, {3, "cs_%00", ""}, {3, "../events", ""},
		{4, "evt_aaaaaaaaaaaaaaaaaaaaaaaa", ""}, {5, "cs_aaaaaaaaaaaaaaaaaaaaaaaa", ""},
		{6, "we_aaaaaaaaaaaaaaaaaaaaaaaa", "status=failed"}, {7, "we_aaaaaaaaaaaaaaaaaaaaaaaa", ""},
		{3, "cs_aaaaaaaaaaaaaaaaaaaaaaa\x00", ""}, {3, "@b", ""}, {5, "@b", ""}, {0, "", "starting_after=cs_aaaaaaaaaaaaaaaaaaaaaaa%00"},
	} {
		f.Add(s.route, s.id, s.query)
	}
	api := newFuzzAPI(f)
	routes := []string{"/v1/checkout/sessions", "/v1/events", "/v1/webhook_endpoints", "/v1/checkout/sessions/",
		"/v1/events/", "/v1/checkout/sessions/%s/payments", "/v1/webhook_endpoints/%s/deliveries", "/v1/webhook_endpoints/"}
	f.Fuzz(func(t *testing.T, route uint8, id, query string) {
		path := routes[int(route)%len(routes)]
		switch {
		case strings.Contains(path, "%s"):
			path = strings.Replace(path, "%s", id, 1)
		case strings.HasSuffix(path, "/"):
			path += id
		}
		if strings.Contains(path, "@b") { // B's own session, asked for with A's key
			path = strings.Replace(path, "@b", api.b.session, 1)
		}
		before := api.state(t)
		rec := api.serve(http.MethodGet, path, query, api.a.key, "", nil)
		api.checkResponse(t, "GET "+path+"?"+query, path+"?"+query, rec)
		if after := api.state(t); after != before {
			t.Fatalf("GET %s?%s changed the database: %+v → %+v", path, query, before, after)
		}
	})
}

// FuzzWebhookEndpointCreate posts arbitrary bodies to
// POST /v1/webhook_endpoints under the production URL policy: no 5xx, and
// a refusal registers nothing.
func FuzzWebhookEndpointCreate(f *testing.F) {
	for _, s := range []string{
		`{"url":"https://hooks.example.com/x"}`,
		`{"url":"https://hooks.example.com/x","events":["checkout.session.completed"],"description":"shop"}`,
		`{"url":"https://hooks.example.com/x","description":"a\u0000b"}`,
		`{"url":"https://hooks.example.com/\u0000"}`,
		`{"url":"https://127.0.0.1./x"}`,
		`{"url":"https://[::ffff:127.0.0.1]/x"}`,
		`{"url":"https://hooks.example.com/x","events":["*"]}`,
		`{"url":"https://hooks.example.com/x","events":["nope","\u0000"]}`,
		`{"url":"https://hooks.example.com/x","events":[]}`,
		`{"url":null}`, `{}`, `[]`,
	} {
		f.Add(s)
	}
	api := newFuzzAPI(f)
	f.Fuzz(func(t *testing.T, body string) {
		before := api.state(t)
		rec := api.serve(http.MethodPost, "/v1/webhook_endpoints", "", api.a.key, body, nil)
		api.checkResponse(t, "POST /v1/webhook_endpoints", "", rec)
		after := api.state(t)
		if rec.Code == http.StatusCreated {
			if after.endpoints != before.endpoints+1 {
				t.Fatalf("201 changed endpoints %d→%d", before.endpoints, after.endpoints)
			}
			return
		}
		if after != before {
			t.Fatalf("%d changed the database: %+v → %+v", rec.Code, before, after)
		}
	})
}
