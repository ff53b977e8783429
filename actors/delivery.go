package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/webhooks"
)

// DeliveryStore is what the webhook delivery engine needs from Postgres.
// *persistence.DB implements it.
type DeliveryStore interface {
	ClaimDeliveries(ctx context.Context, p persistence.ClaimParams) ([]persistence.ClaimedDelivery, error)
	RecordAttempt(ctx context.Context, r persistence.AttemptResult) (persistence.AttemptOutcome, error)
	RecordSuccesses(ctx context.Context, rs []persistence.AttemptResult) ([]persistence.AttemptOutcome, error)
	RecordFailures(ctx context.Context, rs []persistence.AttemptResult) ([]persistence.AttemptOutcome, []error, error)
	ReleaseClaims(ctx context.Context, claims []persistence.ClaimRef) (int64, error)
	ListenDeliveries(ctx context.Context, wake func()) error
}

// Renderer renders the data object of an event's webhook, the same object
// the API shows for it. The engine puts it into the Standard Webhooks body.
type Renderer func(e persistence.OutboxEvent) (any, error)

// DeliveryConfig configures the webhook delivery engine.
type DeliveryConfig struct {
	// Store is the database. Required.
	Store DeliveryStore
	// Render renders each event's data. Required.
	Render Renderer
	// Client sends the webhooks; one client, shared by every attempt, so
	// connections are kept alive and reused. Default: webhooks.NewClient
	// with the production policy (https and public addresses only).
	Client *http.Client
	// Logger receives the engine's logs. Secrets never reach it.
	Logger *slog.Logger
	// Clock is the time source for webhook-timestamp, claims, leases and
	// the retry schedule. Default time.Now.
	Clock func() time.Time
	// AttemptTimeout bounds each attempt, from dialing to the end of the
	// response. Default 10 s.
	AttemptTimeout time.Duration
	// Lease is how long a claim is exclusive. A claim not resolved by then
	// (its process died) is taken by any engine. Default AttemptTimeout
	// plus one minute; it must exceed AttemptTimeout.
	Lease time.Duration
	// PerEndpoint is how many requests this engine may have in flight to
	// one endpoint at once, so one slow receiver cannot take every slot.
	// The engine holds up to twice as many claims of an endpoint, the rest
	// queued in its worker, so that a finished request is followed at once
	// by the next rather than after the next claim; an attempt's slot is
	// free once its response is in, while its result is being recorded.
	// Default 32.
	PerEndpoint int
	// MaxInFlight bounds this engine's claimed deliveries not yet resolved:
	// queued, being sent or being recorded. Default 1024.
	MaxInFlight int
	// ClaimBatch is the most deliveries one claim takes. Default 128.
	ClaimBatch int
	// ClaimDelay is how long a wake-up (a notification, a finished
	// attempt) waits before claiming, so that those of one moment share a
	// claim query. Default 5 ms.
	ClaimDelay time.Duration
	// PollInterval is how often the engine looks for due deliveries without
	// being woken: retries that come due, and lost notifications.
	// Default 1 s.
	PollInterval time.Duration
	// Backoff is the retry schedule. Default webhooks.Backoff{}.
	Backoff webhooks.Backoff
	// DisableAfter disables an endpoint that has failed continuously for
	// this long. Default 72 h.
	DisableAfter time.Duration
	// StoreTimeout bounds each Postgres call. Default 10 s.
	StoreTimeout time.Duration
	// WorkerIdle is how long an endpoint's worker actor stays without work
	// before it is stopped. Default 5 minutes.
	WorkerIdle time.Duration
	// Hooks lets tests inject faults.
	Hooks DeliveryHooks
	// Metrics is where the engine's metrics are registered: attempts by
	// outcome and their durations. Nil: no metrics.
	Metrics prometheus.Registerer
}

// DeliveryHooks are fault-injection points for tests. Production leaves
// them nil.
type DeliveryHooks struct {
	// AfterSend runs after an attempt's response and before it is
	// recorded. Returning false drops the result, as if the process died
	// there: the claim lapses and the delivery is sent again.
	AfterSend func(c persistence.ClaimedDelivery) bool
}

