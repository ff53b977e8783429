package chaos

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	checkout "github.com/checkoutd/checkoutd"
)

// Invariant numbers, as the issue lists them.
const (
	InvExactlyOnce = 1 // every credit the sandbox delivered is one payment row
	InvTransition  = 2 // sessions agree with Apply replayed over their history
	InvEvents      = 3 // every change has its events, every event is delivered
	InvOnce        = 4 // nothing completed or emitted twice
	InvOutcome     = 5 // the session ended as the traffic's kind requires
)

// Violation is one broken invariant.
type Violation struct {
	Invariant int
	Subject   string // a session, payment, operation or event id
	Problem   string
}

func (v Violation) String() string {
	return fmt.Sprintf("invariant %d: %s: %s", v.Invariant, v.Subject, v.Problem)
}

// Watched is a receiving account whose every credit after From (a paging
// token, exclusive) must be recorded.
type Watched struct {
	Account string
	From    string
}

// CheckInput is what the checker compares the database with.
type CheckInput struct {
	// SandboxURL is the sandbox whose record of operations is the truth.
	SandboxURL string
	Accounts   []Watched
	// Hooks is what the webhook receiver saw; nil skips the receiver's half
	// of invariant 3.
	Hooks *HookLog
	// Expect is the status and payment status each session must end in,
	// by session id, from the traffic that drove it; it may be empty.
	Expect map[string]Outcome
}

// Outcome is a session's expected final status and payment status.
type Outcome struct {
	Status        checkout.Status
	PaymentStatus checkout.PaymentStatus
}

// Report is the checker's verdict and what it counted.
type Report struct {
	Violations []Violation
	SandboxOps int // credits to watched accounts on the ledger
	Payments   int
	Sessions   int
	Events     int
	Deliveries int // successful deliveries recorded
	Received   int // distinct webhook ids the receiver acknowledged
}

// Checker checks the money invariants over the final state of one
// checkoutd database. It only reads.
type Checker struct {
	DSN  string
	HTTP *http.Client
}

type sessionRow struct {
	checkout.Session
}

type paymentRow struct {
	ID, OperationID, TxHash, To, SessionID, Disposition, AssetCode, AssetIssuer string
	Amount                                                                      checkout.Amount
	LedgerClosedAt                                                              time.Time
}

type eventRow struct {
	Seq                                    int64
	ID, Type, MerchantID, SessionID, PayID string
	CreatedAt                              time.Time
}

type endpointRow struct {
	ID, MerchantID, URL, Status string
	Types                       []string
	CreatedAt                   time.Time
}

type deliveryRow struct {
	EndpointID, EventID, Status string
}

// snapshot is the database as the checker read it, in one repeatable-read
// transaction.
type snapshot struct {
	sessions   map[string]*sessionRow
	payments   []paymentRow
	events     []eventRow
	endpoints  []endpointRow
	deliveries []deliveryRow
	merchants  map[string][]string // account -> merchant ids
	cursors    map[string]string   // account -> stored cursor
}

