package webhooks_test

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/webhooks"
)

// TestValidateURLAddressForms covers the ways of writing an internal
// address that URL parsers, resolvers and inet_aton read differently:
// integer, octal and hex IPv4, IPv4-mapped and NAT64 IPv6, zones, a
// trailing root dot, and credentials that make the host look like another.
func TestValidateURLAddressForms(t *testing.T) {
	var prod webhooks.Policy
	for _, tc := range []struct{ url, reason string }{
		{"https://2130706433/", "url_invalid"},    // 127.0.0.1 as one integer
		{"https://017700000001/", "url_invalid"},  // the same in octal
		{"https://0x7f000001/", "url_invalid"},    // and in hex
		{"https://0x7f.1/", "url_invalid"},        // hex and short form
		{"https://0177.0.0.1/", "url_invalid"},    // octal first part
		{"https://127.1/", "url_invalid"},         // short form
		{"https://0/", "url_invalid"},             // 0.0.0.0
		{"https://127.0.0.1./", "url_forbidden"},  // trailing root dot
		{"https://127.0.0.1../", "url_forbidden"}, // two of them
		{"https://0x7f.1./", "url_invalid"},       // hex with a root dot
		{"https://2130706433./", "url_invalid"},   // integer with a root dot
		{"https://0.0.0.0./", "url_forbidden"},    // unspecified with a root dot
		{"https://169.254.169.254./", "url_forbidden"},
		{"https://./", "url_invalid"},
		{"https://localhost./", "url_forbidden"},
		{"https://LocalHost/", "url_forbidden"},
		{"https://[::ffff:127.0.0.1]/", "url_forbidden"}, // IPv4-mapped loopback
		{"https://[::ffff:7f00:1]/", "url_forbidden"},    // the same in hex
		{"https://[0:0:0:0:0:ffff:127.0.0.1]/", "url_forbidden"},
		{"https://[::ffff:a9fe:a9fe]/", "url_forbidden"}, // mapped metadata service
		{"https://[::ffff:10.0.0.1]/", "url_forbidden"},
		{"https://[64:ff9b::127.0.0.1]/", "url_forbidden"}, // NAT64 to loopback
		{"https://[::127.0.0.1]/", "url_forbidden"},        // IPv4-compatible, deprecated
		{"https://[::1%25lo]/", "url_forbidden"},
		{"https://[::]/", "url_forbidden"},
		{"https://[0::1]/", "url_forbidden"},
		{"https://example.com@127.0.0.1/", "url_invalid"}, // userinfo: host is 127.0.0.1
		{"https://127.0.0.1@example.com/", "url_invalid"}, // userinfo: looks internal, is not; credentials anyway
		{"https://user@example.com/", "url_invalid"},
		{"https://:@example.com/", "url_invalid"},
		{"https://127.0.0.1%2e/", "url_invalid"},
		{"https://%31%32%37.0.0.1/", "url_invalid"},
		{"https://127.0.0.1\\@example.com/", "url_invalid"},
		{"https:/\\127.0.0.1/", "url_invalid"},
		{"https://\t127.0.0.1/", "url_invalid"},
		{"https://127.0.0.1 /", "url_invalid"},
		{"HTTPS://127.0.0.1/", "url_forbidden"},
		{"https://127.0.0.1:443/", "url_forbidden"},
	} {
		_, err := prod.ValidateURL(tc.url)
		var e *checkout.Error
		if !errors.As(err, &e) || e.Reason != tc.reason || e.Param != "url" {
			t.Errorf("ValidateURL(%q) = %v, want reason %s", tc.url, err, tc.reason)
		}
	}
	for _, ok := range []string{"https://1.1.1.1./", "https://example.com./hooks", "https://[2606:4700::1111]/"} {
		if _, err := prod.ValidateURL(ok); err != nil {
			t.Errorf("ValidateURL(%q) = %v, want accepted", ok, err)
		}
	}
}

// fakeDNS answers every A query with a4 and every AAAA query with a16, over
// UDP on 127.0.0.1, and returns a resolver that asks it and nobody else.
func fakeDNS(t *testing.T, a4, a16 netip.Addr) *net.Resolver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := dnsAnswer(buf[:n], a4, a16); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// dnsAnswer builds the response to a one-question query: the question, and
// one answer when its type is A (1) or AAAA (28).
func dnsAnswer(q []byte, a4, a16 netip.Addr) []byte {
	if len(q) < 12 {
		return nil
	}
	i := 12
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil
	}
	question := q[12 : i+5]
	qtype := binary.BigEndian.Uint16(q[i+1:])
	var rdata []byte
	switch qtype {
	case 1:
		rdata = a4.AsSlice()
	case 28:
		rdata = a16.AsSlice()
	}
	resp := make([]byte, 12, 12+len(question)+16+len(rdata))
	copy(resp, q[:2])                            // id
	binary.BigEndian.PutUint16(resp[2:], 0x8180) // response, recursion available, no error
	binary.BigEndian.PutUint16(resp[4:], 1)      // one question
	if rdata != nil {
		binary.BigEndian.PutUint16(resp[6:], 1) // one answer
	}
	resp = append(resp, question...)
	if rdata != nil {
		resp = append(resp, 0xc0, 12) // the question's name
		resp = binary.BigEndian.AppendUint16(resp, qtype)
		resp = binary.BigEndian.AppendUint16(resp, 1)  // IN
		resp = binary.BigEndian.AppendUint32(resp, 60) // TTL
		resp = binary.BigEndian.AppendUint16(resp, uint16(len(rdata)))
		resp = append(resp, rdata...)
	}
	return resp
}

