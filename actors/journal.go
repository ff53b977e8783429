package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

// JournalStore is what the group-commit journal needs of Postgres.
// *persistence.DB implements it.
type JournalStore interface {
	GetSession(ctx context.Context, id string) (checkout.Session, error)
	PaymentByOperation(ctx context.Context, operationID string) (checkout.Payment, error)
	SessionPayments(ctx context.Context, sessionID string) ([]checkout.Payment, error)
	SettleBatch(ctx context.Context, batch []persistence.Settlement) []error
}

// JournalConfig configures the group-commit journal.
type JournalConfig struct {
	// Store commits the batches and answers the reads. Required.
	Store JournalStore
	// Logger receives the journal's warnings. Default: discard.
	Logger *slog.Logger
	// Window is how long a committer that has a settlement waits for more
	// before it commits, unless the batch fills first. Default 0: commit at
	// once whatever is waiting ("natural batching"). Batches then grow with
	// the load by themselves: what arrives while the committers are busy is
	// the next batch.
	Window time.Duration
	// MaxBatch bounds the settlements of one transaction. Default 128.
	MaxBatch int
	// Committers is how many batches may be committing at once, each on
	// its own connection. Default 2.
	Committers int
	// CommitTimeout bounds one batch's round trip. Default 10 s.
	CommitTimeout time.Duration
	// Hooks lets tests inject faults around a commit.
	Hooks JournalHooks
}

// JournalHooks are fault-injection points for tests. Production leaves them
// nil.
type JournalHooks struct {
	// BeforeCommit runs before a batch of n settlements is sent. An error
	// fails every settlement of the batch with it, and nothing is written:
	// a crash before the commit.
	BeforeCommit func(n int) error
	// AfterCommit runs once a batch of n settlements is committed, before
	// any is acknowledged. Returning true drops the acknowledgements, as a
	// crash between the commit and the replies would: the callers wait
	// until their context ends, not knowing the outcome.
	AfterCommit func(n int) (drop bool)
}

