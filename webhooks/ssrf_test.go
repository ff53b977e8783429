package webhooks_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/webhooks"
)

func TestForbidden(t *testing.T) {
	var p webhooks.Policy
	for _, a := range []string{
		"127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
		"169.254.169.254", "169.254.1.1", "0.0.0.0", "0.1.2.3", "100.64.0.1", "100.127.255.254",
		"224.0.0.1", "255.255.255.255", "::", "::1", "fe80::1", "fc00::1", "fd00:ec2::254",
		"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::7f00:1", "2002:7f00:1::",
		"ff02::1",
	} {
		if !p.Forbidden(netip.MustParseAddr(a)) {
			t.Errorf("%s is allowed", a)
		}
	}
	for _, a := range []string{"1.1.1.1", "8.8.8.8", "100.128.0.1", "172.32.0.1", "2606:4700::1111", "2a00:1450::1"} {
		if p.Forbidden(netip.MustParseAddr(a)) {
			t.Errorf("%s is forbidden", a)
		}
	}
	p, err := webhooks.Policy{}.ParseAllowlist([]string{"127.0.0.1", "10.9.0.0/16", "hooks.internal"})
	if err != nil {
		t.Fatal(err)
	}
	for a, want := range map[string]bool{"127.0.0.1": false, "::ffff:127.0.0.1": false, "127.0.0.2": true, "10.9.3.4": false, "10.8.0.1": true} {
		if got := p.Forbidden(netip.MustParseAddr(a)); got != want {
			t.Errorf("with allowlist, Forbidden(%s) = %v", a, got)
		}
	}
	if _, err := (webhooks.Policy{}).ParseAllowlist([]string{"10.0.0.0/99"}); err == nil {
		t.Error("a bad CIDR was accepted")
	}
}

func TestValidateURL(t *testing.T) {
	prod := webhooks.Policy{}
	dev, _ := webhooks.Policy{AllowInsecure: true}.ParseAllowlist([]string{"127.0.0.1", "hooks.internal"})
	tests := []struct {
		url        string
		policy     webhooks.Policy
		wantReason string // empty: accepted
	}{
		{"https://example.com/hooks", prod, ""},
		{"https://example.com:8443/hooks?x=1", prod, ""},
		{"https://93.184.215.14/x", prod, ""},
		{"http://example.com/hooks", prod, "url_insecure"},
		{"http://example.com/hooks", dev, ""},
		{"ftp://example.com/", prod, "url_invalid"},
		{"/relative", prod, "url_invalid"},
		{"", prod, "url_invalid"},
		{"https://" + strings.Repeat("a", 2048) + ".com/", prod, "url_invalid"},
		{"https://user:pass@example.com/", prod, "url_invalid"},
		{"https://example.com/#frag", prod, "url_invalid"},
		{"https://example.com:0/", prod, "url_invalid"},
		{"https://example.com:99999/", prod, "url_invalid"},
		{"https:///path", prod, "url_invalid"},
		{"https://127.0.0.1/", prod, "url_forbidden"},
		{"https://10.0.0.5/", prod, "url_forbidden"},
		{"https://192.168.0.10/", prod, "url_forbidden"},
		{"https://169.254.169.254/latest/meta-data", prod, "url_forbidden"},
		{"https://[fd00:ec2::254]/", prod, "url_forbidden"},
		{"https://[::1]/", prod, "url_forbidden"},
		{"https://[::]/", prod, "url_forbidden"},
		{"https://0.0.0.0/", prod, "url_forbidden"},
		{"https://100.64.1.1/", prod, "url_forbidden"},
		{"https://[fe80::1%25eth0]/", prod, "url_forbidden"},
		{"https://[::ffff:127.0.0.1]/", prod, "url_forbidden"},
		{"https://localhost/", prod, "url_forbidden"},
		{"https://api.localhost/", prod, "url_forbidden"},
		{"https://intranet/", prod, "url_forbidden"},
		{"https://2130706433/", prod, "url_invalid"},
		{"https://0x7f.1/", prod, "url_invalid"},
		{"https://127.1/", prod, "url_invalid"},
		{"http://127.0.0.1:8080/hook", dev, ""},
		{"http://127.0.0.2:8080/hook", dev, "url_forbidden"},
		{"http://hooks.internal/x", dev, ""},
	}
	for _, tt := range tests {
		_, err := tt.policy.ValidateURL(tt.url)
		var e *checkout.Error
		switch {
		case tt.wantReason == "" && err != nil:
			t.Errorf("ValidateURL(%.60q) = %v, want accepted", tt.url, err)
		case tt.wantReason != "" && (!errors.As(err, &e) || e.Reason != tt.wantReason || e.Param != "url"):
			t.Errorf("ValidateURL(%.60q) = %v, want reason %s", tt.url, err, tt.wantReason)
		}
	}
	_, err := prod.ValidateURL("https://user:hunter2@example.com/")
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %v repeats the credentials", err)
	}
}