// TestClientRefusesNamesResolvingInside registers nothing and trusts no
// URL: a public-looking name whose DNS says loopback, a private address,
// the metadata service or an IPv4-mapped loopback is refused at the dial,
// and the receiver listening on loopback is never reached.
func TestClientRefusesNamesResolvingInside(t *testing.T) {
	srv, hits := receiver(t, func(http.ResponseWriter, *http.Request) {})
	port := itoa(srv.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port())
	for _, tc := range []struct{ name, a4, a16 string }{
		{"loopback", "127.0.0.1", "::1"},
		{"private", "10.0.0.1", "fd00::1"},
		{"metadata", "169.254.169.254", "fd00:ec2::254"},
		{"unspecified", "0.0.0.0", "::"},
		{"mapped", "127.0.0.1", "::ffff:127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := fakeDNS(t, netip.MustParseAddr(tc.a4), netip.MustParseAddr(tc.a16))
			// The name passes registration: it is a public-looking name.
			u := "http://hooks.example.com:" + port + "/"
			if _, err := (webhooks.Policy{AllowInsecure: true}).ValidateURL(u); err != nil {
				t.Fatalf("ValidateURL(%s): %v", u, err)
			}
			c := webhooks.NewClient(webhooks.ClientConfig{Policy: webhooks.Policy{AllowInsecure: true}, Resolver: res})
			if _, err := post(t, c, u); !errors.Is(err, webhooks.ErrForbiddenAddress) {
				t.Fatalf("POST %s resolving to %s/%s: err = %v, want ErrForbiddenAddress", u, tc.a4, tc.a16, err)
			}
		})
	}
	// The resolver does answer: allowlisting the name lets the same request
	// through, so the refusals above were the address check's.
	res := fakeDNS(t, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1"))
	p, _ := webhooks.Policy{AllowInsecure: true}.ParseAllowlist([]string{"hooks.example.com"})
	c := webhooks.NewClient(webhooks.ClientConfig{Policy: p, Resolver: res})
	if resp, err := post(t, c, "http://hooks.example.com:"+port+"/"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("allowlisted name: %v", err)
	}
	if n := hits.Load(); n != 1 {
		t.Fatalf("receiver reached %d times, want only the allowlisted request's", n)
	}
}

// TestClientRefusesAddressFormsAtTheDial sends to the forms a stored URL
// could still hold (one stored before a validation fix, or written to the
// database by hand): the client refuses them whatever the URL says,
// including names that HTTP's IDNA mapping turns into loopback.
func TestClientRefusesAddressFormsAtTheDial(t *testing.T) {
	srv, hits := receiver(t, func(http.ResponseWriter, *http.Request) {})
	port := itoa(srv.Listener.Addr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port())
	c := webhooks.NewClient(webhooks.ClientConfig{Policy: webhooks.Policy{AllowInsecure: true}})
	for _, host := range []string{
		"[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "127.0.0.1.", "[::]", "0.0.0.0",
		"１２７.０.０.１", // fullwidth digits, which IDNA maps to ASCII
	} {
		u := "http://" + host + ":" + port + "/"
		if _, err := url.Parse(u); err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		_, err := post(t, c, u)
		if err == nil {
			t.Errorf("POST %s: delivered", u)
			continue
		}
		if !errors.Is(err, webhooks.ErrForbiddenAddress) && !isLookupFailure(err) {
			t.Errorf("POST %s: err = %v, want ErrForbiddenAddress or a failed lookup", u, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("receiver reached %d times", n)
	}
}

func isLookupFailure(err error) bool {
	var dns *net.DNSError
	return errors.As(err, &dns) || strings.Contains(err.Error(), "invalid URL") || strings.Contains(err.Error(), "idna")
}

// FuzzValidateURL checks that ValidateURL never panics, and that what the
// production policy accepts is https, carries no credentials or fragment,
// and has a host that is neither an internal address, an inet_aton form
// nor localhost — however the host is spelled.
func FuzzValidateURL(f *testing.F) {
	for _, s := range []string{
		"https://example.com/hooks", "https://127.0.0.1./", "https://0x7f.1/", "https://2130706433/",
		"https://[::ffff:127.0.0.1]/", "https://user:pass@example.com/", "https://example.com/#x", "http://example.com/",
		"https://[fe80::1%25eth0]/", "https://localhost./", "https://１２７.０.０.１/", "https://exa mple.com/",
		"https://example.com:99999/", "https://[::1]:443/", "https://a..b/", "https://.../",
		"https://.00/", "https://1..2/", "https://.example.com/",
	} {
		f.Add(s)
	}
	var prod webhooks.Policy
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := prod.ValidateURL(raw)
		if err != nil {
			var e *checkout.Error
			if !errors.As(err, &e) || e.Code != checkout.EINVALID || e.Param != "url" {
				t.Fatalf("ValidateURL(%q) = %v, not an invalid url parameter", raw, err)
			}
			if len(raw) > 8 && strings.Contains(err.Error(), raw) {
				t.Fatalf("the error repeats the URL: %v", err)
			}
			return
		}
		if u.Scheme != "https" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
			t.Fatalf("ValidateURL(%q) accepted %#v", raw, u)
		}
		host := strings.ToLower(strings.TrimRight(u.Hostname(), "."))
		if host == "" || host == "localhost" || strings.HasSuffix(host, ".localhost") {
			t.Fatalf("ValidateURL(%q) accepted host %q", raw, u.Hostname())
		}
		if a, err := netip.ParseAddr(host); err == nil && prod.Forbidden(a) {
			t.Fatalf("ValidateURL(%q) accepted internal address %s", raw, a)
		}
		if strings.Trim(host, "0123456789.") == "" && net.ParseIP(host) == nil {
			t.Fatalf("ValidateURL(%q) accepted numeric host %q", raw, host)
		}
	})
}
