package actors

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/cluster"
	clientv3 "go.etcd.io/etcd/client/v3"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// System is the running actor system: the supervisor with its session
// actors and, when configured, the recovery actor.
type System struct {
	system     *actor.ActorSystem
	supervisor *actor.PID
	recovery   *actor.PID
	sessions   Sessions
	meter      *sdkmetric.MeterProvider
	// cluster is set on a cluster member; its grains are the sessions.
	cluster *cluster.Cluster
	// lost is closed when a cluster member loses its membership lease;
	// nil (never ready) otherwise. quitLease ends the lease watch, and
	// leaseDone says it ended.
	lost      chan struct{}
	quitLease chan struct{}
	leaseDone chan struct{}
	// clusterEtcd is ClusterConfig.Etcd, closed on Stop.
	clusterEtcd *clientv3.Client
	logger      *slog.Logger

	active        atomic.Int64
	restarts      atomic.Int64
	recoveryStats RecoveryStats
	stopOnce      sync.Once
}

// hardStopWait bounds how long a hard stop waits for session actors to
// finish the commit they are in.
const hardStopWait = 5 * time.Second

// Start starts the actor system. recoveryStore may be nil, in which case no
// recovery actor runs.
func Start(cfg Config, recoveryStore RecoveryStore) (*System, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	logger := cfg.Logger
	s := &System{logger: logger}
	opts := []actor.ConfigOption{actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return logger.With("component", "protoactor")
	})}
	if cfg.Metrics != nil {
		cfg.mailboxes = newMailboxGauge()
		if cfg.metrics, err = newSystemMetrics(cfg.Metrics, s, cfg.mailboxes); err != nil {
			return nil, err
		}
		// Before the actor system: protoactor takes its instruments from
		// the global meter provider.
		if s.meter, err = meterProvider(cfg.Metrics); err != nil {
			return nil, err
		}
		opts = append(opts, actor.WithMetricProviders(s.meter))
	}
	as := actor.NewActorSystem(opts...)
	s.system = as
	sup := newSupervisor(&cfg, &s.active, &s.restarts)
	s.supervisor, err = as.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return sup },
		actor.WithMailbox(cfg.mailboxes.mailbox("supervisor"))), "sessions")
	if err != nil {
		return nil, fmt.Errorf("spawn supervisor: %w", err)
	}
	s.sessions = &localSessions{root: as.Root, supervisor: s.supervisor, timeout: cfg.AskTimeout}
	if cfg.Cluster != nil {
		if s.cluster, err = startCluster(as, &cfg, &s.active, &s.restarts); err != nil {
			as.Shutdown()
			if cfg.Cluster.Etcd != nil {
				_ = cfg.Cluster.Etcd.Close()
			}
			return nil, err
		}
		s.sessions = &clusterSessions{cluster: s.cluster, timeout: cfg.AskTimeout}
		if etcd := cfg.Cluster.Etcd; etcd != nil {
			s.clusterEtcd = etcd
			s.lost, s.quitLease, s.leaseDone = make(chan struct{}), make(chan struct{}), make(chan struct{})
			go func() {
				defer close(s.leaseDone)
				watchLease(etcd, memberKey(cfg.Cluster.Name, as.ID), s.lost, s.quitLease, logger.With("component", "cluster"))
			}()
		}
	}
	if recoveryStore != nil {
		r := &recovery{store: recoveryStore, sessions: s.sessions, interval: cfg.RecoveryInterval,
			auditBatch: cfg.RecoveryAuditBatch, logger: logger.With("actor", "recovery"), stats: &s.recoveryStats}
		s.recovery, err = as.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return r }), "recovery")
		if err != nil {
			return nil, fmt.Errorf("spawn recovery: %w", err)
		}
	}
	return s, nil
}

// Sessions is the way in to the session actors.
func (s *System) Sessions() Sessions { return s.sessions }

// Lost is closed when this cluster member has lost its place in the
// cluster: its membership lease in etcd expired, or it could not reach etcd
// for several times the lease's TTL, so the other members have taken its
// sessions over. The
// node must then stop, and rejoin by starting again. Lost is never closed on
// a single node or without ClusterConfig.Etcd.
func (s *System) Lost() <-chan struct{} { return s.lost }