func (c DeliveryConfig) withDefaults() (DeliveryConfig, error) {
	switch {
	case c.Store == nil:
		return c, errors.New("delivery config: a store is required")
	case c.Render == nil:
		return c, errors.New("delivery config: a renderer is required")
	}
	if c.Client == nil {
		c.Client = webhooks.NewClient(webhooks.ClientConfig{})
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	clock := c.Clock
	c.Clock = func() time.Time { return clock().UTC().Truncate(time.Microsecond) }
	setDefault(&c.AttemptTimeout, 10*time.Second)
	setDefault(&c.Lease, c.AttemptTimeout+time.Minute)
	if c.Lease <= c.AttemptTimeout {
		return c, fmt.Errorf("delivery config: lease %s must exceed the attempt timeout %s", c.Lease, c.AttemptTimeout)
	}
	setDefault(&c.PollInterval, time.Second)
	setDefault(&c.ClaimDelay, 5*time.Millisecond)
	setDefault(&c.DisableAfter, 72*time.Hour)
	setDefault(&c.StoreTimeout, 10*time.Second)
	setDefault(&c.WorkerIdle, 5*time.Minute)
	if c.PerEndpoint <= 0 {
		c.PerEndpoint = 32
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 1024
	}
	if c.ClaimBatch <= 0 {
		c.ClaimBatch = 128
	}
	return c, nil
}

// DeliveryStats counts what the engine has done, for metrics and tests.
type DeliveryStats struct {
	Claimed   atomic.Int64
	Attempts  atomic.Int64
	Succeeded atomic.Int64 // attempts answered 2xx
	Retrying  atomic.Int64 // failed attempts scheduled again
	Failed    atomic.Int64 // deliveries given up
	Stale     atomic.Int64 // results whose claim had lapsed, and claims left to lapse unsent
	Released  atomic.Int64 // claims given back at shutdown
	Disabled  atomic.Int64 // endpoints disabled
}

// DeliveryEngine delivers the outbox's webhooks. A dispatcher actor claims
// due deliveries from Postgres when woken by LISTEN/NOTIFY or by its poll
// timer, and hands each to its endpoint's worker actor, which sends at most
// PerEndpoint at once. Several engines, in one process or many,
// can run against one database: claims are exclusive until their lease
// ends.
type DeliveryEngine struct {
	cfg        DeliveryConfig
	system     *actor.ActorSystem
	dispatcher *actor.PID
	stats      DeliveryStats
	metrics    *deliveryMetrics

	// attemptCtx is the parent of every attempt's context; a hard stop
	// cancels it.
	attemptCtx    context.Context
	cancelAttempt context.CancelFunc

	// stopping makes queued jobs give their claims back instead of
	// sending.
	stopping atomic.Bool
	// jobs counts claimed deliveries not yet resolved: sent and recorded,
	// or put aside for release.
	jobs sync.WaitGroup

	releaseMu sync.Mutex
	release   []persistence.ClaimRef // claims to give back at stop

	// results carries attempts' results to the recorder goroutine, which
	// writes together those that arrive while it writes (group commit).
	// stopRecorder ends it; recorderStopped then tells attempts to record
	// on their own.
	results         chan recordRequest
	stopRecorder    chan struct{}
	recorderStopped chan struct{}

	stopOnce sync.Once
	stopErr  error
}

type recordRequest struct {
	result persistence.AttemptResult
	reply  chan recordReply
}

type recordReply struct {
	out persistence.AttemptOutcome
	err error
}

// maxRecordBatch bounds one group of recorded results.
const maxRecordBatch = 512

// recordResults is the recorder goroutine, owned by the engine and ended by
// Stop. It writes the results that gathered while it was writing the last
// ones: the successes in one statement, the failures in one transaction.
// So recording costs a commit or two per batch rather than one per
// attempt, and uses at most one connection at a time however many attempts
// are in flight.
func (e *DeliveryEngine) recordResults() {
	defer close(e.recorderStopped)
	for {
		var batch []recordRequest
		select {
		case <-e.stopRecorder:
			return
		case req := <-e.results:
			batch = append(batch, req)
		}
	more:
		for len(batch) < maxRecordBatch {
			select {
			case req := <-e.results:
				batch = append(batch, req)
			default:
				break more
			}
		}
		var oks, fails []recordRequest
		for _, req := range batch {
			if req.result.Attempt.Succeeded {
				oks = append(oks, req)
			} else {
				fails = append(fails, req)
			}
		}
		began := time.Now()
		if len(oks) > 0 {
			e.recordSucceeded(oks)
		}
		if len(fails) > 0 {
			e.recordFailed(fails)
		}
		e.cfg.Logger.Debug("recorded webhook attempts", "succeeded", len(oks), "failed", len(fails),
			"took", time.Since(began))
	}
}

func (e *DeliveryEngine) recordSucceeded(batch []recordRequest) {
	rs := make([]persistence.AttemptResult, len(batch))
	for i, req := range batch {
		rs[i] = req.result
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.StoreTimeout)
	outs, err := e.cfg.Store.RecordSuccesses(ctx, rs)
	cancel()
	for i, req := range batch {
		if err != nil {
			req.reply <- recordReply{err: err}
		} else {
			req.reply <- recordReply{out: outs[i]}
		}
	}
}

func (e *DeliveryEngine) recordFailed(batch []recordRequest) {
	rs := make([]persistence.AttemptResult, len(batch))
	for i, req := range batch {
		rs[i] = req.result
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.StoreTimeout)
	outs, errs, err := e.cfg.Store.RecordFailures(ctx, rs)
	cancel()
	for i, req := range batch {
		switch {
		case err != nil:
			req.reply <- recordReply{err: err}
		default:
			req.reply <- recordReply{out: outs[i], err: errs[i]}
		}
	}
}

// record records an attempt's result through the recorder, or on its own
// once the recorder has stopped.
func (e *DeliveryEngine) record(r persistence.AttemptResult) (persistence.AttemptOutcome, error) {
	req := recordRequest{result: r, reply: make(chan recordReply, 1)}
	select {
	case e.results <- req:
		rep := <-req.reply
		return rep.out, rep.err
	case <-e.recorderStopped:
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.StoreTimeout)
	defer cancel()
	return e.cfg.Store.RecordAttempt(ctx, r)
}

// StartDeliveryEngine starts the engine.
func StartDeliveryEngine(cfg DeliveryConfig) (*DeliveryEngine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	e := &DeliveryEngine{cfg: cfg, results: make(chan recordRequest),
		stopRecorder: make(chan struct{}), recorderStopped: make(chan struct{})}
	if e.metrics, err = newDeliveryMetrics(cfg.Metrics, e); err != nil {
		return nil, err
	}
	e.attemptCtx, e.cancelAttempt = context.WithCancel(context.Background())
	go e.recordResults()
	e.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return logger.With("component", "protoactor")
	}))
	d := newDispatcher(e)
	e.dispatcher, err = e.system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return d }), "webhook-dispatcher")
	if err != nil {
		e.cancelAttempt()
		close(e.stopRecorder)
		e.system.Shutdown()
		return nil, fmt.Errorf("spawn webhook dispatcher: %w", err)
	}
	return e, nil
}

