package hosted_test

import (
	"html"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/api/hosted"
	"github.com/checkoutd/checkoutd/stellar/sep7"
)

func TestPageShowsTheSession(t *testing.T) {
	e := newEnv(t)
	s := e.newSession(checkout.SessionParams{Amount: 125_000_000, MemoType: checkout.MemoText,
		Metadata: map[string]string{"order": "secret-order-4711"}, SuccessURL: "https://shop.example/thanks"})

	resp, body := e.get("/c/" + s.ID)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /c/%s: %d\n%s", s.ID, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'sha256-", "style-src 'sha256-", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP allows unsafe sources: %q", csp)
	}
	uri, err := sep7.ForSession(s, s.Amount, e.net.Passphrase())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Corner Bakery", ">12.50<", ">XLM<", s.ReceivingAccount, s.Memo,
		"The memo is required", `<svg class="qr-code"`, `href="` + strings.ReplaceAll(html.EscapeString(uri.String()), "+", "&#43;") + `"`,
		`data-expires-at="` + s.ExpiresAt.Format(time.RFC3339) + `"`, "Pay with sandbox wallet",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q\n%s", want, body)
		}
	}
	for _, unwanted := range []string{"secret-order-4711", s.MerchantID, "shop.example", " onclick=", " onload=", "javascript:"} {
		if strings.Contains(body, unwanted) {
			t.Errorf("page reveals or contains %q", unwanted)
		}
	}
}

func TestPageMuxedSessionNeedsNoMemo(t *testing.T) {
	e := newEnv(t)
	s := e.newSession(checkout.SessionParams{Amount: 10_000_000, MemoType: checkout.MemoMuxed})
	dest, err := sep7.Destination(s)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := e.get("/c/" + s.ID)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	if !strings.HasPrefix(dest, "M") || !strings.Contains(body, dest) {
		t.Errorf("page lacks the muxed address %s", dest)
	}
	if !strings.Contains(body, "No memo needed") {
		t.Error("page does not say that no memo is needed")
	}
	if strings.Contains(body, "The memo is required") || strings.Contains(body, `id="memo"`) {
		t.Error("muxed page asks for a memo")
	}
}

func TestNotFound(t *testing.T) {
	e := newEnv(t)
	unknown := checkout.NewID(checkout.PrefixSession)
	for _, path := range []string{
		"/c/" + unknown,
		"/c/not-a-session",
		"/c/" + checkout.NewID(checkout.PrefixMerchant),
		"/c/" + strings.ToUpper(unknown),
		"/c/",
		"/c/" + unknown + "/extra",
	} {
		resp, body := e.get(path)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
			continue
		}
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "Checkout not found") {
			t.Errorf("GET %s: not the friendly page: %s", path, body)
		}
		if resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: no CSP", path)
		}
	}
	for _, path := range []string{"/v1/public/sessions/" + unknown + "/status", "/v1/public/sessions/bogus/status"} {
		resp, body := e.get(path)
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `"not_found"`) {
			t.Errorf("GET %s: %d %s, want a JSON 404", path, resp.StatusCode, body)
		}
	}
	resp, _ := e.do(http.MethodPost, "/c/"+unknown+"/sandbox-pay", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("sandbox-pay of an unknown session: %d, want 404", resp.StatusCode)
	}
}

