package sandbox

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	hProtocol "github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/effects"
	"github.com/stellar/go-stellar-sdk/support/render/hal"
	"github.com/stellar/go-stellar-sdk/support/render/problem"
	"github.com/stellar/go-stellar-sdk/toid"
)

const (
	defaultPageLimit = 10
	maxPageLimit     = 200
)

// Handler returns the Horizon-compatible HTTP API, plus GET/POST
// /_sandbox/faults to read and set injected faults.
func (n *Network) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", n.handleRoot)
	mux.HandleFunc("GET /friendbot", n.handleFriendbot)
	mux.HandleFunc("POST /friendbot", n.handleFriendbot)
	mux.HandleFunc("GET /accounts/{id}", n.handleAccount)
	mux.HandleFunc("GET /accounts/{id}/data/{key}", n.handleAccountData)
	mux.HandleFunc("GET /accounts/{id}/payments", n.handlePayments)
	mux.HandleFunc("GET /payments", n.handlePayments)
	mux.HandleFunc("POST /transactions", n.handleSubmit)
	mux.HandleFunc("GET /transactions/{hash}", n.handleTransaction)
	mux.HandleFunc("GET /operations/{id}", n.handleOperation)
	mux.HandleFunc("GET /operations/{id}/effects", n.handleOperationEffects)
	mux.HandleFunc("GET /ledgers/{seq}", n.handleLedger)
	mux.HandleFunc("GET /_sandbox/faults", n.handleFaultsGet)
	mux.HandleFunc("POST /_sandbox/faults", n.handleFaultsSet)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { writeProblem(w, problemNotFound) })
	return n.recoverer(n.faults.middleware(mux))
}

// recoverer turns a handler panic (a sandbox bug) into a logged 500
// problem instead of a dropped connection.
func (n *Network) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				n.cfg.Logger.Error("sandbox handler panic", "path", r.URL.Path, "panic", v)
				writeProblem(w, problem.P{Type: problemBase + "server_error", Title: "Internal Server Error", Status: http.StatusInternalServerError})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (n *Network) handleRoot(w http.ResponseWriter, r *http.Request) {
	n.mu.RLock()
	latest := n.ledgers[len(n.ledgers)-1]
	n.mu.RUnlock()
	var root hProtocol.Root
	root.HorizonVersion = "checkoutd-sandbox"
	root.StellarCoreVersion = "checkoutd-sandbox"
	root.IngestSequence = latest.seq
	root.HorizonSequence = int32(latest.seq)
	root.HorizonLatestClosedAt = latest.closedAt
	root.HistoryElderSequence = 1
	root.CoreSequence = int32(latest.seq)
	root.NetworkPassphrase = n.cfg.NetworkPassphrase
	root.CurrentProtocolVersion = protocolVersion
	root.SupportedProtocolVersion = protocolVersion
	root.CoreSupportedProtocolVersion = protocolVersion
	l := &root.Links
	l.Self = hal.NewLink("/")
	l.Account = hal.NewLink("/accounts/{account_id}")
	l.AccountTransactions = hal.NewLink("/accounts/{account_id}/transactions{?cursor,limit,order}")
	l.Assets = hal.NewLink("/assets{?asset_code,asset_issuer,cursor,limit,order}")
	l.Effects = hal.NewLink("/effects{?cursor,limit,order}")
	l.FeeStats = hal.NewLink("/fee_stats")
	fb := hal.NewLink("/friendbot{?addr}")
	l.Friendbot = &fb
	l.Ledger = hal.NewLink("/ledgers/{sequence}")
	l.Ledgers = hal.NewLink("/ledgers{?cursor,limit,order}")
	l.Operation = hal.NewLink("/operations/{id}")
	l.Operations = hal.NewLink("/operations{?cursor,limit,order,include_failed}")
	l.OrderBook = hal.NewLink("/order_book{?selling_asset_type,selling_asset_code,selling_asset_issuer,buying_asset_type,buying_asset_code,buying_asset_issuer,limit}")
	l.Payments = hal.NewLink("/payments{?cursor,limit,order,include_failed}")
	l.TradeAggregations = hal.NewLink("/trade_aggregations?base_asset_type={base_asset_type}&counter_asset_type={counter_asset_type}")
	l.Trades = hal.NewLink("/trades?base_asset_type={base_asset_type}&counter_asset_type={counter_asset_type}")
	l.Transaction = hal.NewLink("/transactions/{hash}")
	l.Transactions = hal.NewLink("/transactions{?cursor,limit,order}")
	writeJSON(w, http.StatusOK, root)
}

