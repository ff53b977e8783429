package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/persistence/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// runningDev is `checkoutd dev` run in-process by a test.
type runningDev struct {
	info   devInfo
	out    *bytes.Buffer
	cancel context.CancelFunc
	errc   chan error
}

func startDev(t *testing.T, cfg devConfig) *runningDev {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &runningDev{out: new(bytes.Buffer), cancel: cancel, errc: make(chan error, 1)}
	ready := make(chan devInfo, 1)
	go func() { d.errc <- dev(ctx, cfg, d.out, testLogger(), ready) }()
	select {
	case d.info = <-ready:
	case err := <-d.errc:
		cancel()
		t.Fatalf("dev failed to start: %v", err)
	case <-time.After(2 * time.Minute):
		cancel()
		t.Fatal("dev did not start within 2 minutes")
	}
	t.Cleanup(func() { d.stop(t) })
	return d
}

// stop cancels dev's context and waits for a clean return.
func (d *runningDev) stop(t *testing.T) {
	t.Helper()
	if d.cancel == nil {
		return
	}
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.errc:
		if err != nil {
			t.Errorf("dev returned %v after ctx was canceled", err)
		}
	case <-time.After(time.Minute):
		t.Error("dev did not stop within a minute of ctx being canceled")
	}
}

func (d *runningDev) call(t *testing.T, method, path, body string, out any) int {
	t.Helper()
	url := path
	if !strings.HasPrefix(url, "http") {
		url = d.info.APIURL + path
	}
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+d.info.APIKey)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %v: %s", method, path, resp.StatusCode, err, b)
		}
	}
	return resp.StatusCode
}

type sessionJSON struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	PaymentStatus string `json:"payment_status"`
	URL           string `json:"url"`
}

// payThroughThePage creates a session with the API, pays it with the
// hosted page's sandbox wallet button, and waits for the API to say paid:
// the README's walk.
func (d *runningDev) payThroughThePage(t *testing.T) {
	t.Helper()
	var s sessionJSON
	if code := d.call(t, http.MethodPost, "/v1/checkout/sessions", `{"amount": "12.50", "asset": "XLM"}`, &s); code != http.StatusCreated {
		t.Fatalf("create session: %d %+v", code, s)
	}
	if !strings.HasPrefix(s.URL, d.info.APIURL+"/c/") {
		t.Fatalf("session url %q is not on %s", s.URL, d.info.APIURL)
	}
	resp, err := http.Get(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Pay with sandbox wallet") {
		t.Fatalf("checkout page: %d, sandbox button present: %v", resp.StatusCode, strings.Contains(string(page), "Pay with sandbox wallet"))
	}
	var paid map[string]any
	if code := d.call(t, http.MethodPost, s.URL+"/sandbox-pay", "", &paid); code != http.StatusOK {
		t.Fatalf("sandbox pay: %d %v", code, paid)
	}
	deadline := time.Now().Add(20 * time.Second)
	for s.Status != "complete" {
		if time.Now().After(deadline) {
			t.Fatalf("session %s still %s/%s 20s after the sandbox payment", s.ID, s.Status, s.PaymentStatus)
		}
		time.Sleep(100 * time.Millisecond)
		d.call(t, http.MethodGet, "/v1/checkout/sessions/"+s.ID, "", &s)
	}
	if s.PaymentStatus != "paid" {
		t.Errorf("payment status %q, want paid", s.PaymentStatus)
	}
}

