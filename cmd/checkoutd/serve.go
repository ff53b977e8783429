package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stellar/go-stellar-sdk/network"

	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/api"
	"github.com/checkoutd/checkoutd/api/hosted"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/stellar/horizon"
	"github.com/checkoutd/checkoutd/webhooks"
)

// serveConfig is everything `checkoutd serve` is configured with.
type serveConfig struct {
	DatabaseURL           string
	HorizonURL            string
	Network               string
	Passphrase            string
	HTTPAddr              string
	PublicURL             string
	WebhooksAllowInsecure bool
	WebhooksAllowlist     string
	LogLevel              string
	LogFormat             string
	IdleTimeout           time.Duration
	RecoveryInterval      time.Duration
	ShutdownTimeout       time.Duration
	// JournalWindow and JournalMaxBatch shape the group commit of
	// settlements (actors.JournalConfig Window and MaxBatch).
	JournalWindow   time.Duration
	JournalMaxBatch int
	// SandboxPayer, set only by `checkoutd dev`, gives the hosted page its
	// "Pay with sandbox wallet" button. It has no flag.
	SandboxPayer hosted.SandboxPayer
	// APIRateLimit and APIRateBurst shape each API key's token bucket.
	APIRateLimit float64
	APIRateBurst int
	// Cluster is "" for a single node, or "etcd" to join a cluster of
	// nodes whose sessions are grains and whose watchers are shared out.
	Cluster       string
	EtcdEndpoints string
	ClusterName   string
	// NodeAddr is where this node's cluster remote (gRPC) listens, and the
	// address the other nodes reach it at.
	NodeAddr string
	// PprofAddr, when set, is a loopback address serving net/http/pprof.
	PprofAddr string

	// WebhooksPerEndpoint and WebhooksMaxInFlight bound the delivery
	// engine (actors.DeliveryConfig PerEndpoint and MaxInFlight).
	WebhooksPerEndpoint int
	WebhooksMaxInFlight int
	// CreateCommitters and CreateMaxBatch shape the group commit of
	// session creation (api.Config). AuthCacheTTL is how long a verified
	// API key is remembered; 0 turns the cache off.
	CreateCommitters int
	CreateMaxBatch   int
	AuthCacheTTL     time.Duration
}

// networks are the Stellar networks checkoutd knows by name: each sets the
// Horizon URL and passphrase defaults.
var networks = map[string]struct{ horizon, passphrase string }{
	"testnet": {"https://horizon-testnet.stellar.org", network.TestNetworkPassphrase},
	"public":  {"https://horizon.stellar.org", network.PublicNetworkPassphrase},
	"sandbox": {"http://127.0.0.1:8000", network.TestNetworkPassphrase},
}