// Check reads the final state and returns every violation it finds.
func (c *Checker) Check(ctx context.Context, in CheckInput) (Report, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	var rep Report
	add := func(inv int, subject, format string, args ...any) {
		rep.Violations = append(rep.Violations, Violation{inv, subject, fmt.Sprintf(format, args...)})
	}
	// The sandbox first: anything it recorded before the snapshot must be
	// in the snapshot once checkoutd is quiescent.
	ledger := map[string]LedgerOp{}
	for _, w := range in.Accounts {
		ops, err := SandboxCredits(ctx, hc, in.SandboxURL, w.Account, w.From)
		if err != nil {
			return rep, err
		}
		for _, op := range ops {
			ledger[op.ID] = op
		}
	}
	rep.SandboxOps = len(ledger)
	snap, err := c.read(ctx)
	if err != nil {
		return rep, err
	}
	rep.Payments, rep.Sessions, rep.Events = len(snap.payments), len(snap.sessions), len(snap.events)

	// 1. Exactly once: one payment row per credited operation, none missing,
	// none the ledger does not know, with the ledger's amount.
	watched := map[string]bool{}
	for _, w := range in.Accounts {
		watched[w.Account] = true
	}
	byOp := map[string][]paymentRow{}
	for _, p := range snap.payments {
		byOp[p.OperationID] = append(byOp[p.OperationID], p)
	}
	for id, op := range ledger {
		ps := byOp[id]
		switch {
		case len(ps) == 0:
			var others []string
			for _, p := range snap.payments {
				if p.TxHash == op.TxHash {
					others = append(others, p.OperationID+"="+p.Disposition)
				}
			}
			add(InvExactlyOnce, "operation "+id, "%s of %s to %s (transaction %s, whose other recorded operations are %v; the account's cursor is %s) is on the ledger but not in payments",
				op.Type, op.Amount, op.To, op.TxHash, others, snap.cursors[op.To])
		case len(ps) > 1:
			add(InvExactlyOnce, "operation "+id, "recorded %d times", len(ps))
		case op.Type != "account_merge" && ps[0].Amount != op.Amount:
			add(InvExactlyOnce, "operation "+id, "recorded amount %s, the ledger says %s", ps[0].Amount, op.Amount)
		}
	}
	for _, p := range snap.payments {
		if _, ok := ledger[p.OperationID]; !ok && watched[p.To] {
			add(InvExactlyOnce, "payment "+p.ID, "operation %s is not a credit the ledger has for %s", p.OperationID, p.To)
		}
	}

	// 2 and 3 (events): replay Apply over each session's history.
	paysBySession := map[string][]paymentRow{}
	for _, p := range snap.payments {
		if p.SessionID != "" {
			paysBySession[p.SessionID] = append(paysBySession[p.SessionID], p)
		}
	}
	eventsBySession := map[string][]eventRow{}
	eventsByPayment := map[string][]eventRow{}
	for _, e := range snap.events {
		if e.PayID != "" {
			eventsByPayment[e.PayID] = append(eventsByPayment[e.PayID], e)
		}
		if e.SessionID != "" {
			eventsBySession[e.SessionID] = append(eventsBySession[e.SessionID], e)
		}
	}
	for id, s := range snap.sessions {
		c.replay(s, paysBySession[id], eventsBySession[id], eventsByPayment, add)
		if want, ok := in.Expect[id]; ok && (s.Status != want.Status || s.PaymentStatus != want.PaymentStatus) {
			add(InvOutcome, id, "ended %s/%s, its traffic requires %s/%s", s.Status, s.PaymentStatus, want.Status, want.PaymentStatus)
		}
	}
	for id := range in.Expect {
		if snap.sessions[id] == nil {
			add(InvOutcome, id, "the session the API created is not in the database")
		}
	}
	// Unmatched payments raise payment.unmatched to every merchant on the
	// account, once each.
	for _, p := range snap.payments {
		if p.Disposition != string(checkout.DispositionUnmatched) {
			continue
		}
		var got []string
		for _, e := range eventsByPayment[p.ID] {
			if e.Type == string(checkout.EventPaymentUnmatched) {
				got = append(got, e.MerchantID)
			}
		}
		want := slices.Clone(snap.merchants[p.To])
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			add(InvEvents, "payment "+p.ID, "unmatched payment raised payment.unmatched to %v, want once to each of %v", got, want)
		}
	}

	// 4. Nothing twice: one event per (payment, type, merchant) and one
	// terminal event per session, whatever the unique indexes say.
	seen := map[string]string{}
	for _, e := range snap.events {
		var key string
		switch {
		case e.PayID != "":
			key = e.PayID + "/" + e.Type + "/" + e.MerchantID
		case e.Type == string(checkout.EventSessionCompleted) || e.Type == string(checkout.EventSessionExpired) || e.Type == string(checkout.EventSessionCanceled):
			key = e.SessionID + "/" + e.Type
		default:
			continue
		}
		if first, dup := seen[key]; dup {
			add(InvOnce, e.ID, "emitted twice for one transition (%s), also as %s", key, first)
		}
		seen[key] = e.ID
	}
	completed := map[string]int{}
	for _, e := range snap.events {
		if e.Type == string(checkout.EventSessionCompleted) {
			completed[e.SessionID]++
		}
	}
	for id, n := range completed {
		if n > 1 {
			add(InvOnce, id, "completed %d times", n)
		}
	}

	// 3 (delivery): every event for an enabled endpoint is delivered, and
	// the receiver acknowledged it; the receiver saw nothing else.
	checkReferences(snap, add)
	c.checkDeliveries(snap, in.Hooks, &rep, add)
	sort.Slice(rep.Violations, func(i, j int) bool {
		a, b := rep.Violations[i], rep.Violations[j]
		if a.Invariant != b.Invariant {
			return a.Invariant < b.Invariant
		}
		return a.Subject < b.Subject
	})
	return rep, nil
}

