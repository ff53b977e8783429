package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/network"
	"github.com/stellar/go-stellar-sdk/strkey"

	checkout "github.com/checkoutd/checkoutd"
)

// parsePaymentURI parses a SEP-7 pay URI as a wallet would: the scheme and
// operation, then a query whose values are percent-decoded.
func parsePaymentURI(t *testing.T, uri string) url.Values {
	t.Helper()
	query, ok := strings.CutPrefix(uri, "web+stellar:pay?")
	if !ok {
		t.Fatalf("payment_uri %q: not web+stellar:pay?...", uri)
	}
	if strings.Contains(query, "+") {
		t.Fatalf("payment_uri %q: has a '+', which wallets may read as a space", uri)
	}
	v, err := url.ParseQuery(query)
	if err != nil {
		t.Fatalf("payment_uri %q: %v", uri, err)
	}
	return v
}

func TestSessionCreate(t *testing.T) {
	e := newEnv(t, nil)
	issuer := keypair.MustRandom().Address()
	for _, tc := range []struct {
		name, body         string
		memoType, asset    string
		wantMemoType       string
		wantAssetCode      string
		wantAssetIssuer    string
		amount, wantAmount string
	}{
		{name: "text memo, lumens", body: `{"amount":"12.50","asset":"XLM"}`, memoType: "text", asset: "XLM",
			wantMemoType: "MEMO_TEXT", amount: "12.50", wantAmount: "12.5000000"},
		{name: "id memo", body: `{"amount":"0.0000001","asset":"XLM","memo_type":"id"}`, memoType: "id", asset: "XLM",
			wantMemoType: "MEMO_ID", amount: "0.0000001", wantAmount: "0.0000001"},
		{name: "muxed, credit asset", body: fmt.Sprintf(`{"amount":"100","asset":"USDC:%s","memo_type":"muxed","expires_in":600,
			"metadata":{"order":"A 1+2&3"},"success_url":"https://shop.example/ok?x=1","cancel_url":"https://shop.example/no"}`, issuer),
			memoType: "muxed", asset: "USDC:" + issuer, wantAssetCode: "USDC", wantAssetIssuer: issuer,
			amount: "100", wantAmount: "100.0000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now().UTC().Truncate(time.Second)
			s := e.createSession(e.a, tc.body)
			if !checkout.HasPrefix(s.ID, checkout.PrefixSession) || s.Object != "checkout.session" {
				t.Fatalf("id %q object %q", s.ID, s.Object)
			}
			if s.Status != "open" || s.PaymentStatus != "unpaid" || s.Amount != tc.wantAmount ||
				s.AmountReceived != "0.0000000" || s.Asset != tc.asset || s.ClosedAt != nil {
				t.Fatalf("session %+v", s)
			}
			if s.URL != "https://pay.example.test/c/"+s.ID {
				t.Errorf("url %q", s.URL)
			}
			if s.CreatedAt.Before(before) || s.ExpiresAt.Sub(s.CreatedAt) < 9*time.Minute {
				t.Errorf("created_at %s expires_at %s", s.CreatedAt, s.ExpiresAt)
			}
			if s.PayTo.MemoType != tc.memoType {
				t.Errorf("pay_to.memo_type %q", s.PayTo.MemoType)
			}
			uri := parsePaymentURI(t, s.PaymentURI)
			switch tc.memoType {
			case "muxed":
				if !strkey.IsValidMuxedAccountEd25519PublicKey(s.PayTo.Destination) || s.PayTo.Memo != "" {
					t.Fatalf("muxed pay_to %+v", s.PayTo)
				}
				m, err := strkey.DecodeMuxedAccount(s.PayTo.Destination)
				if err != nil {
					t.Fatal(err)
				}
				if g, _ := m.AccountID(); g != e.a.Account {
					t.Errorf("M-address of %s, want %s", g, e.a.Account)
				}
				stored, err := e.db.GetSession(t.Context(), s.ID)
				if err != nil || fmt.Sprint(m.ID()) != stored.Memo {
					t.Errorf("M-address id %d, stored memo %q (%v)", m.ID(), stored.Memo, err)
				}
				if uri.Has("memo") || uri.Has("memo_type") {
					t.Errorf("muxed payment_uri has a memo: %s", s.PaymentURI)
				}
				if s.Metadata["order"] != "A 1+2&3" || s.SuccessURL != "https://shop.example/ok?x=1" || s.CancelURL != "https://shop.example/no" {
					t.Errorf("metadata/urls %+v", s)
				}
			default:
				if s.PayTo.Destination != e.a.Account || s.PayTo.Memo == "" {
					t.Fatalf("pay_to %+v", s.PayTo)
				}
				if uri.Get("memo") != s.PayTo.Memo || uri.Get("memo_type") != tc.wantMemoType {
					t.Errorf("payment_uri memo %q %q, want %q %q", uri.Get("memo"), uri.Get("memo_type"), s.PayTo.Memo, tc.wantMemoType)
				}
			}
			if uri.Get("destination") != s.PayTo.Destination || uri.Get("amount") != tc.wantAmount ||
				uri.Get("asset_code") != tc.wantAssetCode || uri.Get("asset_issuer") != tc.wantAssetIssuer ||
				uri.Get("network_passphrase") != network.TestNetworkPassphrase {
				t.Errorf("payment_uri %s parses to %v", s.PaymentURI, uri)
			}

			got := e.get("/v1/checkout/sessions/"+s.ID, e.a.key)
			if got.status != http.StatusOK {
				t.Fatalf("get: %d %s", got.status, got.body)
			}
			again := decodeSession(t, got.body)
			if fmt.Sprintf("%+v", again) != fmt.Sprintf("%+v", s) {
				t.Errorf("GET differs from create:\n%+v\n%+v", again, s)
			}
		})
	}
	if n := e.count(`SELECT count(*) FROM sessions`); n != 3 {
		t.Fatalf("%d sessions stored, want 3", n)
	}
	if n := e.count(`SELECT count(*) FROM ledger_cursors WHERE account = $1`, e.a.Account); n != 1 {
		t.Fatalf("the merchant's account has no cursor: creating a session did not start its watcher")
	}
}

