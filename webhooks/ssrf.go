package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"

	checkout "github.com/checkoutd/checkoutd"
)

// Policy says which webhook URLs and addresses may be reached. The zero
// value is the production policy: https only, public addresses only.
type Policy struct {
	// AllowInsecure accepts http:// URLs (development and tests).
	AllowInsecure bool
	// AllowPrefixes are address ranges reachable even though they are
	// private, loopback and so on, such as 127.0.0.1/32 in tests.
	AllowPrefixes []netip.Prefix
	// AllowHosts are host names (exact, lowercase) that may resolve to any
	// address, such as an internal receiver the operator trusts.
	AllowHosts []string
}

// ParseAllowlist turns entries that are CIDRs ("10.1.0.0/16"), addresses
// ("127.0.0.1", "::1") or host names ("hooks.internal") into a policy's
// allowlist, added to p.
func (p Policy) ParseAllowlist(entries []string) (Policy, error) {
	for _, e := range entries {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			continue
		case strings.Contains(e, "/"):
			pfx, err := netip.ParsePrefix(e)
			if err != nil {
				return p, fmt.Errorf("webhook allowlist entry %q: %w", e, err)
			}
			p.AllowPrefixes = append(p.AllowPrefixes, pfx.Masked())
		default:
			if a, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
				p.AllowPrefixes = append(p.AllowPrefixes, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
				continue
			}
			p.AllowHosts = append(p.AllowHosts, strings.ToLower(strings.TrimSuffix(e, ".")))
		}
	}
	return p, nil
}

// forbidden are the ranges a webhook may not reach unless allowlisted:
// everything that is not the public internet.
var forbidden = mustPrefixes(
	"0.0.0.0/8",       // "this network", including 0.0.0.0
	"10.0.0.0/8",      // private
	"100.64.0.0/10",   // carrier-grade NAT
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, including the 169.254.169.254 metadata service
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments
	"192.0.2.0/24",    // documentation
	"192.88.99.0/24",  // 6to4 relay anycast
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation
	"203.0.113.0/24",  // documentation
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, including 255.255.255.255
	"::/96",           // unspecified, loopback and the deprecated IPv4-compatible ::a.b.c.d
	"::ffff:0:0/96",   // IPv4-mapped (checked again unmapped)
	"64:ff9b::/96",    // NAT64, which reaches IPv4 addresses
	"64:ff9b:1::/48",  // local-use NAT64
	"100::/64",        // discard
	"2001::/32",       // Teredo
	"2001:db8::/32",   // documentation
	"2002::/16",       // 6to4, which reaches IPv4 addresses
	"fc00::/7",        // unique local, including fd00:ec2::254 (the EC2 metadata service)
	"fe80::/10",       // link-local
	"fec0::/10",       // site-local (deprecated)
	"ff00::/8",        // multicast
)

func mustPrefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// Forbidden reports whether addr may not be reached under p: it is not a
// public unicast address and no allowlisted range holds it.
func (p Policy) Forbidden(addr netip.Addr) bool {
	addr = addr.WithZone("")
	for _, a := range []netip.Addr{addr, addr.Unmap()} {
		for _, pfx := range p.AllowPrefixes {
			if pfx.Contains(a) {
				return false
			}
		}
	}
	if !addr.IsValid() {
		return true
	}
	u := addr.Unmap()
	for _, pfx := range forbidden {
		if pfx.Contains(addr) || pfx.Contains(u) {
			return true
		}
	}
	return false
}

func (p Policy) hostAllowed(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, h := range p.AllowHosts {
		if h == host {
			return true
		}
	}
	return false
}

// URL errors name the url parameter of the endpoint API; they never repeat
// the URL, which could carry credentials.
func badURL(reason, format string, args ...any) error {
	return checkout.InvalidParam("url", reason, format, args...)
}