// receiver is a real HTTP server on 127.0.0.1 that counts its hits.
func receiver(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func post(t *testing.T, c *http.Client, url string) (*http.Response, error) {
	t.Helper()
	req, err := webhooks.NewRequest(t.Context(), url, "evt_1", time.Now(), []byte(`{}`), webhooks.NewSecret())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if resp != nil {
		resp.Body.Close()
	}
	return resp, err
}

// TestClientRefusesInternalAddresses checks the address actually dialed,
// whatever the URL says: names that resolve to loopback, IPv6 loopback, the
// unspecified address and private addresses.
func TestClientRefusesInternalAddresses(t *testing.T) {
	srv, hits := receiver(t, func(w http.ResponseWriter, r *http.Request) {})
	port := srv.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port()
	c := webhooks.NewClient(webhooks.ClientConfig{Policy: webhooks.Policy{AllowInsecure: true}})
	for _, u := range []string{
		srv.URL, // 127.0.0.1, not allowlisted here
		"http://localhost:" + itoa(port) + "/",
		"http://[::1]:" + itoa(port) + "/",
		"http://0.0.0.0:" + itoa(port) + "/",
		"http://10.255.255.1:" + itoa(port) + "/",
		"http://169.254.169.254/latest/meta-data",
	} {
		_, err := post(t, c, u)
		if !errors.Is(err, webhooks.ErrForbiddenAddress) {
			t.Errorf("POST %s: err = %v, want ErrForbiddenAddress", u, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("receiver was reached %d times", n)
	}

	// Allowlisting 127.0.0.1 lets the test receiver in, and only it.
	p, _ := webhooks.Policy{AllowInsecure: true}.ParseAllowlist([]string{"127.0.0.1"})
	c = webhooks.NewClient(webhooks.ClientConfig{Policy: p})
	if resp, err := post(t, c, srv.URL); err != nil || resp.StatusCode != 200 {
		t.Fatalf("allowlisted receiver: %v", err)
	}
	if _, err := post(t, c, "http://[::1]:"+itoa(port)+"/"); !errors.Is(err, webhooks.ErrForbiddenAddress) {
		t.Errorf("[::1] with 127.0.0.1 allowlisted: err = %v", err)
	}
}

// TestClientDoesNotFollowRedirects: a redirect to loopback is answered, not
// followed; the 3xx is the response.
func TestClientDoesNotFollowRedirects(t *testing.T) {
	inside, insideHits := receiver(t, func(w http.ResponseWriter, r *http.Request) {})
	outside, _ := receiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inside.URL+"/admin", http.StatusTemporaryRedirect)
	})
	p, _ := webhooks.Policy{AllowInsecure: true}.ParseAllowlist([]string{"127.0.0.1"})
	c := webhooks.NewClient(webhooks.ClientConfig{Policy: p})
	resp, err := post(t, c, outside.URL)
	if err != nil || resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("resp %v, err %v: want the 307 itself", resp, err)
	}
	if insideHits.Load() != 0 {
		t.Fatal("the redirect was followed")
	}
}

func TestClientRefusesHTTPUnlessInsecure(t *testing.T) {
	srv, hits := receiver(t, func(w http.ResponseWriter, r *http.Request) {})
	p, _ := webhooks.Policy{}.ParseAllowlist([]string{"127.0.0.1"})
	c := webhooks.NewClient(webhooks.ClientConfig{Policy: p})
	if _, err := post(t, c, srv.URL); err == nil || hits.Load() != 0 {
		t.Fatalf("http was sent without AllowInsecure: %v", err)
	}
}

func itoa(n uint16) string { return strconv.Itoa(int(n)) }