// TestSessionCreateValidation sends each bad field alone and checks the
// 4xx, its param, and that nothing was written.
func TestSessionCreateValidation(t *testing.T) {
	e := newEnv(t, nil)
	issuer := keypair.MustRandom().Address()
	manyKeys := map[string]string{}
	for i := range 51 {
		manyKeys[fmt.Sprint("k", i)] = "v"
	}
	ok := `"amount":"1","asset":"XLM"`
	for _, tc := range []struct {
		name, body  string
		contentType string
		status      int
		code, param string
	}{
		{name: "amount missing", body: `{"asset":"XLM"}`, code: "parameter_missing", param: "amount"},
		{name: "amount null", body: `{"amount":null,"asset":"XLM"}`, code: "parameter_missing", param: "amount"},
		{name: "amount number", body: `{"amount":12.5,"asset":"XLM"}`, code: "parameter_invalid", param: "amount"},
		{name: "amount zero", body: `{"amount":"0","asset":"XLM"}`, code: "amount_invalid", param: "amount"},
		{name: "amount negative", body: `{"amount":"-1","asset":"XLM"}`, code: "amount_invalid", param: "amount"},
		{name: "amount 8 decimals", body: `{"amount":"1.12345678","asset":"XLM"}`, code: "amount_invalid", param: "amount"},
		{name: "amount exponent", body: `{"amount":"1e3","asset":"XLM"}`, code: "amount_invalid", param: "amount"},
		{name: "amount empty", body: `{"amount":"","asset":"XLM"}`, code: "amount_invalid", param: "amount"},
		{name: "amount too large", body: `{"amount":"99999999999999","asset":"XLM"}`, code: "amount_invalid", param: "amount"},
		{name: "asset missing", body: `{"amount":"1"}`, code: "parameter_missing", param: "asset"},
		{name: "asset native spelling", body: `{"amount":"1","asset":"native"}`, code: "asset_invalid", param: "asset"},
		{name: "asset code only", body: `{"amount":"1","asset":"USDC"}`, code: "asset_invalid", param: "asset"},
		{name: "asset bad issuer", body: `{"amount":"1","asset":"USDC:GBAD"}`, code: "asset_invalid", param: "asset"},
		{name: "asset XLM with issuer", body: `{"amount":"1","asset":"XLM:` + issuer + `"}`, code: "asset_invalid", param: "asset"},
		{name: "asset code too long", body: `{"amount":"1","asset":"ABCDEFGHIJKLM:` + issuer + `"}`, code: "asset_invalid", param: "asset"},
		{name: "asset number", body: `{"amount":"1","asset":1}`, code: "parameter_invalid", param: "asset"},
		{name: "expires_in too short", body: `{` + ok + `,"expires_in":59}`, code: "expires_in_invalid", param: "expires_in"},
		{name: "expires_in too long", body: `{` + ok + `,"expires_in":604801}`, code: "expires_in_invalid", param: "expires_in"},
		{name: "expires_in fraction", body: `{` + ok + `,"expires_in":60.5}`, code: "parameter_invalid", param: "expires_in"},
		{name: "expires_in string", body: `{` + ok + `,"expires_in":"60"}`, code: "parameter_invalid", param: "expires_in"},
		{name: "expires_in huge", body: `{` + ok + `,"expires_in":1e30}`, code: "parameter_invalid", param: "expires_in"},
		{name: "memo_type hash", body: `{` + ok + `,"memo_type":"hash"}`, code: "memo_type_invalid", param: "memo_type"},
		{name: "memo_type empty", body: `{` + ok + `,"memo_type":""}`, code: "memo_type_invalid", param: "memo_type"},
		{name: "metadata too many keys", body: `{` + ok + `,"metadata":` + jsonBody(t, manyKeys) + `}`, code: "metadata_too_large", param: "metadata"},
		{name: "metadata long key", body: `{` + ok + `,"metadata":{"` + strings.Repeat("k", 41) + `":"v"}}`, code: "metadata_key_invalid", param: "metadata"},
		{name: "metadata long value", body: `{` + ok + `,"metadata":{"k":"` + strings.Repeat("v", 501) + `"}}`, code: "metadata_value_invalid", param: "metadata[k]"},
		{name: "metadata number value", body: `{` + ok + `,"metadata":{"k":1}}`, code: "parameter_invalid", param: "metadata"},
		{name: "metadata array", body: `{` + ok + `,"metadata":[]}`, code: "parameter_invalid", param: "metadata"},
		{name: "success_url not http", body: `{` + ok + `,"success_url":"ftp://shop.example/"}`, code: "url_invalid", param: "success_url"},
		{name: "success_url relative", body: `{` + ok + `,"success_url":"/thanks"}`, code: "url_invalid", param: "success_url"},
		{name: "cancel_url garbage", body: `{` + ok + `,"cancel_url":"http://[::1"}`, code: "url_invalid", param: "cancel_url"},
		{name: "cancel_url too long", body: `{` + ok + `,"cancel_url":"https://x.example/` + strings.Repeat("a", 2048) + `"}`, code: "url_invalid", param: "cancel_url"},
		{name: "unknown field", body: `{` + ok + `,"amount_due":"1"}`, code: "parameter_unknown", param: "amount_due"},
		{name: "trailing data", body: `{` + ok + `} {}`, code: "body_invalid"},
		{name: "trailing garbage", body: `{` + ok + `}x`, code: "body_invalid"},
		{name: "not json", body: `amount=1`, code: "body_invalid"},
		{name: "truncated json", body: `{"amount":"1"`, code: "body_invalid"},
		{name: "array body", body: `[]`, code: "body_invalid"},
		{name: "empty body", body: ``, code: "body_missing"},
		{name: "form content type", body: `{` + ok + `}`, contentType: "application/x-www-form-urlencoded",
			status: http.StatusUnsupportedMediaType, code: "unsupported_media_type"},
		{name: "too large", body: `{` + ok + `,"metadata":{"k":"` + strings.Repeat("v", 70<<10) + `"}}`,
			status: http.StatusRequestEntityTooLarge, code: "body_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := request{method: http.MethodPost, path: "/v1/checkout/sessions", key: e.a.key, body: tc.body,
				header: map[string]string{"Idempotency-Key": "validation-" + tc.name}}
			if tc.body == "" {
				req.header["Content-Type"] = "application/json"
			}
			if tc.contentType != "" {
				req.header["Content-Type"] = tc.contentType
			}
			res := e.do(req)
			want := tc.status
			if want == 0 {
				want = http.StatusBadRequest
			}
			res.wantError(t, want, "invalid_request_error", tc.code)
			if _, _, param := res.errorFields(t); param != tc.param {
				t.Errorf("param %q, want %q: %s", param, tc.param, res.body)
			}
		})
	}
	if n := e.count(`SELECT count(*) FROM sessions`); n != 0 {
		t.Fatalf("%d sessions written by invalid requests", n)
	}
	if n := e.count(`SELECT count(*) FROM events`); n != 0 {
		t.Fatalf("%d events written by invalid requests", n)
	}
	if n := e.count(`SELECT count(*) FROM ledger_cursors`); n != 0 {
		t.Fatalf("%d cursors written by invalid requests", n)
	}
}