func (n *Network) handleFriendbot(w http.ResponseWriter, r *http.Request) {
	addr := r.URL.Query().Get("addr")
	if addr == "" {
		writeProblem(w, badRequest("addr", "addr is required"))
		return
	}
	tx, err := n.fund(r.Context(), addr)
	if err != nil {
		var pe *ProblemError
		if errors.As(err, &pe) {
			writeProblem(w, pe.P)
			return
		}
		n.cfg.Logger.Error("friendbot", "addr", addr, "err", err)
		writeProblem(w, problemUnavailable)
		return
	}
	writeJSON(w, http.StatusOK, tx)
}

func (n *Network) handleAccount(w http.ResponseWriter, r *http.Request) {
	k, ok := keyOfAddress(r.PathValue("id"))
	if !ok {
		writeProblem(w, badRequest("account_id", "Account ID must start with `G` and contain 56 alphanum characters"))
		return
	}
	n.mu.RLock()
	a := n.accounts[k]
	var res hProtocol.Account
	if a != nil {
		res = accountResource(a)
	}
	n.mu.RUnlock()
	if a == nil {
		writeProblem(w, problemNotFound)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// handleAccountData answers the SEP-29 memo-required probe of
// horizonclient.SubmitTransaction: the sandbox keeps no account data.
func (n *Network) handleAccountData(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, problemNotFound)
}

func (n *Network) handleSubmit(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, n.cfg.MaxBodyBytes)
	envelope, err := n.formTx(r)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeProblem(w, problemTooLarge)
			return
		}
		writeProblem(w, badRequest("tx", "cannot parse form: "+err.Error()))
		return
	}
	if envelope == "" {
		writeProblem(w, badRequest("tx", "Transaction envelope is required (form field tx)"))
		return
	}
	rec, p := n.submit(r.Context(), envelope)
	if p != nil {
		writeProblem(w, *p)
		return
	}
	writeRawJSON(w, http.StatusOK, rec.txJSON())
}

// maxFormBytes is the body size above which http.Request.ParseForm fails.
const maxFormBytes = 10 << 20

// formTx returns the form field tx of a POST, as r.PostForm.Get("tx")
// would after r.ParseForm. A body that is just "tx=<envelope>", the shape
// every SDK sends, is unescaped directly, without building url.Values;
// anything else goes through ParseForm.
func (n *Network) formTx(r *http.Request) (string, error) {
	if r.URL.RawQuery != "" || n.cfg.MaxBodyBytes > maxFormBytes ||
		r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		if err := r.ParseForm(); err != nil {
			return "", err
		}
		return r.PostForm.Get("tx"), nil
	}
	bp := n.bodyPool.Get().(*bytes.Buffer)
	defer n.bodyPool.Put(bp)
	bp.Reset()
	if _, err := bp.ReadFrom(r.Body); err != nil {
		return "", err
	}
	body := bp.Bytes()
	if !bytes.HasPrefix(body, []byte("tx=")) || bytes.ContainsAny(body, "&;") {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return "", err
		}
		return form.Get("tx"), nil
	}
	return url.QueryUnescape(string(body[3:]))
}

func (n *Network) handleTransaction(w http.ResponseWriter, r *http.Request) {
	hash := strings.ToLower(r.PathValue("hash"))
	if len(hash) != 64 || strings.Trim(hash, "0123456789abcdef") != "" {
		writeProblem(w, badRequest("tx_id", "Transaction hash must be a hex-encoded, lowercase SHA-256 hash"))
		return
	}
	n.mu.RLock()
	tx := n.txByHash[hash]
	n.mu.RUnlock()
	if tx == nil {
		writeProblem(w, problemNotFound)
		return
	}
	writeRawJSON(w, http.StatusOK, tx.txJSON())
}

// lookupOp finds a visible operation by its TOID.
func (n *Network) lookupOp(raw string) (*opRecord, *problem.P) {
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		p := badRequest("id", "id must be a positive integer operation id")
		return nil, &p
	}
	t := toid.Parse(id)
	n.mu.RLock()
	defer n.mu.RUnlock()
	if t.LedgerSequence < 1 || int(t.LedgerSequence) > len(n.ledgers) {
		return nil, &problemNotFound
	}
	lr := n.ledgers[t.LedgerSequence-1]
	if t.TransactionOrder < 1 || int(t.TransactionOrder) > len(lr.txs) {
		return nil, &problemNotFound
	}
	tx := lr.txs[t.TransactionOrder-1]
	if t.OperationOrder < 1 || int(t.OperationOrder) > len(tx.ops) {
		return nil, &problemNotFound
	}
	return tx.ops[t.OperationOrder-1], nil
}