func parseServeFlags(args []string, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	f := newFlags("serve")
	f.SetOutput(stderr)
	f.string(&c.DatabaseURL, "database-url", "DATABASE_URL", "", "Postgres connection URL (required)")
	f.string(&c.HorizonURL, "horizon-url", "CHECKOUTD_HORIZON_URL", "", "Horizon base URL (default: the network's)")
	f.string(&c.Network, "network", "CHECKOUTD_NETWORK", "testnet", "Stellar network: testnet, public or sandbox")
	f.string(&c.HTTPAddr, "http-addr", "CHECKOUTD_HTTP_ADDR", "127.0.0.1:8080", "address the HTTP API listens on")
	f.string(&c.PublicURL, "public-url", "CHECKOUTD_PUBLIC_URL", "", "URL customers reach the hosted pages at (default: http://<http-addr>)")
	f.bool(&c.WebhooksAllowInsecure, "webhooks-allow-insecure", "CHECKOUTD_WEBHOOKS_ALLOW_INSECURE", false, "allow http:// webhook endpoints (development only)")
	f.string(&c.WebhooksAllowlist, "webhooks-allowlist", "CHECKOUTD_WEBHOOKS_ALLOWLIST", "", "comma-separated CIDRs, addresses or hosts that webhooks may reach although internal")
	f.int(&c.WebhooksPerEndpoint, "webhooks-per-endpoint", "CHECKOUTD_WEBHOOKS_PER_ENDPOINT", 32, "most webhook requests in flight to one endpoint at once")
	f.int(&c.WebhooksMaxInFlight, "webhooks-max-in-flight", "CHECKOUTD_WEBHOOKS_MAX_IN_FLIGHT", 1024, "most webhook deliveries held at once: queued, being sent or being recorded")
	f.string(&c.LogLevel, "log-level", "CHECKOUTD_LOG_LEVEL", "info", "log level: debug, info, warn or error")
	f.string(&c.LogFormat, "log-format", "CHECKOUTD_LOG_FORMAT", "", "log format: json or text (default: text on a terminal, else json)")
	f.duration(&c.IdleTimeout, "session-idle-timeout", "CHECKOUTD_SESSION_IDLE_TIMEOUT", 2*time.Minute, "passivate a session actor after this long without a message")
	f.duration(&c.RecoveryInterval, "recovery-interval", "CHECKOUTD_RECOVERY_INTERVAL", 30*time.Second, "how often recovery looks for stale sessions")
	f.duration(&c.ShutdownTimeout, "shutdown-timeout", "CHECKOUTD_SHUTDOWN_TIMEOUT", 30*time.Second, "how long a graceful shutdown may take")
	f.duration(&c.JournalWindow, "journal-window", "CHECKOUTD_JOURNAL_WINDOW", 0, "how long a settlement waits for others to share its commit (0: commit at once whatever is waiting)")
	f.int(&c.JournalMaxBatch, "journal-max-batch", "CHECKOUTD_JOURNAL_MAX_BATCH", 128, "most settlements committed in one transaction")
	f.int(&c.CreateCommitters, "create-committers", "CHECKOUTD_CREATE_COMMITTERS", 2, "most session-create batches committing at once")
	f.int(&c.CreateMaxBatch, "create-max-batch", "CHECKOUTD_CREATE_MAX_BATCH", 128, "most sessions created in one transaction")
	f.duration(&c.AuthCacheTTL, "auth-cache-ttl", "CHECKOUTD_AUTH_CACHE_TTL", time.Second, "how long a verified API key is remembered; a revoked key works for at most this long (0: no cache)")
	f.float(&c.APIRateLimit, "api-rate-limit", "CHECKOUTD_API_RATE_LIMIT", 25, "API requests per second allowed to each API key, on average")
	f.int(&c.APIRateBurst, "api-rate-burst", "CHECKOUTD_API_RATE_BURST", 50, "API requests allowed to each API key at once")
	f.string(&c.Cluster, "cluster", "CHECKOUTD_CLUSTER", "", "cluster provider: empty for a single node, or etcd")
	f.string(&c.EtcdEndpoints, "etcd-endpoints", "CHECKOUTD_ETCD_ENDPOINTS", "127.0.0.1:2379", "comma-separated etcd endpoints (with --cluster etcd)")
	f.string(&c.ClusterName, "cluster-name", "CHECKOUTD_CLUSTER_NAME", "checkoutd", "name of the cluster to join (with --cluster)")
	f.string(&c.NodeAddr, "node-addr", "CHECKOUTD_NODE_ADDR", "127.0.0.1:8090", "host:port this node's cluster remote listens on and advertises (with --cluster)")
	f.string(&c.PprofAddr, "pprof-addr", "CHECKOUTD_PPROF_ADDR", "", "loopback host:port serving net/http/pprof for profiling (default: off)")
	if err := f.parse(args); err != nil {
		return c, err
	}
	return c, c.validate()
}

// The delivery engine's bounds: far above what one process can use, low
// enough that counts of them never overflow.
const (
	maxWebhooksPerEndpoint = 4096
	maxWebhooksInFlight    = 1 << 16
)

