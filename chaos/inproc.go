package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/stellar/go-stellar-sdk/network"

	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/api"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/stellar/horizon"
	"github.com/checkoutd/checkoutd/webhooks"
)

// InProcConfig configures a checkoutd wired in this process as `checkoutd
// serve` wires it, for faults that need a hook inside the process.
type InProcConfig struct {
	DatabaseURL, HorizonURL string
	// Hooks are passed to the session actors.
	Hooks actors.Hooks
	// WrapStore, if set, wraps the session actors' store (the journal).
	WrapStore func(actors.Store) actors.Store
	// Backoff is the webhook retry schedule; zero for the default.
	Backoff webhooks.Backoff
	Logger  *slog.Logger
}

// InProc is a running in-process checkoutd.
type InProc struct {
	URL string

	db         *persistence.DB
	srv        *http.Server
	apiServer  *api.Server
	watchers   *actors.Watchers
	system     *actors.System
	journal    *actors.Journal
	deliveries *actors.DeliveryEngine

	stopOnce sync.Once
	stopErr  error
}

// System is the actor system, for its restart count.
func (p *InProc) System() *actors.System { return p.system }

// StartInProc wires and starts checkoutd on a free port of 127.0.0.1.
func StartInProc(ctx context.Context, cfg InProcConfig) (*InProc, error) {
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db, err := persistence.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	p := &InProc{db: db}
	fail := func(err error) (*InProc, error) {
		p.Stop()
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		return fail(err)
	}
	hz, err := horizon.New(horizon.Config{URL: cfg.HorizonURL})
	if err != nil {
		return fail(err)
	}
	if p.journal, err = actors.StartJournal(actors.JournalConfig{Store: db, Logger: logger}); err != nil {
		return fail(err)
	}
	var store actors.Store = p.journal
	if cfg.WrapStore != nil {
		store = cfg.WrapStore(store)
	}
	if p.system, err = actors.Start(actors.Config{Store: store, Logger: logger, RecoveryInterval: 2 * time.Second,
		Hooks: cfg.Hooks}, db); err != nil {
		return fail(err)
	}
	if p.watchers, err = actors.NewWatchers(actors.WatchersConfig{DB: db, Horizon: hz, Sessions: p.system.Sessions(),
		Logger: logger}); err != nil {
		return fail(err)
	}
	if err := p.watchers.Start(ctx); err != nil {
		return fail(err)
	}
	policy, err := webhooks.Policy{AllowInsecure: true}.ParseAllowlist([]string{"127.0.0.1"})
	if err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	p.URL = "http://" + ln.Addr().String()
	if p.apiServer, err = api.New(api.Config{Store: db, Sessions: p.system.Sessions(), Watchers: p.watchers,
		PublicURL: p.URL, NetworkPassphrase: network.TestNetworkPassphrase, Logger: logger,
		RateLimit: 100_000, RateBurst: 100_000, Webhooks: api.WebhookConfig{Policy: policy}}); err != nil {
		ln.Close()
		return fail(err)
	}
	if p.deliveries, err = actors.StartDeliveryEngine(actors.DeliveryConfig{Store: db, Render: p.apiServer.WebhookData,
		Logger: logger, Client: webhooks.NewClient(webhooks.ClientConfig{Policy: policy}), Backoff: cfg.Backoff}); err != nil {
		ln.Close()
		return fail(err)
	}
	p.srv = &http.Server{Handler: p.apiServer, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// Stop shuts down in serve's order: HTTP, watchers, actors, journal,
// deliveries, pool. Later calls return the first one's error.
func (p *InProc) Stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop() })
	return p.stopErr
}

func (p *InProc) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var errs []error
	if p.srv != nil {
		errs = append(errs, p.srv.Shutdown(ctx))
	}
	if p.apiServer != nil {
		p.apiServer.Close()
	}
	if p.watchers != nil {
		errs = append(errs, p.watchers.Stop(ctx))
	}
	if p.system != nil {
		errs = append(errs, p.system.Stop(ctx))
	}
	if p.journal != nil {
		errs = append(errs, p.journal.Stop(ctx))
	}
	if p.deliveries != nil {
		errs = append(errs, p.deliveries.Stop(ctx))
	}
	p.db.Close()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop in-process checkoutd: %w", err)
	}
	return nil
}
