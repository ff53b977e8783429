package persistence

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	checkout "github.com/checkoutd/checkoutd"
)

// Settlement is one Settle call, as the group-commit journal gathers them:
// a transition and the session version it was decided on.
type Settlement struct {
	Transition  checkout.Transition
	ReadVersion int64
}

// maxBatchRetries bounds how often SettleBatch runs a batch again after a
// deadlock or a serialization failure, which say nothing about any row.
const maxBatchRetries = 3

// SettleBatch commits many settlements in one transaction and one round
// trip, and returns each one's outcome, index for index. Each row means
// exactly what Settle means: a recorded operation id is
// checkout.ErrAlreadyApplied and a moved version is
// checkout.ErrVersionConflict, and either writes nothing for that row while
// its neighbours commit. A row that breaks a rule of the schema (a CHECK,
// a unique index, a foreign key) aborts the transaction; it gets that error
// and the others are committed again without it. An error that names no
// row (the connection, a timeout) is every row's error, and as with
// Settle the commit's outcome is then unknown: delivering the same
// settlement again finds it applied or applies it.
//
// Rows run in the order given; a later row sees what an earlier one wrote.
func (db *DB) SettleBatch(ctx context.Context, batch []Settlement) []error {
	errs := make([]error, len(batch))
	live := make([]int, 0, len(batch))
	for i := range batch {
		if batch[i].Transition.Changed {
			live = append(live, i)
		}
	}
	outcomes := make([]error, len(batch))
	if args, ok := combined(batch, live); ok {
		err := db.settleCombined(ctx, args, batch, live, outcomes)
		if err == nil {
			for _, i := range live {
				errs[i] = outcomes[i]
			}
			return errs
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			// The connection or ctx failed: the outcome is unknown, as it
			// would be for the pipeline.
			for _, i := range live {
				errs[i] = fmt.Errorf("settle session %s: %w", batch[i].Transition.Session.ID, interpretError(err))
			}
			return errs
		}
		// The server refused the statement and rolled it back: a row broke
		// a rule, or a deadlock. The pipeline below finds the row, or
		// retries.
	}
	for retries := 0; len(live) > 0; {
		bad, err := db.settleRows(ctx, batch, live, outcomes)
		switch {
		case err == nil:
			for _, i := range live {
				errs[i] = outcomes[i]
			}
			return errs
		case bad >= 0 && rowError(err):
			errs[bad] = fmt.Errorf("settle session %s: %w", batch[bad].Transition.Session.ID, interpretError(err))
			live = remove(live, bad)
		case retryable(err) && retries < maxBatchRetries:
			retries++
		default:
			for _, i := range live {
				errs[i] = fmt.Errorf("settle session %s: %w", batch[i].Transition.Session.ID, interpretError(err))
			}
			return errs
		}
	}
	return errs
}

// settleRows sends the rows live of batch as one pipeline, which Postgres
// runs as one implicit transaction, committed at its end. It fills
// outcomes[i] for every live row and returns nil once the commit is
// confirmed. Otherwise it returns the error and, when a row's statement
// failed, that row's index (else -1); the transaction is then rolled back.
func (db *DB) settleRows(ctx context.Context, batch []Settlement, live []int, outcomes []error) (int, error) {
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(live))}
	for _, i := range live {
		if err := queueSettlement(b, batch[i]); err != nil {
			return i, rowFault{err}
		}
	}
	results := db.pool.SendBatch(ctx, b)
	for _, i := range live {
		t := batch[i].Transition
		var versionOK, inserted, recorded bool
		var err error
		if t.Payment != nil {
			err = results.QueryRow().Scan(&versionOK, &inserted, &recorded)
		} else {
			err = results.QueryRow().Scan(&versionOK)
		}
		if err != nil {
			_ = results.Close()
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				return i, err
			}
			return -1, err
		}
		switch {
		case t.Payment != nil && !inserted && (versionOK || recorded):
			// The version held, or the operation is recorded: either way
			// the operation id, not the version, decides.
			outcomes[i] = fmt.Errorf("settle session %s: %w", t.Session.ID, checkout.ErrAlreadyApplied)
		case !versionOK:
			outcomes[i] = fmt.Errorf("settle session %s: %w", t.Session.ID, checkout.ErrVersionConflict)
		default:
			outcomes[i] = nil
		}
	}
	// Close reads the commit's answer: only now are the rows durable.
	if err := results.Close(); err != nil {
		return -1, err
	}
	return -1, nil
}

