package api

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/checkoutd/checkoutd/persistence"
)

// sessionCreator commits batches of new sessions. *persistence.DB
// implements it (through Store).
type sessionCreator interface {
	CreateSessions(ctx context.Context, rows []persistence.SessionCreate) []error
}

// errCreatesStopped is create's answer after stop: a 500, which a client
// retries with its idempotency key.
var errCreatesStopped = errors.New("session creation is stopped")

// createBatcher is the group commit of session creation. Concurrent creates
// wait in one queue; each committer takes whatever is waiting (up to
// maxBatch) and commits it as one transaction (persistence.CreateSessions),
// so that one commit, not one per request, pays Postgres's WAL flush. Each
// create is answered only after its batch's commit, with its own row's
// outcome: a taken memo or idempotency key fails that row alone.
//
// Its goroutines are the committers; stop ends them.
type createBatcher struct {
	store    sessionCreator
	queue    chan *createRequest
	maxBatch int
	timeout  time.Duration

	// mu orders create's sends against stop closing the queue.
	mu      sync.RWMutex
	stopped bool
	done    sync.WaitGroup
}

// createRequest is one create waiting for its batch's commit.
type createRequest struct {
	row persistence.SessionCreate
	// gone closes when the caller stops waiting (its ctx).
	gone  <-chan struct{}
	reply chan error // buffered: a committer never blocks on a caller
}

func startCreateBatcher(store sessionCreator, committers, maxBatch int, timeout time.Duration) *createBatcher {
	b := &createBatcher{store: store, queue: make(chan *createRequest, committers*maxBatch*2), maxBatch: maxBatch, timeout: timeout}
	for range committers {
		b.done.Go(b.commitLoop)
	}
	return b
}

// create commits row in a batch with whatever other creates are waiting,
// and returns that row's outcome (persistence.DB.CreateSessions) once the
// batch is committed. When ctx ends first the outcome is unknown.
func (b *createBatcher) create(ctx context.Context, row persistence.SessionCreate) error {
	req := &createRequest{row: row, gone: ctx.Done(), reply: make(chan error, 1)}
	b.mu.RLock()
	if b.stopped {
		b.mu.RUnlock()
		return errCreatesStopped
	}
	select {
	case b.queue <- req:
	case <-ctx.Done():
		b.mu.RUnlock()
		return ctx.Err()
	}
	b.mu.RUnlock()
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop lets the committers commit what is queued, then ends them.
func (b *createBatcher) stop() {
	b.mu.Lock()
	if !b.stopped {
		b.stopped = true
		close(b.queue)
	}
	b.mu.Unlock()
	b.done.Wait()
}

func (b *createBatcher) commitLoop() {
	batch := make([]*createRequest, 0, b.maxBatch)
	rows := make([]persistence.SessionCreate, 0, b.maxBatch)
	for {
		req, ok := <-b.queue
		if !ok {
			return
		}
		batch = append(batch[:0], req)
	fill:
		for len(batch) < b.maxBatch {
			select {
			case req, ok := <-b.queue:
				if !ok {
					break fill
				}
				batch = append(batch, req)
			default:
				break fill
			}
		}
		b.commit(batch, rows[:0])
		clear(batch)
	}
}

// commit commits the batch's rows whose callers still wait and answers
// each of them.
func (b *createBatcher) commit(batch []*createRequest, rows []persistence.SessionCreate) {
	live := batch[:0:0]
	for _, req := range batch {
		select {
		case <-req.gone:
			// Its caller has answered already: writing it now would make a
			// session nobody was told about.
			continue
		default:
		}
		live = append(live, req)
		rows = append(rows, req.row)
	}
	if len(rows) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.timeout)
	errs := b.store.CreateSessions(ctx, rows)
	cancel()
	for i, req := range live {
		req.reply <- errs[i]
	}
}
