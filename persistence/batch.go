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