func TestDevServesAndStops(t *testing.T) {
	dsn := pgtest.New(t)
	cfg := devConfig{DatabaseURL: dsn, HTTPAddr: "127.0.0.1:0", SandboxAddr: "127.0.0.1:0",
		DataDir: t.TempDir(), LogLevel: "warn"}

	d := startDev(t, cfg)
	for _, u := range []string{d.info.APIURL, d.info.SandboxURL} {
		if strings.HasSuffix(u, ":0") || !strings.HasPrefix(u, "http://127.0.0.1:") {
			t.Errorf("address %q: want the real 127.0.0.1 port", u)
		}
	}
	resp, err := http.Get(d.info.APIURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %d", resp.StatusCode)
	}
	db, err := persistence.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, err := db.GetMerchant(context.Background(), d.info.MerchantID)
	if err != nil {
		t.Fatalf("demo merchant: %v", err)
	}
	if m.Name != devMerchantName {
		t.Errorf("merchant %+v", m)
	}
	if !persistence.LooksLikeAPIKey(d.info.APIKey) {
		t.Errorf("api key %q", d.info.APIKey)
	}
	out := d.out.String()
	for _, want := range []string{d.info.APIKey, "curl -s " + d.info.APIURL + "/v1/checkout/sessions", d.info.MerchantID} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	d.payThroughThePage(t)
	d.stop(t)

	// A second run reuses the merchant with a new key, and still sees
	// payments although the sandbox starts again from its first ledger.
	d2 := startDev(t, cfg)
	if d2.info.MerchantID != d.info.MerchantID {
		t.Errorf("second run made merchant %s, want %s again", d2.info.MerchantID, d.info.MerchantID)
	}
	if d2.info.APIKey == d.info.APIKey {
		t.Error("second run reused the API key")
	}
	d2.payThroughThePage(t)
	var list struct {
		Data []sessionJSON `json:"data"`
	}
	d2.call(t, http.MethodGet, "/v1/checkout/sessions", "", &list)
	if len(list.Data) != 2 {
		t.Errorf("sessions after two runs: %d, want 2", len(list.Data))
	}
}

// The local Postgres is created once and kept: a second start finds the
// first one's data.
func TestDevPostgresKeepsData(t *testing.T) {
	base, err := os.MkdirTemp("", "checkoutd-devpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	// As root, Postgres runs as the postgres user, which must reach the
	// directory; MkdirTemp makes it 0700.
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dataDir := filepath.Join(base, "data")

	pg, err := startDevPostgres(ctx, dataDir, filepath.Join(base, "fallback"), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if pg.movedFrom != "" || pg.dataDir != filepath.Join(dataDir, "postgres") {
		t.Errorf("data in %s (moved from %q), want %s", pg.dataDir, pg.movedFrom, filepath.Join(dataDir, "postgres"))
	}
	db, err := persistence.Open(ctx, pg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Migrate(ctx)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := pg.stop(); err != nil {
		t.Fatal(err)
	}

	pg, err = startDevPostgres(ctx, dataDir, filepath.Join(base, "fallback"), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer pg.stop()
	db, err = persistence.Open(ctx, pg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, err := db.SchemaVersion(ctx); err != nil || v < 1 {
		t.Errorf("schema version after a restart: %d, %v; want the migrations kept", v, err)
	}
	conn, err := pgx.Connect(ctx, pg.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var naptime string
	if err := conn.QueryRow(ctx, `SELECT setting || unit FROM pg_settings WHERE name = 'autovacuum_naptime'`).Scan(&naptime); err != nil {
		t.Fatal(err)
	}
	if naptime != devAutovacuumNaptime {
		t.Errorf("dev's Postgres autovacuum_naptime = %s, want %s", naptime, devAutovacuumNaptime)
	}
}

// As root, a data directory the postgres user cannot reach moves to the
// fallback, and says so.
func TestDevPostgresFallsBack(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root runs Postgres as another user")
	}
	base, err := os.MkdirTemp("", "checkoutd-devpg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	private := filepath.Join(base, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	fallback := filepath.Join(base, "fallback")
	pg, err := startDevPostgres(context.Background(), filepath.Join(private, "data"), fallback, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer pg.stop()
	if pg.movedFrom != filepath.Join(private, "data") || pg.dataDir != filepath.Join(fallback, "postgres") {
		t.Errorf("data in %s moved from %q; want %s moved from %s", pg.dataDir, pg.movedFrom,
			filepath.Join(fallback, "postgres"), filepath.Join(private, "data"))
	}
	if _, err := os.Stat(filepath.Join(private, "data", "postgres")); !os.IsNotExist(err) {
		t.Errorf("the unreachable data directory was left behind: %v", err)
	}
}

func TestParseDevFlags(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	c, err := parseDevFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:8080" || c.SandboxAddr != "127.0.0.1:8000" || c.DataDir != ".checkoutd" {
		t.Errorf("defaults %+v", c)
	}
	if _, err := parseDevFlags([]string{"--http-addr", "nonsense"}, io.Discard); err == nil {
		t.Error("a bad --http-addr was accepted")
	}
}