// replay derives the session from scratch with checkout.Apply: its
// payments in ledger order, with its cancel and expiry placed where they
// committed relative to them (by event sequence), and compares the result,
// each payment's disposition and the events each step emits with what is
// recorded.
func (c *Checker) replay(s *sessionRow, pays []paymentRow, events []eventRow, byPayment map[string][]eventRow,
	add func(int, string, string, ...any)) {
	type step struct {
		seq  int64
		pay  *paymentRow
		kind string // the terminal event type of a cancel or an expiry
	}
	var steps []step
	sort.Slice(pays, func(i, j int) bool { return opIDLess(pays[i].OperationID, pays[j].OperationID) })
	for i := range pays {
		p := &pays[i]
		seq := int64(-1)
		for _, e := range byPayment[p.ID] {
			if seq < 0 || e.Seq < seq {
				seq = e.Seq
			}
		}
		if seq < 0 {
			add(InvEvents, "payment "+p.ID, "%s payment of session %s has no event", p.Disposition, s.ID)
			seq = 1 << 62
		}
		steps = append(steps, step{seq: seq, pay: p})
	}
	for _, e := range events {
		if e.PayID == "" && (e.Type == string(checkout.EventSessionCanceled) || e.Type == string(checkout.EventSessionExpired)) {
			steps = append(steps, step{seq: e.Seq, kind: e.Type})
		}
		if e.PayID == "" && e.Type != string(checkout.EventSessionCanceled) && e.Type != string(checkout.EventSessionExpired) {
			add(InvEvents, e.ID, "%s event of session %s names no payment", e.Type, s.ID)
		}
	}
	// Payments of one session commit one after the other (the version
	// fence), so their events' order must be ledger order.
	for i := 1; i < len(steps); i++ {
		if steps[i].pay != nil && steps[i-1].pay != nil && steps[i].seq < steps[i-1].seq {
			add(InvTransition, s.ID, "payment %s committed before the earlier payment %s", steps[i].pay.OperationID, steps[i-1].pay.OperationID)
		}
	}
	sort.SliceStable(steps, func(i, j int) bool { return steps[i].seq < steps[j].seq })

	cur := checkout.Session{
		ID: s.ID, MerchantID: s.MerchantID, Amount: s.Amount, Asset: s.Asset, ExpiresAt: s.ExpiresAt,
		Status: checkout.StatusOpen, PaymentStatus: checkout.PaymentUnpaid, Version: 1,
		ReceivingAccount: s.ReceivingAccount, MemoType: s.MemoType, Memo: s.Memo,
	}
	now := time.Now()
	var received checkout.Amount
	for _, st := range steps {
		var in checkout.Input
		switch {
		case st.pay != nil:
			in = checkout.PaymentObserved{Payment: checkout.Payment{ID: st.pay.ID, OperationID: st.pay.OperationID,
				Amount: st.pay.Amount, Asset: checkout.Asset{Code: st.pay.AssetCode, Issuer: st.pay.AssetIssuer},
				LedgerClosedAt: st.pay.LedgerClosedAt}}
		case st.kind == string(checkout.EventSessionCanceled):
			in = checkout.Cancel{}
		default:
			in = checkout.Expire{At: cur.ExpiresAt.Add(time.Hour)}
		}
		t, err := checkout.Apply(cur, in, now)
		if err != nil {
			add(InvTransition, s.ID, "replaying %s: %v", stepName(st.pay, st.kind), err)
			continue
		}
		var want []string
		for _, e := range t.Events {
			want = append(want, string(e.Type))
		}
		var got []string
		if st.pay != nil {
			if d := string(t.Payment.Disposition); d != st.pay.Disposition {
				add(InvTransition, "payment "+st.pay.ID, "recorded %s, Apply replayed over the session's history says %s", st.pay.Disposition, d)
			}
			if t.Payment.Disposition == checkout.DispositionApplied {
				received += st.pay.Amount
			}
			for _, e := range byPayment[st.pay.ID] {
				got = append(got, e.Type)
			}
		} else {
			got = []string{st.kind}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			add(InvEvents, s.ID, "%s emitted %v, Apply says %v", stepName(st.pay, st.kind), got, want)
		}
		if t.Changed {
			cur = t.Session
		}
	}
	if s.AmountReceived != received {
		add(InvTransition, s.ID, "amount_received %s, its applied payments sum to %s", s.AmountReceived, received)
	}
	if s.Status != cur.Status || s.PaymentStatus != cur.PaymentStatus || s.AmountReceived != cur.AmountReceived {
		add(InvTransition, s.ID, "is %s/%s/%s, Apply over its history says %s/%s/%s",
			s.Status, s.PaymentStatus, s.AmountReceived, cur.Status, cur.PaymentStatus, cur.AmountReceived)
	}
	if s.Status == checkout.StatusComplete && cur.Status == checkout.StatusComplete && !s.ClosedAt.Equal(cur.ClosedAt) {
		add(InvTransition, s.ID, "closed_at %s, the completing payment's ledger closed at %s", s.ClosedAt, cur.ClosedAt)
	}
}

