package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/stellar/horizon"
)

// maxMemoCache bounds the memo-to-session cache of one watcher; past it the
// cache starts over.
const maxMemoCache = 100_000

// errStopping ends a stream handler because the watcher is stopping.
var errStopping = errors.New("watcher stopping")

// watcher follows one receiving account. Its goroutines:
//   - run, the owner: loads the cursor, runs the stream loop (which reads,
//     matches and calls Observe in stream order), then waits for the
//     hand-offs and the maintenance loop, and flushes the cursor;
//   - maintain: flushes the low watermark and checks whether the account
//     is caught up;
//   - one per payment handed off (at most MaxInFlight), awaiting its
//     acknowledgement and retrying the hand-off until it succeeds or the
//     watchers abort.
type watcher struct {
	account string
	cfg     *WatchersConfig
	log     *slog.Logger
	stats   *counters

	stopping <-chan struct{}
	abort    <-chan struct{}

	marks     *watermark
	inflight  sync.WaitGroup
	sem       chan struct{}
	streaming atomic.Bool
	// progress is what the lag and cursor age metrics read.
	progress watcherProgress

	// memo caches the session id of (memo type, memo); only the stream
	// loop touches it. A session's memo never changes.
	memo map[string]string
	// flushed is the cursor last persisted; only maintain and the final
	// flush touch it, one after the other.
	flushed string

	// tails holds, by session, a channel closed when the payment last
	// handed off to that session is acknowledged (or abandoned). The next
	// payment of the session is handed off only then: an actor that panics
	// loses the message it was handling but not those queued behind it, so
	// without this a retried hand-off would be overtaken by a later payment
	// of the same session, and the session would apply its payments out of
	// ledger order.
	tailsMu sync.Mutex
	tails   map[string]chan struct{}
}

func newWatcher(account string, cfg *WatchersConfig, stats *counters, stopping, abort <-chan struct{}) *watcher {
	w := &watcher{
		account:  account,
		cfg:      cfg,
		log:      cfg.Logger.With("component", "watcher", "account", account),
		stats:    stats,
		stopping: stopping,
		abort:    abort,
		sem:      make(chan struct{}, cfg.MaxInFlight),
		memo:     make(map[string]string),
		tails:    make(map[string]chan struct{}),
	}
	w.progress.start(cfg.Clock())
	return w
}

func (w *watcher) run() {
	cursor, ok := w.loadCursor()
	if !ok {
		return
	}
	w.marks = newWatermark(cursor)
	w.flushed = cursor
	w.log.Info("watching account", "cursor", cursor)

	quitMaintain := make(chan struct{})
	var maintained sync.WaitGroup
	maintained.Add(1)
	go func() {
		defer maintained.Done()
		w.maintain(quitMaintain)
	}()

	w.stream(cursor)

	// Streams are over; let the hand-offs finish (or abort), then persist
	// whatever they acknowledged.
	w.inflight.Wait()
	close(quitMaintain)
	maintained.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.CallTimeout)
	defer cancel()
	if err := w.flush(ctx); err != nil {
		w.log.Error("final cursor flush failed; the next start replays from the last flushed cursor", "err", err)
	}
	low, pending := w.marks.state()
	w.log.Info("watcher stopped", "cursor", low, "unacknowledged", pending)
}

// loadCursor reads the stored cursor, retrying until it succeeds or the
// watchers stop.
func (w *watcher) loadCursor() (string, bool) {
	ctx, cancel := contextUntil(w.stopping)
	defer cancel()
	for attempt := 0; ; attempt++ {
		cctx, ccancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
		c, err := w.cfg.DB.GetCursor(cctx, w.account)
		ccancel()
		if err == nil {
			return c.PagingToken, true
		}
		w.log.Warn("load cursor failed", "err", err, "attempt", attempt)
		if !sleep(backoff(attempt, w.cfg.MinBackoff, w.cfg.MaxBackoff), w.stopping) {
			return "", false
		}
	}
}

