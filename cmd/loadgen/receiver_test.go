package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/checkoutd/checkoutd/webhooks"
)

// send signs body the way checkoutd's delivery engine does and posts it
// to the receiver; it returns the status.
func send(t *testing.T, rcv *receiver, path, id string, at time.Time, body string, secrets ...webhooks.Secret) int {
	t.Helper()
	req, err := webhooks.NewRequest(context.Background(), "http://127.0.0.1"+path, id, at, []byte(body), secrets...)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	rcv.ServeHTTP(rec, req)
	return rec.Code
}

func TestReceiverVerifiesWithTheStandardWebhooksLibrary(t *testing.T) {
	secret, other := webhooks.NewSecret(), webhooks.NewSecret()
	now := time.Now()
	rcv := newReceiver(time.Now)
	if err := rcv.addEndpoint("/hooks/0", secret.Reveal()); err != nil {
		t.Fatal(err)
	}
	done := rcv.expect("cs_1", map[string]int{"payment.received": 1, "checkout.session.completed": 1})
	received := `{"type":"payment.received","timestamp":"2030-01-01T00:00:00.000000Z","data":{"session":{"id":"cs_1"},"payment":{"transaction_hash":"abc"}}}`
	completed := `{"type":"checkout.session.completed","timestamp":"2030-01-01T00:00:00.000000Z","data":{"session":{"id":"cs_1"},"payment":{"transaction_hash":"abc"}}}`

	if code := send(t, rcv, "/hooks/0", "evt_1", now, received, secret); code != http.StatusNoContent {
		t.Fatalf("a good webhook got %d", code)
	}
	if code := send(t, rcv, "/hooks/0", "evt_1", now, received, secret); code != http.StatusNoContent {
		t.Fatalf("a redelivery got %d", code)
	}
	select {
	case <-done:
		t.Fatal("done before the completed event")
	default:
	}
	// A rotated secret signs with both: the current one must be enough.
	if code := send(t, rcv, "/hooks/0", "evt_2", now, completed, other, secret); code != http.StatusNoContent {
		t.Fatalf("a webhook signed with two secrets got %d", code)
	}
	select {
	case <-done:
	default:
		t.Fatal("not done after every expected event")
	}

	bad := []struct {
		name   string
		path   string
		at     time.Time
		body   string
		secret webhooks.Secret
	}{
		{"another secret", "/hooks/0", now, received, other},
		{"too old", "/hooks/0", now.Add(-10 * time.Minute), received, secret},
	}
	for _, b := range bad {
		if code := send(t, rcv, b.path, "evt_bad", b.at, b.body, b.secret); code != http.StatusUnauthorized {
			t.Errorf("%s: got %d, want 401", b.name, code)
		}
	}
	// A body changed after signing.
	req, _ := webhooks.NewRequest(context.Background(), "http://127.0.0.1/hooks/0", "evt_3", now, []byte(received), secret)
	req.Body = io.NopCloser(strings.NewReader(`{"type":"payment.received","data":{"session":{"id":"cs_2"}}}`))
	rec := httptest.NewRecorder()
	rcv.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Errorf("tampered body: got %d, want 401", rec.Code)
	}

	snap := rcv.snapshot(map[string]bool{"cs_1": true})
	if got := snap.Sessions["cs_1"].ByType; got["payment.received"] != 1 || got["checkout.session.completed"] != 1 {
		t.Errorf("by type %v, want one of each", got)
	}
	if snap.Duplicates != 1 || snap.Deliveries != 3 || len(snap.Arrivals) != 2 {
		t.Errorf("duplicates %d, deliveries %d, arrivals %d; want 1, 3, 2", snap.Duplicates, snap.Deliveries, len(snap.Arrivals))
	}
	if len(snap.BadSigs) != 3 {
		t.Errorf("bad signatures %q, want 3", snap.BadSigs)
	}
	if _, ok := snap.Sessions["cs_1"].PaymentAt["abc"]; !ok {
		t.Error("the payment's arrival was not recorded")
	}
}

func TestReceiverCountsOtherSessionsAsForeign(t *testing.T) {
	secret := webhooks.NewSecret()
	rcv := newReceiver(time.Now)
	_ = rcv.addEndpoint("/hooks/0", secret.Reveal())
	body := `{"type":"payment.received","data":{"session":{"id":"cs_not_ours"}}}`
	send(t, rcv, "/hooks/0", "evt_9", time.Now(), body, secret)
	if code := send(t, rcv, "/hooks/1", "evt_9", time.Now(), body, secret); code != http.StatusNotFound {
		t.Errorf("unknown path got %d, want 404", code)
	}
	if snap := rcv.snapshot(map[string]bool{"cs_1": true}); snap.Foreign != 1 || len(snap.Sessions) != 0 {
		t.Errorf("foreign %d, sessions %v; want 1 and none", snap.Foreign, snap.Sessions)
	}
}
