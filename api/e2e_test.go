package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// paymentJSON is a payment object as a client decodes it.
type paymentJSON struct {
	ID              string    `json:"id"`
	Object          string    `json:"object"`
	Session         *string   `json:"session"`
	OperationID     string    `json:"operation_id"`
	TransactionHash string    `json:"transaction_hash"`
	From            string    `json:"from"`
	To              string    `json:"to"`
	Amount          string    `json:"amount"`
	Asset           string    `json:"asset"`
	Memo            string    `json:"memo"`
	Disposition     string    `json:"disposition"`
	LedgerClosedAt  time.Time `json:"ledger_closed_at"`
}

// TestSessionPaidOnSandbox pays sessions with real transactions on the
// sandbox network and watches them complete through the watchers and
// session actors, as a merchant sees it over HTTP.
func TestSessionPaidOnSandbox(t *testing.T) {
	e := newEnv(t, nil)
	customer := e.funded()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, tc := range []struct {
		name, memoType string
	}{{"text memo", "text"}, {"id memo", "id"}, {"muxed", "muxed"}} {
		t.Run(tc.name, func(t *testing.T) {
			s := e.createSession(e.a, `{"amount":"10","asset":"XLM","memo_type":"`+tc.memoType+`"}`)
			var memo txnbuild.Memo
			switch tc.memoType {
			case "text":
				memo = txnbuild.MemoText(s.PayTo.Memo)
			case "id":
				id, err := parseUint(s.PayTo.Memo)
				if err != nil {
					t.Fatal(err)
				}
				memo = txnbuild.MemoID(id)
			}
			// Two payments: a partial one, then the rest.
			for _, amount := range []string{"4", "6"} {
				if _, err := e.wallet.Pay(ctx, customer, s.PayTo.Destination, txnbuild.NativeAsset{}, amount, memo); err != nil {
					t.Fatalf("pay %s: %v", amount, err)
				}
			}
			var got sessionObjectJSON
			eventually(t, 20*time.Second, "the session to complete", func() bool {
				got = decodeSession(t, e.get("/v1/checkout/sessions/"+s.ID, e.a.key).body)
				return got.Status == "complete"
			})
			if got.PaymentStatus != "paid" || got.AmountReceived != "10.0000000" || got.ClosedAt == nil {
				t.Fatalf("completed session %+v", got)
			}

			pays := decodeList(t, e.get("/v1/checkout/sessions/"+s.ID+"/payments", e.a.key))
			if len(pays.Data) != 2 || pays.HasMore {
				t.Fatalf("%d payments", len(pays.Data))
			}
			for i, raw := range pays.Data {
				var p paymentJSON
				if err := json.Unmarshal(raw, &p); err != nil {
					t.Fatal(err)
				}
				want := []string{"4.0000000", "6.0000000"}[i]
				if p.Object != "payment" || !strings.HasPrefix(p.ID, "pay_") || p.Session == nil || *p.Session != s.ID ||
					p.Amount != want || p.Asset != "XLM" || p.Disposition != "applied" || p.From != customer.Address() ||
					p.OperationID == "" || len(p.TransactionHash) != 64 || p.LedgerClosedAt.IsZero() {
					t.Errorf("payment %d: %+v", i, p)
				}
				if tc.memoType == "muxed" && p.To != s.PayTo.Destination {
					t.Errorf("muxed payment to %s, want %s", p.To, s.PayTo.Destination)
				}
			}

			// The event log tells the story: two payments, then completion.
			events := decodeList(t, e.get("/v1/events?limit=100", e.a.key))
			var types []string
			var completedID string
			for _, raw := range events.Data {
				var ev struct {
					ID   string `json:"id"`
					Type string `json:"type"`
					Data struct {
						Session *sessionObjectJSON `json:"session"`
						Payment *paymentJSON       `json:"payment"`
					} `json:"data"`
				}
				if err := json.Unmarshal(raw, &ev); err != nil {
					t.Fatal(err)
				}
				if ev.Data.Session == nil || ev.Data.Session.ID != s.ID {
					continue
				}
				types = append(types, ev.Type)
				if ev.Type == "checkout.session.completed" {
					completedID = ev.ID
					if ev.Data.Payment == nil || ev.Data.Payment.Amount != "6.0000000" || ev.Data.Session.Status != "complete" {
						t.Errorf("completion event data: %+v", ev.Data)
					}
				}
				if ev.Type == "payment.received" && ev.Data.Payment == nil {
					t.Errorf("payment.received without its payment")
				}
			}
			if strings.Join(types, ",") != "checkout.session.completed,payment.received,payment.received" {
				t.Fatalf("events newest first: %v", types)
			}
			one := e.get("/v1/events/"+completedID, e.a.key)
			if one.status != http.StatusOK {
				t.Fatalf("get event: %d %s", one.status, one.body)
			}
			completed := decodeList(t, e.get("/v1/events?type=checkout.session.completed", e.a.key))
			if !containsID(completed.ids(t), completedID) {
				t.Fatalf("type filter lost %s", completedID)
			}

			// A complete session cannot be canceled: 409 with the session.
			res := e.post("/v1/checkout/sessions/"+s.ID+"/cancel", e.a.key, "")
			res.wantError(t, http.StatusConflict, "conflict", "session_not_open")
			var body struct {
				Session sessionObjectJSON `json:"session"`
			}
			if err := json.Unmarshal(res.body, &body); err != nil || body.Session.ID != s.ID || body.Session.Status != "complete" {
				t.Fatalf("409 body: %s (%v)", res.body, err)
			}
		})
	}
}

