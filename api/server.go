// Package api is checkoutd's merchant HTTP API: checkout sessions, their
// payments and the event log, authenticated with per-merchant API keys. It
// maps domain errors to HTTP in one place (error.go) and describes itself in
// an embedded OpenAPI document (openapi.json).
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

// Store is what the API needs from Postgres. *persistence.DB implements it.
type Store interface {
	AuthenticateAPIKey(ctx context.Context, secret string) (persistence.APIKey, error)
	GetMerchant(ctx context.Context, id string) (checkout.Merchant, error)
	CreateSessions(ctx context.Context, rows []persistence.SessionCreate) []error
	GetMerchantSession(ctx context.Context, merchantID, id string) (checkout.Session, error)
	ListSessions(ctx context.Context, p persistence.ListParams) ([]checkout.Session, bool, error)
	SessionPayments(ctx context.Context, sessionID string) ([]checkout.Payment, error)
	GetEvent(ctx context.Context, merchantID, id string) (checkout.Event, error)
	ListEvents(ctx context.Context, p persistence.ListParams) ([]checkout.Event, bool, error)

	ClaimIdempotencyKey(ctx context.Context, merchantID, key string, requestHash []byte, now, staleBefore time.Time) (persistence.IdempotencyRecord, bool, error)
	CompleteIdempotencyKey(ctx context.Context, merchantID, key string, status int, body []byte) error
	ReleaseIdempotencyKey(ctx context.Context, merchantID, key string) error
	DeleteIdempotencyKeysBefore(ctx context.Context, t time.Time) (int64, error)

	Ping(ctx context.Context) error
}

// Sessions serializes the commands that change a session through its actor.
// actors.Sessions (single node or cluster) implements it.
type Sessions interface {
	Cancel(sessionID string) (checkout.Session, error)
}

// Watchers starts watching a receiving account. *actors.Watchers implements
// it. Ensure must return before a session on the account is handed out, or
// a payment could land before anyone listens.
type Watchers interface {
	Ensure(ctx context.Context, account string) error
}

// WatcherStatus reports on the ledger watchers for the readiness check.
// *actors.Watchers implements it.
type WatcherStatus interface {
	Running() int
	Streaming() int
}

