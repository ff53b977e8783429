package actors

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	checkout "github.com/checkoutd/checkoutd"
)

// This file holds the actors' Prometheus metrics. Each component registers
// its own on the prometheus.Registerer of its config; a nil registerer means
// no metrics, and every method here is then a no-op.
//
// Counters the components already keep (the watchers' stats, the
// supervisor's restarts, recovery's and the delivery engine's stats) are read
// at scrape time rather than counted twice.

// settleBuckets span a settlement from a fast local commit to a slow one
// behind a backlog.
var settleBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// sessionMetrics are the session actors' metrics.
type sessionMetrics struct {
	settleDuration prometheus.Histogram
	completed      *prometheus.CounterVec
	expired        prometheus.Counter
	canceled       prometheus.Counter
}

// newSystemMetrics registers the metrics of the session actors, their
// supervisor, recovery and mailboxes. s must have its counters in place;
// they are read at scrape time.
func newSystemMetrics(reg prometheus.Registerer, s *System, mailboxes *mailboxGauge) (*sessionMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &sessionMetrics{
		settleDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "checkoutd_payment_settle_duration_seconds",
			Help:    "Time from the watcher receiving a payment from Horizon to its settlement's commit.",
			Buckets: settleBuckets,
		}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "checkoutd_sessions_completed_total",
			Help: "Checkout sessions completed, by payment status (paid or overpaid).",
		}, []string{"payment_status"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "checkoutd_sessions_expired_total",
			Help: "Checkout sessions expired.",
		}),
		canceled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "checkoutd_sessions_canceled_total",
			Help: "Checkout sessions canceled.",
		}),
	}
	for _, ps := range []checkout.PaymentStatus{checkout.PaymentPaid, checkout.PaymentOverpaid} {
		m.completed.WithLabelValues(string(ps))
	}
	cs := []prometheus.Collector{m.settleDuration, m.completed, m.expired, m.canceled,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "checkoutd_sessions_active",
			Help: "Session actors in memory.",
		}, func() float64 { return float64(s.active.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "checkoutd_session_actor_restarts_total",
			Help: "Session actor failures handled by the supervisor (restarted after a backoff, or stopped for failing too often).",
		}, func() float64 { return float64(s.restarts.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "checkoutd_recovery_runs_total",
			Help: "Runs of the recovery actor.",
		}, func() float64 { return float64(s.recoveryStats.Runs.Load()) }),
		mailboxes,
	}
	for action, v := range map[string]*atomic.Int64{"expire": &s.recoveryStats.Expired,
		"repair": &s.recoveryStats.Repaired, "failed": &s.recoveryStats.Failed} {
		cs = append(cs, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "checkoutd_recovery_actions_total",
			Help:        "What recovery did to sessions: expire, repair, or failed (an expire or repair that did not go through).",
			ConstLabels: prometheus.Labels{"action": action},
		}, func() float64 { return float64(v.Load()) }))
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register actor metrics: %w", err)
		}
	}
	return m, nil
}

// settled records a committed settlement of a payment received at
// receivedAt, and what the transition did to its session.
func (m *sessionMetrics) settled(t checkout.Transition, receivedAt time.Time) {
	if m == nil {
		return
	}
	if !receivedAt.IsZero() {
		m.settleDuration.Observe(max(time.Since(receivedAt), 0).Seconds())
	}
	m.committed(t)
}

// committed records what a committed transition did to its session.
func (m *sessionMetrics) committed(t checkout.Transition) {
	if m == nil {
		return
	}
	for _, e := range t.Events {
		switch e.Type {
		case checkout.EventSessionCompleted:
			m.completed.WithLabelValues(string(t.Session.PaymentStatus)).Inc()
		case checkout.EventSessionExpired:
			m.expired.Inc()
		case checkout.EventSessionCanceled:
			m.canceled.Inc()
		}
	}
}

