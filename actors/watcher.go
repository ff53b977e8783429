package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
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
//     matches and calls Observe in paging-token order), then waits for the
//     hand-offs and the maintenance loop, and flushes the cursor;
//   - maintain: flushes the cursor (see flush) and checks whether the
//     account is caught up;
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

	// debug is whether the logger takes Debug records, decided once: the
	// per-payment line is built only then.
	debug bool

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
	w.debug = w.log.Enabled(context.Background(), slog.LevelDebug)
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
	_, pending := w.marks.state()
	w.log.Info("watcher stopped", "cursor", w.flushed, "unacknowledged", pending)
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

// stream runs the stream loop until the watchers stop. Operations reach
// the watcher only through sorted JSON pages (drainBacklog), read on from
// last, the end of the pages read so far; the stream is a doorbell. Each
// connection first reads the pages after last (after downtime or a long
// cut that is a backlog), then streams from last, and an event after last
// reads the pages again: one request per burst of events, which takes the
// whole burst. The stream's own order is not trusted: Horizon promises
// paging-token order, but a faulty Horizon or proxy can swap events and
// cut the connection between them, and a watcher that took operations in
// stream order and resumed after the last one would skip the earlier one
// for good, or apply a session's payments out of ledger order. Events out
// of order are only counted.
func (w *watcher) stream(cursor string) {
	ctx, cancel := contextUntil(w.stopping)
	defer cancel()
	last := cursor
	failures := 0
	for {
		w.streaming.Store(true)
		received, err := w.drainBacklog(ctx, &last)
		if err == nil {
			err = w.streamOnce(ctx, &last, &received)
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

// streamOnce runs one stream connection after *last. An event after
// *last reads the pages after *last (drainBacklog), which moves *last past
// it; an event at or before the connection's cursor is a replay.
func (w *watcher) streamOnce(ctx context.Context, last *string, received *int) error {
	from := *last
	prev := from
	return w.cfg.Horizon.StreamPaymentTokens(ctx, w.account, from, w.cfg.WatchdogTimeout, func(tok string) error {
		if horizon.ComparePagingTokens(tok, prev) <= 0 {
			if horizon.ComparePagingTokens(tok, from) <= 0 {
				w.stats.payment("replayed")
			} else {
				w.stats.outOfOrder("stream")
			}
		}
		if horizon.ComparePagingTokens(tok, prev) > 0 {
			prev = tok
		}
		if horizon.ComparePagingTokens(tok, *last) <= 0 {
			return nil // the pages already brought it
		}
		n, err := w.drainBacklog(ctx, last)
		*received += n
		return err
	})
}

// handle takes one operation of a sorted JSON page, with what Normalize
// made of it. It returns the operation's paging token once the operation
// is in the watermark (handed off, or acknowledged at once), an empty
// token for an operation already taken or at or before the durable
// cursor, or errStopping.
func (w *watcher) handle(ctx context.Context, op operations.Operation, n normalized) (string, error) {
	tok := op.PagingToken()
	key, err := strconv.ParseInt(tok, 10, 64)
	if err != nil {
		w.log.Error("skipping an operation whose paging token is not a number", "operation_id", op.GetID(), "paging_token", tok)
		w.stats.payment("unknown")
		return "", nil
	}
	if !w.marks.take(key) {
		w.stats.payment("replayed")
		return "", nil
	}
	receivedAt := w.cfg.Clock()
	w.progress.seen(op.GetBase().LedgerCloseTime)
	p, kind, err := n.payment, n.kind, n.err
	if err != nil {
		// An operation we cannot read cannot be matched; waiting would stop
		// every later payment of the account. Report it loudly and move on.
		w.log.Error("skipping an operation that cannot be normalized", "operation_id", op.GetID(),
			"type", op.GetType(), "err", err)
		w.stats.payment("unknown")
		w.marks.ack(key)
		return tok, nil
	}
	if kind != horizon.KindCredit {
		w.stats.payment(kind.String())
		w.marks.ack(key)
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
	w.inflight.Add(1)
	if sessionID == "" {
		go w.recordUnmatched(key, p)
		return tok, nil
	}
	// Observe enqueues at once, here, in paging-token order; the reply is awaited
	// elsewhere so that one slow session does not hold up the others. A
	// session with a payment still unacknowledged gets this one only after
	// it (see tails).
	done := make(chan struct{})
	prev := w.chainSession(sessionID, done)
	var pp *PendingPayment
	if prev == nil {
		pp = w.cfg.Sessions.Observe(sessionID, p, receivedAt)
	}
	go w.await(key, sessionID, p, receivedAt, pp, prev, done)
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
func (w *watcher) await(key int64, sessionID string, p checkout.Payment, receivedAt time.Time, pp *PendingPayment,
	prev <-chan struct{}, done chan struct{}) {
	defer w.inflight.Done()
	defer func() { <-w.sem }()
	defer w.unchainSession(sessionID, done)
	// Built only when something is logged: With formats its attributes
	// at once, and most hand-offs log nothing.
	log := func() *slog.Logger { return w.log.With("session_id", sessionID, "operation_id", p.OperationID) }
	if prev != nil {
		select {
		case <-prev:
		case <-w.abort:
			log().Warn("abandoning an unacknowledged payment; it is replayed from the cursor on the next start")
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
			log().Warn("abandoning an unacknowledged payment; it is replayed from the cursor on the next start")
			return
		}
		if reply != nil && reply.AlreadyApplied || errors.Is(err, checkout.ErrAlreadyApplied) {
			w.stats.payment("already_applied")
			w.marks.ack(key)
			return
		}
		if err == nil {
			w.stats.payment(string(reply.Payment.Disposition))
			w.marks.ack(key)
			// Debug: the payments table is the record, and
			// checkoutd_payments_total counts them; at thousands a second
			// a line each is noise that costs CPU.
			if w.debug {
				log().Debug("payment recorded", "disposition", reply.Payment.Disposition,
					"amount", p.Amount.String(), "asset", p.Asset.String(), "session_status", reply.Session.Status)
			}
			return
		}
		w.stats.retries.Add(1)
		log().Warn("payment hand-off failed; retrying", "err", err, "attempt", attempt)
		if !sleep(backoff(attempt, w.cfg.MinBackoff, w.cfg.MaxBackoff), w.abort) {
			log().Warn("abandoning an unacknowledged payment; it is replayed from the cursor on the next start")
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
func (w *watcher) recordUnmatched(key int64, p checkout.Payment) {
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
			w.marks.ack(key)
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

// flush persists the cursor if it can move: to the highest operation such
// that it and every operation before it are acknowledged, among the
// operations that sorted JSON pages read from the durable cursor listed
// (the watermark's listed range). Such pages list every operation in their
// range, so by induction every operation at or before the durable cursor
// is recorded, whatever order Horizon sent, and whenever the process dies.
func (w *watcher) flush(ctx context.Context) error {
	cursor, ok := w.marks.listedPrefix()
	if !ok || cursor == w.flushed {
		if w.marks.covered() {
			w.progress.cursorCurrent(w.cfg.Clock())
		}
		return nil
	}
	if err := w.cfg.DB.AdvanceCursor(ctx, persistence.Cursor{Account: w.account, PagingToken: cursor}); err != nil {
		return err
	}
	w.flushed = cursor
	w.marks.advance(cursor)
	w.progress.cursorCurrent(w.cfg.Clock())
	return nil
}

// sortPage puts a JSON page in paging-token order, which is Horizon's
// contract, counting a page that broke it.
func (w *watcher) sortPage(ops []operations.Operation) {
	cmp := func(a, b operations.Operation) int {
		return horizon.ComparePagingTokens(a.PagingToken(), b.PagingToken())
	}
	if !slices.IsSortedFunc(ops, cmp) {
		w.stats.outOfOrder("page")
		slices.SortStableFunc(ops, cmp)
	}
}

// checkCaughtUp stores caught_up_to = T, the close time of Horizon's latest
// ledger L, when every operation of the account up to ledger L is recorded:
// the first payment after the durable cursor, if any, is in a later
// ledger. The recovery actor expires a session only once
// caught_up_to passes its expiry, so a watcher that is down or behind delays
// expiry instead of making a punctual payment late.
func (w *watcher) checkCaughtUp(ctx context.Context) error {
	l, err := w.cfg.Horizon.LatestLedger(ctx)
	if err != nil {
		return err
	}
	low := w.flushed
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

// watermark tracks the operations taken after the durable cursor (the
// floor), by paging token, and whether each is acknowledged. listed is how
// far sorted JSON pages read on from the floor reach: every operation in
// (floor, listed] is taken. The cursor moves only inside that range.
type watermark struct {
	mu      sync.Mutex
	floor   int64
	listed  int64
	ops     map[int64]bool // taken after floor: acknowledged or not
	pending int            // how many of ops are not acknowledged
	newest  int64          // the highest token taken, or floor
}

func newWatermark(cursor string) *watermark {
	floor, err := strconv.ParseInt(cursor, 10, 64)
	if err != nil {
		floor = -1 // not a paging token: take everything
	}
	return &watermark{floor: floor, listed: floor, newest: floor, ops: make(map[int64]bool)}
}

// take records an operation as received and not yet acknowledged. It
// reports false when the operation is at or before the floor or already
// taken.
func (m *watermark) take(key int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.ops[key]; ok || key <= m.floor {
		return false
	}
	m.ops[key] = false
	m.pending++
	m.newest = max(m.newest, key)
	return true
}

// ack marks a taken operation acknowledged; anything else is ignored.
func (m *watermark) ack(key int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if acked, ok := m.ops[key]; ok && !acked {
		m.ops[key] = true
		m.pending--
	}
}

// list records that a sorted JSON page read after from, up to to, had
// every operation taken. It extends listed only when from is inside the
// listed range, so that (floor, listed] stays without holes.
func (m *watermark) list(from, to string) {
	f, err1 := strconv.ParseInt(from, 10, 64)
	t, err2 := strconv.ParseInt(to, 10, 64)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err1 == nil && err2 == nil && f <= max(m.listed, m.floor) {
		m.listed = max(m.listed, t)
	}
}

// listedPrefix returns the highest token in (floor, listed] such that it
// and every operation before it are acknowledged.
func (m *watermark) listedPrefix() (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listed <= m.floor {
		return "", false
	}
	keys := make([]int64, 0, len(m.ops))
	for k := range m.ops {
		if k <= m.listed {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	n := 0
	for n < len(keys) && m.ops[keys[n]] {
		n++
	}
	if n == 0 {
		return "", false
	}
	return strconv.FormatInt(keys[n-1], 10), true
}

// covered reports whether the floor covers everything taken.
func (m *watermark) covered() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.ops) == 0
}

// advance raises the floor to the durable cursor and forgets what is at or
// before it.
func (m *watermark) advance(cursor string) {
	floor, err := strconv.ParseInt(cursor, 10, 64)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil || floor <= m.floor {
		return
	}
	m.floor = floor
	m.listed = max(m.listed, floor)
	m.newest = max(m.newest, floor)
	for k, acked := range m.ops {
		if k <= floor {
			if !acked {
				m.pending--
			}
			delete(m.ops, k)
		}
	}
}

// state returns the newest token taken and how many taken operations are
// not acknowledged.
func (m *watermark) state() (newest int64, pending int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.newest, m.pending
}