// minCombinedRows is the smallest batch sent as one statement. The
// statement's fixed cost (its executor's start and end, the sorts and
// hashes of its CTEs) is higher than a single row's, so below a handful of
// rows the pipeline costs Postgres less CPU; from 16 rows on the statement
// costs about half as much per row (BenchmarkSettleBatch).
const minCombinedRows = 8

// combined returns settleCombinedSQL's parameters for the live rows of
// batch, or false when they are better sent as a pipeline: fewer than
// minCombinedRows, or rows that are not combinable, or a row that cannot be laid out (the
// pipeline gives that row its own error).
func combined(batch []Settlement, live []int) ([]any, bool) {
	if len(live) < minCombinedRows || !combinable(batch, live) {
		return nil, false
	}
	args, err := buildCombinedArgs(batch, live)
	return args, err == nil
}

// combinable reports whether the live rows can be committed by
// settleCombined: every one carries a payment, and no two share a session
// or an operation id. Then no row can see another's writes, so one
// statement over all of them means what the pipeline of one statement per
// row means.
func combinable(batch []Settlement, live []int) bool {
	sessions := make(map[string]struct{}, len(live))
	ops := make(map[string]struct{}, len(live))
	for _, i := range live {
		t := batch[i].Transition
		if t.Payment == nil {
			return false
		}
		if _, dup := sessions[t.Session.ID]; dup {
			return false
		}
		if _, dup := ops[t.Payment.OperationID]; dup {
			return false
		}
		sessions[t.Session.ID] = struct{}{}
		ops[t.Payment.OperationID] = struct{}{}
	}
	return true
}

// settleCombined commits the live rows of batch, all payment settlements,
// as one statement (settleCombinedSQL) with the rows as arrays (args, from
// buildCombinedArgs): one parse,
// one plan and one execution for the batch instead of one per row. It
// fills outcomes[i] for every live row and returns nil once the commit is
// confirmed. A *pgconn.PgError means the statement was refused and
// nothing was written.
func (db *DB) settleCombined(ctx context.Context, args []any, batch []Settlement, live []int, outcomes []error) error {
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, 2)}
	// Postgres would plan the statement afresh for every small batch (a
	// custom plan looks cheaper for few rows than the generic one), which
	// costs more than executing it. The generic plan is the same shape for
	// any number of rows. The setting is local: it ends with the batch's
	// implicit transaction. (SET LOCAL would do the same but, outside
	// BEGIN, writes a warning to the server's log for every batch.)
	b.Queue(`SELECT set_config('plan_cache_mode', 'force_generic_plan', true)`)
	b.Queue(settleCombinedSQL, args...)
	results := db.pool.SendBatch(ctx, b)
	if _, err := results.Exec(); err != nil {
		_ = results.Close()
		return err
	}
	rows, err := results.Query()
	if err != nil {
		rows.Close()
		_ = results.Close()
		return err
	}
	n := len(live)
	seen := 0
	for rows.Next() {
		var k int32
		var versionOK, inserted, recorded bool
		if err := rows.Scan(&k, &versionOK, &inserted, &recorded); err != nil {
			rows.Close()
			_ = results.Close()
			return err
		}
		if k < 0 || int(k) >= n {
			rows.Close()
			_ = results.Close()
			return fmt.Errorf("settle batch: row %d of %d in the answer", k, n)
		}
		i := live[k]
		sid := batch[i].Transition.Session.ID
		switch {
		case !inserted && (versionOK || recorded):
			outcomes[i] = fmt.Errorf("settle session %s: %w", sid, checkout.ErrAlreadyApplied)
		case !versionOK:
			outcomes[i] = fmt.Errorf("settle session %s: %w", sid, checkout.ErrVersionConflict)
		default:
			outcomes[i] = nil
		}
		seen++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		_ = results.Close()
		return err
	}
	// Close reads the commit's answer: only now are the rows durable.
	if err := results.Close(); err != nil {
		return err
	}
	if seen != n {
		return fmt.Errorf("settle batch: %d answers for %d rows", seen, n)
	}
	return nil
}