func (c JournalConfig) withDefaults() (JournalConfig, error) {
	if c.Store == nil {
		return c, errors.New("journal config: a store is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Window < 0 {
		return c, fmt.Errorf("journal config: window %s is negative", c.Window)
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 128
	}
	if c.Committers <= 0 {
		c.Committers = 2
	}
	setDefault(&c.CommitTimeout, 10*time.Second)
	return c, nil
}

// ErrJournalStopped is returned by Settle after Stop.
var ErrJournalStopped = errors.New("settlement journal is stopped")

// Journal is the group-commit journal: a Store whose Settle hands the
// transition to a small pool of committers, each of which commits whatever
// settlements are waiting in one transaction (persistence.SettleBatch) and
// acknowledges each one only after the commit. A settlement that is
// refused (already applied, a stale version, a broken rule) gets its own
// error; its neighbours commit. The reads pass through to the store.
//
// Its goroutines are the committers; Stop ends them.
type Journal struct {
	cfg   JournalConfig
	queue chan *settleRequest

	// mu orders Settle's sends against Stop closing the queue.
	mu      sync.RWMutex
	stopped bool
	done    sync.WaitGroup

	batches, rows, commitNanos atomic.Int64
}

// settleRequest is one Settle call waiting for its batch's commit.
type settleRequest struct {
	row persistence.Settlement
	// gone closes when the caller stops waiting (its ctx).
	gone  <-chan struct{}
	reply chan error // buffered: a committer never blocks on a caller
}

var _ Store = (*Journal)(nil)

// StartJournal validates cfg and starts the committers.
func StartJournal(cfg JournalConfig) (*Journal, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	j := &Journal{cfg: cfg, queue: make(chan *settleRequest, cfg.MaxBatch*cfg.Committers*2)}
	for range cfg.Committers {
		j.done.Go(j.commitLoop)
	}
	return j, nil
}

// GetSession passes through to the store.
func (j *Journal) GetSession(ctx context.Context, id string) (checkout.Session, error) {
	return j.cfg.Store.GetSession(ctx, id)
}

// PaymentByOperation passes through to the store.
func (j *Journal) PaymentByOperation(ctx context.Context, operationID string) (checkout.Payment, error) {
	return j.cfg.Store.PaymentByOperation(ctx, operationID)
}

// SessionPayments passes through to the store.
func (j *Journal) SessionPayments(ctx context.Context, sessionID string) ([]checkout.Payment, error) {
	return j.cfg.Store.SessionPayments(ctx, sessionID)
}

// Settle commits t as persistence.DB.Settle does, in a batch with whatever
// other settlements are waiting, and returns once the batch is committed.
// When ctx ends first the outcome is unknown, as with any commit whose
// answer was lost: settling the same decision again finds it applied
// (checkout.ErrAlreadyApplied) or a moved version, or applies it.
func (j *Journal) Settle(ctx context.Context, t checkout.Transition, readVersion int64) error {
	if !t.Changed {
		return nil
	}
	req := &settleRequest{
		row:   persistence.Settlement{Transition: t, ReadVersion: readVersion},
		gone:  ctx.Done(),
		reply: make(chan error, 1),
	}
	j.mu.RLock()
	if j.stopped {
		j.mu.RUnlock()
		return fmt.Errorf("settle session %s: %w", t.Session.ID, ErrJournalStopped)
	}
	select {
	case j.queue <- req:
		j.mu.RUnlock()
	case <-ctx.Done():
		j.mu.RUnlock()
		return fmt.Errorf("settle session %s: %w", t.Session.ID, ctx.Err())
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("settle session %s: commit outcome unknown: %w", t.Session.ID, ctx.Err())
	}
}

// commitLoop is one committer: it takes the settlements waiting, commits
// them, acknowledges them, and goes again, until Stop closes the queue and
// it is empty.
func (j *Journal) commitLoop() {
	batch := make([]*settleRequest, 0, j.cfg.MaxBatch)
	rows := make([]persistence.Settlement, 0, j.cfg.MaxBatch)
	var window *time.Timer
	for {
		first, ok := <-j.queue
		if !ok {
			return
		}
		batch = append(batch[:0], first)
		open := j.gather(&batch, &window)
		rows = rows[:0]
		live := batch[:0]
		for _, r := range batch {
			select {
			case <-r.gone: // the caller has given up; it was told the outcome is unknown
			default:
				live = append(live, r)
				rows = append(rows, r.row)
			}
		}
		if len(live) > 0 {
			j.commit(live, rows)
		}
		clear(batch[:cap(batch)])
		clear(rows[:cap(rows)])
		if !open {
			return
		}
	}
}

// gather adds to batch what is waiting, up to MaxBatch, and with a Window
// what arrives within it. It reports false once the queue is closed.
func (j *Journal) gather(batch *[]*settleRequest, window **time.Timer) bool {
	max := j.cfg.MaxBatch
waiting:
	for len(*batch) < max {
		select {
		case r, ok := <-j.queue:
			if !ok {
				return false
			}
			*batch = append(*batch, r)
		default:
			break waiting
		}
	}
	if j.cfg.Window <= 0 || len(*batch) >= max {
		return true
	}
	if *window == nil {
		*window = time.NewTimer(j.cfg.Window)
	} else {
		(*window).Reset(j.cfg.Window)
	}
	defer (*window).Stop()
	for len(*batch) < max {
		select {
		case r, ok := <-j.queue:
			if !ok {
				return false
			}
			*batch = append(*batch, r)
		case <-(*window).C:
			return true
		}
	}
	return true
}

func (j *Journal) commit(batch []*settleRequest, rows []persistence.Settlement) {
	if h := j.cfg.Hooks.BeforeCommit; h != nil {
		if err := h(len(rows)); err != nil {
			for _, r := range batch {
				r.reply <- err
			}
			return
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), j.cfg.CommitTimeout)
	start := time.Now()
	errs := j.cfg.Store.SettleBatch(ctx, rows)
	j.commitNanos.Add(int64(time.Since(start)))
	cancel()
	j.batches.Add(1)
	j.rows.Add(int64(len(rows)))
	if h := j.cfg.Hooks.AfterCommit; h != nil && h(len(rows)) {
		return
	}
	for i, r := range batch {
		r.reply <- errs[i]
	}
}

// Stop stops taking settlements, commits those already queued, and waits
// for the committers, or for ctx. Call it after the session actors have
// drained and before the pool closes. Stop is safe to call more than once.
func (j *Journal) Stop(ctx context.Context) error {
	j.mu.Lock()
	if !j.stopped {
		j.stopped = true
		close(j.queue)
	}
	j.mu.Unlock()
	finished := make(chan struct{})
	go func() {
		j.done.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop journal: %w", ctx.Err())
	}
}

// JournalStats counts what the journal has committed.
type JournalStats struct {
	// Batches is the number of transactions sent.
	Batches int64
	// Rows is the number of settlements they carried.
	Rows int64
	// CommitTime is the time spent in their round trips, in all.
	CommitTime time.Duration
}

// Stats returns a snapshot of the counters.
func (j *Journal) Stats() JournalStats {
	return JournalStats{Batches: j.batches.Load(), Rows: j.rows.Load(), CommitTime: time.Duration(j.commitNanos.Load())}
}
