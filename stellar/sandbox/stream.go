package sandbox

import (
	"net/http"
	"sort"
	"time"
)

const (
	streamBatch     = 256
	streamHeartbeat = 5 * time.Second
)

// indexFor returns the payments index a stream follows, creating an empty
// one for an account without history so the stream can wait on it.
func (n *Network) indexFor(account string, key accountKey) *opIndex {
	if account == "" {
		return n.payments
	}
	n.mu.RLock()
	idx := n.byAccount[key]
	n.mu.RUnlock()
	if idx != nil {
		return idx
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if idx = n.byAccount[key]; idx == nil {
		idx = newOpIndex()
		n.byAccount[key] = idx
	}
	return idx
}

// streamPayments serves payments as Server-Sent Events framed like
// Horizon's: a "retry/event: open" hello, then "id: <paging_token>" and
// "data: <json>" per record. It resumes after the cursor (or Last-Event-ID),
// honours cursor=now, and applies the stream faults.
func (n *Network) streamPayments(w http.ResponseWriter, r *http.Request, account string, key accountKey, pq pageQuery) {
	idx := n.indexFor(account, key)
	keep := func(o *opRecord) bool { return pq.includeFailed || o.tx.successful }

	n.mu.RLock()
	ops := idx.ops
	n.mu.RUnlock()
	pos := 0
	switch {
	case pq.now:
		pos = len(ops)
	case pq.cursorSet:
		pos = sort.Search(len(ops), func(i int) bool { return ops[i].id > pq.cursor })
	}
	if sf := n.faults.streamSnapshot(); sf.replay > 0 && pq.cursorSet && !pq.now {
		for back := 0; pos > 0 && back < sf.replay; {
			pos--
			if keep(ops[pos]) {
				back++
			}
		}
	}

	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's WriteTimeout
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write([]byte("retry: 1000\nevent: open\ndata: \"hello\"\n\n")); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}

	heartbeat := time.NewTicker(streamHeartbeat)
	defer heartbeat.Stop()
	buf := make([]byte, 0, 64<<10)
	batch := make([]*opRecord, 0, streamBatch)
	sent := 0
	for {
		n.mu.RLock()
		ops, wake := idx.ops, idx.wake
		n.mu.RUnlock()
		held, changed := false, (<-chan struct{})(nil)
		if account != "" {
			held, changed = n.faults.held(account)
		}
		sf := n.faults.streamSnapshot()
		if changed == nil {
			changed = sf.changed
		}
		if !held && pos < len(ops) {
			batch = batch[:0]
			for ; pos < len(ops) && len(batch) < streamBatch; pos++ {
				if keep(ops[pos]) {
					batch = append(batch, ops[pos])
				}
			}
			n.faults.swapAdjacent(batch, sf.reorder)
			buf = buf[:0]
			cut := false
			for _, o := range batch {
				buf = append(buf, "id: "...)
				buf = append(buf, o.base.PT...)
				buf = append(buf, "\ndata: "...)
				buf = append(buf, o.render(pq.join)...)
				buf = append(buf, "\n\n"...)
				sent++
				if cut = sf.cutAfter > 0 && sent >= sf.cutAfter || n.faults.cutNow(sf.cutProb); cut {
					break
				}
			}
			if len(buf) > 0 {
				if _, err := w.Write(buf); err != nil {
					return
				}
				if rc.Flush() != nil {
					return
				}
			}
			if cut {
				return
			}
			continue
		}
		select {
		case <-wake:
		case <-changed:
		case <-heartbeat.C:
			if _, err := w.Write([]byte(": ping\n\n")); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-n.done:
			return
		}
	}
}
