package actors

import (
	"context"

	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"

	checkout "github.com/checkoutd/checkoutd"
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
	// after is the cursor the page was read after.
	after string
	ops   []operations.Operation
	// norm is what horizon.Normalize made of each of ops, index for index,
	// worked out once in the fetcher for the memo lookup and the hand-off.
	norm []normalized
	// memo holds memo cache entries (see watcher.memo) for the page.
	memo map[string]string
	err  error
}

// drainBacklog reads the account's payments after *last in JSON pages and
// hands them off, until a page is not full: the watcher then has what
// Horizon has. It is the only way operations reach the watcher (the stream
// only says when to call it, see stream): each page is sorted by paging
// token first, whatever order Horizon sent, and *last is always the end of
// the pages read so far, so the pages read from the durable cursor are
// contiguous, operations are handed off in paging-token order, and none is
// skipped. Each page handed off in full is recorded in the watermark as
// listed, which is what lets the cursor pass it (see flush). It returns how
// many operations it took, and the error that stopped it, if any.
//
// The next page is fetched, decoded and its memos resolved while the
// current one is handed off, and hand-offs are acknowledged concurrently
// (up to MaxInFlight), so settlement, paging and decoding overlap.
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
	for {
		page, ok := <-pages
		if !ok {
			return received, nil
		}
		if page.err != nil {
			return received, page.err
		}
		if len(w.memo)+len(page.memo) > maxMemoCache {
			clear(w.memo)
		}
		for k, id := range page.memo {
			w.memo[k] = id
		}
		for i, op := range page.ops {
			tok, err := w.handle(ctx, op, page.norm[i])
			if err != nil {
				return received, err
			}
			if tok != "" {
				received++
			}
		}
		if len(page.ops) > 0 {
			end := page.ops[len(page.ops)-1].PagingToken()
			w.marks.list(page.after, end)
			*last = end
		}
	}
}

// fetchPages sends the pages after cursor to out, one page ahead of the
// reader, until a page is short, a fetch fails, or ctx ends; then it
// closes out.
func (w *watcher) fetchPages(ctx context.Context, cursor string, out chan<- backlogPage) {
	defer close(out)
	for {
		ops, err := w.cfg.Horizon.PaymentsPage(ctx, w.account, cursor, horizon.MaxPageLimit)
		if err == nil {
			// Horizon's contract is paging-token order; the next page and
			// the hand-off order rely on it, so a page is sorted first.
			w.sortPage(ops)
		}
		page := backlogPage{after: cursor, ops: ops, err: err}
		if err == nil {
			page.norm = w.normalize(ops)
			// Also for the short page a stream event rings for: that is a
			// whole ledger's payments to the account, and looking their
			// sessions up one at a time in the hand-off took a round trip
			// each, in sequence (p99 147 ms beyond the ledger close at 55
			// payments a ledger).
			page.memo = w.resolveMemos(ctx, page.norm)
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

// normalized is horizon.Normalize's answer for one operation.
type normalized struct {
	payment checkout.Payment
	kind    horizon.Kind
	err     error
}

// normalize reads each operation of a page as the account sees it.
func (w *watcher) normalize(ops []operations.Operation) []normalized {
	out := make([]normalized, len(ops))
	for i, op := range ops {
		out[i].payment, out[i].kind, out[i].err = horizon.Normalize(op, w.account)
	}
	return out
}

// resolveMemos looks up, in one query, the sessions that the credits of a
// page name. It is an optimization only: on any failure the hand-off looks
// each memo up itself, with its retries.
func (w *watcher) resolveMemos(ctx context.Context, page []normalized) map[string]string {
	r, ok := w.cfg.DB.(memoResolver)
	if !ok || len(page) < 2 {
		return nil
	}
	keys := make([]persistence.MemoKey, 0, len(page))
	seen := make(map[persistence.MemoKey]bool, len(page))
	for _, n := range page {
		if n.err != nil || n.kind != horizon.KindCredit {
			continue
		}
		memoType, memo, ok := matchKey(n.payment)
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
