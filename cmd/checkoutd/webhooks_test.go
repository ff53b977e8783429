package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"

	"github.com/checkoutd/checkoutd/persistence/pgtest"
	"github.com/checkoutd/checkoutd/stellar/sandbox/wallet"
)

// servedAPI is a running `checkoutd serve` and one merchant's key.
type servedAPI struct {
	base string
	key  string
	stop func(t *testing.T)
}

// startServe runs serve in-process with the command line args, as
// `checkoutd serve` would, and waits until it listens.
func startServe(t *testing.T, key string, args ...string) *servedAPI {
	t.Helper()
	cfg, err := parseServeFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler), ready) }()
	s := &servedAPI{key: key}
	stopped := false
	s.stop = func(t *testing.T) {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("serve did not shut down")
		}
	}
	t.Cleanup(func() { s.stop(t) })
	select {
	case addr := <-ready:
		s.base = "http://" + addr
	case err := <-done:
		stopped = true
		t.Fatalf("serve: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not start")
	}
	return s
}

// call makes an authenticated API call, decodes the answer into out (when
// not nil) and returns the status and body.
func (s *servedAPI) call(t *testing.T, method, path, body string, out any) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	return res.StatusCode, b
}

// hookReceiver is a merchant's webhook receiver on 127.0.0.1.
type hookReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	header []http.Header
	body   [][]byte
}

func newHookReceiver(t *testing.T) *hookReceiver {
	rv := &hookReceiver{}
	rv.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rv.mu.Lock()
		rv.header, rv.body = append(rv.header, r.Header.Clone()), append(rv.body, b)
		rv.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rv.Close)
	return rv
}

func (rv *hookReceiver) count() int {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return len(rv.body)
}

