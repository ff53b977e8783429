package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/persistence/pgtest"
	"github.com/checkoutd/checkoutd/stellar/horizon"
	"github.com/checkoutd/checkoutd/stellar/sandbox"
	"github.com/checkoutd/checkoutd/stellar/sandbox/wallet"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is one test's world: a migrated database, a sandbox Stellar network
// over real HTTP, the real session actors and ledger watchers, and the API
// served by httptest, with two merchants, A and B, and a key for each.
type env struct {
	t       *testing.T
	db      *persistence.DB
	sql     *pgxpool.Pool
	net     *sandbox.Network
	wallet  *wallet.Wallet
	system  *actors.System
	api     *Server
	srv     *httptest.Server
	a, b    merchant
	clockMu sync.Mutex
	skew    time.Duration
}

// merchant is a merchant of the test, its receiving keypair and API key.
type merchant struct {
	checkout.Merchant
	kp  *keypair.Full
	key string
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newEnv starts everything; configure adjusts the API's config.
func newEnv(t *testing.T, configure func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	dsn := pgtest.New(t)
	db, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e := &env{t: t, db: db, sql: pool}

	n, err := sandbox.New(sandbox.Config{LedgerClose: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hsrv := httptest.NewServer(n.Handler())
	t.Cleanup(hsrv.Close)
	t.Cleanup(func() { _ = n.Close() }) // first: ends streams so hsrv.Close does not wait
	nctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if err := n.Start(nctx); err != nil {
		t.Fatal(err)
	}
	e.net = n
	e.wallet = wallet.New(&horizonclient.Client{HorizonURL: hsrv.URL, HTTP: hsrv.Client()}, n.Passphrase())
	hz, err := horizon.New(horizon.Config{URL: hsrv.URL, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	sys, err := actors.Start(actors.Config{Store: db, Logger: testLogger(), AskTimeout: 5 * time.Second}, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sys.Stop(ctx)
	})
	e.system = sys
	ws, err := actors.NewWatchers(actors.WatchersConfig{
		DB: db, Horizon: hz, Sessions: sys.Sessions(), Logger: testLogger(),
		FlushInterval: 50 * time.Millisecond, CaughtUpInterval: 100 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = ws.Stop(ctx)
	})

	cfg := Config{
		Store:             db,
		Sessions:          sys.Sessions(),
		Watchers:          ws,
		PublicURL:         "https://pay.example.test",
		NetworkPassphrase: n.Passphrase(),
		Logger:            testLogger(),
		Clock:             e.now,
		RateLimit:         1000,
		RateBurst:         1000,
		IdempotencyWait:   5 * time.Second,
	}
	if configure != nil {
		configure(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.api = s
	e.srv = httptest.NewServer(s)
	t.Cleanup(s.Close)
	t.Cleanup(e.srv.Close)

	e.a = e.newMerchant("Shop A")
	e.b = e.newMerchant("Shop B")
	return e
}

// now is the API's clock: real time, moved forward by advance.
func (e *env) now() time.Time {
	e.clockMu.Lock()
	defer e.clockMu.Unlock()
	return time.Now().Add(e.skew)
}

func (e *env) advance(d time.Duration) {
	e.clockMu.Lock()
	defer e.clockMu.Unlock()
	e.skew += d
}

// newMerchant creates a merchant with a funded receiving account and a key.
func (e *env) newMerchant(name string) merchant {
	e.t.Helper()
	kp := e.funded()
	m, err := checkout.NewMerchant(name, kp.Address(), time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	k, secret := persistence.NewAPIKey(m.ID, false, time.Now())
	if err := e.db.CreateMerchantWithKey(context.Background(), m, k, secret); err != nil {
		e.t.Fatal(err)
	}
	return merchant{Merchant: m, kp: kp, key: secret}
}

func (e *env) funded() *keypair.Full {
	e.t.Helper()
	kp := keypair.MustRandom()
	if err := e.net.Fund(context.Background(), kp.Address()); err != nil {
		e.t.Fatal(err)
	}
	return kp
}

// count runs a counting query.
func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.sql.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// response is what a request got back.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic map.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response %d is not a JSON object: %v\n%s", r.status, err, r.body)
	}
	return m
}

// errorCode returns the error object's type, code and param.
func (r response) errorFields(t *testing.T) (typ, code, param string) {
	t.Helper()
	m := r.json(t)
	eo, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("response %d has no error object: %s", r.status, r.body)
	}
	typ, _ = eo["type"].(string)
	code, _ = eo["code"].(string)
	param, _ = eo["param"].(string)
	return typ, code, param
}

// wantError checks the status, type and code of an error response.
func (r response) wantError(t *testing.T, status int, typ, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	gotType, gotCode, _ := r.errorFields(t)
	if gotType != typ || gotCode != code {
		t.Fatalf("error %s/%s, want %s/%s: %s", gotType, gotCode, typ, code, r.body)
	}
}

// request is one call to the API.
type request struct {
	method, path, key string
	body              string
	header            map[string]string
}

// do sends the request, checks the Request-Id header, and validates the
// response against the OpenAPI document.
func (e *env) do(req request) response {
	e.t.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
	}
	r, err := http.NewRequest(req.method, e.srv.URL+req.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if req.body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	if req.key != "" {
		r.Header.Set("Authorization", "Bearer "+req.key)
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(r)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	out := response{status: res.StatusCode, header: res.Header, body: b}
	if !strings.HasPrefix(res.Header.Get("Request-Id"), "req_") {
		e.t.Errorf("%s %s: Request-Id header %q", req.method, req.path, res.Header.Get("Request-Id"))
	}
	if out.status >= 500 && out.status != http.StatusServiceUnavailable {
		e.t.Errorf("%s %s: status %d: %s", req.method, req.path, out.status, b)
	}
	e.validate(r, out)
	return out
}

func (e *env) get(path, key string) response {
	e.t.Helper()
	return e.do(request{method: http.MethodGet, path: path, key: key})
}

func (e *env) post(path, key, body string) response {
	e.t.Helper()
	return e.do(request{method: http.MethodPost, path: path, key: key, body: body})
}

// createSession creates a session for m and decodes it.
func (e *env) createSession(m merchant, body string) sessionObjectJSON {
	e.t.Helper()
	res := e.post("/v1/checkout/sessions", m.key, body)
	if res.status != http.StatusCreated {
		e.t.Fatalf("create session: %d %s", res.status, res.body)
	}
	return decodeSession(e.t, res.body)
}

// sessionObjectJSON is a session object as a client decodes it.
type sessionObjectJSON struct {
	ID             string            `json:"id"`
	Object         string            `json:"object"`
	Status         string            `json:"status"`
	PaymentStatus  string            `json:"payment_status"`
	Amount         string            `json:"amount"`
	AmountReceived string            `json:"amount_received"`
	Asset          string            `json:"asset"`
	PayTo          payTo             `json:"pay_to"`
	PaymentURI     string            `json:"payment_uri"`
	URL            string            `json:"url"`
	ExpiresAt      time.Time         `json:"expires_at"`
	CreatedAt      time.Time         `json:"created_at"`
	ClosedAt       *time.Time        `json:"closed_at"`
	Metadata       map[string]string `json:"metadata"`
	SuccessURL     string            `json:"success_url"`
	CancelURL      string            `json:"cancel_url"`
}

func decodeSession(t *testing.T, b []byte) sessionObjectJSON {
	t.Helper()
	var s sessionObjectJSON
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatalf("decode session: %v\n%s", err, b)
	}
	return s
}

// listJSON is a list object as a client decodes it.
type listJSON struct {
	Object  string            `json:"object"`
	Data    []json.RawMessage `json:"data"`
	HasMore bool              `json:"has_more"`
}

func decodeList(t *testing.T, r response) listJSON {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	var l listJSON
	if err := json.Unmarshal(r.body, &l); err != nil || l.Object != "list" {
		t.Fatalf("decode list: %v\n%s", err, r.body)
	}
	return l
}

// ids returns the "id" of every item of a list.
func (l listJSON) ids(t *testing.T) []string {
	t.Helper()
	out := make([]string, 0, len(l.Data))
	for _, d := range l.Data {
		var v struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(d, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v.ID)
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var (
	openAPIOnce sync.Once
	openAPIDoc  *openapi3.T
	openAPIErr  error
)

// loadOpenAPI parses and validates the embedded document once.
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	openAPIOnce.Do(func() {
		loader := openapi3.NewLoader()
		openAPIDoc, openAPIErr = loader.LoadFromData(OpenAPI)
		if openAPIErr == nil {
			openAPIErr = openAPIDoc.Validate(loader.Context)
		}
	})
	if openAPIErr != nil {
		t.Fatalf("openapi.json: %v", openAPIErr)
	}
	return openAPIDoc
}

// validate checks a response against the OpenAPI document: the operation
// its route names, or for a request no route matches, the Error schema.
func (e *env) validate(r *http.Request, res response) {
	e.t.Helper()
	doc := loadOpenAPI(e.t)
	var match mux.RouteMatch
	if !e.api.router.Match(r, &match) || match.MatchErr != nil || match.Route == nil {
		e.validateSchema(doc, "Error", res)
		return
	}
	tpl, err := match.Route.GetPathTemplate()
	if err != nil {
		e.t.Fatal(err)
	}
	if doc.Paths.Find(tpl) == nil {
		if strings.HasPrefix(tpl, "/c/") || strings.HasPrefix(tpl, "/v1/public/") {
			return // the hosted pages' routes, which are not the merchant API
		}
	}
	if err := validateResponse(doc, r, tpl, match.Vars, res); err != nil {
		e.t.Errorf("%s %s: response %d does not match openapi.json: %v\n%s", r.Method, r.URL.Path, res.status, err, res.body)
	}
}

// validateResponse checks a response to r, which matched the route tpl,
// against the operation the document gives for it.
func validateResponse(doc *openapi3.T, r *http.Request, tpl string, vars map[string]string, res response) error {
	item := doc.Paths.Find(tpl)
	if item == nil {
		return fmt.Errorf("route %s is not in openapi.json", tpl)
	}
	op := item.GetOperation(r.Method)
	if op == nil {
		return fmt.Errorf("%s %s is not in openapi.json", r.Method, tpl)
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    r,
			PathParams: vars,
			Route:      &routers.Route{Spec: doc, Path: tpl, PathItem: item, Method: r.Method, Operation: op},
		},
		Status:  res.status,
		Header:  res.header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	input.SetBodyBytes(res.body)
	return openapi3filter.ValidateResponse(context.Background(), input)
}

// validateSchema checks a response body against a named schema.
func (e *env) validateSchema(doc *openapi3.T, name string, res response) {
	e.t.Helper()
	var v any
	if err := json.Unmarshal(res.body, &v); err != nil {
		e.t.Errorf("response %d is not JSON: %v\n%s", res.status, err, res.body)
		return
	}
	if err := doc.Components.Schemas[name].Value.VisitJSON(v); err != nil {
		e.t.Errorf("response %d does not match schema %s: %v\n%s", res.status, name, err, res.body)
	}
}

// jsonBody marshals v for a request body.
func jsonBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
