package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/stellar/go-stellar-sdk/txnbuild"

	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/webhooks"
)

// webhookEndpointJSON is an endpoint as a client decodes it.
type webhookEndpointJSON struct {
	ID                      string     `json:"id"`
	Object                  string     `json:"object"`
	URL                     string     `json:"url"`
	Description             string     `json:"description"`
	Events                  []string   `json:"events"`
	Status                  string     `json:"status"`
	Secret                  string     `json:"secret"`
	PreviousSecretExpiresAt *time.Time `json:"previous_secret_expires_at"`
}

func decodeEndpoint(t *testing.T, r response) webhookEndpointJSON {
	t.Helper()
	var o webhookEndpointJSON
	if err := json.Unmarshal(r.body, &o); err != nil {
		t.Fatalf("decode endpoint %s: %v", r.body, err)
	}
	return o
}

func insecureLoopback(c *Config) {
	p, _ := webhooks.Policy{AllowInsecure: true}.ParseAllowlist([]string{"127.0.0.1"})
	c.Webhooks.Policy = p
}

func TestWebhookEndpointsAPI(t *testing.T) {
	e := newEnv(t, nil) // production policy: https only, public hosts only
	res := e.post("/v1/webhook_endpoints", e.a.key,
		`{"url":"https://hooks.example.com/checkoutd","events":["checkout.session.completed","payment.received"],"description":"orders"}`)
	if res.status != http.StatusCreated {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	created := decodeEndpoint(t, res)
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(created.Secret, "whsec_"))
	if !strings.HasPrefix(created.ID, "we_") || created.Object != "webhook_endpoint" || !strings.HasPrefix(created.Secret, "whsec_") ||
		err != nil || len(key) < 24 || created.Status != "enabled" || len(created.Events) != 2 || created.Description != "orders" {
		t.Fatalf("created %+v", created)
	}

	got := decodeEndpoint(t, e.get("/v1/webhook_endpoints/"+created.ID, e.a.key))
	if got.ID != created.ID || got.Secret != "" || got.URL != created.URL {
		t.Fatalf("get %+v: want the endpoint without its secret", got)
	}
	if strings.Contains(string(e.get("/v1/webhook_endpoints", e.a.key).body), created.Secret) {
		t.Fatal("the list shows the secret")
	}

	// Another merchant sees none of it.
	for _, r := range []request{
		{method: http.MethodGet, path: "/v1/webhook_endpoints/" + created.ID},
		{method: http.MethodDelete, path: "/v1/webhook_endpoints/" + created.ID},
		{method: http.MethodPost, path: "/v1/webhook_endpoints/" + created.ID + "/rotate_secret"},
		{method: http.MethodGet, path: "/v1/webhook_endpoints/" + created.ID + "/deliveries"},
	} {
		r.key = e.b.key
		e.do(r).wantError(t, http.StatusNotFound, "not_found", "resource_missing")
	}
	if l := decodeList(t, e.get("/v1/webhook_endpoints", e.b.key)); len(l.Data) != 0 {
		t.Fatalf("B lists %d endpoints", len(l.Data))
	}

	// Pagination, as everywhere else.
	second := decodeEndpoint(t, e.post("/v1/webhook_endpoints", e.a.key, `{"url":"https://hooks.example.com/2","events":["*"]}`))
	page := decodeList(t, e.get("/v1/webhook_endpoints?limit=1", e.a.key))
	if ids := page.ids(t); len(ids) != 1 || ids[0] != second.ID || !page.HasMore {
		t.Fatalf("page 1: %v, more %v", ids, page.HasMore)
	}
	page = decodeList(t, e.get("/v1/webhook_endpoints?limit=1&starting_after="+second.ID, e.a.key))
	if ids := page.ids(t); len(ids) != 1 || ids[0] != created.ID || page.HasMore {
		t.Fatalf("page 2: %v, more %v", ids, page.HasMore)
	}

	// Rotation shows the new secret once; the old one signs for 24 h more.
	res = e.post("/v1/webhook_endpoints/"+created.ID+"/rotate_secret", e.a.key, "")
	rotated := decodeEndpoint(t, res)
	if res.status != http.StatusOK || rotated.Secret == "" || rotated.Secret == created.Secret || rotated.PreviousSecretExpiresAt == nil ||
		rotated.PreviousSecretExpiresAt.Sub(e.now()) < 23*time.Hour {
		t.Fatalf("rotate: %d %+v", res.status, rotated)
	}

	// Refused URLs and filters.
	for _, body := range []struct{ body, param, code string }{
		{`{"url":"http://hooks.example.com/x","events":["*"]}`, "url", "url_insecure"},
		{`{"url":"https://10.0.0.1/x","events":["*"]}`, "url", "url_forbidden"},
		{`{"url":"https://169.254.169.254/latest","events":["*"]}`, "url", "url_forbidden"},
		{`{"url":"https://[::1]/x","events":["*"]}`, "url", "url_forbidden"},
		{`{"url":"https://0.0.0.0/x","events":["*"]}`, "url", "url_forbidden"},
		{`{"url":"https://localhost/x","events":["*"]}`, "url", "url_forbidden"},
		{`{"url":"https://u:p@hooks.example.com/x","events":["*"]}`, "url", "url_invalid"},
		{`{"events":["*"]}`, "url", "parameter_missing"},
		{`{"url":"https://hooks.example.com/x","events":[]}`, "events", "events_missing"},
		{`{"url":"https://hooks.example.com/x","events":["*","payment.received"]}`, "events", "events_invalid"},
		{`{"url":"https://hooks.example.com/x","events":["session.done"]}`, "events", "event_type_unknown"},
	} {
		res := e.post("/v1/webhook_endpoints", e.a.key, body.body)
		res.wantError(t, http.StatusBadRequest, "invalid_request_error", body.code)
		if _, _, param := res.errorFields(t); param != body.param {
			t.Errorf("%s: param %q, want %q", body.body, param, body.param)
		}
	}

	res = e.do(request{method: http.MethodDelete, path: "/v1/webhook_endpoints/" + created.ID, key: e.a.key})
	if res.status != http.StatusOK || !strings.Contains(string(res.body), `"deleted":true`) {
		t.Fatalf("delete: %d %s", res.status, res.body)
	}
	e.get("/v1/webhook_endpoints/"+created.ID, e.a.key).wantError(t, http.StatusNotFound, "not_found", "resource_missing")
}