func stepName(p *paymentRow, kind string) string {
	if p != nil {
		return "payment " + p.OperationID
	}
	return kind
}

// checkReferences checks that every event names a merchant, session and
// payment that exist, and every delivery an event that exists. Postgres
// does not enforce these (migration 0004 dropped the outbox's foreign
// keys); checkoutd writes an event only in the statement that wrote or
// locked what it names.
func checkReferences(snap *snapshot, add func(int, string, string, ...any)) {
	merchants := map[string]bool{}
	for _, ids := range snap.merchants {
		for _, id := range ids {
			merchants[id] = true
		}
	}
	payments := make(map[string]bool, len(snap.payments))
	for _, p := range snap.payments {
		payments[p.ID] = true
	}
	events := make(map[string]bool, len(snap.events))
	for _, e := range snap.events {
		events[e.ID] = true
		if !merchants[e.MerchantID] {
			add(InvEvents, e.ID, "%s event names merchant %q, which does not exist", e.Type, e.MerchantID)
		}
		if e.SessionID != "" && snap.sessions[e.SessionID] == nil {
			add(InvEvents, e.ID, "%s event names session %q, which does not exist", e.Type, e.SessionID)
		}
		if e.PayID != "" && !payments[e.PayID] {
			add(InvEvents, e.ID, "%s event names payment %q, which does not exist", e.Type, e.PayID)
		}
	}
	for _, d := range snap.deliveries {
		if !events[d.EventID] {
			add(InvEvents, "delivery to "+d.EndpointID, "names event %q, which does not exist", d.EventID)
		}
	}
}