// The session-create group commit's bounds: more committers than
// connections would only queue for them, and a revoked key must stop
// working soon.
const (
	maxCreateCommitters = 64
	maxCreateBatch      = 4096
	maxAuthCacheTTL     = time.Minute
)

func (c *serveConfig) validate() error {
	if c.DatabaseURL == "" {
		return usagef("serve: --database-url is required")
	}
	n, ok := networks[c.Network]
	if !ok {
		return usagef("serve: --network %q: want testnet, public or sandbox", c.Network)
	}
	c.Passphrase = n.passphrase
	if c.HorizonURL == "" {
		c.HorizonURL = n.horizon
	}
	if u, err := url.Parse(c.HorizonURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("serve: --horizon-url %q: want http(s)://host", c.HorizonURL)
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		return usagef("serve: --http-addr %q: %v", c.HTTPAddr, err)
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.HTTPAddr
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usagef("serve: --public-url %q: want http(s)://host", c.PublicURL)
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return usagef("serve: %v", err)
	}
	if c.LogFormat != "" && c.LogFormat != "json" && c.LogFormat != "text" {
		return usagef("serve: --log-format %q: want json or text", c.LogFormat)
	}
	if c.APIRateLimit <= 0 || c.APIRateBurst <= 0 {
		return usagef("serve: --api-rate-limit and --api-rate-burst must be positive")
	}
	if _, err := (webhooks.Policy{}).ParseAllowlist(strings.Split(c.WebhooksAllowlist, ",")); err != nil {
		return usagef("serve: --webhooks-allowlist: %v", err)
	}
	if c.WebhooksPerEndpoint <= 0 || c.WebhooksPerEndpoint > maxWebhooksPerEndpoint {
		return usagef("serve: --webhooks-per-endpoint %d: want 1 to %d", c.WebhooksPerEndpoint, maxWebhooksPerEndpoint)
	}
	if c.WebhooksMaxInFlight < c.WebhooksPerEndpoint || c.WebhooksMaxInFlight > maxWebhooksInFlight {
		return usagef("serve: --webhooks-max-in-flight %d: want --webhooks-per-endpoint (%d) to %d",
			c.WebhooksMaxInFlight, c.WebhooksPerEndpoint, maxWebhooksInFlight)
	}
	if c.CreateCommitters <= 0 || c.CreateCommitters > maxCreateCommitters {
		return usagef("serve: --create-committers %d: want 1 to %d", c.CreateCommitters, maxCreateCommitters)
	}
	if c.CreateMaxBatch <= 0 || c.CreateMaxBatch > maxCreateBatch {
		return usagef("serve: --create-max-batch %d: want 1 to %d", c.CreateMaxBatch, maxCreateBatch)
	}
	if c.AuthCacheTTL < 0 || c.AuthCacheTTL > maxAuthCacheTTL {
		return usagef("serve: --auth-cache-ttl %s: want 0 (no cache) to %s", c.AuthCacheTTL, maxAuthCacheTTL)
	}
	switch c.Cluster {
	case "":
	case "etcd":
		if host, port, err := net.SplitHostPort(c.NodeAddr); err != nil || host == "" || port == "0" {
			return usagef("serve: --node-addr %q: want host:port that the other nodes can reach", c.NodeAddr)
		}
		if strings.TrimSpace(c.EtcdEndpoints) == "" || c.ClusterName == "" {
			return usagef("serve: --cluster etcd needs --etcd-endpoints and --cluster-name")
		}
	default:
		return usagef("serve: --cluster %q: want empty or etcd", c.Cluster)
	}
	if err := validatePprofAddr("serve", c.PprofAddr); err != nil {
		return err
	}
	if c.JournalWindow < 0 || c.JournalMaxBatch <= 0 {
		return usagef("serve: --journal-window must not be negative, --journal-max-batch must be positive")
	}
	for name, d := range map[string]time.Duration{"session-idle-timeout": c.IdleTimeout,
		"recovery-interval": c.RecoveryInterval, "shutdown-timeout": c.ShutdownTimeout} {
		if d <= 0 {
			return usagef("serve: --%s must be positive", name)
		}
	}
	return nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	l, _ := parseLevel(level)
	opts := &slog.HandlerOptions{Level: l}
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	return serve(ctx, cfg, logger, nil)
}

