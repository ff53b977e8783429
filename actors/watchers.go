package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stellar/go-stellar-sdk/strkey"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/stellar/horizon"
)

// WatcherStore is what the ledger watchers need from Postgres.
// *persistence.DB implements it.
type WatcherStore interface {
	HasCursor(ctx context.Context, account string) (bool, error)
	EnsureCursor(ctx context.Context, account, pagingToken string) error
	GetCursor(ctx context.Context, account string) (persistence.Cursor, error)
	AdvanceCursor(ctx context.Context, c persistence.Cursor) error
	WatchedAccounts(ctx context.Context) ([]string, error)
	SessionIDByMemo(ctx context.Context, account string, memoType checkout.MemoType, memo string) (string, error)
	MerchantIDsByAccount(ctx context.Context, account string) ([]string, error)
	RecordUnmatched(ctx context.Context, p checkout.Payment, events []checkout.Event) error
}

// WatchersConfig configures the ledger watchers.
type WatchersConfig struct {
	// DB keeps the cursors and resolves memos to sessions. Required.
	DB WatcherStore
	// Horizon is the Horizon server to stream from. Required.
	Horizon *horizon.Client
	// Sessions hands matched payments to their session actors. Required.
	Sessions Sessions
	// Logger receives the watchers' logs. Default: discard.
	Logger *slog.Logger
	// Clock stamps when a payment was received. Default time.Now.
	Clock func() time.Time
	// FlushInterval is how often a watcher persists its low watermark.
	// Default 1 s.
	FlushInterval time.Duration
	// WatchdogTimeout restarts a stream that sent nothing, not even a
	// keepalive, for this long. Default 30 s (Horizon and the sandbox send
	// keepalives every few seconds).
	WatchdogTimeout time.Duration
	// CaughtUpInterval is how often a watcher checks whether it has
	// recorded everything up to Horizon's latest ledger. Default 1 s.
	CaughtUpInterval time.Duration
	// MaxInFlight bounds the payments a watcher has handed off and not yet
	// seen acknowledged. Default 1024.
	MaxInFlight int
	// MinBackoff and MaxBackoff bound the exponential, jittered backoff of
	// reconnects and retries. Defaults 100 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// CallTimeout bounds each Postgres or (non-streaming) Horizon call.
	// Default 10 s.
	CallTimeout time.Duration
	// Metrics is where the watchers' metrics are registered: payments
	// observed, reconnects, lag and cursor age. Nil: no metrics.
	Metrics prometheus.Registerer
	// Locks, on a cluster node, makes each account's watcher exclusive in
	// the cluster: a node watches an account only while it holds the
	// account's lock, and tries every LockRetry to take the locks of
	// accounts nobody watches (cluster_watchers.go). Nil: a single node,
	// which watches every account.
	Locks AccountLocks
	// LockRetry is how often a cluster node tries to take the locks of
	// accounts it does not watch, and looks for new accounts. Default 2 s.
	LockRetry time.Duration
}