func TestSessionListPagination(t *testing.T) {
	e := newEnv(t, nil)
	var created []string // oldest first
	for i := range 7 {
		s := e.createSession(e.a, fmt.Sprintf(`{"amount":"%d","asset":"XLM"}`, i+1))
		created = append(created, s.ID)
	}
	other := e.createSession(e.b, `{"amount":"1","asset":"XLM"}`)
	newestFirst := make([]string, len(created))
	for i, id := range created {
		newestFirst[len(created)-1-i] = id
	}

	all := decodeList(t, e.get("/v1/checkout/sessions", e.a.key))
	if fmt.Sprint(all.ids(t)) != fmt.Sprint(newestFirst) || all.HasMore {
		t.Fatalf("default list %v has_more %v, want %v", all.ids(t), all.HasMore, newestFirst)
	}

	var walked []string
	path := "/v1/checkout/sessions?limit=3"
	pages := 0
	for {
		l := decodeList(t, e.get(path, e.a.key))
		pages++
		walked = append(walked, l.ids(t)...)
		if !l.HasMore {
			break
		}
		ids := l.ids(t)
		path = "/v1/checkout/sessions?limit=3&starting_after=" + ids[len(ids)-1]
	}
	if pages != 3 || fmt.Sprint(walked) != fmt.Sprint(newestFirst) {
		t.Fatalf("walked %d pages: %v, want %v", pages, walked, newestFirst)
	}

	l := decodeList(t, e.get("/v1/checkout/sessions?limit=2&ending_before="+newestFirst[4], e.a.key))
	if fmt.Sprint(l.ids(t)) != fmt.Sprint(newestFirst[2:4]) || !l.HasMore {
		t.Fatalf("ending_before: %v has_more %v, want %v and more", l.ids(t), l.HasMore, newestFirst[2:4])
	}
	l = decodeList(t, e.get("/v1/checkout/sessions?limit=5&ending_before="+newestFirst[2], e.a.key))
	if fmt.Sprint(l.ids(t)) != fmt.Sprint(newestFirst[:2]) || l.HasMore {
		t.Fatalf("ending_before at the start: %v has_more %v", l.ids(t), l.HasMore)
	}
	l = decodeList(t, e.get("/v1/checkout/sessions?starting_after="+newestFirst[6], e.a.key))
	if len(l.Data) != 0 || l.HasMore {
		t.Fatalf("after the last: %v", l.ids(t))
	}

	// Filter by status.
	if res := e.post("/v1/checkout/sessions/"+created[0]+"/cancel", e.a.key, ""); res.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", res.status, res.body)
	}
	l = decodeList(t, e.get("/v1/checkout/sessions?status=canceled", e.a.key))
	if fmt.Sprint(l.ids(t)) != fmt.Sprint([]string{created[0]}) {
		t.Fatalf("status=canceled: %v", l.ids(t))
	}
	l = decodeList(t, e.get("/v1/checkout/sessions?status=open&limit=100", e.a.key))
	if len(l.Data) != 6 {
		t.Fatalf("status=open: %d sessions", len(l.Data))
	}

	for _, tc := range []struct{ query, param, code string }{
		{"limit=0", "limit", "limit_invalid"},
		{"limit=101", "limit", "limit_invalid"},
		{"limit=x", "limit", "limit_invalid"},
		{"limit=", "limit", "limit_invalid"},
		{"limit=05", "limit", "limit_invalid"},
		{"status=paid", "status", "status_invalid"},
		{"starting_after=" + created[0] + "&ending_before=" + created[1], "ending_before", "parameters_exclusive"},
		{"starting_after=nope", "starting_after", "resource_missing"},
		{"starting_after=" + other.ID, "starting_after", "resource_missing"},
		{"ending_before=cs_aaaaaaaaaaaaaaaaaaaaaaaa", "ending_before", "resource_missing"},
		{"colour=blue", "colour", "parameter_unknown"},
	} {
		res := e.get("/v1/checkout/sessions?"+tc.query, e.a.key)
		res.wantError(t, http.StatusBadRequest, "invalid_request_error", tc.code)
		if _, _, param := res.errorFields(t); param != tc.param {
			t.Errorf("%s: param %q, want %q", tc.query, param, tc.param)
		}
	}
}