// TestWebhooksEndToEnd pays a session on the sandbox and receives the
// signed webhook, verified with the reference library, whose data is the
// very session object the API serves; then lists and redelivers it.
func TestWebhooksEndToEnd(t *testing.T) {
	e := newEnv(t, insecureLoopback)
	var (
		mu   sync.Mutex
		hits []*http.Request
		body [][]byte
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		hits, body = append(hits, r), append(body, b)
		mu.Unlock()
	}))
	t.Cleanup(recv.Close)

	eng, err := actors.StartDeliveryEngine(actors.DeliveryConfig{Store: e.db, Render: e.api.WebhookData,
		Client: webhooks.NewClient(webhooks.ClientConfig{Policy: e.api.cfg.Webhooks.Policy}), Logger: testLogger(),
		PollInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = eng.Stop(ctx)
	})

	ep := decodeEndpoint(t, e.post("/v1/webhook_endpoints", e.a.key,
		`{"url":"`+recv.URL+`/hook","events":["checkout.session.completed"]}`))
	s := e.createSession(e.a, `{"amount":"5","asset":"XLM","memo_type":"text"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.wallet.Pay(ctx, e.funded(), s.PayTo.Destination, txnbuild.NativeAsset{}, "5", txnbuild.MemoText(s.PayTo.Memo)); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(hits)
	}
	eventually(t, 30*time.Second, "the completion webhook", func() bool { return count() >= 1 })
	mu.Lock()
	h, b := hits[0], body[0]
	mu.Unlock()

	wh, err := standardwebhooks.NewWebhook(ep.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(b, h.Header); err != nil {
		t.Fatalf("the reference library refused the webhook: %v", err)
	}
	var payload struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      struct {
			Session json.RawMessage `json:"session"`
			Payment json.RawMessage `json:"payment"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &payload); err != nil {
		t.Fatal(err)
	}
	if payload.Type != "checkout.session.completed" || payload.Data.Payment == nil {
		t.Fatalf("payload %s", b)
	}
	// The session in the webhook is the API's session object, byte for byte.
	api := e.get("/v1/checkout/sessions/"+s.ID, e.a.key)
	if strings.TrimSpace(string(api.body)) != string(payload.Data.Session) {
		t.Fatalf("webhook session\n %s\ndiffers from the API's\n %s", payload.Data.Session, api.body)
	}
	eventID := h.Header.Get("webhook-id")
	var ev struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(e.get("/v1/events/"+eventID, e.a.key).body, &ev); err != nil || ev.Type != payload.Type {
		t.Fatalf("webhook-id %s is not the event's id (%v)", eventID, err)
	}

	eventually(t, 10*time.Second, "the delivery to be recorded", func() bool {
		return len(decodeList(t, e.get("/v1/webhook_endpoints/"+ep.ID+"/deliveries?status=succeeded", e.a.key)).Data) == 1
	})
	if l := decodeList(t, e.get("/v1/webhook_endpoints/"+ep.ID+"/deliveries?status=pending", e.a.key)); len(l.Data) != 0 {
		t.Fatalf("%d pending deliveries", len(l.Data))
	}
	e.get("/v1/webhook_endpoints/"+ep.ID+"/deliveries?status=lost", e.a.key).wantError(t, http.StatusBadRequest, "invalid_request_error", "status_invalid")

	// Redelivery: at once, same webhook-id, same body.
	res := e.post("/v1/events/"+eventID+"/redeliver", e.a.key, `{"endpoint_id":"`+ep.ID+`"}`)
	if res.status != http.StatusOK || len(decodeList(t, res).Data) != 1 {
		t.Fatalf("redeliver: %d %s", res.status, res.body)
	}
	eventually(t, 10*time.Second, "the redelivery", func() bool { return count() == 2 })
	mu.Lock()
	defer mu.Unlock()
	if hits[1].Header.Get("webhook-id") != eventID || string(body[1]) != string(b) {
		t.Fatal("the redelivery differs from the delivery")
	}
	e.post("/v1/events/"+eventID+"/redeliver", e.b.key, "").wantError(t, http.StatusNotFound, "not_found", "resource_missing")
}