// stream runs the stream loop until the watchers stop. Each connection
// resumes after the last operation received, not the durable cursor, so a
// reconnect does not resend what is already in hand.
func (w *watcher) stream(cursor string) {
	ctx, cancel := contextUntil(w.stopping)
	defer cancel()
	last := cursor
	failures := 0
	for {
		w.streaming.Store(true)
		// A backlog (after downtime, or a long cut) is paged through in
		// full JSON pages first; the stream then resumes after it.
		received, err := w.drainBacklog(ctx, &last)
		if err == nil {
			err = w.cfg.Horizon.StreamPayments(ctx, w.account, last, w.cfg.WatchdogTimeout, func(op operations.Operation) error {
				tok, err := w.handle(ctx, op, last)
				if err != nil {
					return err
				}
				if tok != "" {
					last = tok
					received++
				}
				return nil
			})
		}
		w.streaming.Store(false)
		select {
		case <-w.stopping:
			return
		default:
		}
		reason := "error"
		var wait time.Duration
		switch {
		case err == nil:
			reason = "closed"
		case errors.Is(err, horizon.ErrStreamIdle):
			reason = "idle"
		case horizon.StatusCode(err) == 429:
			reason = "rate_limited"
		case horizon.StatusCode(err) == 503:
			reason = "unavailable"
		}
		w.stats.reconnect(reason)
		if received > 0 && (reason == "closed" || reason == "idle") {
			// A stream that made progress and ended is a normal cut.
			failures = 0
		} else {
			wait = backoff(failures, w.cfg.MinBackoff, w.cfg.MaxBackoff)
			failures++
		}
		if ra := horizon.RetryAfter(err); ra > wait {
			wait = ra
		}
		lvl := slog.LevelWarn
		if reason == "closed" && received > 0 {
			lvl = slog.LevelDebug
		}
		w.log.Log(ctx, lvl, "payments stream ended; reconnecting", "reason", reason, "err", err,
			"resume_after", last, "received", received, "wait", wait)
		if wait > 0 && !sleep(wait, w.stopping) {
			return
		}
	}
}

// handle takes one streamed operation in stream order. It returns the
// operation's paging token once the operation is in the watermark (handed
// off, or acknowledged at once), an empty token for a replay of an
// operation already received, or errStopping.
func (w *watcher) handle(ctx context.Context, op operations.Operation, last string) (string, error) {
	tok := op.PagingToken()
	if horizon.ComparePagingTokens(tok, last) <= 0 {
		w.stats.payment("replayed")
		return "", nil
	}
	receivedAt := w.cfg.Clock()
	w.progress.seen(op.GetBase().LedgerCloseTime)
	p, kind, err := horizon.Normalize(op, w.account)
	if err != nil {
		// An operation we cannot read cannot be matched; waiting would stop
		// every later payment of the account. Report it loudly and move on.
		w.log.Error("skipping an operation that cannot be normalized", "operation_id", op.GetID(),
			"type", op.GetType(), "err", err)
		w.stats.payment("unknown")
		w.marks.ack(w.marks.add(tok))
		return tok, nil
	}
	if kind != horizon.KindCredit {
		w.stats.payment(kind.String())
		w.marks.ack(w.marks.add(tok))
		return tok, nil
	}
	if p.OperationType == horizon.TypeAccountMerge {
		if p.Amount, err = w.mergeAmount(ctx, p.OperationID); err != nil {
			return "", err
		}
	}
	sessionID, err := w.lookup(ctx, p)
	if err != nil {
		return "", err
	}
	select {
	case w.sem <- struct{}{}:
	case <-w.stopping:
		return "", errStopping
	}
	seq := w.marks.add(tok)
	w.inflight.Add(1)
	if sessionID == "" {
		go w.recordUnmatched(seq, p)
		return tok, nil
	}
	// Observe enqueues at once, here, in stream order; the reply is awaited
	// elsewhere so that one slow session does not hold up the others. A
	// session with a payment still unacknowledged gets this one only after
	// it (see tails).
	done := make(chan struct{})
	prev := w.chainSession(sessionID, done)
	var pp *PendingPayment
	if prev == nil {
		pp = w.cfg.Sessions.Observe(sessionID, p, receivedAt)
	}
	go w.await(seq, sessionID, p, receivedAt, pp, prev, done)
	return tok, nil
}

