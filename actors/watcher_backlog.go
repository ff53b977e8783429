package actors

import (
	"context"

	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"

	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/stellar/horizon"
)

// memoResolver is the optional batch lookup of a WatcherStore
// (*persistence.DB has it): a backlog page's memos in one query rather
// than one query each.
type memoResolver interface {
	SessionIDsByMemo(ctx context.Context, account string, keys []persistence.MemoKey) (map[persistence.MemoKey]string, error)
}

// backlogPage is one JSON page of the account's payments, with the
// sessions its memos name resolved ahead of the hand-off.
type backlogPage struct {
	ops []operations.Operation
	// memo holds memo cache entries (see watcher.memo) for the page.
	memo map[string]string
	err  error
}

// drainBacklog pages through the account's payments after *last when the
// watcher is far behind, that is when the first page after *last is full
// (horizon.MaxPageLimit operations). It hands each page's operations off
// in order, exactly as the stream would, moving *last along, and stops
// after the first page that is not full: the watcher has caught up with
// what Horizon has, and the stream takes over from *last. It returns how
// many operations it took, and the error that stopped it, if any.
//
// The next page is fetched, decoded and its memos resolved while the
// current one is handed off, and hand-offs are acknowledged concurrently
// (up to MaxInFlight), so settlement, paging and decoding overlap. A
// watcher that is not far behind pays one request per connection for
// this, and leaves the first, short page to the stream.
func (w *watcher) drainBacklog(ctx context.Context, last *string) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	pages := make(chan backlogPage, 1)
	fetched := make(chan struct{})
	go func() {
		defer close(fetched)
		w.fetchPages(ctx, *last, pages)
	}()
	defer func() {
		cancel()
		<-fetched
	}()
	received := 0
	for first := true; ; first = false {
		page, ok := <-pages
		if !ok {
			return received, nil
		}
		if page.err != nil {
			return received, page.err
		}
		if first && len(page.ops) < horizon.MaxPageLimit {
			return 0, nil
		}
		if len(w.memo)+len(page.memo) > maxMemoCache {
			clear(w.memo)
		}
		for k, id := range page.memo {
			w.memo[k] = id
		}
		for _, op := range page.ops {
			tok, err := w.handle(ctx, op, *last)
			if err != nil {
				return received, err
			}
			if tok != "" {
				*last = tok
				received++
			}
		}
	}
}

// fetchPages sends the pages after cursor to out, one page ahead of the
// reader, until a page is short, a fetch fails, or ctx ends; then it
// closes out.
func (w *watcher) fetchPages(ctx context.Context, cursor string, out chan<- backlogPage) {
	defer close(out)
	for first := true; ; first = false {
		ops, err := w.cfg.Horizon.PaymentsPage(ctx, w.account, cursor, horizon.MaxPageLimit)
		page := backlogPage{ops: ops, err: err}
		if err == nil && (!first || len(ops) == horizon.MaxPageLimit) {
			page.memo = w.resolveMemos(ctx, ops)
		}
		select {
		case out <- page:
		case <-ctx.Done():
			return
		}
		if err != nil || len(ops) < horizon.MaxPageLimit {
			return
		}
		cursor = ops[len(ops)-1].PagingToken()
	}
}

// resolveMemos looks up, in one query, the sessions that the credits of a
// page name. It is an optimization only: on any failure the hand-off looks
// each memo up itself, with its retries.
func (w *watcher) resolveMemos(ctx context.Context, ops []operations.Operation) map[string]string {
	r, ok := w.cfg.DB.(memoResolver)
	if !ok || len(ops) < 2 {
		return nil
	}
	keys := make([]persistence.MemoKey, 0, len(ops))
	seen := make(map[persistence.MemoKey]bool, len(ops))
	for _, op := range ops {
		p, kind, err := horizon.Normalize(op, w.account)
		if err != nil || kind != horizon.KindCredit {
			continue
		}
		memoType, memo, ok := matchKey(p)
		if k := (persistence.MemoKey{Type: memoType, Memo: memo}); ok && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	defer cancel()
	ids, err := r.SessionIDsByMemo(cctx, w.account, keys)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("batch session lookup failed; looking memos up one by one", "err", err)
		}
		return nil
	}
	out := make(map[string]string, len(ids))
	for k, id := range ids {
		out[string(k.Type)+":"+k.Memo] = id
	}
	return out
}