// serve runs checkoutd until ctx is done, then shuts down in order: stop
// taking HTTP requests, stop the watchers (flushing their cursors), drain
// the actors, close the pool. ready, if not nil, receives the HTTP address
// once the server listens.
func serve(ctx context.Context, cfg serveConfig, logger *slog.Logger, ready chan<- string) error {
	db, err := persistence.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	_, stopPprof, err := startPprof(cfg.PprofAddr, logger)
	if err != nil {
		return err
	}
	defer stopPprof()
	reg := newRegistry()
	if err := db.RegisterMetrics(reg); err != nil {
		return err
	}
	hz, err := horizon.New(horizon.Config{URL: cfg.HorizonURL})
	if err != nil {
		return err
	}
	journal, err := actors.StartJournal(actors.JournalConfig{
		Store: db, Logger: logger.With("component", "journal"), Window: cfg.JournalWindow, MaxBatch: cfg.JournalMaxBatch,
	})
	if err != nil {
		return err
	}
	defer func() { _ = journal.Stop(context.Background()) }() // on the early returns; a no-op after shutdown's
	clusterCfg, err := clusterConfig(cfg)
	if err != nil {
		return err
	}
	system, err := actors.Start(actors.Config{
		Store: journal, Logger: logger, IdleTimeout: cfg.IdleTimeout, RecoveryInterval: cfg.RecoveryInterval,
		Metrics: reg, Cluster: clusterCfg,
	}, db)
	if err != nil {
		return err
	}
	var locks *persistence.AccountLocks
	var watcherLocks actors.AccountLocks
	if clusterCfg != nil {
		// One watcher per account in the cluster: whoever holds its lock.
		locks = persistence.StartAccountLocks(cfg.DatabaseURL, time.Second, logger.With("component", "watcher_locks"))
		defer locks.Close()
		watcherLocks = locks
	}
	watchers, err := actors.NewWatchers(actors.WatchersConfig{
		DB: db, Horizon: hz, Sessions: system.Sessions(), Logger: logger.With("component", "watcher"),
		Metrics: reg, Locks: watcherLocks,
	})
	if err != nil {
		return err
	}
	if err := watchers.Start(ctx); err != nil {
		return err
	}

	hostedPages, err := hosted.New(hosted.Config{
		Store: db, NetworkPassphrase: cfg.Passphrase, Logger: logger.With("component", "hosted"),
		SandboxPayer: cfg.SandboxPayer,
	})
	if err != nil {
		return err
	}
	webhookPolicy, err := webhooks.Policy{AllowInsecure: cfg.WebhooksAllowInsecure}.ParseAllowlist(strings.Split(cfg.WebhooksAllowlist, ","))
	if err != nil {
		return usagef("serve: --webhooks-allowlist: %v", err)
	}
	apiServer, err := api.New(api.Config{
		Store:             db,
		Sessions:          system.Sessions(),
		Watchers:          watchers,
		PublicURL:         cfg.PublicURL,
		NetworkPassphrase: cfg.Passphrase,
		Hosted:            hostedPages,
		Logger:            logger.With("component", "api"),
		RateLimit:         cfg.APIRateLimit,
		RateBurst:         cfg.APIRateBurst,
		CreateCommitters:  cfg.CreateCommitters,
		CreateMaxBatch:    cfg.CreateMaxBatch,
		AuthCacheTTL:      authCacheTTL(cfg.AuthCacheTTL),
		Webhooks:          api.WebhookConfig{Policy: webhookPolicy},
		Metrics:           reg,
		MetricsHandler:    metricsHandler(reg, logger),
	})
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           apiServer,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	deliveries, err := actors.StartDeliveryEngine(actors.DeliveryConfig{
		Store: db, Render: apiServer.WebhookData, Logger: logger.With("component", "webhooks"),
		Client: webhooks.NewClient(webhooks.ClientConfig{Policy: webhookPolicy,
			MaxIdleConnsPerHost: max(64, cfg.WebhooksPerEndpoint)}),
		PerEndpoint: cfg.WebhooksPerEndpoint, MaxInFlight: cfg.WebhooksMaxInFlight,
		Metrics: reg,
	})
	if err != nil {
		_ = ln.Close()
		return err
	}
	logger.Info("checkoutd serving", "addr", ln.Addr().String(), "network", cfg.Network,
		"horizon", cfg.HorizonURL, "version", version, "cluster", cfg.Cluster, "node_addr", cfg.NodeAddr)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case <-ctx.Done():
	case err = <-serveErr:
		logger.Error("http server failed", "err", err)
	case <-system.Lost():
		// Its sessions and watchers now belong to the other members: stop,
		// and let the supervisor start it again to rejoin.
		err = errors.New("left the cluster: its etcd membership lease expired, or etcd was unreachable")
	}
	return shutdown(cfg.ShutdownTimeout, logger, srv, apiServer, watchers, system, journal, deliveries, err)
}