// chainSession makes done the session's last hand-off and returns the one
// before it, if that is still unacknowledged.
func (w *watcher) chainSession(sessionID string, done chan struct{}) (prev chan struct{}) {
	w.tailsMu.Lock()
	defer w.tailsMu.Unlock()
	prev = w.tails[sessionID]
	w.tails[sessionID] = done
	return prev
}

// unchainSession marks a hand-off finished.
func (w *watcher) unchainSession(sessionID string, done chan struct{}) {
	w.tailsMu.Lock()
	defer w.tailsMu.Unlock()
	close(done)
	if w.tails[sessionID] == done {
		delete(w.tails, sessionID)
	}
}

// mergeAmount reads what an account_merge credited the account, retrying
// until it succeeds or the watchers stop.
func (w *watcher) mergeAmount(ctx context.Context, operationID string) (checkout.Amount, error) {
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
		effs, err := w.cfg.Horizon.OperationEffects(cctx, operationID)
		cancel()
		if err == nil {
			var amount checkout.Amount
			if amount, err = horizon.MergeAmount(effs, w.account); err == nil {
				return amount, nil
			}
		}
		w.stats.retries.Add(1)
		w.log.Warn("read merge amount failed", "operation_id", operationID, "err", err, "attempt", attempt)
		if !sleep(backoff(attempt, w.cfg.MinBackoff, w.cfg.MaxBackoff), w.stopping) {
			return 0, errStopping
		}
	}
}

// lookup finds the session a credit names, or "" when it names none. It
// retries database errors until it succeeds or the watchers stop.
func (w *watcher) lookup(ctx context.Context, p checkout.Payment) (string, error) {
	memoType, memo, ok := matchKey(p)
	if !ok {
		return "", nil
	}
	key := string(memoType) + ":" + memo
	if id, ok := w.memo[key]; ok {
		return id, nil
	}
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
		id, err := w.cfg.DB.SessionIDByMemo(cctx, w.account, memoType, memo)
		cancel()
		switch {
		case err == nil:
			if len(w.memo) >= maxMemoCache {
				clear(w.memo)
			}
			w.memo[key] = id
			return id, nil
		case errors.Is(err, checkout.ErrNotFound):
			return "", nil
		}
		w.stats.retries.Add(1)
		w.log.Warn("session lookup failed", "operation_id", p.OperationID, "err", err, "attempt", attempt)
		if !sleep(backoff(attempt, w.cfg.MinBackoff, w.cfg.MaxBackoff), w.stopping) {
			return "", errStopping
		}
	}
}

// matchKey is how a credit names its session: the muxed id of an M-address
// destination (SEP-23), else a text or id memo.
func matchKey(p checkout.Payment) (checkout.MemoType, string, bool) {
	if p.ToMuxedID != "" {
		return checkout.MemoMuxed, p.ToMuxedID, true
	}
	switch checkout.MemoType(p.MemoType) {
	case checkout.MemoText:
		return checkout.MemoText, p.Memo, p.Memo != ""
	case checkout.MemoID:
		return checkout.MemoID, p.Memo, p.Memo != ""
	}
	return "", "", false
}