// buildCombinedArgs lays the live rows of batch out as settleCombinedSQL's
// parameters.
func buildCombinedArgs(batch []Settlement, live []int) ([]any, error) {
	n := len(live)
	a := combinedArgs{
		ord: make([]int32, n), sid: make([]string, n), readVersion: make([]int64, n),
		received: make([]int64, n), status: make([]string, n), paymentStatus: make([]string, n),
		closedAt: make([]*time.Time, n), updatedAt: make([]time.Time, n), version: make([]int64, n),
		payID: make([]string, n), op: make([]string, n), txHash: make([]string, n), opType: make([]string, n),
		from: make([]string, n), to: make([]string, n), toMuxedID: make([]string, n), amount: make([]int64, n),
		assetCode: make([]string, n), assetIssuer: make([]string, n), memoType: make([]string, n),
		memo: make([]string, n), ledgerClosedAt: make([]time.Time, n), paySession: make([]string, n),
		disposition: make([]string, n), createdAt: make([]time.Time, n),
	}
	for k, i := range live {
		st := batch[i]
		s, p := st.Transition.Session, st.Transition.Payment
		a.ord[k], a.sid[k], a.readVersion[k] = int32(k), s.ID, st.ReadVersion
		a.received[k], a.status[k], a.paymentStatus[k] = int64(s.AmountReceived), string(s.Status), string(s.PaymentStatus)
		a.closedAt[k], a.updatedAt[k], a.version[k] = nullTime(s.ClosedAt), s.UpdatedAt, s.Version
		a.payID[k], a.op[k], a.txHash[k], a.opType[k] = p.ID, p.OperationID, p.TransactionHash, p.OperationType
		a.from[k], a.to[k], a.toMuxedID[k], a.amount[k] = p.From, p.To, p.ToMuxedID, int64(p.Amount)
		a.assetCode[k], a.assetIssuer[k], a.memoType[k], a.memo[k] = p.Asset.Code, p.Asset.Issuer, p.MemoType, p.Memo
		a.ledgerClosedAt[k], a.paySession[k], a.disposition[k], a.createdAt[k] = p.LedgerClosedAt, p.SessionID, string(p.Disposition), p.CreatedAt
		for _, e := range st.Transition.Events {
			payload, err := json.Marshal(eventPayload{Session: e.Session, Payment: e.Payment})
			if err != nil {
				return nil, fmt.Errorf("event %s payload: %w", e.ID, err)
			}
			a.evOwner = append(a.evOwner, int32(k))
			a.evID = append(a.evID, e.ID)
			a.evType = append(a.evType, string(e.Type))
			a.evMerchant = append(a.evMerchant, e.MerchantID)
			a.evSession = append(a.evSession, e.SessionID)
			a.evPayment = append(a.evPayment, e.PaymentID)
			a.evPayload = append(a.evPayload, string(payload))
			a.evCreated = append(a.evCreated, e.CreatedAt)
		}
	}
	return []any{a.ord, a.sid, a.readVersion, a.received, a.status, a.paymentStatus, a.closedAt, a.updatedAt, a.version,
		a.payID, a.op, a.txHash, a.opType, a.from, a.to, a.toMuxedID, a.amount, a.assetCode, a.assetIssuer,
		a.memoType, a.memo, a.ledgerClosedAt, a.paySession, a.disposition, a.createdAt,
		a.evOwner, a.evID, a.evType, a.evMerchant, a.evSession, a.evPayment, a.evPayload, a.evCreated}, nil
}

// combinedArgs are settleCombinedSQL's parameters: one array element per
// row, and per event for the ev arrays, whose owner is the row's ord.
type combinedArgs struct {
	ord                                                       []int32
	sid                                                       []string
	readVersion, received, version, amount                    []int64
	status, paymentStatus                                     []string
	closedAt                                                  []*time.Time
	updatedAt, ledgerClosedAt, createdAt                      []time.Time
	payID, op, txHash, opType, from, to, toMuxedID            []string
	assetCode, assetIssuer, memoType, memo, paySession        []string
	disposition                                               []string
	evOwner                                                   []int32
	evID, evType, evMerchant, evSession, evPayment, evPayload []string
	evCreated                                                 []time.Time
}