func shutdown(timeout time.Duration, logger *slog.Logger, srv *http.Server, apiServer *api.Server,
	watchers *actors.Watchers, system *actors.System, journal *actors.Journal, deliveries *actors.DeliveryEngine, cause error) error {
	logger.Info("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	if err := srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("http shutdown: %w", err))
	}
	apiServer.Close()
	if err := watchers.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("watchers: %w", err))
	}
	if err := system.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("actors: %w", err))
	}
	// The drained actors settle nothing more: commit what is queued.
	if err := journal.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("journal: %w", err))
	}
	// Flush the outbox claims: finish the webhook attempts in flight and
	// give back the claims not yet started, before the pool closes.
	if err := deliveries.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("webhook deliveries: %w", err))
	}
	if cause != nil && !errors.Is(cause, http.ErrServerClosed) {
		errs = append(errs, cause)
	}
	logger.Info("stopped")
	return errors.Join(errs...)
}

// float is flags.string for a float64 flag.
func (f *flags) float(p *float64, name, env string, def float64, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("$%s=%q: not a number", env, v))
		}
		def = x
	}
	f.Float64Var(p, name, def, usage+" ($"+env+")")
}

// int is flags.string for an int flag.
func (f *flags) int(p *int, name, env string, def int, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		x, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Errorf("$%s=%q: not an integer", env, v))
		}
		def = x
	}
	f.IntVar(p, name, def, usage+" ($"+env+")")
}

// clusterConfig is the actor system's cluster membership, or nil for a
// single node.
func clusterConfig(cfg serveConfig) (*actors.ClusterConfig, error) {
	if cfg.Cluster == "" {
		return nil, nil
	}
	host, portStr, _ := net.SplitHostPort(cfg.NodeAddr) // validated
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, usagef("serve: --node-addr %q: bad port", cfg.NodeAddr)
	}
	var endpoints []string
	for _, e := range strings.Split(cfg.EtcdEndpoints, ",") {
		if e = strings.TrimSpace(e); e != "" {
			endpoints = append(endpoints, e)
		}
	}
	provider, etcd, err := actors.EtcdProvider(endpoints)
	if err != nil {
		return nil, err
	}
	return &actors.ClusterConfig{Name: cfg.ClusterName, Provider: provider, Etcd: etcd, Host: host, Port: port}, nil
}

// authCacheTTL maps the flag, where 0 turns the cache off, to api.Config,
// where 0 means the default and a negative value turns it off.
func authCacheTTL(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