// await waits for a handed-off payment to be durably recorded, and hands it
// off again, with backoff, whenever the outcome is an error or unknown. The
// unique operation id absorbs a hand-off that was in fact recorded. When
// prev is not nil the payment has not been handed off yet: it is, once the
// session's previous payment is acknowledged (prev closes). done is closed
// at the end.
func (w *watcher) await(seq uint64, sessionID string, p checkout.Payment, receivedAt time.Time, pp *PendingPayment,
	prev <-chan struct{}, done chan struct{}) {
	defer w.inflight.Done()
	defer func() { <-w.sem }()
	defer w.unchainSession(sessionID, done)
	log := w.log.With("session_id", sessionID, "operation_id", p.OperationID)
	if prev != nil {
		select {
		case <-prev:
		case <-w.abort:
			log.Warn("abandoning an unacknowledged payment; it is replayed from the cursor on the next start")
			return
		}
		pp = w.cfg.Sessions.Observe(sessionID, p, receivedAt)
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			pp = w.cfg.Sessions.Observe(sessionID, p, receivedAt)
		}
		reply, aborted, err := waitReply(pp, w.abort)
		if aborted {
			log.Warn("abandoning an unacknowledged payment; it is replayed from the cursor on the next start")
			return
		}
		if reply != nil && reply.AlreadyApplied || errors.Is(err, checkout.ErrAlreadyApplied) {
			w.stats.payment("already_applied")
			w.marks.ack(seq)
			return
		}
		if err == nil {
			w.stats.payment(string(reply.Payment.Disposition))
			w.marks.ack(seq)
			log.Info("payment recorded", "disposition", reply.Payment.Disposition,
				"amount", p.Amount.String(), "asset", p.Asset.String(), "session_status", reply.Session.Status)
			return
		}
		w.stats.retries.Add(1)
		log.Warn("payment hand-off failed; retrying", "err", err, "attempt", attempt)
		if !sleep(backoff(attempt, w.cfg.MinBackoff, w.cfg.MaxBackoff), w.abort) {
			log.Warn("abandoning an unacknowledged payment; it is replayed from the cursor on the next start")
			return
		}
	}
}

// waitReply waits for pp, or for abort. The goroutine that waits on the
// future ends when the future does (it has the ask timeout).
func waitReply(pp *PendingPayment, abort <-chan struct{}) (reply *PaymentReply, aborted bool, err error) {
	type result struct {
		reply *PaymentReply
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := pp.Wait()
		ch <- result{r, err}
	}()
	select {
	case r := <-ch:
		return r.reply, false, r.err
	case <-abort:
		return nil, true, nil
	}
}

// recordUnmatched records a credit that names no session, raising
// payment.unmatched to every merchant of the account, retrying until it is
// recorded or the watchers abort.
func (w *watcher) recordUnmatched(seq uint64, p checkout.Payment) {
	defer w.inflight.Done()
	defer func() { <-w.sem }()
	ctx, cancel := contextUntil(w.abort)
	defer cancel()
	p.ID = checkout.NewID(checkout.PrefixPayment) // one id across retries
	log := w.log.With("operation_id", p.OperationID)
	for attempt := 0; ; attempt++ {
		err := w.tryRecordUnmatched(ctx, p)
		if err == nil || errors.Is(err, checkout.ErrAlreadyApplied) {
			if err == nil {
				w.stats.payment(string(checkout.DispositionUnmatched))
				log.Warn("unmatched payment recorded", "memo_type", p.MemoType, "memo", p.Memo,
					"to_muxed_id", p.ToMuxedID, "amount", p.Amount.String(), "asset", p.Asset.String())
			} else {
				w.stats.payment("already_applied")
			}
			w.marks.ack(seq)
			return
		}
		w.stats.retries.Add(1)
		log.Warn("record unmatched payment failed; retrying", "err", err, "attempt", attempt)
		if !sleep(backoff(attempt, w.cfg.MinBackoff, w.cfg.MaxBackoff), w.abort) {
			log.Warn("abandoning an unrecorded unmatched payment; it is replayed from the cursor on the next start")
			return
		}
	}
}

func (w *watcher) tryRecordUnmatched(ctx context.Context, p checkout.Payment) error {
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	defer cancel()
	merchants, err := w.cfg.DB.MerchantIDsByAccount(cctx, w.account)
	if err != nil {
		return err
	}
	p, events := checkout.Unmatched(p, merchants, w.cfg.Clock())
	return w.cfg.DB.RecordUnmatched(cctx, p, events)
}