// settleCombinedSQL is settlePaymentSQL for many rows at once, each row's
// outcome decided exactly as there: lock each session at the version read,
// insert the payments of the locked ones (a recorded operation id inserts
// nothing), update the sessions whose payment went in, and insert those
// sessions' events, in row order so that event sequence numbers follow the
// batch. It answers, per row, whether the version held, whether the
// payment went in, and whether the operation was recorded before. Rows
// must not share a session or an operation id (see combinable).
//
// "Recorded before" is looked up only for a row whose payment did not go
// in. The statement runs on a generic plan (see settleCombined), and one
// planned while payments was small reads that lookup as a hashed subplan
// over the whole table: every batch then scanned every payment, a cost
// that grew with the table.
const settleCombinedSQL = `WITH r AS (
	SELECT * FROM unnest($1::int[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[],
		$7::timestamptz[], $8::timestamptz[], $9::bigint[], $10::text[], $11::text[], $12::text[], $13::text[],
		$14::text[], $15::text[], $16::text[], $17::bigint[], $18::text[], $19::text[], $20::text[], $21::text[],
		$22::timestamptz[], $23::text[], $24::text[], $25::timestamptz[])
	AS r(ord, sid, read_version, received, status, payment_status, closed_at, updated_at, version,
		pay_id, op, tx_hash, op_type, from_account, to_account, to_muxed_id, amount, asset_code, asset_issuer,
		memo_type, memo, ledger_closed_at, pay_session, disposition, created_at)
), v AS (
	SELECT r.ord FROM r JOIN sessions s ON s.id = r.sid AND s.version = r.read_version
	ORDER BY r.ord
	FOR UPDATE OF s
), p AS (
	INSERT INTO payments (id, operation_id, transaction_hash, operation_type, from_account,
		to_account, to_muxed_id, amount, asset_code, asset_issuer, memo_type, memo,
		ledger_closed_at, session_id, disposition, created_at)
	SELECT pay_id, op, tx_hash, op_type, from_account, to_account, to_muxed_id, amount, asset_code, asset_issuer,
		memo_type, memo, ledger_closed_at, nullif(pay_session, ''), disposition, created_at
	FROM r WHERE ord IN (SELECT ord FROM v)
	ORDER BY ord
	ON CONFLICT (operation_id) DO NOTHING
	RETURNING operation_id
), s AS (
	UPDATE sessions SET amount_received = r.received, status = r.status, payment_status = r.payment_status,
		closed_at = r.closed_at, updated_at = r.updated_at, version = r.version
	FROM r
	WHERE sessions.id = r.sid AND sessions.version = r.read_version AND r.op IN (SELECT operation_id FROM p)
	RETURNING r.ord
), e AS (
	INSERT INTO events (id, type, merchant_id, session_id, payment_id, payload, created_at)
	SELECT id, type, merchant_id, nullif(session_id, ''), nullif(payment_id, ''), payload::jsonb, created_at
	FROM unnest($26::int[], $27::text[], $28::text[], $29::text[], $30::text[], $31::text[], $32::text[],
		$33::timestamptz[]) WITH ORDINALITY
		AS e(owner, id, type, merchant_id, session_id, payment_id, payload, created_at, k)
	WHERE owner IN (SELECT ord FROM s)
	ORDER BY k
)
SELECT r.ord, r.ord IN (SELECT ord FROM v), r.op IN (SELECT operation_id FROM p),
	CASE WHEN r.op IN (SELECT operation_id FROM p) THEN false
		ELSE EXISTS (SELECT 1 FROM payments x WHERE x.operation_id = r.op) END
FROM r`

// settlePaymentSQL is one settlement with a payment, as one statement:
// lock the session at the version read, insert the payment only then (a
// recorded operation id inserts nothing), update the session only if the
// payment went in, and insert the events only if the session was updated.
// Nothing it skips is an error, so a refused row does not abort the
// transaction its neighbours share. It answers whether the version held,
// whether the payment went in, and whether the operation was recorded
// before.
const settlePaymentSQL = `WITH v AS (
	SELECT id FROM sessions WHERE id = $1 AND version = $2 FOR UPDATE
), p AS (
	INSERT INTO payments (id, operation_id, transaction_hash, operation_type, from_account,
		to_account, to_muxed_id, amount, asset_code, asset_issuer, memo_type, memo,
		ledger_closed_at, session_id, disposition, created_at)
	SELECT $9::text, $10::text, $11::text, $12::text, $13::text, $14::text, $15::text, $16::bigint,
		$17::text, $18::text, $19::text, $20::text, $21::timestamptz, $22::text, $23::text, $24::timestamptz
	FROM v
	ON CONFLICT (operation_id) DO NOTHING
	RETURNING 1
), s AS (
	UPDATE sessions SET amount_received = $3, status = $4, payment_status = $5,
		closed_at = $6, updated_at = $7, version = $8
	WHERE id = $1 AND version = $2 AND EXISTS (SELECT 1 FROM p)
	RETURNING 1
), e AS (
	INSERT INTO events (id, type, merchant_id, session_id, payment_id, payload, created_at)
	SELECT id, type, merchant_id, nullif(session_id, ''), nullif(payment_id, ''), payload::jsonb, created_at
	FROM unnest($25::text[], $26::text[], $27::text[], $28::text[], $29::text[], $30::text[], $31::timestamptz[])
		AS e(id, type, merchant_id, session_id, payment_id, payload, created_at)
	WHERE EXISTS (SELECT 1 FROM s)
)
SELECT EXISTS (SELECT 1 FROM v), EXISTS (SELECT 1 FROM p),
	EXISTS (SELECT 1 FROM payments WHERE operation_id = $10)`