// checkDeliveries checks the webhook half of invariant 3.
func (c *Checker) checkDeliveries(snap *snapshot, hooks *HookLog, rep *Report, add func(int, string, string, ...any)) {
	eventByID := map[string]eventRow{}
	for _, e := range snap.events {
		eventByID[e.ID] = e
	}
	type pair struct{ endpoint, event string }
	delivered := map[pair]string{}
	for _, d := range snap.deliveries {
		p := pair{d.EndpointID, d.EventID}
		if d.Status == "succeeded" {
			rep.Deliveries++
			delivered[p] = "succeeded"
		} else if delivered[p] == "" {
			delivered[p] = d.Status
		}
	}
	var ack map[string]map[string]int
	if hooks != nil {
		ack = hooks.Acked()
	}
	for _, ep := range snap.endpoints {
		if ep.Status != "enabled" {
			continue
		}
		for _, e := range snap.events {
			if e.MerchantID != ep.MerchantID || !(slices.Contains(ep.Types, "*") || slices.Contains(ep.Types, e.Type)) {
				continue
			}
			// Fan-out happens when the event commits, so an event stamped a
			// moment before the endpoint was created may have no delivery.
			if e.CreatedAt.Before(ep.CreatedAt.Add(2 * time.Second)) {
				if _, ok := delivered[pair{ep.ID, e.ID}]; !ok {
					continue
				}
			}
			switch st := delivered[pair{ep.ID, e.ID}]; st {
			case "succeeded":
			case "":
				add(InvEvents, e.ID, "%s event has no delivery to enabled endpoint %s", e.Type, ep.ID)
				continue
			default:
				add(InvEvents, e.ID, "%s event is %s, not delivered, to enabled endpoint %s", e.Type, st, ep.ID)
				continue
			}
			if hooks != nil && hooks.Owns(ep.URL) && ack[ep.URL][e.ID] == 0 {
				add(InvEvents, e.ID, "%s event is recorded as delivered to %s, but the receiver never acknowledged it", e.Type, ep.URL)
			}
		}
	}
	if hooks == nil {
		return
	}
	for url, ids := range ack {
		ep := snap.endpointByURL(url)
		for id := range ids {
			rep.Received++
			e, ok := eventByID[id]
			switch {
			case !ok:
				add(InvEvents, "webhook "+id, "the receiver got webhook-id %s at %s, which is no event", id, url)
			case ep == nil || e.MerchantID != ep.MerchantID:
				add(InvEvents, "webhook "+id, "the receiver got %s at %s, an event of another merchant", id, url)
			}
		}
	}
	for _, bad := range hooks.Rejected() {
		add(InvEvents, "webhook", "%s", bad)
	}
}

func (s *snapshot) endpointByURL(url string) *endpointRow {
	for i := range s.endpoints {
		if s.endpoints[i].URL == url {
			return &s.endpoints[i]
		}
	}
	return nil
}

