package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkoutd/checkoutd/persistence"
)

// lockedBuffer is a bytes.Buffer that many goroutines' log lines share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// secretForms returns the ways a secret could show up in text: itself, the
// part after its prefix, and for a webhook secret the HMAC key in base64
// (standard, URL and raw) and hex.
func secretForms(t *testing.T, secret string) []string {
	t.Helper()
	forms := []string{secret}
	switch {
	case strings.HasPrefix(secret, "whsec_"):
		b64 := strings.TrimPrefix(secret, "whsec_")
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			t.Fatal(err)
		}
		forms = append(forms, b64, strings.TrimRight(b64, "="), base64.URLEncoding.EncodeToString(key),
			base64.RawStdEncoding.EncodeToString(key), hex.EncodeToString(key))
	default:
		// An API key's first 8 random characters are its public prefix;
		// the 24 after them are what must never appear.
		rest := strings.TrimPrefix(strings.TrimPrefix(secret, persistence.APIKeyPrefixTest), persistence.APIKeyPrefixLive)
		forms = append(forms, rest, rest[8:])
	}
	return forms
}

// TestSecretsStayOutOfLogsAndMetrics runs a real flow through serve —
// a merchant and a second key, a webhook endpoint, a secret rotation,
// sessions whose events are delivered (and fail, and are retried) to a
// receiver, and failing authentication with near misses of the key —
// capturing every log line at debug level as JSON, and a /metrics scrape.
// No API key and no webhook signing secret, in any encoding, is in them.
func TestSecretsStayOutOfLogsAndMetrics(t *testing.T) {
	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var hits atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		// Fail the first deliveries so that failures are logged and
		// retried, then accept.
		if hits.Add(1) <= 2 {
			http.Error(w, "receiver says no", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	s := startServed(t, logger, "--webhooks-allow-insecure", "--webhooks-allowlist", "127.0.0.1")

	// A second key, made with the CLI.
	stdout, stderr, err := runCLI(t, "merchant", "keys", "create", "--merchant", s.merchantID, "--database-url", s.dsn)
	if err != nil {
		t.Fatalf("keys create: %v\n%s", err, stderr)
	}
	secondKey := decodeOne(t, stdout)["api_key"]
	cliErr := s.cliStderr + stderr

	var secrets []string
	code, _, body := s.call(t, http.MethodPost, "/v1/webhook_endpoints", "", `{"url":"`+recv.URL+`/hook","events":["*"]}`)
	if code != http.StatusCreated {
		t.Fatalf("create endpoint: %d %s", code, body)
	}
	var ep struct{ ID, Secret string }
	if err := json.Unmarshal(body, &ep); err != nil || !strings.HasPrefix(ep.Secret, "whsec_") {
		t.Fatalf("endpoint %s: %v", body, err)
	}
	secrets = append(secrets, ep.Secret)
	code, _, body = s.call(t, http.MethodPost, "/v1/webhook_endpoints/"+ep.ID+"/rotate_secret", "Bearer "+secondKey, "")
	var rotated struct{ Secret string }
	if code != http.StatusOK || json.Unmarshal(body, &rotated) != nil || rotated.Secret == ep.Secret {
		t.Fatalf("rotate: %d %s", code, body)
	}
	secrets = append(secrets, rotated.Secret)

	// Sessions and their events, delivered signed with both secrets.
	for range 3 {
		code, _, body := s.call(t, http.MethodPost, "/v1/checkout/sessions", "", `{"amount":"1","asset":"XLM"}`)
		var sess struct{ ID string }
		if code != http.StatusCreated || json.Unmarshal(body, &sess) != nil {
			t.Fatalf("create session: %d %s", code, body)
		}
		if code, _, body := s.call(t, http.MethodPost, "/v1/checkout/sessions/"+sess.ID+"/cancel", "", ""); code != http.StatusOK {
			t.Fatalf("cancel: %d %s", code, body)
		}
	}

	// Failing authentication: near misses of the key, and the key where it
	// does not belong.
	near := []byte(s.key)
	near[len(near)-1] = map[bool]byte{true: 'b', false: 'a'}[near[len(near)-1] == 'a']
	for _, auth := range []string{
		"Bearer " + string(near), "Bearer " + s.key[:len(s.key)-1], "Bearer " + s.key + "x",
		"Basic " + s.key, "Bearer " + strings.ToUpper(s.key), s.key,
	} {
		if code, _, body := s.call(t, http.MethodGet, "/v1/events", auth, ""); code != http.StatusUnauthorized {
			t.Fatalf("auth %q: %d %s", auth, code, body)
		}
	}
	s.call(t, http.MethodGet, "/v1/events/"+s.key, "", "")
	s.call(t, http.MethodGet, "/v1/nope/"+s.key, "", "")
	s.call(t, http.MethodGet, "/v1/checkout/sessions?limit=abc&api_key="+s.key, "", "")

	deadline := time.Now().Add(30 * time.Second)
	for hits.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got %d deliveries in 30s, want 4", hits.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var metrics []byte
	if res, err := http.Get(s.base + "/metrics"); err == nil {
		if res.StatusCode == http.StatusOK {
			metrics, _ = io.ReadAll(res.Body)
		}
		res.Body.Close()
	}
	s.stop()

	out := logs.String()
	for _, want := range []string{`"msg":"request"`, `"status":401`, ep.ID} {
		if !strings.Contains(out, want) {
			t.Fatalf("the logs lack %s: the capture is not working\n%s", want, out)
		}
	}
	if metrics == nil {
		t.Log("no /metrics route: only the logs are checked")
	}
	var forms []string
	for _, k := range []string{s.key, secondKey} {
		forms = append(forms, secretForms(t, k)...)
	}
	for _, sec := range secrets {
		forms = append(forms, secretForms(t, sec)...)
	}
	forms = append(forms, string(near))
	for _, f := range forms {
		for name, text := range map[string]string{"logs": out, "metrics": string(metrics), "CLI stderr": cliErr} {
			if i := strings.Index(text, f); i >= 0 {
				t.Errorf("%s contain a secret (%.12s…): …%s…", name, f, text[max(0, i-200):min(len(text), i+len(f)+50)])
			}
		}
	}
	t.Logf("checked %d KiB of logs and %d KiB of metrics for %d secret forms", len(out)>>10, len(metrics)>>10, len(forms))
}
