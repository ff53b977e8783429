package actors

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures the session actors and their supervisor.
type Config struct {
	// Store is where sessions are loaded from and settled to. Required.
	Store Store
	// Logger receives the actors' logs and protoactor's own.
	Logger *slog.Logger
	// Clock is the time source for transitions. Default time.Now.
	Clock func() time.Time
	// IdleTimeout is how long a session actor waits without a message
	// before it asks to be passivated. Default 2 minutes.
	IdleTimeout time.Duration
	// StoreTimeout bounds each Postgres call an actor makes. Default 10 s.
	StoreTimeout time.Duration
	// AskTimeout bounds each request made through Sessions. Default 15 s.
	AskTimeout time.Duration
	// MaxRestarts is how many failures a session actor may have within
	// RestartWindow before the supervisor stops it. Default 5 in 1 minute.
	MaxRestarts   int
	RestartWindow time.Duration
	// RestartBackoff is the delay before the first restart; it doubles with
	// each failure in the window, up to MaxRestartBackoff. Defaults 50 ms and
	// 5 s.
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration
	// RecoveryInterval is how often the recovery actor looks for stale
	// sessions. Default 30 s.
	RecoveryInterval time.Duration
	// RecoveryAuditBatch is how many sessions each recovery run checks
	// against their payments; runs sweep every session in turn. Default
	// 5,000.
	RecoveryAuditBatch int
	// Metrics is where the session, recovery and mailbox metrics and
	// protoactor's own are registered. Nil: no metrics.
	Metrics prometheus.Registerer
	// Hooks lets tests inject faults into a session actor.
	Hooks Hooks
	// Cluster, when set, makes this node a cluster member whose sessions
	// are grains placed across the cluster (cluster.go). Nil: single node.
	Cluster *ClusterConfig

	// metrics and mailboxes are set by Start when Metrics is set.
	metrics   *sessionMetrics
	mailboxes *mailboxGauge
}

// Hooks are fault-injection points for tests. Production leaves them nil.
type Hooks struct {
	// BeforeSettle runs before a payment's transition is committed.
	BeforeSettle func(sessionID string, m *ObservePayment)
	// AfterSettle runs after the commit and before the actor updates its
	// memory and replies.
	AfterSettle func(sessionID string, m *ObservePayment)
}

func (h Hooks) beforeSettle(id string, m *ObservePayment) {
	if h.BeforeSettle != nil {
		h.BeforeSettle(id, m)
	}
}

func (h Hooks) afterSettle(id string, m *ObservePayment) {
	if h.AfterSettle != nil {
		h.AfterSettle(id, m)
	}
}

func (c Config) withDefaults() (Config, error) {
	if c.Store == nil {
		return c, errors.New("actors config: a store is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	// Postgres keeps microseconds in UTC; so do the snapshots in events.
	clock := c.Clock
	c.Clock = func() time.Time { return clock().UTC().Truncate(time.Microsecond) }
	setDefault(&c.IdleTimeout, 2*time.Minute)
	setDefault(&c.StoreTimeout, 10*time.Second)
	setDefault(&c.AskTimeout, 15*time.Second)
	setDefault(&c.RestartWindow, time.Minute)
	setDefault(&c.RestartBackoff, 50*time.Millisecond)
	setDefault(&c.MaxRestartBackoff, 5*time.Second)
	setDefault(&c.RecoveryInterval, 30*time.Second)
	if c.MaxRestarts <= 0 {
		c.MaxRestarts = 5
	}
	if c.RecoveryAuditBatch <= 0 {
		c.RecoveryAuditBatch = 5000
	}
	return c, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}
