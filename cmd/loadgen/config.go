package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"
)

// config is everything a run is configured with.
type config struct {
	APIURL     string
	SandboxURL string
	APIKeys    []string

	Sessions    int
	Duration    time.Duration
	Rate        float64 // sessions started per second; 0 means closed loop
	Concurrency int     // closed loop: sessions in flight
	Mix         mix
	MemoTypes   []string
	LateMode    string // "cancel" or "expire"
	Customers   int
	Seed        uint64

	WebhookAddr  string
	Settle       time.Duration
	CheckTimeout time.Duration

	ReportPath  string
	JSON        bool
	AllowRemote bool
	Progress    string // auto, always or never
}

// Late modes: how a "late" session is made to close before it is paid.
const (
	lateCancel = "cancel"
	lateExpire = "expire"
)

// devEnvPath is where `checkoutd dev` may leave its addresses and key for
// tools such as loadgen, as KEY=value lines.
const devEnvPath = ".checkoutd/dev.env"

// stringList is a flag that may be repeated and takes comma lists.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*s = append(*s, p)
		}
	}
	return nil
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	var keys stringList
	var mixSpec, memoTypes, devEnv string
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.APIURL, "api", "", "checkoutd API base URL ($CHECKOUTD_API_URL, else "+devEnvPath+", else http://127.0.0.1:8080)")
	fs.StringVar(&c.SandboxURL, "sandbox", "", "sandbox Stellar network (Horizon) base URL ($CHECKOUTD_SANDBOX_URL, else "+devEnvPath+", else http://127.0.0.1:8000)")
	fs.StringVar(&c.SandboxURL, "horizon", "", "same as --sandbox")
	fs.Var(&keys, "api-key", "merchant API key; repeat it or give a comma list to spread sessions over many merchants ($CHECKOUTD_API_KEY, else "+devEnvPath+")")
	fs.StringVar(&devEnv, "dev-env", devEnvPath, "file of KEY=value lines written by `checkoutd dev`, read for defaults if it exists")
	fs.IntVar(&c.Sessions, "sessions", 100, "how many checkout sessions to create and pay")
	fs.DurationVar(&c.Duration, "duration", 5*time.Minute, "the most the load and its settling may take; the run stops by itself then")
	fs.Float64Var(&c.Rate, "rate", 0, "open loop: start this many sessions per second at fixed intervals (0: closed loop, see --concurrency)")
	fs.IntVar(&c.Concurrency, "concurrency", 32, "closed loop: how many sessions are in flight at once, each started when one finishes")
	fs.StringVar(&mixSpec, "mix", defaultMix, "proportions of the kinds of payment: exact, partial, overpaid, wrong_asset, late, unpaid (created, never paid)")
	fs.StringVar(&memoTypes, "memo-types", "text,id,muxed", "memo types the sessions use, in turn")
	fs.StringVar(&c.LateMode, "late", lateCancel, "how late sessions close before they are paid: cancel (through the API) or expire (expires_in 60 s, paid after it)")
	fs.IntVar(&c.Customers, "customers", 0, "customer accounts funded through friendbot (0: one per concurrent session, at most 200)")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed for the order of kinds and the amounts")
	fs.StringVar(&c.WebhookAddr, "webhook-addr", "127.0.0.1:0", "where the webhook receiver listens (loopback)")
	fs.DurationVar(&c.Settle, "settle", 60*time.Second, "how long a paid session may wait for its webhooks before it counts as not finished")
	fs.DurationVar(&c.CheckTimeout, "check-timeout", 2*time.Minute, "the most the final check through the API may take, after --duration")
	fs.StringVar(&c.ReportPath, "report", "", "write an HTML report with charts to this file")
	fs.BoolVar(&c.JSON, "json", false, "print a machine-readable summary on stdout (the table goes to stderr)")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow --api and --sandbox to name hosts that are not loopback")
	fs.StringVar(&c.Progress, "progress", "auto", "progress display: auto (a bar on a terminal, lines otherwise), bar, lines or none")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, &usageError{err: err}
	}
	if fs.NArg() > 0 {
		return c, usagef("unexpected argument %q", fs.Arg(0))
	}

	env, err := readDevEnv(devEnv)
	if err != nil {
		return c, usagef("--dev-env: %v", err)
	}
	c.APIURL = firstNonEmpty(c.APIURL, os.Getenv("CHECKOUTD_API_URL"), env["CHECKOUTD_API_URL"], "http://127.0.0.1:8080")
	c.SandboxURL = firstNonEmpty(c.SandboxURL, os.Getenv("CHECKOUTD_SANDBOX_URL"), env["CHECKOUTD_SANDBOX_URL"], "http://127.0.0.1:8000")
	if len(keys) == 0 {
		_ = keys.Set(firstNonEmpty(os.Getenv("CHECKOUTD_API_KEY"), env["CHECKOUTD_API_KEY"]))
	}
	c.APIKeys = keys
	if c.Mix, err = parseMix(mixSpec); err != nil {
		return c, usagef("--mix: %v", err)
	}
	_ = (*stringList)(&c.MemoTypes).Set(memoTypes)
	return c, c.validate()
}