// Config configures the API server.
type Config struct {
	// Store is the database. Required.
	Store Store
	// Sessions reaches the session actors. Required.
	Sessions Sessions
	// Watchers starts the watchers of new receiving accounts. Required.
	Watchers Watchers
	// WatcherStatus answers the readiness check. Default: Watchers, when it
	// implements WatcherStatus; otherwise readiness checks Postgres alone.
	WatcherStatus WatcherStatus
	// PublicURL is where customers reach the hosted pages, such as
	// https://pay.example.com, with no trailing slash. Required.
	PublicURL string
	// NetworkPassphrase goes into payment URIs for networks other than the
	// public one. Default: the public network (no passphrase in the URI).
	NetworkPassphrase string
	// Hosted serves the hosted checkout pages, mounted without
	// authentication at /c/ and /v1/public/. Default: none (those paths 404).
	Hosted http.Handler
	// Logger receives request and error logs. Default: discard.
	Logger *slog.Logger
	// Clock is the time source. Default time.Now.
	Clock func() time.Time
	// RateLimit and RateBurst shape each API key's token bucket: RateLimit
	// requests a second on average, RateBurst at once. Defaults 25 and 50.
	RateLimit float64
	RateBurst int
	// IdempotencyTTL is how long idempotency keys are kept. Default 24 h,
	// the least allowed.
	IdempotencyTTL time.Duration
	// IdempotencyWait is how long a request waits for a concurrent request
	// with its idempotency key to finish before answering 409
	// idempotency_request_in_progress. Default 10 s.
	IdempotencyWait time.Duration
	// IdempotencyStale is how old an unfinished idempotency claim must be to
	// be taken for abandoned (its process died). Default 5 minutes.
	IdempotencyStale time.Duration
	// CleanupInterval is how often expired idempotency keys are deleted.
	// Default 1 hour.
	CleanupInterval time.Duration
	// CallTimeout bounds a request's calls to Horizon and Postgres.
	// Default 15 s.
	CallTimeout time.Duration
	// AuthCacheTTL is how long a verified API key, and a merchant, are
	// remembered in memory rather than looked up in Postgres on every
	// request. A revoked key keeps working for at most this long after
	// its revocation. Default 1 s; negative: no cache.
	AuthCacheTTL time.Duration
	// CreateCommitters and CreateMaxBatch shape the group commit of
	// session creation: how many batches may commit at once, and the most
	// creates in one transaction. Defaults 2 and 128.
	CreateCommitters int
	CreateMaxBatch   int
	// Webhooks configures the webhook endpoints API (webhook_endpoints.go).
	Webhooks WebhookConfig
	// Metrics is where the API's metrics are registered: requests by route
	// and status class, sessions created, readiness. Nil: no metrics.
	Metrics prometheus.Registerer
	// MetricsHandler serves GET /metrics without authentication, like
	// /healthz; typically promhttp.HandlerFor the registry that Metrics and
	// every other component register with. Nil: no /metrics route.
	MetricsHandler http.Handler
}

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Store == nil:
		return c, errors.New("api config: a store is required")
	case c.Sessions == nil:
		return c, errors.New("api config: sessions are required")
	case c.Watchers == nil:
		return c, errors.New("api config: watchers are required")
	case c.PublicURL == "":
		return c, errors.New("api config: a public url is required")
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.WatcherStatus == nil {
		c.WatcherStatus, _ = c.Watchers.(WatcherStatus)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.RateLimit <= 0 {
		c.RateLimit = 25
	}
	if c.RateBurst <= 0 {
		c.RateBurst = 50
	}
	if c.IdempotencyTTL < 24*time.Hour {
		c.IdempotencyTTL = 24 * time.Hour
	}
	setDefault(&c.IdempotencyWait, 10*time.Second)
	setDefault(&c.IdempotencyStale, 5*time.Minute)
	setDefault(&c.CleanupInterval, time.Hour)
	setDefault(&c.CallTimeout, 15*time.Second)
	if c.AuthCacheTTL == 0 {
		c.AuthCacheTTL = time.Second
	}
	if c.CreateCommitters <= 0 {
		c.CreateCommitters = 2
	}
	if c.CreateMaxBatch <= 0 {
		c.CreateMaxBatch = 128
	}
	return c, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// Server is the merchant API. It is an http.Handler. It owns the janitor
// that deletes expired idempotency keys and the committers of session
// creation (create_batcher.go), which Close ends.
type Server struct {
	cfg     Config
	router  *mux.Router
	handler http.Handler
	metrics *metrics

	limitersMu sync.Mutex
	limiters   map[string]*rate.Limiter

	auth    *authCache
	creates *createBatcher

	stop    chan struct{}
	stopped sync.Once
	done    chan struct{}
}

// New validates cfg, builds the routes and starts the janitor.
func New(cfg Config) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		limiters: make(map[string]*rate.Limiter),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if s.metrics, err = newMetrics(cfg.Metrics, s.ready); err != nil {
		return nil, err
	}
	s.auth = newAuthCache(cfg.AuthCacheTTL, cfg.Clock)
	s.router = s.routes()
	s.handler = s.withRequestID(s.withRecover(s.router))
	s.creates = startCreateBatcher(cfg.Store, cfg.CreateCommitters, cfg.CreateMaxBatch, cfg.CallTimeout)
	go s.janitor()
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Close stops the janitor and the session-create committers, and waits for
// them. Call it after the HTTP server has shut down. It is safe to call
// more than once.
func (s *Server) Close() {
	s.stopped.Do(func() { close(s.stop) })
	<-s.done
	s.creates.stop()
}

// routes lists every route. The OpenAPI document must describe exactly
// these (openapi_test.go checks).
func (s *Server) routes() *mux.Router {
	r := mux.NewRouter()
	r.NotFoundHandler = http.HandlerFunc(s.handleNotFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(s.handleMethodNotAllowed)

	r.Handle("/healthz", s.public(s.handleHealth)).Methods(http.MethodGet)
	r.Handle("/readyz", s.public(s.handleReady)).Methods(http.MethodGet)
	r.Handle("/openapi.json", s.public(s.handleOpenAPI)).Methods(http.MethodGet)
	if s.cfg.MetricsHandler != nil {
		r.Handle("/metrics", s.public(s.cfg.MetricsHandler.ServeHTTP)).Methods(http.MethodGet)
	}

	if s.cfg.Hosted != nil {
		r.PathPrefix("/c/").Handler(s.public(s.cfg.Hosted.ServeHTTP))
		r.PathPrefix("/v1/public/").Handler(s.public(s.cfg.Hosted.ServeHTTP))
	}

	r.Handle("/v1/checkout/sessions", s.authed(s.idempotentCreate(s.handleSessionCreate))).Methods(http.MethodPost)
	r.Handle("/v1/checkout/sessions", s.authed(s.handleSessionList)).Methods(http.MethodGet)
	r.Handle("/v1/checkout/sessions/{id}", s.authed(s.handleSessionGet)).Methods(http.MethodGet)
	r.Handle("/v1/checkout/sessions/{id}/cancel", s.authed(s.idempotent(s.handleSessionCancel))).Methods(http.MethodPost)
	r.Handle("/v1/checkout/sessions/{id}/payments", s.authed(s.handleSessionPayments)).Methods(http.MethodGet)
	r.Handle("/v1/events", s.authed(s.handleEventList)).Methods(http.MethodGet)
	r.Handle("/v1/events/{id}", s.authed(s.handleEventGet)).Methods(http.MethodGet)
	s.webhookRoutes(r)
	return r
}

// janitor deletes expired idempotency keys every CleanupInterval until
// Close.
func (s *Server) janitor() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.CleanupInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.CleanupIdempotencyKeys()
		}
	}
}

// CleanupIdempotencyKeys deletes the idempotency keys older than
// IdempotencyTTL now, as the janitor does every CleanupInterval.
func (s *Server) CleanupIdempotencyKeys() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallTimeout)
	defer cancel()
	n, err := s.cfg.Store.DeleteIdempotencyKeysBefore(ctx, s.cfg.Clock().Add(-s.cfg.IdempotencyTTL))
	if err != nil {
		s.cfg.Logger.Warn("idempotency key cleanup failed", "err", err)
		return
	}
	if n > 0 {
		s.cfg.Logger.Info("deleted expired idempotency keys", "count", n)
	}
}