func (n *Network) handleOperation(w http.ResponseWriter, r *http.Request) {
	op, p := n.lookupOp(r.PathValue("id"))
	if p != nil {
		writeProblem(w, *p)
		return
	}
	writeRawJSON(w, http.StatusOK, op.render(r.URL.Query().Get("join") == "transactions"))
}

func (n *Network) handleOperationEffects(w http.ResponseWriter, r *http.Request) {
	op, p := n.lookupOp(r.PathValue("id"))
	if p != nil {
		writeProblem(w, *p)
		return
	}
	var page struct {
		Links    hal.Links `json:"_links"`
		Embedded struct {
			Records []effects.Effect `json:"records"`
		} `json:"_embedded"`
	}
	self := baseURL(r) + r.URL.Path
	page.Links.Self = hal.NewLink(self)
	page.Links.Next = hal.NewLink(self)
	page.Links.Prev = hal.NewLink(self)
	page.Embedded.Records = op.effectsOf()
	writeJSON(w, http.StatusOK, page)
}

func (n *Network) handleLedger(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 32)
	if err != nil || seq == 0 {
		writeProblem(w, badRequest("ledger_id", "ledger sequence must be a positive integer"))
		return
	}
	n.mu.RLock()
	var lr *ledgerRecord
	if int(seq) <= len(n.ledgers) {
		lr = n.ledgers[seq-1]
	}
	n.mu.RUnlock()
	if lr == nil {
		writeProblem(w, problemNotFound)
		return
	}
	writeJSON(w, http.StatusOK, ledgerResource(lr))
}

func ledgerResource(lr *ledgerRecord) hProtocol.Ledger {
	hash := fmt.Sprintf("%x", lr.hash)
	failed, txOps := lr.failed, lr.ops
	l := hProtocol.Ledger{
		ID: hash, PT: strconv.FormatInt(toid.New(int32(lr.seq), 0, 0).ToInt64(), 10), Hash: hash,
		Sequence: int32(lr.seq), SuccessfulTransactionCount: lr.successful, FailedTransactionCount: &failed,
		OperationCount: lr.ops, TxSetOperationCount: &txOps, ClosedAt: lr.closedAt,
		TotalCoins: amountString(totalCoins), FeePool: amountString(0), BaseFee: int32(baseFee),
		BaseReserve: int32(baseReserve), MaxTxSetSize: 1000, ProtocolVersion: protocolVersion,
	}
	if lr.seq > 1 {
		l.PrevHash = fmt.Sprintf("%x", lr.prevHash)
	}
	self := "/ledgers/" + strconv.FormatUint(uint64(lr.seq), 10)
	l.Links.Self.Href = self
	l.Links.Transactions.Href, l.Links.Transactions.Templated = self+"/transactions{?cursor,limit,order}", true
	l.Links.Operations.Href, l.Links.Operations.Templated = self+"/operations{?cursor,limit,order}", true
	l.Links.Payments.Href, l.Links.Payments.Templated = self+"/payments{?cursor,limit,order}", true
	l.Links.Effects.Href, l.Links.Effects.Templated = self+"/effects{?cursor,limit,order}", true
	return l
}

// pageQuery is the parsed paging and filtering query of a list endpoint.
type pageQuery struct {
	cursor        int64 // records strictly after (asc) or before (desc) it; 0: from the start or end
	cursorSet     bool
	now           bool
	desc          bool
	limit         int
	includeFailed bool
	join          bool
}