func (c *config) validate() error {
	c.APIURL = strings.TrimRight(c.APIURL, "/")
	c.SandboxURL = strings.TrimRight(c.SandboxURL, "/")
	if len(c.APIKeys) == 0 {
		return usagef("no API key: pass --api-key, export CHECKOUTD_API_KEY, or put CHECKOUTD_API_KEY=... in %s (the key `checkoutd dev` printed)", devEnvPath)
	}
	for _, k := range c.APIKeys {
		if !strings.HasPrefix(k, "sk_test_") {
			return usagef("--api-key %.12s…: want a test key (sk_test_…): loadgen pays with sandbox funds only", k)
		}
	}
	switch {
	case c.Sessions <= 0:
		return usagef("--sessions must be positive")
	case c.Duration <= 0:
		return usagef("--duration must be positive")
	case c.Rate < 0:
		return usagef("--rate must not be negative")
	case c.Rate == 0 && c.Concurrency <= 0:
		return usagef("--concurrency must be positive")
	case c.Settle <= 0 || c.CheckTimeout <= 0:
		return usagef("--settle and --check-timeout must be positive")
	case c.LateMode != lateCancel && c.LateMode != lateExpire:
		return usagef("--late %q: want cancel or expire", c.LateMode)
	case c.Customers < 0:
		return usagef("--customers must not be negative")
	}
	switch c.Progress {
	case "auto", "bar", "lines", "none":
	default:
		return usagef("--progress %q: want auto, bar, lines or none", c.Progress)
	}
	if len(c.MemoTypes) == 0 {
		return usagef("--memo-types must name at least one of text, id, muxed")
	}
	for _, m := range c.MemoTypes {
		if m != "text" && m != "id" && m != "muxed" {
			return usagef("--memo-types: %q: want text, id or muxed", m)
		}
	}
	if c.Customers == 0 {
		c.Customers = c.autoCustomers()
	}
	for name, raw := range map[string]string{"api": c.APIURL, "sandbox": c.SandboxURL} {
		u, err := url.Parse(raw)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			return usagef("--%s %q: want http(s)://host:port", name, raw)
		}
		if c.AllowRemote {
			continue
		}
		if err := requireLoopback(u.Hostname()); err != nil {
			return usagef("--%s %s: %v; pass --allow-remote to drive another machine", name, raw, err)
		}
	}
	host, _, err := net.SplitHostPort(c.WebhookAddr)
	if err != nil {
		return usagef("--webhook-addr %q: %v", c.WebhookAddr, err)
	}
	if a, err := netip.ParseAddr(host); err != nil || !a.IsLoopback() {
		return usagef("--webhook-addr %q: the receiver listens on a loopback address only", c.WebhookAddr)
	}
	return nil
}

// autoCustomers is the default number of customer accounts: enough that
// payments rarely wait for a customer's previous transaction.
func (c *config) autoCustomers() int {
	n := c.Concurrency
	if c.Rate > 0 {
		// A payment holds its customer for about two ledger closes.
		n = int(c.Rate*3) + 8
	}
	return max(1, min(n, c.Sessions, 200))
}

// requireLoopback resolves host and refuses it unless every address it
// has is a loopback address.
func requireLoopback(host string) error {
	if a, err := netip.ParseAddr(host); err == nil {
		if !a.Unmap().IsLoopback() {
			return errors.New("not a loopback address")
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("resolve: %w", err)
	}
	if len(addrs) == 0 {
		return errors.New("resolves to no address")
	}
	for _, a := range addrs {
		if !a.Unmap().IsLoopback() {
			return fmt.Errorf("resolves to %s, which is not loopback", a)
		}
	}
	return nil
}

// readDevEnv reads KEY=value lines (blank lines and # comments skipped,
// optional "export " and quotes allowed). A missing file is no error.
func readDevEnv(path string) (map[string]string, error) {
	out := map[string]string{}
	if path == "" {
		return out, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok {
			continue
		}
		out[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return out, sc.Err()
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