// meterProvider exports protoactor's own OpenTelemetry instruments onto reg,
// under their protoactor_ names. It is set as the global meter provider,
// because protoactor takes its instruments from the global meter: without
// it, every spawn leaks a callback (protoactor-go issue #745).
func meterProvider(reg prometheus.Registerer) (*sdkmetric.MeterProvider, error) {
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo(), otelprom.WithoutUnits())
	if err != nil {
		return nil, fmt.Errorf("otel prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	otel.SetMeterProvider(mp)
	return mp, nil
}

// mailboxGauge measures the mailboxes of the actors spawned with its
// mailbox producers, which protoactor does not export: the sum and the
// longest queue of user messages, by kind of actor (session, supervisor).
// It reads each mailbox's own count at scrape time, so nothing drifts.
type mailboxGauge struct {
	mu   sync.Mutex
	live map[*mailboxProbe]struct{}
}

var (
	mailboxLength = prometheus.NewDesc("checkoutd_actor_mailbox_length",
		"User messages queued in the mailboxes of actors of a kind, summed over the actors.", []string{"actor"}, nil)
	mailboxLengthMax = prometheus.NewDesc("checkoutd_actor_mailbox_length_max",
		"User messages queued in the fullest mailbox of actors of a kind.", []string{"actor"}, nil)
)

// mailboxKinds are the kinds of actor measured; each is reported even with
// no actor alive.
var mailboxKinds = []string{"session", "supervisor"}

func newMailboxGauge() *mailboxGauge { return &mailboxGauge{live: make(map[*mailboxProbe]struct{})} }

// mailbox returns a producer of unbounded mailboxes measured as kind. A
// nil gauge returns protoactor's default.
func (g *mailboxGauge) mailbox(kind string) actor.MailboxProducer {
	if g == nil {
		return actor.Unbounded()
	}
	return func() actor.Mailbox {
		p := &mailboxProbe{gauge: g, kind: kind}
		p.mb = actor.Unbounded(p)()
		return p.mb
	}
}

// Describe implements prometheus.Collector.
func (g *mailboxGauge) Describe(ch chan<- *prometheus.Desc) {
	ch <- mailboxLength
	ch <- mailboxLengthMax
}

// Collect implements prometheus.Collector.
func (g *mailboxGauge) Collect(ch chan<- prometheus.Metric) {
	sum := make(map[string]int, len(mailboxKinds))
	longest := make(map[string]int, len(mailboxKinds))
	g.mu.Lock()
	for p := range g.live {
		n := p.mb.UserMessageCount()
		sum[p.kind] += n
		longest[p.kind] = max(longest[p.kind], n)
	}
	g.mu.Unlock()
	for _, k := range mailboxKinds {
		ch <- prometheus.MustNewConstMetric(mailboxLength, prometheus.GaugeValue, float64(sum[k]), k)
		ch <- prometheus.MustNewConstMetric(mailboxLengthMax, prometheus.GaugeValue, float64(longest[k]), k)
	}
}

// mailboxProbe is the mailbox middleware of one actor: it enters the
// gauge's set when the mailbox starts and leaves it when the actor is told
// to stop (whatever is queued then is dropped by protoactor).
type mailboxProbe struct {
	gauge *mailboxGauge
	kind  string
	mb    actor.Mailbox
}

func (p *mailboxProbe) MailboxStarted() {
	p.gauge.mu.Lock()
	p.gauge.live[p] = struct{}{}
	p.gauge.mu.Unlock()
}

func (p *mailboxProbe) MessagePosted(any) {}

func (p *mailboxProbe) MessageReceived(msg any) {
	if _, ok := msg.(*actor.Stop); ok {
		p.gauge.mu.Lock()
		delete(p.gauge.live, p)
		p.gauge.mu.Unlock()
	}
}

func (p *mailboxProbe) MailboxEmpty() {}

// shutdownMeter ends the meter provider, if any, within ctx.
func shutdownMeter(ctx context.Context, mp *sdkmetric.MeterProvider) {
	if mp != nil {
		_ = mp.Shutdown(ctx)
	}
}

// watcherProgress is what one watcher tells the lag and cursor age gauges.
// Times are Unix nanoseconds.
type watcherProgress struct {
	// ledgerTime is the latest ledger close time the watcher has seen
	// everything up to, as far as it knows: that of the last operation it
	// received, or of the latest ledger when it found itself caught up.
	ledgerTime atomic.Int64
	// cursorAt is when the durable cursor last advanced, or was found
	// covering everything received.
	cursorAt atomic.Int64
}

// start counts lag and cursor age from now, until the watcher knows better.
func (p *watcherProgress) start(now time.Time) {
	p.ledgerTime.Store(now.UnixNano())
	p.cursorAt.Store(now.UnixNano())
}

func (p *watcherProgress) seen(closedAt time.Time) {
	if closedAt.IsZero() {
		return
	}
	t := closedAt.UnixNano()
	for {
		old := p.ledgerTime.Load()
		if t <= old || p.ledgerTime.CompareAndSwap(old, t) {
			return
		}
	}
}

func (p *watcherProgress) cursorCurrent(now time.Time) { p.cursorAt.Store(now.UnixNano()) }

var (
	paymentsObserved = prometheus.NewDesc("checkoutd_payments_observed_total",
		"Credits to watched accounts recorded by the watchers, by disposition: applied, late, wrong_asset, unmatched, "+
			"or already_applied (recorded before, acknowledged again).", []string{"disposition"}, nil)
	operationsSkipped = prometheus.NewDesc("checkoutd_horizon_operations_skipped_total",
		"Streamed operations that credit no watched account, by kind: outgoing, failed, not_payment, "+
			"unknown (could not be read), replayed (a stream resent an operation already received).", []string{"kind"}, nil)
	streamReconnects = prometheus.NewDesc("checkoutd_horizon_stream_reconnects_total",
		"Horizon payment stream reconnections, by reason: closed, idle, rate_limited, unavailable, error.", []string{"reason"}, nil)
	outOfOrder = prometheus.NewDesc("checkoutd_horizon_out_of_order_total",
		"Breaks of Horizon's paging-token order seen by the watchers, by reason: stream (an event older than "+
			"one streamed before it on the same connection), page (a JSON page out of order; it is sorted).",
		[]string{"reason"}, nil)
	watcherRetries = prometheus.NewDesc("checkoutd_watcher_retries_total",
		"Hand-offs and lookups of the watchers that failed and were retried.", nil, nil)
	horizonLag = prometheus.NewDesc("checkoutd_horizon_lag_seconds",
		"Now minus the ledger close time the most lagging watcher has seen everything up to "+
			"(its last operation received, or the latest ledger when it is caught up).", nil, nil)
	cursorAge = prometheus.NewDesc("checkoutd_horizon_cursor_age_seconds",
		"Time since the most stale watcher's durable cursor last advanced or was found covering everything received.", nil, nil)
	watchersRunning = prometheus.NewDesc("checkoutd_watchers",
		"Ledger watchers: running (one per watched account) and streaming (with a Horizon stream open).", []string{"state"}, nil)
)

// The label values each counter family is reported with, at 0 until seen.
var (
	observedDispositions = []string{string(checkout.DispositionApplied), string(checkout.DispositionLate),
		string(checkout.DispositionWrongAsset), string(checkout.DispositionUnmatched), "already_applied"}
	skippedKinds      = []string{"outgoing", "failed", "not_payment", "unknown", "replayed"}
	reconnectReasons  = []string{"closed", "idle", "rate_limited", "unavailable", "error"}
	outOfOrderReasons = []string{"stream", "page"}
)

// watchersCollector reads the watchers' counters and progress at scrape
// time.
type watchersCollector struct{ ws *Watchers }

func (watchersCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{paymentsObserved, operationsSkipped, streamReconnects, outOfOrder, watcherRetries,
		horizonLag, cursorAge, watchersRunning} {
		ch <- d
	}
}

func (c watchersCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.ws.Stats()
	// Only the known label values are reported: the counters' keys are
	// all known, and a stray one must not grow the label set.
	counters := func(d *prometheus.Desc, known []string, values map[string]int64) {
		for _, k := range known {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(values[k]), k)
		}
	}
	counters(paymentsObserved, observedDispositions, st.Payments)
	counters(operationsSkipped, skippedKinds, st.Payments)
	counters(streamReconnects, reconnectReasons, st.Reconnects)
	counters(outOfOrder, outOfOrderReasons, st.OutOfOrder)
	ch <- prometheus.MustNewConstMetric(watcherRetries, prometheus.CounterValue, float64(st.Retries))

	now := c.ws.cfg.Clock().UnixNano()
	var lag, age int64
	c.ws.mu.Lock()
	running := len(c.ws.watchers)
	streaming := 0
	for _, w := range c.ws.watchers {
		lag = max(lag, now-w.progress.ledgerTime.Load())
		age = max(age, now-w.progress.cursorAt.Load())
		if w.streaming.Load() {
			streaming++
		}
	}
	c.ws.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(horizonLag, prometheus.GaugeValue, time.Duration(lag).Seconds())
	ch <- prometheus.MustNewConstMetric(cursorAge, prometheus.GaugeValue, time.Duration(age).Seconds())
	ch <- prometheus.MustNewConstMetric(watchersRunning, prometheus.GaugeValue, float64(running), "running")
	ch <- prometheus.MustNewConstMetric(watchersRunning, prometheus.GaugeValue, float64(streaming), "streaming")
}

