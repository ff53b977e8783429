package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stellar/go-stellar-sdk/keypair"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/persistence/pgtest"
	"github.com/checkoutd/checkoutd/stellar/sandbox"
)

// runCLI runs checkoutd in-process and returns its stdout, stderr and error.
func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

// decodeOne decodes stdout as exactly one JSON object of strings.
func decodeOne(t *testing.T, stdout string) map[string]string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var m map[string]string
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("stdout is not a JSON object of strings: %v\n%s", err, stdout)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("stdout has more than one JSON object:\n%s", stdout)
	}
	return m
}

func TestMerchantCLI(t *testing.T) {
	dsn := pgtest.New(t)
	ctx := context.Background()
	db, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	account := keypair.MustRandom().Address()

	stdout, stderr, err := runCLI(t, "merchant", "create", "--name", "Corner Shop", "--account", account, "--database-url", dsn)
	if err != nil {
		t.Fatalf("merchant create: %v\n%s", err, stderr)
	}
	out := decodeOne(t, stdout)
	merchantID, key := out["merchant_id"], out["api_key"]
	if !checkout.HasPrefix(merchantID, checkout.PrefixMerchant) || !strings.HasPrefix(key, "sk_test_") ||
		!persistence.LooksLikeAPIKey(key) || !checkout.HasPrefix(out["key_id"], checkout.PrefixAPIKey) || len(out) != 3 {
		t.Fatalf("merchant create printed %v", out)
	}
	m, err := db.GetMerchant(ctx, merchantID)
	if err != nil || m.Name != "Corner Shop" || m.Account != account {
		t.Fatalf("stored merchant %+v, %v", m, err)
	}
	k, err := db.AuthenticateAPIKey(ctx, key)
	if err != nil || k.MerchantID != merchantID || k.ID != out["key_id"] {
		t.Fatalf("the printed key does not authenticate: %+v, %v", k, err)
	}

	// A second key, live on the public network.
	stdout, stderr, err = runCLI(t, "merchant", "keys", "create", "--merchant", merchantID, "--database-url", dsn, "--network", "public")
	if err != nil {
		t.Fatalf("keys create: %v\n%s", err, stderr)
	}
	second := decodeOne(t, stdout)
	if !strings.HasPrefix(second["api_key"], "sk_live_") || second["merchant_id"] != merchantID || second["api_key"] == key {
		t.Fatalf("keys create printed %v", second)
	}
	if _, err := db.AuthenticateAPIKey(ctx, second["api_key"]); err != nil {
		t.Fatalf("second key: %v", err)
	}

	// Revoke the first by id and the second by prefix.
	stdout, stderr, err = runCLI(t, "merchant", "keys", "revoke", "--key", out["key_id"], "--database-url", dsn)
	if err != nil {
		t.Fatalf("revoke by id: %v\n%s", err, stderr)
	}
	if r := decodeOne(t, stdout); r["key_id"] != out["key_id"] || r["revoked_at"] == "" {
		t.Fatalf("revoke printed %v", r)
	}
	if _, err := db.AuthenticateAPIKey(ctx, key); err != persistence.ErrAPIKeyInvalid {
		t.Fatalf("revoked key still works: %v", err)
	}
	prefix := second["api_key"][:len("sk_live_")+8]
	if _, stderr, err := runCLI(t, "merchant", "keys", "revoke", "--prefix", prefix, "--database-url", dsn); err != nil {
		t.Fatalf("revoke by prefix: %v\n%s", err, stderr)
	}
	if _, err := db.AuthenticateAPIKey(ctx, second["api_key"]); err != persistence.ErrAPIKeyInvalid {
		t.Fatalf("key revoked by prefix still works: %v", err)
	}
	if n := countRows(t, db, dsn); n != 2 {
		t.Fatalf("%d keys stored, want 2", n)
	}

	for _, tc := range []struct {
		name  string
		args  []string
		usage bool
	}{
		{"bad account", []string{"merchant", "create", "--name", "X", "--account", "GNOPE", "--database-url", dsn}, true},
		{"no name", []string{"merchant", "create", "--account", account, "--database-url", dsn}, true},
		{"no database", []string{"merchant", "create", "--name", "X", "--account", account, "--database-url", ""}, true},
		{"bad network", []string{"merchant", "create", "--name", "X", "--account", account, "--database-url", dsn, "--network", "mars"}, true},
		{"unknown merchant", []string{"merchant", "keys", "create", "--merchant", "mer_aaaaaaaaaaaaaaaaaaaaaaaa", "--database-url", dsn}, false},
		{"malformed merchant", []string{"merchant", "keys", "create", "--merchant", "shop", "--database-url", dsn}, true},
		{"revoke both", []string{"merchant", "keys", "revoke", "--key", out["key_id"], "--prefix", prefix, "--database-url", dsn}, true},
		{"revoke neither", []string{"merchant", "keys", "revoke", "--database-url", dsn}, true},
		{"revoke unknown", []string{"merchant", "keys", "revoke", "--key", "key_aaaaaaaaaaaaaaaaaaaaaaaa", "--database-url", dsn}, false},
		{"no subcommand", []string{"merchant"}, true},
		{"unknown subcommand", []string{"merchant", "delete"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, _, err := runCLI(t, tc.args...)
			if err == nil {
				t.Fatalf("no error; stdout %s", stdout)
			}
			if isUsage := errors.As(err, new(*usageError)); isUsage != tc.usage {
				t.Fatalf("usage error %v, want %v: %v", isUsage, tc.usage, err)
			}
			if stdout != "" {
				t.Fatalf("printed %q on failure", stdout)
			}
		})
	}
	var merchants int
	if err := rawQuery(t, dsn, `SELECT count(*) FROM merchants`, &merchants); err != nil || merchants != 1 {
		t.Fatalf("%d merchants after the failures (%v)", merchants, err)
	}
}

