package hosted_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/api/hosted"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/persistence/pgtest"
	"github.com/checkoutd/checkoutd/stellar/horizon"
	"github.com/checkoutd/checkoutd/stellar/sandbox"
	"github.com/checkoutd/checkoutd/stellar/sandbox/wallet"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// env is one test's world: Postgres, the sandbox network over real HTTP,
// the session actors and ledger watchers that settle payments, a merchant
// with a funded receiving account, a funded customer, and the hosted
// handler mounted on its own mux the way the API server mounts it.
type env struct {
	t        *testing.T
	db       *persistence.DB
	net      *sandbox.Network
	watchers *actors.Watchers
	wallet   *wallet.Wallet
	customer *keypair.Full
	merchant checkout.Merchant
	handler  *hosted.Handler
	srv      *httptest.Server
}

type envOptions struct {
	// noSandboxPay leaves Config.SandboxPayer nil, as in production.
	noSandboxPay bool
}

func newEnv(t *testing.T, opts ...envOptions) *env {
	t.Helper()
	var o envOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx := context.Background()
	db, err := persistence.Open(ctx, pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	e := &env{t: t, db: db}

	e.net, err = sandbox.New(sandbox.Config{LedgerClose: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hsrv := httptest.NewServer(e.net.Handler())
	t.Cleanup(hsrv.Close)
	t.Cleanup(func() { _ = e.net.Close() }) // first: ends streams so hsrv.Close does not wait
	nctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if err := e.net.Start(nctx); err != nil {
		t.Fatal(err)
	}
	hz, err := horizon.New(horizon.Config{URL: hsrv.URL, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	merchantKP := keypair.MustRandom()
	e.customer = keypair.MustRandom()
	for _, a := range []string{merchantKP.Address(), e.customer.Address()} {
		if err := e.net.Fund(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	e.merchant, err = checkout.NewMerchant("Corner Bakery", merchantKP.Address(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateMerchant(ctx, e.merchant); err != nil {
		t.Fatal(err)
	}

	sys, err := actors.Start(actors.Config{Store: db, Logger: testLogger(), AskTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.watchers, err = actors.NewWatchers(actors.WatchersConfig{
		DB: db, Horizon: hz, Sessions: sys.Sessions(), Logger: testLogger(),
		FlushInterval: 50 * time.Millisecond, CaughtUpInterval: 100 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = e.watchers.Stop(ctx)
		_ = sys.Stop(ctx)
	})

	e.wallet = wallet.New(&horizonclient.Client{HorizonURL: hsrv.URL + "/"}, e.net.Passphrase())
	cfg := hosted.Config{
		Store:             db,
		NetworkPassphrase: e.net.Passphrase(),
		Logger:            testLogger(),
		PollInterval:      250 * time.Millisecond,
	}
	if !o.noSandboxPay {
		cfg.SandboxPayer = hosted.WalletPayer{Wallet: e.wallet, Customer: e.customer}
	}
	e.handler, err = hosted.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	for _, p := range e.handler.Patterns() {
		mux.Handle(p, e.handler)
	}
	mux.Handle("/c/", e.handler)
	mux.HandleFunc("GET /thanks", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, "<!doctype html><title>Thanks</title><h1 id=thanks>Thanks for your order</h1>")
	})
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newSession creates an open session for e.merchant, watching its account
// first as the API does before handing a session out.
func (e *env) newSession(p checkout.SessionParams) checkout.Session {
	e.t.Helper()
	ctx := context.Background()
	p.MerchantID, p.ReceivingAccount = e.merchant.ID, e.merchant.Account
	if p.Asset == (checkout.Asset{}) {
		p.Asset = checkout.NativeAsset
	}
	if p.ExpiresIn == 0 {
		p.ExpiresIn = 30 * time.Minute
	}
	if err := e.watchers.Ensure(ctx, e.merchant.Account); err != nil {
		e.t.Fatal(err)
	}
	s, err := checkout.NewSession(p, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.db.CreateSession(ctx, s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// pay sends amount of lumens from the customer to the session, the way a
// wallet that scanned the QR would.
func (e *env) pay(s checkout.Session, amount checkout.Amount) {
	e.t.Helper()
	payer := hosted.WalletPayer{Wallet: e.wallet, Customer: e.customer}
	if _, err := payer.PaySession(context.Background(), s, amount); err != nil {
		e.t.Fatal(err)
	}
}

// waitSession polls Postgres until ok accepts the session.
func (e *env) waitSession(id string, ok func(checkout.Session) bool) checkout.Session {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		s, err := e.db.GetSession(context.Background(), id)
		if err != nil {
			e.t.Fatal(err)
		}
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("session %s: still %s/%s after 15s", id, s.Status, s.PaymentStatus)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) get(path string) (*http.Response, string) {
	e.t.Helper()
	return e.do(http.MethodGet, path, nil)
}

func (e *env) do(method, path string, hdr http.Header) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, string(b)
}

func (e *env) status(id string) map[string]any {
	e.t.Helper()
	resp, body := e.get("/v1/public/sessions/" + id + "/status")
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("status of %s: %d %s", id, resp.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		e.t.Fatalf("status of %s: %v: %s", id, err, body)
	}
	return m
}