// deliveryMetrics are the webhook delivery engine's metrics. Outcomes are
// read from its stats at scrape time; the duration is observed per attempt.
type deliveryMetrics struct {
	duration   prometheus.Histogram
	unrecorded atomic.Int64
}

var (
	webhookDeliveries = prometheus.NewDesc("checkoutd_webhook_deliveries_total",
		"Webhook delivery attempts by outcome: succeeded (2xx), retrying (failed, scheduled again), "+
			"failed (failed, given up), stale (its claim had lapsed), unrecorded (the result could not be stored).",
		[]string{"outcome"}, nil)
	webhookEndpointsDisabled = prometheus.NewDesc("checkoutd_webhook_endpoints_disabled_total",
		"Webhook endpoints disabled for failing continuously.", nil, nil)
)

// newDeliveryMetrics registers the engine's metrics with reg; nil reg, nil
// metrics.
func newDeliveryMetrics(reg prometheus.Registerer, e *DeliveryEngine) (*deliveryMetrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &deliveryMetrics{duration: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "checkoutd_webhook_delivery_duration_seconds",
		Help:    "Duration of webhook delivery attempts, from dialing to the end of the response.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})}
	for _, c := range []prometheus.Collector{m.duration, deliveryCollector{e, m}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register webhook delivery metrics: %w", err)
		}
	}
	return m, nil
}

// attempted records an attempt that took d; recorded is false when its
// result could not be stored.
func (m *deliveryMetrics) attempted(d time.Duration, recorded bool) {
	if m == nil {
		return
	}
	m.duration.Observe(d.Seconds())
	if !recorded {
		m.unrecorded.Add(1)
	}
}

// deliveryCollector reads the delivery engine's stats.
type deliveryCollector struct {
	e *DeliveryEngine
	m *deliveryMetrics
}

func (deliveryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- webhookDeliveries
	ch <- webhookEndpointsDisabled
}

func (c deliveryCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.e.Stats()
	for outcome, n := range map[string]int64{"succeeded": st.Succeeded.Load(), "retrying": st.Retrying.Load(),
		"failed": st.Failed.Load(), "stale": st.Stale.Load(), "unrecorded": c.m.unrecorded.Load()} {
		ch <- prometheus.MustNewConstMetric(webhookDeliveries, prometheus.CounterValue, float64(n), outcome)
	}
	ch <- prometheus.MustNewConstMetric(webhookEndpointsDisabled, prometheus.CounterValue, float64(st.Disabled.Load()))
}
