package actors

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

// RecoveryStore is what the recovery actor reads from Postgres.
type RecoveryStore interface {
	ExpirableSessions(ctx context.Context, limit int) ([]persistence.ExpirableSession, error)
	InconsistentSessions(ctx context.Context, after string, n int) (bad []string, last string, err error)
}

// RecoveryStats counts what recovery did, for metrics and tests.
type RecoveryStats struct {
	Runs     atomic.Int64
	Expired  atomic.Int64
	Repaired atomic.Int64
	Failed   atomic.Int64
}

// recoveryBatch bounds how many sessions one run expires; the next run
// picks up the rest.
const recoveryBatch = 1000

// recoveryTick starts a recovery run.
type recoveryTick struct{}

// recovery periodically finds stale sessions and acts on them through their
// session actors: it never writes a session itself, so a run racing a
// payment, or a run on another node, is serialized by the actor and fenced by
// the version check.
type recovery struct {
	store    RecoveryStore
	sessions Sessions
	interval time.Duration
	logger   *slog.Logger
	stats    *RecoveryStats
	timer    *time.Timer
	// auditBatch is how many sessions one run checks against their
	// payments. Runs sweep every session in turn, so a run costs the same
	// however many sessions there are: by default 5,000 every 30 s, 600,000
	// an hour.
	auditBatch int
	// auditAfter is where the sweep goes on from: the last session the
	// previous run checked.
	auditAfter string
}

// Receive only dispatches.
func (r *recovery) Receive(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		r.schedule(ctx)
	case *actor.Stopping:
		if r.timer != nil {
			r.timer.Stop()
		}
	case *actor.Stopped, *actor.Restarting:
	case *recoveryTick:
		r.timer.Stop() // a tick asked for by RunRecovery replaces the pending one
		r.run()
		r.schedule(ctx)
	}
}

func (r *recovery) schedule(ctx actor.Context) {
	self, root := ctx.Self(), ctx.ActorSystem().Root
	r.timer = time.AfterFunc(r.interval, func() { root.Send(self, &recoveryTick{}) })
}

// run expires sessions that ledger time has carried past their expiry, and
// checks the next auditBatch sessions of its sweep against their payments
// and repairs those that disagree. A settlement commits a session and its
// payments together, so a disagreement means a bug or a hand edit: the
// sweep is an audit, and a slow one is enough.
func (r *recovery) run() {
	defer r.stats.Runs.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), r.interval)
	defer cancel()
	expirable, err := r.store.ExpirableSessions(ctx, recoveryBatch)
	if err != nil {
		r.logger.Warn("recovery: list expirable sessions", "err", err)
	}
	for _, e := range expirable {
		_, err := r.sessions.Expire(e.ID, e.CaughtUpTo)
		switch {
		case err == nil:
			r.stats.Expired.Add(1)
		case errors.Is(err, checkout.ErrSessionNotOpen):
			// A payment completed it first; nothing to do.
		default:
			r.stats.Failed.Add(1)
			r.logger.Warn("recovery: expire session", "session_id", e.ID, "err", err)
		}
	}
	inconsistent, last, err := r.store.InconsistentSessions(ctx, r.auditAfter, r.auditBatch)
	if err != nil {
		r.logger.Warn("recovery: check sessions against their payments", "err", err)
	} else {
		r.auditAfter = last
	}
	for _, id := range inconsistent {
		if _, err := r.sessions.Repair(id); err != nil {
			r.stats.Failed.Add(1)
			r.logger.Warn("recovery: repair session", "session_id", id, "err", err)
			continue
		}
		r.stats.Repaired.Add(1)
		r.logger.Info("recovery: repaired session", "session_id", id)
	}
	if n := len(expirable) + len(inconsistent); n > 0 {
		r.logger.Info("recovery run", "expired_candidates", len(expirable), "repair_candidates", len(inconsistent))
	}
}