// TestWebhookWritesAreIdempotent: with one Idempotency-Key, a retried
// create shows the same endpoint and secret and creates nothing more, a
// retried rotation rotates once, and a retried redelivery sends once. The
// key is the merchant's own: another merchant using it gets its own
// endpoint.
func TestWebhookWritesAreIdempotent(t *testing.T) {
	e := newEnv(t, nil)
	withKey := func(method, path, apiKey, idemKey, body string) response {
		t.Helper()
		return e.do(request{method: method, path: path, key: apiKey, body: body, header: map[string]string{"Idempotency-Key": idemKey}})
	}
	const create = `{"url":"https://hooks.example.com/in","events":["*"]}`
	first := withKey(http.MethodPost, "/v1/webhook_endpoints", e.a.key, "create-1", create)
	again := withKey(http.MethodPost, "/v1/webhook_endpoints", e.a.key, "create-1", create)
	if first.status != http.StatusCreated || again.status != first.status || string(again.body) != string(first.body) {
		t.Fatalf("retried create: %d %s, first %d %s", again.status, again.body, first.status, first.body)
	}
	ep := decodeEndpoint(t, first)
	if n := e.count(`SELECT count(*) FROM webhook_endpoints WHERE merchant_id = (SELECT merchant_id FROM webhook_endpoints WHERE id = $1)`, ep.ID); n != 1 {
		t.Fatalf("%d endpoints after a retried create", n)
	}
	other := decodeEndpoint(t, withKey(http.MethodPost, "/v1/webhook_endpoints", e.b.key, "create-1", create))
	if other.ID == ep.ID || other.Secret == ep.Secret || other.Secret == "" {
		t.Fatalf("merchant B with A's idempotency key got %+v", other)
	}

	rotate := "/v1/webhook_endpoints/" + ep.ID + "/rotate_secret"
	r1 := withKey(http.MethodPost, rotate, e.a.key, "rotate-1", "")
	r2 := withKey(http.MethodPost, rotate, e.a.key, "rotate-1", "")
	if r1.status != http.StatusOK || string(r2.body) != string(r1.body) {
		t.Fatalf("retried rotation: %d %s, first %d %s", r2.status, r2.body, r1.status, r1.body)
	}
	var previous string
	if err := e.sql.QueryRow(context.Background(), `SELECT previous_secret FROM webhook_endpoints WHERE id = $1`, ep.ID).Scan(&previous); err != nil || previous != ep.Secret {
		t.Fatalf("after a retried rotation the previous secret is not the original one (%v): rotated twice", err)
	}

	s := e.createSession(e.a, `{"amount":"1","asset":"XLM"}`)
	if res := e.post("/v1/checkout/sessions/"+s.ID+"/cancel", e.a.key, ""); res.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", res.status, res.body)
	}
	var eventID string
	if err := e.sql.QueryRow(context.Background(), `SELECT id FROM events WHERE session_id = $1 AND type = 'checkout.session.canceled'`, s.ID).Scan(&eventID); err != nil {
		t.Fatal(err)
	}
	redeliver := "/v1/events/" + eventID + "/redeliver"
	body := `{"endpoint_id":"` + ep.ID + `"}`
	d1 := withKey(http.MethodPost, redeliver, e.a.key, "redeliver-1", body)
	d2 := withKey(http.MethodPost, redeliver, e.a.key, "redeliver-1", body)
	if d1.status != http.StatusOK || string(d2.body) != string(d1.body) {
		t.Fatalf("retried redelivery: %d %s, first %d %s", d2.status, d2.body, d1.status, d1.body)
	}
	if n := e.count(`SELECT count(*) FROM webhook_deliveries WHERE event_id = $1 AND redelivery`, eventID); n != 1 {
		t.Fatalf("%d redeliveries after a retried request, want 1", n)
	}
}