func countRows(t *testing.T, db *persistence.DB, dsn string) int {
	t.Helper()
	var n int
	if err := rawQuery(t, dsn, `SELECT count(*) FROM api_keys`, &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// startSandbox runs a sandbox network closing a ledger every 100 ms,
// served over HTTP on 127.0.0.1, until the test ends.
func startSandbox(t *testing.T) (*sandbox.Network, *httptest.Server) {
	t.Helper()
	n, err := sandbox.New(sandbox.Config{LedgerClose: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hsrv := httptest.NewServer(n.Handler())
	t.Cleanup(hsrv.Close)
	t.Cleanup(func() { _ = n.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return n, hsrv
}

// TestServeEndToEnd runs `checkoutd merchant create` and then the real
// serve against a sandbox network, and uses the printed key over HTTP.
func TestServeEndToEnd(t *testing.T) {
	dsn := pgtest.New(t)
	n, hsrv := startSandbox(t)
	kp := keypair.MustRandom()
	if err := n.Fund(context.Background(), kp.Address()); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runCLI(t, "merchant", "create", "--name", "Served", "--account", kp.Address(), "--database-url", dsn)
	if err != nil {
		t.Fatalf("merchant create: %v\n%s", err, stderr)
	}
	key := decodeOne(t, stdout)["api_key"]

	cfg, err := parseServeFlags([]string{"--database-url", dsn, "--network", "sandbox", "--horizon-url", hsrv.URL,
		"--http-addr", "127.0.0.1:0", "--public-url", "https://pay.example.test"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, slog.New(slog.DiscardHandler), ready) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	base := "http://" + addr

	req, _ := http.NewRequest(http.MethodPost, base+"/v1/checkout/sessions", strings.NewReader(`{"amount":"2","asset":"XLM"}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || res.Header.Get("Request-Id") == "" {
		t.Fatalf("create session: %d %s", res.StatusCode, body)
	}
	var s struct {
		ID  string `json:"id"`
		URL string `json:"url"`
	}
	if err := json.Unmarshal(body, &s); err != nil || s.URL != "https://pay.example.test/c/"+s.ID {
		t.Fatalf("session %s (%v)", body, err)
	}
	// The hosted page is mounted on the same server, without a key.
	page, err := http.Get(base + "/c/" + s.ID)
	if err != nil {
		t.Fatal(err)
	}
	page.Body.Close()
	if page.StatusCode != http.StatusOK || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("hosted page: %d %s", page.StatusCode, page.Header.Get("Content-Type"))
	}
	for _, path := range []string{"/healthz", "/readyz", "/openapi.json"} {
		// The session's account got a watcher just now; /readyz answers 503
		// until that watcher's stream is open.
		deadline := time.Now().Add(10 * time.Second)
		for {
			r, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d", path, r.StatusCode)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not shut down")
	}
}

// rawQuery runs a one-value query on its own connection.
func rawQuery(t *testing.T, dsn, query string, dst any) error {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	return conn.QueryRow(context.Background(), query).Scan(dst)
}