func TestSessionCancel(t *testing.T) {
	e := newEnv(t, nil)
	s := e.createSession(e.a, `{"amount":"5","asset":"XLM"}`)

	res := e.post("/v1/checkout/sessions/"+s.ID+"/cancel", e.a.key, "")
	if res.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", res.status, res.body)
	}
	canceled := decodeSession(t, res.body)
	if canceled.Status != "canceled" || canceled.ClosedAt == nil {
		t.Fatalf("after cancel: %+v", canceled)
	}
	// A replayed cancel is a no-op that answers with the session.
	res = e.post("/v1/checkout/sessions/"+s.ID+"/cancel", e.a.key, "{}")
	if res.status != http.StatusOK || decodeSession(t, res.body).Status != "canceled" {
		t.Fatalf("second cancel: %d %s", res.status, res.body)
	}
	if n := e.count(`SELECT count(*) FROM events WHERE session_id = $1 AND type = 'checkout.session.canceled'`, s.ID); n != 1 {
		t.Fatalf("%d cancel events", n)
	}
	res = e.post("/v1/checkout/sessions/"+s.ID+"/cancel", e.a.key, `{"reason":"x"}`)
	res.wantError(t, http.StatusBadRequest, "invalid_request_error", "parameter_unknown")
	res = e.post("/v1/checkout/sessions/cs_aaaaaaaaaaaaaaaaaaaaaaaa/cancel", e.a.key, "")
	res.wantError(t, http.StatusNotFound, "not_found", "resource_missing")

	// The event log has it.
	events := decodeList(t, e.get("/v1/events?type=checkout.session.canceled", e.a.key))
	if len(events.Data) != 1 {
		t.Fatalf("%d canceled events listed", len(events.Data))
	}
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data struct {
			Session sessionObjectJSON `json:"session"`
		} `json:"data"`
	}
	if err := json.Unmarshal(events.Data[0], &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != "checkout.session.canceled" || ev.Data.Session.ID != s.ID || ev.Data.Session.Status != "canceled" {
		t.Fatalf("event %+v", ev)
	}
	one := e.get("/v1/events/"+ev.ID, e.a.key)
	if one.status != http.StatusOK || !strings.Contains(string(one.body), s.ID) {
		t.Fatalf("get event: %d %s", one.status, one.body)
	}
	e.get("/v1/events/evt_aaaaaaaaaaaaaaaaaaaaaaaa", e.a.key).wantError(t, http.StatusNotFound, "not_found", "resource_missing")
	e.get("/v1/events/nope", e.a.key).wantError(t, http.StatusNotFound, "not_found", "resource_missing")
	e.get("/v1/events?type=nope", e.a.key).wantError(t, http.StatusBadRequest, "invalid_request_error", "type_invalid")
}