// Stats reports what the engine has done.
func (e *DeliveryEngine) Stats() *DeliveryStats { return &e.stats }

// Wake makes the engine look for due deliveries now, as a notification
// would.
func (e *DeliveryEngine) Wake() { e.system.Root.Send(e.dispatcher, &wakeDeliveries{}) }

// Stop stops claiming, lets the attempts in flight finish and be recorded,
// gives back the claims it had not started ("flushing the outbox claims"),
// so another engine takes them at once instead of after their lease, and
// shuts the actors down. When ctx ends first, the attempts still in flight
// are canceled and their claims left to lapse: they will be sent again, as
// at-least-once allows. Calls after the first return the first's result.
func (e *DeliveryEngine) Stop(ctx context.Context) error {
	e.stopOnce.Do(func() { e.stopErr = e.stop(ctx) })
	return e.stopErr
}

func (e *DeliveryEngine) stop(ctx context.Context) error {
	e.stopping.Store(true)
	var errs []error
	timeout := time.Minute
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	if _, err := e.system.Root.RequestFuture(e.dispatcher, &stopClaiming{}, max(timeout, time.Millisecond)).Result(); err != nil {
		errs = append(errs, fmt.Errorf("stop webhook dispatcher: %w", err))
	}
	done := make(chan struct{})
	go func() {
		e.jobs.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		e.cancelAttempt()
		errs = append(errs, fmt.Errorf("webhook attempts still in flight at stop: %w", ctx.Err()))
	}
	e.releaseMu.Lock()
	claims := e.release
	e.release = nil
	e.releaseMu.Unlock()
	if len(claims) > 0 {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.StoreTimeout)
		n, err := e.cfg.Store.ReleaseClaims(rctx, claims)
		cancel()
		e.stats.Released.Add(n)
		if err != nil {
			errs = append(errs, err)
		}
	}
	e.cancelAttempt()
	close(e.stopRecorder)
	<-e.recorderStopped
	e.system.Shutdown()
	return errors.Join(errs...)
}

// giveBack puts a claim aside to be released at stop.
func (e *DeliveryEngine) giveBack(c persistence.ClaimedDelivery) {
	e.releaseMu.Lock()
	e.release = append(e.release, persistence.ClaimRef{DeliveryID: c.ID, Token: c.ClaimToken})
	e.releaseMu.Unlock()
}
