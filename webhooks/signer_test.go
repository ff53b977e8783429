package webhooks_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/checkoutd/checkoutd/webhooks"
)

// TestSignVerifiesWithReferenceLibrary checks our signatures with the
// Standard Webhooks reference library, not with our own code.
func TestSignVerifiesWithReferenceLibrary(t *testing.T) {
	secret := webhooks.NewSecret()
	other := webhooks.NewSecret()
	body, err := webhooks.Body("checkout.session.completed", time.Now(), map[string]string{"id": "cs_1"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	req, err := webhooks.NewRequest(t.Context(), "https://example.com/hook", "evt_abc", now, body, secret, other)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(req.Header.Get(webhooks.HeaderSignature), "v1,"); got != 2 {
		t.Fatalf("signature header %q: want two v1 signatures", req.Header.Get(webhooks.HeaderSignature))
	}
	for name, s := range map[string]webhooks.Secret{"current": secret, "previous": other} {
		wh, err := standardwebhooks.NewWebhook(s.Reveal())
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, req.Header); err != nil {
			t.Errorf("%s secret: reference library refused a good message: %v", name, err)
		}
		tampered := bytes.Replace(body, []byte("cs_1"), []byte("cs_2"), 1)
		if err := wh.Verify(tampered, req.Header); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
			t.Errorf("%s secret: tampered body: err = %v, want no matching signature", name, err)
		}
	}

	wh, _ := standardwebhooks.NewWebhook(webhooks.NewSecret().Reveal())
	if err := wh.Verify(body, req.Header); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("unrelated secret: err = %v, want no matching signature", err)
	}

	old, _ := webhooks.NewRequest(t.Context(), "https://example.com/hook", "evt_abc", now.Add(-10*time.Minute), body, secret)
	wh, _ = standardwebhooks.NewWebhook(secret.Reveal())
	if err := wh.Verify(body, old.Header); !errors.Is(err, standardwebhooks.ErrMessageTooOld) {
		t.Errorf("old timestamp: err = %v, want too old", err)
	}
}

// TestSignMatchesReferenceSigner compares our header with the reference
// library's own signature of the same message.
func TestSignMatchesReferenceSigner(t *testing.T) {
	secret := webhooks.NewSecret()
	ts := time.Unix(1674087231, 0)
	body := []byte(`{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1"}}`)
	got, err := webhooks.Sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, body, secret)
	if err != nil {
		t.Fatal(err)
	}
	wh, _ := standardwebhooks.NewWebhook(secret.Reveal())
	want, err := wh.Sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("Sign = %q, reference = %q", got, want)
	}
}

func TestSecret(t *testing.T) {
	s := webhooks.NewSecret()
	key, err := s.Key()
	if err != nil || len(key) != webhooks.SecretBytes {
		t.Fatalf("Key() = %d bytes, %v", len(key), err)
	}
	if !strings.HasPrefix(s.Reveal(), "whsec_") {
		t.Fatalf("secret %q lacks whsec_", s.Reveal())
	}
	if webhooks.NewSecret() == s {
		t.Fatal("two secrets are equal")
	}
	raw := s.Reveal()
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "secret", s)
	j, _ := json.Marshal(map[string]any{"secret": s})
	for what, out := range map[string]string{
		"%v": fmt.Sprintf("%v", s), "%s": fmt.Sprintf("%s", s), "%#v": fmt.Sprintf("%#v", s),
		"slog": logs.String(), "json": string(j), "error": fmt.Errorf("boom: %v", s).Error(),
	} {
		if strings.Contains(out, raw[6:]) {
			t.Errorf("%s reveals the secret: %s", what, out)
		}
	}
	for _, bad := range []webhooks.Secret{"", "whsec_", "abc", "whsec_!!!", "whsec_" + "AAAA"} {
		if _, err := bad.Key(); !errors.Is(err, webhooks.ErrBadSecret) {
			t.Errorf("Key(%q) err = %v", bad.Reveal(), err)
		}
		if _, err := webhooks.Sign("evt_1", time.Now(), nil, bad); err == nil || strings.Contains(err.Error(), "whsec_!!!") {
			t.Errorf("Sign with %q: err = %v", bad.Reveal(), err)
		}
	}
	if _, err := webhooks.Sign("evt.1", time.Now(), nil, s); err == nil {
		t.Error("an id with a full stop was signed")
	}
}

func TestBody(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.FixedZone("x", 3600))
	b, err := webhooks.Body("checkout.session.completed", at, map[string]any{"session": map[string]string{"id": "cs_1"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"checkout.session.completed","timestamp":"2026-01-02T02:04:05.123456Z","data":{"session":{"id":"cs_1"}}}`
	if string(b) != want {
		t.Fatalf("Body =\n %s\nwant\n %s", b, want)
	}
}