// read loads everything the checker needs in one repeatable-read
// transaction, so the tables agree with each other.
func (c *Checker) read(ctx context.Context) (*snapshot, error) {
	conn, err := pgx.Connect(ctx, c.DSN)
	if err != nil {
		return nil, fmt.Errorf("checker: connect: %w", err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("checker: begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	snap := &snapshot{sessions: map[string]*sessionRow{}, merchants: map[string][]string{}, cursors: map[string]string{}}

	rows, err := tx.Query(ctx, `SELECT id, merchant_id, receiving_account, memo_type, memo, amount, asset_code,
		asset_issuer, amount_received, status, payment_status, expires_at, closed_at, version FROM sessions`)
	if err != nil {
		return nil, fmt.Errorf("checker: sessions: %w", err)
	}
	for rows.Next() {
		s := &sessionRow{}
		var (
			closed                      *time.Time
			amount, received            int64
			memoType, status, payStatus string
		)
		if err := rows.Scan(&s.ID, &s.MerchantID, &s.ReceivingAccount, &memoType, &s.Memo, &amount, &s.Asset.Code,
			&s.Asset.Issuer, &received, &status, &payStatus, &s.ExpiresAt, &closed, &s.Version); err != nil {
			rows.Close()
			return nil, fmt.Errorf("checker: sessions: %w", err)
		}
		s.MemoType, s.Status, s.PaymentStatus = checkout.MemoType(memoType), checkout.Status(status), checkout.PaymentStatus(payStatus)
		s.Amount, s.AmountReceived = checkout.Amount(amount), checkout.Amount(received)
		if closed != nil {
			s.ClosedAt = closed.UTC()
		}
		s.ExpiresAt = s.ExpiresAt.UTC()
		snap.sessions[s.ID] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("checker: sessions: %w", err)
	}

	rows, err = tx.Query(ctx, `SELECT id, operation_id, transaction_hash, to_account, coalesce(session_id, ''), disposition,
		asset_code, asset_issuer, amount, ledger_closed_at FROM payments`)
	if err != nil {
		return nil, fmt.Errorf("checker: payments: %w", err)
	}
	for rows.Next() {
		var p paymentRow
		var amount int64
		if err := rows.Scan(&p.ID, &p.OperationID, &p.TxHash, &p.To, &p.SessionID, &p.Disposition, &p.AssetCode, &p.AssetIssuer,
			&amount, &p.LedgerClosedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("checker: payments: %w", err)
		}
		p.Amount, p.LedgerClosedAt = checkout.Amount(amount), p.LedgerClosedAt.UTC()
		snap.payments = append(snap.payments, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("checker: payments: %w", err)
	}

	rows, err = tx.Query(ctx, `SELECT seq, id, type, merchant_id, coalesce(session_id, ''), coalesce(payment_id, ''),
		created_at FROM events ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("checker: events: %w", err)
	}
	for rows.Next() {
		var e eventRow
		if err := rows.Scan(&e.Seq, &e.ID, &e.Type, &e.MerchantID, &e.SessionID, &e.PayID, &e.CreatedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("checker: events: %w", err)
		}
		snap.events = append(snap.events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("checker: events: %w", err)
	}

	rows, err = tx.Query(ctx, `SELECT id, merchant_id, url, status, event_types, created_at FROM webhook_endpoints`)
	if err != nil {
		return nil, fmt.Errorf("checker: endpoints: %w", err)
	}
	for rows.Next() {
		var ep endpointRow
		if err := rows.Scan(&ep.ID, &ep.MerchantID, &ep.URL, &ep.Status, &ep.Types, &ep.CreatedAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("checker: endpoints: %w", err)
		}
		snap.endpoints = append(snap.endpoints, ep)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("checker: endpoints: %w", err)
	}

	rows, err = tx.Query(ctx, `SELECT endpoint_id, event_id, status FROM webhook_deliveries`)
	if err != nil {
		return nil, fmt.Errorf("checker: deliveries: %w", err)
	}
	for rows.Next() {
		var d deliveryRow
		if err := rows.Scan(&d.EndpointID, &d.EventID, &d.Status); err != nil {
			rows.Close()
			return nil, fmt.Errorf("checker: deliveries: %w", err)
		}
		snap.deliveries = append(snap.deliveries, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("checker: deliveries: %w", err)
	}

	rows, err = tx.Query(ctx, `SELECT account, cursor FROM ledger_cursors`)
	if err != nil {
		return nil, fmt.Errorf("checker: cursors: %w", err)
	}
	for rows.Next() {
		var account, cursor string
		if err := rows.Scan(&account, &cursor); err != nil {
			rows.Close()
			return nil, fmt.Errorf("checker: cursors: %w", err)
		}
		snap.cursors[account] = cursor
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("checker: cursors: %w", err)
	}

	rows, err = tx.Query(ctx, `SELECT account, id FROM merchants`)
	if err != nil {
		return nil, fmt.Errorf("checker: merchants: %w", err)
	}
	for rows.Next() {
		var account, id string
		if err := rows.Scan(&account, &id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("checker: merchants: %w", err)
		}
		snap.merchants[account] = append(snap.merchants[account], id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("checker: merchants: %w", err)
	}
	return snap, nil
}