func (rv *hookReceiver) hit(i int) (http.Header, []byte) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	return rv.header[i], rv.body[i]
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeDeliversWebhooks runs the real serve, configured by the flags
// documented in docs/configuration.md, against the sandbox network. A
// session paid on the sandbox produces a checkout.session.completed webhook
// that a receiver on 127.0.0.1 gets and verifies with the Standard Webhooks
// reference library; it is listed and redelivered through the API with the
// same webhook-id. Serve started again without --webhooks-allowlist
// refuses to register the loopback receiver and, at connect time, to
// deliver to the one already registered.
func TestServeDeliversWebhooks(t *testing.T) {
	dsn := pgtest.New(t)
	n, hsrv := startSandbox(t)
	merchantKP, payer := keypair.MustRandom(), keypair.MustRandom()
	for _, kp := range []*keypair.Full{merchantKP, payer} {
		if err := n.Fund(context.Background(), kp.Address()); err != nil {
			t.Fatal(err)
		}
	}
	stdout, stderr, err := runCLI(t, "merchant", "create", "--name", "Hooked", "--account", merchantKP.Address(), "--database-url", dsn)
	if err != nil {
		t.Fatalf("merchant create: %v\n%s", err, stderr)
	}
	key := decodeOne(t, stdout)["api_key"]
	common := []string{"--database-url", dsn, "--network", "sandbox", "--horizon-url", hsrv.URL, "--http-addr", "127.0.0.1:0"}
	rv := newHookReceiver(t)

	s := startServe(t, key, append(common, "--webhooks-allow-insecure", "--webhooks-allowlist", "127.0.0.1")...)
	var ep struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if code, body := s.call(t, http.MethodPost, "/v1/webhook_endpoints",
		`{"url":"`+rv.URL+`/hooks","events":["checkout.session.completed"]}`, &ep); code != http.StatusCreated {
		t.Fatalf("create endpoint: %d %s", code, body)
	}
	var session struct {
		ID    string `json:"id"`
		PayTo struct {
			Destination string `json:"destination"`
			Memo        string `json:"memo"`
		} `json:"pay_to"`
	}
	if code, body := s.call(t, http.MethodPost, "/v1/checkout/sessions", `{"amount":"2","asset":"XLM","memo_type":"text"}`, &session); code != http.StatusCreated {
		t.Fatalf("create session: %d %s", code, body)
	}
	w := wallet.New(&horizonclient.Client{HorizonURL: hsrv.URL, HTTP: hsrv.Client()}, n.Passphrase())
	pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer pcancel()
	if _, err := w.Pay(pctx, payer, session.PayTo.Destination, txnbuild.NativeAsset{}, "2", txnbuild.MemoText(session.PayTo.Memo)); err != nil {
		t.Fatal(err)
	}

	waitFor(t, 30*time.Second, "the completion webhook", func() bool { return rv.count() >= 1 })
	header, body := rv.hit(0)
	wh, err := standardwebhooks.NewWebhook(ep.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, header); err != nil {
		t.Fatalf("the reference library refused the webhook: %v\n%v\n%s", err, header, body)
	}
	if err := wh.Verify([]byte(strings.Replace(string(body), `"checkout.session.completed"`, `"checkout.session.expired"`, 1)), header); err == nil {
		t.Fatal("a tampered body verified")
	}
	var payload struct {
		Type string `json:"type"`
		Data struct {
			Session json.RawMessage `json:"session"`
			Payment json.RawMessage `json:"payment"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &payload); err != nil {
		t.Fatal(err)
	}
	_, apiSession := s.call(t, http.MethodGet, "/v1/checkout/sessions/"+session.ID, "", nil)
	if payload.Type != "checkout.session.completed" || payload.Data.Payment == nil ||
		strings.TrimSpace(string(apiSession)) != string(payload.Data.Session) {
		t.Fatalf("webhook %s\nwant the session as the API shows it:\n%s", body, apiSession)
	}
	eventID := header.Get("webhook-id")
	if code, _ := s.call(t, http.MethodGet, "/v1/events/"+eventID, "", nil); !strings.HasPrefix(eventID, "evt_") || code != http.StatusOK {
		t.Fatalf("webhook-id %q is not one of the merchant's events (%d)", eventID, code)
	}

	type deliveryList struct {
		Data []struct {
			ID        string `json:"id"`
			Status    string `json:"status"`
			Attempts  int    `json:"attempts"`
			LastError string `json:"last_error"`
		} `json:"data"`
	}
	var succeeded deliveryList
	waitFor(t, 10*time.Second, "the delivery to be recorded", func() bool {
		s.call(t, http.MethodGet, "/v1/webhook_endpoints/"+ep.ID+"/deliveries?status=succeeded", "", &succeeded)
		return len(succeeded.Data) == 1 && succeeded.Data[0].Attempts == 1
	})

	if code, b := s.call(t, http.MethodPost, "/v1/events/"+eventID+"/redeliver", `{"endpoint_id":"`+ep.ID+`"}`, nil); code != http.StatusOK {
		t.Fatalf("redeliver: %d %s", code, b)
	}
	waitFor(t, 10*time.Second, "the redelivery", func() bool { return rv.count() == 2 })
	header2, body2 := rv.hit(1)
	if header2.Get("webhook-id") != eventID || string(body2) != string(body) {
		t.Fatalf("the redelivery differs: webhook-id %q, body %s", header2.Get("webhook-id"), body2)
	}
	if err := wh.Verify(body2, header2); err != nil {
		t.Fatalf("the redelivery does not verify: %v", err)
	}
	s.stop(t)

	// Without the allowlist, loopback is internal: refused at registration,
	// and at connect time for the endpoint already registered.
	s = startServe(t, key, append(common, "--webhooks-allow-insecure")...)
	code, b := s.call(t, http.MethodPost, "/v1/webhook_endpoints", `{"url":"`+rv.URL+`/other","events":["*"]}`, nil)
	if code != http.StatusBadRequest || !strings.Contains(string(b), "url_forbidden") {
		t.Fatalf("registering a loopback endpoint without the allowlist: %d %s", code, b)
	}
	if code, b := s.call(t, http.MethodPost, "/v1/events/"+eventID+"/redeliver", `{"endpoint_id":"`+ep.ID+`"}`, nil); code != http.StatusOK {
		t.Fatalf("redeliver: %d %s", code, b)
	}
	var pending deliveryList
	waitFor(t, 10*time.Second, "the refused attempt", func() bool {
		s.call(t, http.MethodGet, "/v1/webhook_endpoints/"+ep.ID+"/deliveries?status=pending", "", &pending)
		return len(pending.Data) == 1 && pending.Data[0].Attempts == 1
	})
	if !strings.Contains(pending.Data[0].LastError, "internal address") || rv.count() != 2 {
		t.Fatalf("delivery %+v, receiver hits %d: want refused at connect time", pending.Data[0], rv.count())
	}
}