// ValidateURL checks a webhook endpoint URL when it is registered: an
// absolute https URL (http too under AllowInsecure), no credentials, no
// fragment, at most 2048 bytes, and a host that is not an address or name
// the policy forbids. A host name is not resolved here; the dialer checks
// every address it connects to.
func (p Policy) ValidateURL(raw string) (*url.URL, error) {
	if raw == "" || len(raw) > 2048 {
		return nil, badURL("url_invalid", "url must be 1 to 2048 bytes")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Opaque != "" {
		return nil, badURL("url_invalid", "url must be an absolute http(s) URL")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !p.AllowInsecure {
			return nil, badURL("url_insecure", "url must use https")
		}
	default:
		return nil, badURL("url_invalid", "url must use https")
	}
	if u.User != nil {
		return nil, badURL("url_invalid", "url must not contain credentials")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, badURL("url_invalid", "url must not contain a fragment")
	}
	// A name may end in the root's dot, and "127.0.0.1." or "0x7f.1." is
	// still loopback to a resolver: judge the host without its dots.
	host := strings.TrimRight(u.Hostname(), ".")
	if host == "" {
		return nil, badURL("url_invalid", "url must name a host")
	}
	// An empty label (".00", "1..2") is no host name, and resolvers and
	// inet_aton disagree about what it means: refuse it before the checks
	// below, which judge names and numbers label by label.
	if strings.HasPrefix(host, ".") || strings.Contains(host, "..") {
		return nil, badURL("url_invalid", "url host is not a valid host name")
	}
	if port := u.Port(); port != "" {
		if n, err := parsePort(port); err != nil || n == 0 {
			return nil, badURL("url_invalid", "url has an invalid port")
		}
	}
	if p.hostAllowed(host) {
		return u, nil
	}
	if addr, err := netip.ParseAddr(host); err == nil {
		if p.Forbidden(addr) {
			return nil, badURL("url_forbidden", "url must not point to a private, loopback, link-local or otherwise internal address")
		}
		return u, nil
	}
	if isLegacyIPv4(host) {
		// "2130706433", "0x7f.1", "127.1": forms that some resolvers read as
		// addresses. Refuse them rather than guess.
		return nil, badURL("url_invalid", "url host is not a valid host name")
	}
	lower := strings.ToLower(strings.TrimSuffix(host, "."))
	if lower == "localhost" || strings.HasSuffix(lower, ".localhost") || !strings.Contains(lower, ".") {
		return nil, badURL("url_forbidden", "url must name a public host")
	}
	return u, nil
}

func parsePort(s string) (int, error) {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' || n > 65535 {
			return 0, errors.New("bad port")
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, errors.New("bad port")
	}
	return n, nil
}

// isLegacyIPv4 reports whether host is made of numbers and dots only, or
// uses hex parts, the shapes inet_aton accepts as an address.
func isLegacyIPv4(host string) bool {
	parts := strings.Split(host, ".")
	for _, part := range parts {
		if part == "" {
			return false
		}
		p := strings.ToLower(part)
		if strings.HasPrefix(p, "0x") {
			p = p[2:]
			if p == "" || strings.Trim(p, "0123456789abcdef") != "" {
				return false
			}
			continue
		}
		if strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

// ErrForbiddenAddress is the error of a connection refused because its
// address is internal.
var ErrForbiddenAddress = errors.New("webhook address is not allowed")

// Dialer dials only addresses the policy allows. The check runs in the
// dialer's Control hook, on the address actually being connected to after
// DNS resolution, so a name that resolves (or re-resolves) to an internal
// address is refused, and so is every address a redirect or a retry could
// lead to.
type Dialer struct {
	policy Policy
	dialer net.Dialer
	// Resolver, if set, replaces the system resolver (tests use it to make
	// names resolve to loopback).
	Resolver *net.Resolver
}

// NewDialer returns a dialer that enforces p.
func NewDialer(p Policy) *Dialer {
	d := &Dialer{policy: p}
	d.dialer = net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return d
}

// DialContext connects to addr, refusing internal addresses unless addr's
// host is allowlisted.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := d.dialer
	nd.Resolver = d.Resolver
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("webhook dial: %w", err)
	}
	if !d.policy.hostAllowed(host) {
		nd.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
			}
			if d.policy.Forbidden(ap.Addr()) {
				return fmt.Errorf("%w: %s is internal", ErrForbiddenAddress, ap.Addr())
			}
			return nil
		}
	}
	return nd.DialContext(ctx, network, addr)
}

// ClientConfig tunes the shared webhook HTTP client.
type ClientConfig struct {
	Policy Policy
	// MaxIdleConnsPerHost is how many kept-alive connections to one receiver
	// are kept. Default 64.
	MaxIdleConnsPerHost int
	// Resolver replaces the system resolver (tests).
	Resolver *net.Resolver
}

// NewClient returns the one HTTP client every webhook attempt shares. It
// keeps connections alive and reuses them, never uses a proxy from the
// environment (which would dial for us, past the address check), never
// follows a redirect (a 3xx is the answer, and it is a failure), and dials
// through Dialer. Per-attempt timeouts come from the request's context.
func NewClient(cfg ClientConfig) *http.Client {
	if cfg.MaxIdleConnsPerHost <= 0 {
		cfg.MaxIdleConnsPerHost = 64
	}
	d := NewDialer(cfg.Policy)
	d.Resolver = cfg.Resolver
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: &schemeGuard{policy: cfg.Policy, next: tr},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// schemeGuard refuses plain http unless the policy allows it, whatever URL
// was stored.
type schemeGuard struct {
	policy Policy
	next   *http.Transport
}

func (g *schemeGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" && !(r.URL.Scheme == "http" && g.policy.AllowInsecure) {
		return nil, fmt.Errorf("webhook url scheme %q is not allowed", r.URL.Scheme)
	}
	return g.next.RoundTrip(r)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the
// transport.
func (g *schemeGuard) CloseIdleConnections() { g.next.CloseIdleConnections() }