// leaveCluster stops the lease watch, leaves the cluster and shuts the
// actor system down. A member that still holds its lease leaves gracefully,
// deregistering so that the others take its grains over at once; that talks
// to etcd without a deadline of its own, so it is given until ctx ends (or
// hardStopWait if it has) and then abandoned — the lease expires by itself.
// A member that lost its lease cannot reach etcd, and just stops.
func (s *System) leaveCluster(ctx context.Context) {
	graceful := true
	if s.lost != nil {
		close(s.quitLease)
		<-s.leaseDone
		select {
		case <-s.lost:
			graceful = false
		default:
		}
	}
	left := make(chan struct{})
	go func() {
		defer close(left)
		// protoactor's Shutdown stops the actor system before it poisons
		// the grains, which then never answer and each wait times out.
		// Stopping the placement first, while the system runs, poisons the
		// grains: each finishes the message it is handling, then stops.
		s.cluster.IdentityLookup.Shutdown()
		s.cluster.Shutdown(graceful)
	}()
	wait := hardStopWait
	if d, ok := ctx.Deadline(); ok && time.Until(d) > wait {
		wait = time.Until(d)
	}
	select {
	case <-left:
	case <-time.After(wait):
		s.logger.Warn("leaving the cluster did not finish; abandoned", "waited", wait)
	}
	if etcd := s.clusterEtcd; etcd != nil {
		_ = etcd.Close()
	}
}

// ActiveSessions is the number of session actors in memory.
func (s *System) ActiveSessions() int64 { return s.active.Load() }

// Restarts is the number of session actor failures handled so far.
func (s *System) Restarts() int64 { return s.restarts.Load() }

// RecoveryStats reports what the recovery actor has done.
func (s *System) RecoveryStats() *RecoveryStats { return &s.recoveryStats }

// RunRecovery asks the recovery actor for a run now, and waits for it.
func (s *System) RunRecovery(timeout time.Duration) error {
	if s.recovery == nil {
		return fmt.Errorf("run recovery: no recovery actor")
	}
	before := s.recoveryStats.Runs.Load()
	s.system.Root.Send(s.recovery, &recoveryTick{})
	deadline := time.Now().Add(timeout)
	for s.recoveryStats.Runs.Load() == before {
		if time.Now().After(deadline) {
			return fmt.Errorf("run recovery: timed out after %s", timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// Stop drains the actors: every session actor handles what it was sent and
// stops, and messages arriving meanwhile are answered with a shutdown error.
// Then the actor system shuts down. If ctx ends first (or has ended), the
// stop is hard: the supervisor and every session actor are stopped at once,
// with whatever they had queued dropped; Postgres keeps what was committed,
// and the watchers replay the rest. Stop may be called more than once.
func (s *System) Stop(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() { err = s.stop(ctx) })
	return err
}

func (s *System) stop(ctx context.Context) error {
	if s.recovery != nil {
		s.system.Root.Stop(s.recovery)
	}
	err := ctx.Err()
	if err == nil {
		timeout := time.Minute
		if d, ok := ctx.Deadline(); ok {
			timeout = time.Until(d)
		}
		drained := make(chan error, 1)
		f := s.system.Root.RequestFuture(s.supervisor, &drain{}, timeout)
		go func() {
			_, err := f.Result()
			drained <- err
		}()
		select {
		case err = <-drained:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		// Stop is a system message: the supervisor stops its children and
		// then itself without handling their mailboxes. An actor inside a
		// commit finishes it first, so wait a little, not forever.
		stopped := make(chan struct{})
		f := s.system.Root.StopFuture(s.supervisor)
		go func() {
			_ = f.Wait()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(hardStopWait):
		}
	}
	if s.cluster != nil {
		s.leaveCluster(ctx)
	} else {
		s.system.Shutdown()
	}
	shutdownMeter(ctx, s.meter)
	if err != nil {
		return fmt.Errorf("stop actors: %w", err)
	}
	return nil
}