// maintain flushes the watermark every FlushInterval and checks whether the
// account is caught up every CaughtUpInterval, until quit closes.
func (w *watcher) maintain(quit <-chan struct{}) {
	ctx, cancel := contextUntil(quit)
	defer cancel()
	flush := time.NewTicker(w.cfg.FlushInterval)
	defer flush.Stop()
	caught := time.NewTicker(w.cfg.CaughtUpInterval)
	defer caught.Stop()
	for {
		select {
		case <-quit:
			return
		case <-flush.C:
			cctx, ccancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
			if err := w.flush(cctx); err != nil && ctx.Err() == nil {
				w.log.Warn("cursor flush failed", "err", err)
			}
			ccancel()
		case <-caught.C:
			cctx, ccancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
			if err := w.checkCaughtUp(cctx); err != nil && ctx.Err() == nil {
				w.log.Warn("caught-up check failed", "err", err)
			}
			ccancel()
		}
	}
}

// flush persists the low watermark if it moved.
func (w *watcher) flush(ctx context.Context) error {
	low, pending := w.marks.state()
	if low == w.flushed {
		if pending == 0 {
			w.progress.cursorCurrent(w.cfg.Clock())
		}
		return nil
	}
	if err := w.cfg.DB.AdvanceCursor(ctx, persistence.Cursor{Account: w.account, PagingToken: low}); err != nil {
		return err
	}
	w.flushed = low
	w.progress.cursorCurrent(w.cfg.Clock())
	return nil
}

// checkCaughtUp stores caught_up_to = T, the close time of Horizon's latest
// ledger L, when every operation of the account up to ledger L is recorded:
// nothing is unacknowledged and the first payment after the watermark, if
// any, is in a later ledger. The recovery actor expires a session only once
// caught_up_to passes its expiry, so a watcher that is down or behind delays
// expiry instead of making a punctual payment late.
func (w *watcher) checkCaughtUp(ctx context.Context) error {
	l, err := w.cfg.Horizon.LatestLedger(ctx)
	if err != nil {
		return err
	}
	low, pending := w.marks.state()
	if pending > 0 {
		return nil
	}
	op, ok, err := w.cfg.Horizon.FirstPaymentAfter(ctx, w.account, low)
	if err != nil {
		return err
	}
	if ok {
		seq, err := horizon.LedgerOf(op.PagingToken())
		if err != nil {
			return err
		}
		if seq <= l.Sequence {
			return nil // a payment up to L is not recorded yet
		}
	}
	if err := w.cfg.DB.AdvanceCursor(ctx, persistence.Cursor{Account: w.account, PagingToken: low, CaughtUpTo: l.ClosedAt}); err != nil {
		return fmt.Errorf("store caught_up_to: %w", err)
	}
	w.stats.caughtUp.Add(1)
	w.progress.seen(l.ClosedAt)
	return nil
}

// watermark tracks the operations of a stream in order and how far the
// acknowledged ones reach: low is the paging token of the last operation
// such that it and every operation before it are acknowledged. The durable
// cursor never passes low.
type watermark struct {
	mu      sync.Mutex
	low     string
	base    uint64 // sequence number of entries[0]
	entries []markEntry
}

type markEntry struct {
	token string
	acked bool
}

func newWatermark(start string) *watermark { return &watermark{low: start} }

// add appends an operation in stream order and returns its sequence number.
func (m *watermark) add(token string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = append(m.entries, markEntry{token: token})
	return m.base + uint64(len(m.entries)) - 1
}

// ack marks an operation acknowledged and advances low over the
// acknowledged prefix.
func (m *watermark) ack(seq uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if seq < m.base || seq-m.base >= uint64(len(m.entries)) {
		return
	}
	m.entries[seq-m.base].acked = true
	n := 0
	for n < len(m.entries) && m.entries[n].acked {
		n++
	}
	if n == 0 {
		return
	}
	m.low = m.entries[n-1].token
	m.base += uint64(n)
	m.entries = m.entries[n:]
	if len(m.entries) == 0 {
		m.entries = nil // let the backing array go
	}
}

// state returns low and the number of operations after it that are not yet
// all acknowledged.
func (m *watermark) state() (low string, pending int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.low, len(m.entries)
}
