package persistence

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// backlogTimeout bounds the webhook backlog query a scrape runs, so a slow
// database makes the scrape miss one value instead of hanging.
const backlogTimeout = time.Second

// RegisterMetrics registers the pool's statistics (pgxpool.Stat) and the
// webhook backlog with reg. Both are read when Prometheus scrapes; the
// backlog is a count over the partial index of pending deliveries.
func (db *DB) RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{poolCollector{db}, backlogCollector{db}} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register postgres metrics: %w", err)
		}
	}
	return nil
}

var (
	poolAcquired = prometheus.NewDesc("checkoutd_db_pool_acquired_connections",
		"Connections of the Postgres pool in use.", nil, nil)
	poolIdle = prometheus.NewDesc("checkoutd_db_pool_idle_connections",
		"Idle connections of the Postgres pool.", nil, nil)
	poolConstructing = prometheus.NewDesc("checkoutd_db_pool_constructing_connections",
		"Connections of the Postgres pool being opened.", nil, nil)
	poolTotal = prometheus.NewDesc("checkoutd_db_pool_connections",
		"Connections of the Postgres pool: acquired, idle and being opened.", nil, nil)
	poolMax = prometheus.NewDesc("checkoutd_db_pool_max_connections",
		"The most connections the Postgres pool may open.", nil, nil)
	poolAcquires = prometheus.NewDesc("checkoutd_db_pool_acquires_total",
		"Connections acquired from the Postgres pool.", nil, nil)
	poolAcquireSeconds = prometheus.NewDesc("checkoutd_db_pool_acquire_duration_seconds_total",
		"Time spent acquiring connections from the Postgres pool.", nil, nil)
	poolEmptyAcquires = prometheus.NewDesc("checkoutd_db_pool_empty_acquires_total",
		"Acquires that had to wait for a connection because none was idle.", nil, nil)
	poolEmptyWaitSeconds = prometheus.NewDesc("checkoutd_db_pool_empty_acquire_wait_seconds_total",
		"Time spent waiting by acquires that found no idle connection.", nil, nil)
	poolCanceledAcquires = prometheus.NewDesc("checkoutd_db_pool_canceled_acquires_total",
		"Acquires canceled by their context.", nil, nil)
	poolNewConns = prometheus.NewDesc("checkoutd_db_pool_new_connections_total",
		"Connections the Postgres pool opened.", nil, nil)
	poolLifetimeDestroys = prometheus.NewDesc("checkoutd_db_pool_max_lifetime_destroys_total",
		"Connections closed for reaching their maximum lifetime.", nil, nil)
	poolIdleDestroys = prometheus.NewDesc("checkoutd_db_pool_max_idle_destroys_total",
		"Connections closed for being idle too long.", nil, nil)
)

// poolCollector exports pgxpool.Stat; no pgx type leaves the package.
type poolCollector struct{ db *DB }

func (poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolAcquired, poolIdle, poolConstructing, poolTotal, poolMax,
		poolAcquires, poolAcquireSeconds, poolEmptyAcquires, poolEmptyWaitSeconds, poolCanceledAcquires,
		poolNewConns, poolLifetimeDestroys, poolIdleDestroys} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.db.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(poolAcquired, float64(s.AcquiredConns()))
	gauge(poolIdle, float64(s.IdleConns()))
	gauge(poolConstructing, float64(s.ConstructingConns()))
	gauge(poolTotal, float64(s.TotalConns()))
	gauge(poolMax, float64(s.MaxConns()))
	counter(poolAcquires, float64(s.AcquireCount()))
	counter(poolAcquireSeconds, s.AcquireDuration().Seconds())
	counter(poolEmptyAcquires, float64(s.EmptyAcquireCount()))
	counter(poolEmptyWaitSeconds, s.EmptyAcquireWaitTime().Seconds())
	counter(poolCanceledAcquires, float64(s.CanceledAcquireCount()))
	counter(poolNewConns, float64(s.NewConnsCount()))
	counter(poolLifetimeDestroys, float64(s.MaxLifetimeDestroyCount()))
	counter(poolIdleDestroys, float64(s.MaxIdleDestroyCount()))
}

var (
	backlogDue = prometheus.NewDesc("checkoutd_webhook_backlog",
		"Webhook deliveries that are due and not yet delivered (pending, not claimed by an attempt in flight).", nil, nil)
	backlogOldest = prometheus.NewDesc("checkoutd_webhook_backlog_oldest_seconds",
		"How long the longest-waiting due webhook delivery has been due; 0 when none is.", nil, nil)
	queueDeadRows = prometheus.NewDesc("checkoutd_webhook_queue_dead_rows",
		"Dead row versions in webhook_deliveries waiting for a vacuum (Postgres's estimate); the claim walks their index entries.", nil, nil)
)

// backlogCollector counts the due webhook deliveries at every scrape.
type backlogCollector struct{ db *DB }

func (backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogDue
	ch <- backlogOldest
	ch <- queueDeadRows
}

func (c backlogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
	defer cancel()
	n, oldest, err := c.db.WebhookBacklog(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(backlogDue, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(backlogDue, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(backlogOldest, prometheus.GaugeValue, oldest.Seconds())
	dead, err := c.db.WebhookQueueDeadRows(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueDeadRows, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(queueDeadRows, prometheus.GaugeValue, float64(dead))
}

// WebhookQueueDeadRows is Postgres's count of dead row versions in
// webhook_deliveries that no vacuum has cleared yet. Every completed
// delivery leaves one, with an entry in the due index that each claim
// walks until a vacuum removes it (migration 0008); a count that keeps
// growing means autovacuum is not keeping up (docs/operations.md,
// CheckoutdWebhookQueueNotVacuumed). The statistics reach Postgres's
// counters within about a second of each commit.
func (db *DB) WebhookQueueDeadRows(ctx context.Context) (int64, error) {
	var n int64
	err := db.pool.QueryRow(ctx, `SELECT coalesce(sum(n_dead_tup), 0)::bigint FROM pg_stat_user_tables
		WHERE relid = 'webhook_deliveries'::regclass`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count dead webhook deliveries: %w", err)
	}
	return n, nil
}

// WebhookBacklog counts the webhook deliveries that are due now and not
// delivered yet, and says how long the oldest of them has been due. A
// delivery whose attempt is in flight is not due until its claim lapses.
func (db *DB) WebhookBacklog(ctx context.Context) (int64, time.Duration, error) {
	var n int64
	var oldest float64
	err := db.pool.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(next_attempt_at)), 0)::float8
		FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= now()
			AND (claimed_until IS NULL OR claimed_until <= now())`).Scan(&n, &oldest)
	if err != nil {
		return 0, 0, fmt.Errorf("count webhook backlog: %w", err)
	}
	return n, time.Duration(max(oldest, 0) * float64(time.Second)), nil
}