// settleSessionSQL is one settlement without a payment (an expiry, a
// cancel, a repair): update the session at the version read, and insert
// the events only if it was. It answers whether the version held.
const settleSessionSQL = `WITH s AS (
	UPDATE sessions SET amount_received = $3, status = $4, payment_status = $5,
		closed_at = $6, updated_at = $7, version = $8
	WHERE id = $1 AND version = $2
	RETURNING 1
), e AS (
	INSERT INTO events (id, type, merchant_id, session_id, payment_id, payload, created_at)
	SELECT id, type, merchant_id, nullif(session_id, ''), nullif(payment_id, ''), payload::jsonb, created_at
	FROM unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::timestamptz[])
		AS e(id, type, merchant_id, session_id, payment_id, payload, created_at)
	WHERE EXISTS (SELECT 1 FROM s)
)
SELECT EXISTS (SELECT 1 FROM s)`

func queueSettlement(b *pgx.Batch, st Settlement) error {
	t := st.Transition
	s := t.Session
	args := make([]any, 0, 31)
	args = append(args, s.ID, st.ReadVersion, s.AmountReceived, s.Status, s.PaymentStatus,
		nullTime(s.ClosedAt), s.UpdatedAt, s.Version)
	if p := t.Payment; p != nil {
		args = append(args, p.ID, p.OperationID, p.TransactionHash, p.OperationType, p.From, p.To,
			p.ToMuxedID, p.Amount, p.Asset.Code, p.Asset.Issuer, p.MemoType, p.Memo, p.LedgerClosedAt,
			nullString(p.SessionID), p.Disposition, p.CreatedAt)
	}
	n := len(t.Events)
	ids, types, merchants := make([]string, n), make([]string, n), make([]string, n)
	sessions, payments, payloads := make([]string, n), make([]string, n), make([]string, n)
	created := make([]time.Time, n)
	for k, e := range t.Events {
		payload, err := json.Marshal(eventPayload{Session: e.Session, Payment: e.Payment})
		if err != nil {
			return fmt.Errorf("event %s payload: %w", e.ID, err)
		}
		ids[k], types[k], merchants[k] = e.ID, string(e.Type), e.MerchantID
		sessions[k], payments[k], payloads[k] = e.SessionID, e.PaymentID, string(payload)
		created[k] = e.CreatedAt
	}
	args = append(args, ids, types, merchants, sessions, payments, payloads, created)
	if t.Payment != nil {
		b.Queue(settlePaymentSQL, args...)
	} else {
		b.Queue(settleSessionSQL, args...)
	}
	return nil
}

// rowFault is a row that could not even be queued.
type rowFault struct{ err error }

func (f rowFault) Error() string { return f.err.Error() }
func (f rowFault) Unwrap() error { return f.err }

// rowError reports whether err is a statement's verdict on its own row's
// data (SQLSTATE classes 22, data exception, and 23, integrity constraint
// violation), or a row that could not be queued, as opposed to a fault of
// the connection or the server.
func rowError(err error) bool {
	if errors.As(err, new(rowFault)) {
		return true
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) != 5 {
		return false
	}
	class := pgErr.Code[:2]
	return class == "22" || class == "23"
}

// retryable reports whether err is a deadlock or serialization failure:
// the whole transaction may simply be run again.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

func remove(s []int, v int) []int {
	out := s[:0:0]
	for _, x := range s {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}

// MemoKey is how a payment names its session on a receiving account.
type MemoKey struct {
	Type checkout.MemoType
	Memo string
}

// SessionIDsByMemo resolves many memos of one receiving account at once,
// as SessionIDByMemo does one. Keys that name no session are absent from
// the answer.
func (db *DB) SessionIDsByMemo(ctx context.Context, account string, keys []MemoKey) (map[MemoKey]string, error) {
	types, memos := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		types[i], memos[i] = string(k.Type), k.Memo
	}
	rows, err := db.pool.Query(ctx, `SELECT s.memo_type, s.memo, s.id
		FROM unnest($2::text[], $3::text[]) AS k(memo_type, memo)
		JOIN sessions s ON s.receiving_account = $1 AND s.memo = k.memo AND s.memo_type = k.memo_type`,
		account, types, memos)
	if err != nil {
		return nil, fmt.Errorf("find sessions by memo on %s: %w", account, interpretError(err))
	}
	defer rows.Close()
	out := make(map[MemoKey]string, len(keys))
	for rows.Next() {
		var k MemoKey
		var id string
		if err := rows.Scan(&k.Type, &k.Memo, &id); err != nil {
			return nil, fmt.Errorf("find sessions by memo on %s: %w", account, interpretError(err))
		}
		out[k] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find sessions by memo on %s: %w", account, interpretError(err))
	}
	return out, nil
}