// The public status endpoint answers anyone who has the link, so it says
// exactly this much and no more.
func TestStatusRevealsNothingPrivate(t *testing.T) {
	e := newEnv(t)
	s := e.newSession(checkout.SessionParams{Amount: 50_000_000, MemoType: checkout.MemoText,
		Metadata:   map[string]string{"customer_email": "ada@example.com"},
		SuccessURL: "https://shop.example/thanks?order=1", CancelURL: "https://shop.example/cancel"})
	want := []string{"amount", "amount_received", "asset", "expires_at", "payment_status", "status", "success_url"}

	st := e.status(s.ID)
	if got := slices.Sorted(maps.Keys(st)); !slices.Equal(got, want) {
		t.Fatalf("status keys %v, want exactly %v", got, want)
	}
	wantOpen := map[string]any{"status": "open", "payment_status": "unpaid", "amount": "5.0000000",
		"amount_received": "0.0000000", "asset": "XLM", "expires_at": s.ExpiresAt.Format(time.RFC3339), "success_url": ""}
	if !maps.Equal(st, wantOpen) {
		t.Errorf("open status %v, want %v", st, wantOpen)
	}
	_, raw := e.get("/v1/public/sessions/" + s.ID + "/status")
	for _, secret := range []string{"ada@example.com", s.MerchantID, s.ReceivingAccount, s.Memo, "cancel", "shop.example"} {
		if strings.Contains(raw, secret) {
			t.Errorf("status reveals %q: %s", secret, raw)
		}
	}

	e.pay(s, s.Amount)
	e.waitSession(s.ID, func(s checkout.Session) bool { return s.Status == checkout.StatusComplete })
	st = e.status(s.ID)
	if got := slices.Sorted(maps.Keys(st)); !slices.Equal(got, want) {
		t.Fatalf("complete status keys %v, want exactly %v", got, want)
	}
	if st["status"] != "complete" || st["payment_status"] != "paid" || st["amount_received"] != "5.0000000" ||
		st["success_url"] != "https://shop.example/thanks?order=1" {
		t.Errorf("complete status %v", st)
	}
}

func TestSandboxPayPaysTheRest(t *testing.T) {
	e := newEnv(t)
	s := e.newSession(checkout.SessionParams{Amount: 100_000_000, MemoType: checkout.MemoID})

	e.pay(s, 30_000_000)
	e.waitSession(s.ID, func(s checkout.Session) bool { return s.PaymentStatus == checkout.PaymentPartiallyPaid })
	if st := e.status(s.ID); st["payment_status"] != "partially_paid" || st["amount_received"] != "3.0000000" {
		t.Fatalf("after a partial payment: %v", st)
	}
	_, body := e.get("/c/" + s.ID)
	if !strings.Contains(body, "Partially paid") || !strings.Contains(body, `<span id="remaining">7.00</span>`) {
		t.Errorf("partially paid page lacks its progress:\n%s", body)
	}

	resp, body := e.do(http.MethodPost, "/c/"+s.ID+"/sandbox-pay", http.Header{"Sec-Fetch-Site": {"cross-site"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-site sandbox-pay: %d %s, want 403", resp.StatusCode, body)
	}
	resp, body = e.do(http.MethodPost, "/c/"+s.ID+"/sandbox-pay", http.Header{"Sec-Fetch-Site": {"same-origin"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"amount":"7.0000000"`) {
		t.Fatalf("sandbox-pay: %d %s", resp.StatusCode, body)
	}
	got := e.waitSession(s.ID, func(s checkout.Session) bool { return s.Status == checkout.StatusComplete })
	if got.PaymentStatus != checkout.PaymentPaid || got.AmountReceived != s.Amount {
		t.Errorf("after sandbox-pay: %s/%s received %s", got.Status, got.PaymentStatus, got.AmountReceived)
	}
	resp, body = e.do(http.MethodPost, "/c/"+s.ID+"/sandbox-pay", nil)
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("sandbox-pay of a complete session: %d %s, want 409", resp.StatusCode, body)
	}
	_, body = e.get("/c/" + s.ID)
	if !strings.Contains(body, "Paid. Thank you!") || strings.Contains(body, `id="sandbox-pay"`) {
		t.Errorf("complete page:\n%s", body)
	}
}

func TestSandboxPayIsOffInProduction(t *testing.T) {
	e := newEnv(t, envOptions{noSandboxPay: true})
	s := e.newSession(checkout.SessionParams{Amount: 10_000_000})
	if slices.Contains(e.handler.Patterns(), "POST /c/{id}/sandbox-pay") {
		t.Error("the sandbox-pay route is mounted without a SandboxPayer")
	}
	resp, _ := e.do(http.MethodPost, "/c/"+s.ID+"/sandbox-pay", nil)
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("sandbox-pay without a SandboxPayer: %d", resp.StatusCode)
	}
	_, body := e.get("/c/" + s.ID)
	for _, unwanted := range []string{`id="sandbox-pay"`, "data-sandbox-pay-url", "Sandbox network"} {
		if strings.Contains(body, unwanted) {
			t.Errorf("the production page has %s", unwanted)
		}
	}
}

func TestNewValidatesConfig(t *testing.T) {
	if _, err := hosted.New(hosted.Config{NetworkPassphrase: "x"}); err == nil {
		t.Error("no store: want an error")
	}
}