func parsePageQuery(r *http.Request) (pageQuery, *problem.P) {
	q := r.URL.Query()
	pq := pageQuery{limit: defaultPageLimit}
	bad := func(field, reason string) (pageQuery, *problem.P) {
		p := badRequest(field, reason)
		return pageQuery{}, &p
	}
	cursor := q.Get("cursor")
	if le := r.Header.Get("Last-Event-ID"); le != "" {
		cursor = le // Horizon prefers the SSE reconnect header over the query
	}
	switch cursor {
	case "":
	case "now":
		pq.now, pq.cursorSet = true, true
	default:
		c, err := strconv.ParseInt(cursor, 10, 64)
		if err != nil || c < 0 {
			return bad("cursor", "cursor must be a non-negative integer paging token or \"now\"")
		}
		pq.cursor, pq.cursorSet = c, true
	}
	switch q.Get("order") {
	case "", "asc":
	case "desc":
		pq.desc = true
	default:
		return bad("order", "order must be \"asc\" or \"desc\"")
	}
	if l := q.Get("limit"); l != "" {
		v, err := strconv.Atoi(l)
		if err != nil || v < 1 || v > maxPageLimit {
			return bad("limit", fmt.Sprintf("limit must be an integer between 1 and %d", maxPageLimit))
		}
		pq.limit = v
	}
	switch q.Get("include_failed") {
	case "", "false":
	case "true":
		pq.includeFailed = true
	default:
		return bad("include_failed", "include_failed must be true or false")
	}
	switch q.Get("join") {
	case "":
	case "transactions":
		pq.join = true
	default:
		return bad("join", "join must be \"transactions\"")
	}
	return pq, nil
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// handlePayments serves /payments and /accounts/{id}/payments as a page,
// or as an SSE stream when the client accepts text/event-stream.
func (n *Network) handlePayments(w http.ResponseWriter, r *http.Request) {
	pq, p := parsePageQuery(r)
	if p != nil {
		writeProblem(w, *p)
		return
	}
	account := r.PathValue("id")
	var key accountKey
	if account != "" {
		var ok bool
		if key, ok = keyOfAddress(account); !ok {
			writeProblem(w, badRequest("account_id", "Account ID must start with `G` and contain 56 alphanum characters"))
			return
		}
	}
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		n.streamPayments(w, r, account, key, pq)
		return
	}
	n.mu.RLock()
	var ops []*opRecord
	if account == "" {
		ops = n.payments.ops
	} else if idx := n.byAccount[key]; idx != nil {
		ops = idx.ops
	}
	n.mu.RUnlock()
	recs := selectPage(ops, pq)
	n.faults.shufflePage(recs)
	writePage(w, r, pq, recs)
}

// selectPage picks the page's records from an id-ordered index.
func selectPage(ops []*opRecord, pq pageQuery) []*opRecord {
	out := make([]*opRecord, 0, pq.limit)
	keep := func(o *opRecord) bool { return pq.includeFailed || o.tx.successful }
	if pq.now {
		return out // nothing is after "now"
	}
	if !pq.desc {
		i := 0
		if pq.cursorSet {
			i = sort.Search(len(ops), func(i int) bool { return ops[i].id > pq.cursor })
		}
		for ; i < len(ops) && len(out) < pq.limit; i++ {
			if keep(ops[i]) {
				out = append(out, ops[i])
			}
		}
		return out
	}
	i := len(ops) - 1
	if pq.cursorSet {
		i = sort.Search(len(ops), func(i int) bool { return ops[i].id >= pq.cursor }) - 1
	}
	for ; i >= 0 && len(out) < pq.limit; i-- {
		if keep(ops[i]) {
			out = append(out, ops[i])
		}
	}
	return out
}

// pageWriters buffer a page on its way to the connection: a full page
// joined with its transactions runs to megabytes, and building it whole
// first allocated that much for every page served.
var pageWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

// writePage answers a page of recs. It states the body's length, which
// it adds up from the records' JSON (each rendered once and kept), and
// streams the records through a pooled buffer.
func writePage(w http.ResponseWriter, r *http.Request, pq pageQuery, recs []*opRecord) {
	link := func(cursor string, desc bool) hal.Link {
		v := r.URL.Query()
		v.Set("cursor", cursor)
		v.Set("limit", strconv.Itoa(pq.limit))
		v.Set("order", map[bool]string{false: "asc", true: "desc"}[desc])
		return hal.NewLink(baseURL(r) + r.URL.Path + "?" + v.Encode())
	}
	self := r.URL.Query().Get("cursor")
	first, last := self, self
	if len(recs) > 0 {
		first, last = recs[0].base.PT, recs[len(recs)-1].base.PT
	}
	links := hal.Links{Self: link(self, pq.desc), Next: link(last, pq.desc), Prev: link(first, !pq.desc)}
	lb, _ := json.Marshal(links)
	const head, embedded, tail = `{"_links":`, `,"_embedded":{"records":[`, "]}}"
	size := len(head) + len(lb) + len(embedded) + len(tail)
	for i, o := range recs {
		size += len(o.render(pq.join))
		if i > 0 {
			size++ // the comma
		}
	}
	w.Header()["Content-Type"] = halJSON
	w.Header().Set("Content-Length", strconv.Itoa(size))
	w.WriteHeader(http.StatusOK)
	bw := pageWriters.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil)
		pageWriters.Put(bw)
	}()
	// Write errors are the client's going away; the handler just ends.
	_, _ = bw.WriteString(head)
	_, _ = bw.Write(lb)
	_, _ = bw.WriteString(embedded)
	for i, o := range recs {
		if i > 0 {
			_ = bw.WriteByte(',')
		}
		_, _ = bw.Write(o.render(pq.join)) // #nosec G705 -- marshalled JSON served as application/hal+json, never as HTML
	}
	_, _ = bw.WriteString(tail)
	_ = bw.Flush()
}