func containsID(ids []string, id string) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func parseUint(s string) (uint64, error) {
	var n uint64
	err := json.Unmarshal([]byte(s), &n)
	return n, err
}

func TestHealthAndDocs(t *testing.T) {
	e := newEnv(t, nil)
	res := e.get("/healthz", "")
	if res.status != http.StatusOK || res.json(t)["status"] != "ok" {
		t.Fatalf("healthz: %d %s", res.status, res.body)
	}
	// Watch an account so that readiness looks at the watchers too.
	e.createSession(e.a, `{"amount":"1","asset":"XLM"}`)
	eventually(t, 10*time.Second, "readyz to report a streaming watcher", func() bool {
		res = e.get("/readyz", "")
		w, _ := res.json(t)["watchers"].(map[string]any)
		return res.status == http.StatusOK && w["streaming"] == float64(1)
	})
	res = e.get("/openapi.json", "")
	if res.status != http.StatusOK || string(res.body) != string(OpenAPI) {
		t.Fatalf("openapi.json: %d, %d bytes", res.status, len(res.body))
	}

	e.get("/nope", "").wantError(t, http.StatusNotFound, "not_found", "route_not_found")
	e.get("/v1/checkout/sessions/cs_aaaaaaaaaaaaaaaaaaaaaaaa/refunds", e.a.key).wantError(t, http.StatusNotFound, "not_found", "route_not_found")
	res = e.do(request{method: http.MethodDelete, path: "/v1/checkout/sessions", key: e.a.key})
	res.wantError(t, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed")
	if res.header.Get("Allow") != "GET, POST" {
		t.Errorf("Allow %q", res.header.Get("Allow"))
	}
	res = e.do(request{method: http.MethodPut, path: "/v1/events/evt_aaaaaaaaaaaaaaaaaaaaaaaa", key: e.a.key})
	res.wantError(t, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed")
	if res.header.Get("Allow") != "GET" {
		t.Errorf("Allow %q", res.header.Get("Allow"))
	}
}

// TestReadyWithoutPostgres checks /readyz fails when Postgres is gone,
// with the error shape and without leaking the cause.
func TestReadyWithoutPostgres(t *testing.T) {
	e := newEnv(t, nil)
	e.db.Close()
	res := e.get("/readyz", "")
	res.wantError(t, http.StatusServiceUnavailable, "api_error", "service_unavailable")
	if strings.Contains(string(res.body), "closed") || strings.Contains(string(res.body), "pool") {
		t.Fatalf("internal cause leaked: %s", res.body)
	}
}