func (c WatchersConfig) withDefaults() (WatchersConfig, error) {
	switch {
	case c.DB == nil:
		return c, errors.New("watchers config: a store is required")
	case c.Horizon == nil:
		return c, errors.New("watchers config: a horizon client is required")
	case c.Sessions == nil:
		return c, errors.New("watchers config: sessions are required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	setDefault(&c.FlushInterval, time.Second)
	setDefault(&c.WatchdogTimeout, 30*time.Second)
	setDefault(&c.CaughtUpInterval, time.Second)
	setDefault(&c.MinBackoff, 100*time.Millisecond)
	setDefault(&c.MaxBackoff, 30*time.Second)
	setDefault(&c.CallTimeout, 10*time.Second)
	setDefault(&c.LockRetry, 2*time.Second)
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 1024
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	return c, nil
}

// ErrWatchersStopped is returned by Start and Ensure after Stop.
var ErrWatchersStopped = errors.New("ledger watchers are stopped")

// Watchers runs one ledger watcher per receiving account. Each streams its
// account's payments from Horizon, matches them to sessions by memo or muxed
// id, hands them to the session actors in paging-token order, records unmatched
// ones, and advances the account's durable cursor only past payments that
// are recorded.
type Watchers struct {
	cfg WatchersConfig

	mu       sync.Mutex
	watchers map[string]*watcher
	// claimed are the accounts a cluster node runs a claim loop for,
	// whether or not it holds their lock now.
	claimed map[string]bool
	stopped bool
	// stopping is closed by Stop: streams end, no new payment is taken.
	stopping chan struct{}
	// abort is closed when Stop's ctx ends: hand-offs stop retrying.
	abort chan struct{}
	wg    sync.WaitGroup

	stats counters
}

// NewWatchers validates cfg and returns stopped-until-started watchers.
func NewWatchers(cfg WatchersConfig) (*Watchers, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	ws := &Watchers{
		cfg:      cfg,
		watchers: make(map[string]*watcher),
		claimed:  make(map[string]bool),
		stopping: make(chan struct{}),
		abort:    make(chan struct{}),
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(watchersCollector{ws}); err != nil {
			return nil, fmt.Errorf("register watcher metrics: %w", err)
		}
	}
	return ws, nil
}

// Start starts a watcher for every account that has a cursor.
func (ws *Watchers) Start(ctx context.Context) error {
	accounts, err := ws.cfg.DB.WatchedAccounts(ctx)
	if err != nil {
		return fmt.Errorf("start watchers: %w", err)
	}
	for _, a := range accounts {
		if err := ws.run(a); err != nil {
			return fmt.Errorf("start watchers: %w", err)
		}
	}
	if ws.cfg.Locks != nil {
		ws.wg.Go(ws.discover)
	}
	return nil
}

// Ensure makes sure account is watched. An account without a cursor gets
// one just after every operation of Horizon's latest ledger, so history from
// before is never replayed and every payment from then on is seen. Call it
// before handing out an account's session.
func (ws *Watchers) Ensure(ctx context.Context, account string) error {
	if !strkey.IsValidEd25519PublicKey(account) {
		return fmt.Errorf("watch %q: not a G... account", account)
	}
	ws.mu.Lock()
	_, running := ws.watchers[account]
	running = running || ws.claimed[account]
	stopped := ws.stopped
	ws.mu.Unlock()
	if stopped {
		return ErrWatchersStopped
	}
	if running {
		return nil
	}
	has, err := ws.cfg.DB.HasCursor(ctx, account)
	if err != nil {
		return fmt.Errorf("watch %s: %w", account, err)
	}
	if !has {
		l, err := ws.cfg.Horizon.LatestLedger(ctx)
		if err != nil {
			return fmt.Errorf("watch %s: %w", account, err)
		}
		if err := ws.cfg.DB.EnsureCursor(ctx, account, horizon.CursorAfterLedger(l.Sequence)); err != nil {
			return fmt.Errorf("watch %s: %w", account, err)
		}
	}
	return ws.run(account)
}

// run starts account's watcher unless it is running.
func (ws *Watchers) run(account string) error {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.stopped {
		return ErrWatchersStopped
	}
	if _, ok := ws.watchers[account]; ok {
		return nil
	}
	if ws.cfg.Locks != nil {
		ws.claimLocked(account)
		return nil
	}
	w := newWatcher(account, &ws.cfg, &ws.stats, ws.stopping, ws.abort)
	ws.watchers[account] = w
	ws.wg.Add(1)
	go func() {
		defer ws.wg.Done()
		w.run()
	}()
	return nil
}

// Stop stops the streams, waits for the payments already handed off to be
// acknowledged, and persists every watcher's cursor. When ctx ends first,
// unacknowledged hand-offs are abandoned (they are replayed from the cursor
// on the next start) and Stop returns ctx's error once the watchers have
// flushed. Stop is safe to call more than once.
func (ws *Watchers) Stop(ctx context.Context) error {
	ws.mu.Lock()
	if !ws.stopped {
		ws.stopped = true
		close(ws.stopping)
	}
	ws.mu.Unlock()

	done := make(chan struct{})
	go func() {
		ws.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	ws.mu.Lock()
	select {
	case <-ws.abort:
	default:
		close(ws.abort)
	}
	ws.mu.Unlock()
	<-done
	return fmt.Errorf("stop watchers: %w", ctx.Err())
}

// Running is the number of accounts being watched.
func (ws *Watchers) Running() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return len(ws.watchers)
}

// Streaming is the number of watchers with an open Horizon stream, for a
// readiness check.
func (ws *Watchers) Streaming() int {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	n := 0
	for _, w := range ws.watchers {
		if w.streaming.Load() {
			n++
		}
	}
	return n
}

// WatcherStats counts what the watchers have done since they started.
type WatcherStats struct {
	// Reconnects counts stream reconnections by reason: closed (the server
	// ended the stream), idle (the watchdog), rate_limited (429),
	// unavailable (503), error.
	Reconnects map[string]int64
	// Payments counts operations by what became of them: applied, late,
	// wrong_asset, unmatched, already_applied (acknowledged as recorded
	// before), outgoing, failed, not_payment, unknown (reported and
	// skipped), replayed (a stream resent an operation already received).
	Payments map[string]int64
	// OutOfOrder counts breaks of Horizon's paging-token order by reason:
	// stream (an event older than one streamed before it on the same
	// connection; only counted, see watcher.stream), page (a JSON page not
	// in order; it is sorted).
	OutOfOrder map[string]int64
	// Retries counts hand-offs and lookups that failed and were retried.
	Retries int64
	// CaughtUp counts caught_up_to advances.
	CaughtUp int64
}

// Stats returns a snapshot of the counters.
func (ws *Watchers) Stats() WatcherStats { return ws.stats.snapshot() }

// counters are the watchers' shared counters.
type counters struct {
	mu         sync.Mutex
	reconnects map[string]int64
	payments   map[string]int64
	disorder   map[string]int64
	retries    atomic.Int64
	caughtUp   atomic.Int64
}

func (c *counters) reconnect(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reconnects == nil {
		c.reconnects = make(map[string]int64)
	}
	c.reconnects[reason]++
}

func (c *counters) payment(disposition string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.payments == nil {
		c.payments = make(map[string]int64)
	}
	c.payments[disposition]++
}

func (c *counters) outOfOrder(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.disorder == nil {
		c.disorder = make(map[string]int64)
	}
	c.disorder[reason]++
}

func (c *counters) snapshot() WatcherStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := WatcherStats{Reconnects: maps.Clone(c.reconnects), Payments: maps.Clone(c.payments),
		OutOfOrder: maps.Clone(c.disorder), Retries: c.retries.Load(), CaughtUp: c.caughtUp.Load()}
	if s.Reconnects == nil {
		s.Reconnects = map[string]int64{}
	}
	if s.Payments == nil {
		s.Payments = map[string]int64{}
	}
	if s.OutOfOrder == nil {
		s.OutOfOrder = map[string]int64{}
	}
	return s
}

// backoff is the delay before retry number attempt (from 0): exponential
// from min, capped at max, with jitter over its upper half.
func backoff(attempt int, min, max time.Duration) time.Duration {
	d := min
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + rand.N(half+1)
}

// sleep waits for d, and reports false if quit closed first.
func sleep(d time.Duration, quit <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-quit:
		return false
	}
}

// contextUntil returns a context canceled when quit closes or cancel is
// called. The goroutine it starts ends with either.
func contextUntil(quit <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-quit:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}
