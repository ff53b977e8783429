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

const sessionColumns = `id, merchant_id, receiving_account, memo_type, memo, amount,
	asset_code, asset_issuer, amount_received, status, payment_status, expires_at,
	metadata, success_url, cancel_url, created_at, updated_at, closed_at, version`

func scanSession(row pgx.Row) (checkout.Session, error) {
	var (
		s        checkout.Session
		metadata []byte
		closedAt *time.Time
	)
	err := row.Scan(&s.ID, &s.MerchantID, &s.ReceivingAccount, &s.MemoType, &s.Memo, &s.Amount,
		&s.Asset.Code, &s.Asset.Issuer, &s.AmountReceived, &s.Status, &s.PaymentStatus, &s.ExpiresAt,
		&metadata, &s.SuccessURL, &s.CancelURL, &s.CreatedAt, &s.UpdatedAt, &closedAt, &s.Version)
	if err != nil {
		return checkout.Session{}, interpretError(err)
	}
	if err := json.Unmarshal(metadata, &s.Metadata); err != nil {
		return checkout.Session{}, fmt.Errorf("session %s metadata: %w", s.ID, err)
	}
	if closedAt != nil {
		s.ClosedAt = closedAt.UTC()
	}
	s.ExpiresAt, s.CreatedAt, s.UpdatedAt = s.ExpiresAt.UTC(), s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// CreateSession inserts a new session. A memo already used on the account
// returns checkout.ErrMemoTaken; the caller draws another memo.
func (db *DB) CreateSession(ctx context.Context, s checkout.Session) error {
	if s.Metadata == nil {
		s.Metadata = map[string]string{}
	}
	metadata, err := json.Marshal(s.Metadata)
	if err != nil {
		return fmt.Errorf("create session %s: %w", s.ID, err)
	}
	_, err = db.pool.Exec(ctx, `INSERT INTO sessions (`+sessionColumns+`)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19)`,
		s.ID, s.MerchantID, s.ReceivingAccount, s.MemoType, s.Memo, s.Amount,
		s.Asset.Code, s.Asset.Issuer, s.AmountReceived, s.Status, s.PaymentStatus, s.ExpiresAt,
		metadata, s.SuccessURL, s.CancelURL, s.CreatedAt, s.UpdatedAt, nullTime(s.ClosedAt), s.Version)
	if err != nil {
		return fmt.Errorf("create session %s: %w", s.ID, interpretError(err))
	}
	return nil
}

// GetSession loads a session by id, or returns checkout.ErrNotFound.
func (db *DB) GetSession(ctx context.Context, id string) (checkout.Session, error) {
	s, err := scanSession(db.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = $1`, id))
	if err != nil {
		return checkout.Session{}, fmt.Errorf("get session %s: %w", id, err)
	}
	return s, nil
}

// SessionIDByMemo finds the session that a payment to account with the given
// memo names. Text memos match text sessions, id memos match id sessions, and
// a muxed destination's id matches muxed sessions.
func (db *DB) SessionIDByMemo(ctx context.Context, account string, memoType checkout.MemoType, memo string) (string, error) {
	var id string
	err := db.pool.QueryRow(ctx,
		`SELECT id FROM sessions WHERE receiving_account = $1 AND memo = $2 AND memo_type = $3`,
		account, memo, memoType).Scan(&id)
	if err != nil {
		return "", fmt.Errorf("find session by memo on %s: %w", account, interpretError(err))
	}
	return id, nil
}

// ErrIdempotencyKeyTaken is CreateSessions' answer for a row whose
// idempotency key the merchant has already used (or another row of the same
// batch uses): nothing of that row is written, and the caller handles the
// request as a retry of the key's first request.
var ErrIdempotencyKeyTaken = errors.New("idempotency key already used")

// SessionCreate is one row of CreateSessions: a new session and, when the
// request that makes it carried an Idempotency-Key, the response to keep
// under that key.
type SessionCreate struct {
	Session     checkout.Session
	Idempotency *IdempotentResponse
}

// IdempotentResponse is a finished request's response, kept under the
// merchant's idempotency key (the merchant is the session's).
type IdempotentResponse struct {
	Key         string
	RequestHash []byte
	Status      int
	Body        []byte
	CreatedAt   time.Time
}

// createSessionsSQL inserts a batch of sessions and their idempotency
// records in one statement. A row's session is inserted only if its key is
// (or it has none), so a key is never spent on two sessions; ON CONFLICT DO
// NOTHING turns a taken key, memo or id into that row's answer rather than
// the statement's failure.
const createSessionsSQL = `WITH i AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
		$7::text[], $8::text[], $9::bigint[], $10::text[], $11::text[], $12::timestamptz[],
		$13::text[], $14::text[], $15::text[], $16::timestamptz[], $17::timestamptz[], $18::timestamptz[], $19::bigint[],
		$20::text[], $21::bytea[], $22::int[], $23::bytea[], $24::timestamptz[]) WITH ORDINALITY
	AS t(id, merchant_id, receiving_account, memo_type, memo, amount,
		asset_code, asset_issuer, amount_received, status, payment_status, expires_at,
		metadata, success_url, cancel_url, created_at, updated_at, closed_at, version,
		ikey, ihash, istatus, ibody, icreated, ord)
), k AS (
	INSERT INTO idempotency_keys (merchant_id, key, request_hash, response_status, response_body, created_at)
	SELECT merchant_id, ikey, ihash, istatus, ibody, icreated FROM i WHERE ikey IS NOT NULL
	ON CONFLICT DO NOTHING
	RETURNING merchant_id, key
), s AS (
	INSERT INTO sessions (` + sessionColumns + `)
	SELECT id, merchant_id, receiving_account, memo_type, memo, amount,
		asset_code, asset_issuer, amount_received, status, payment_status, expires_at,
		metadata::jsonb, success_url, cancel_url, created_at, updated_at, closed_at, version
	FROM i
	WHERE i.ikey IS NULL OR EXISTS (SELECT 1 FROM k WHERE k.merchant_id = i.merchant_id AND k.key = i.ikey)
	ON CONFLICT DO NOTHING
	RETURNING id
)
SELECT i.ikey IS NULL OR EXISTS (SELECT 1 FROM k WHERE k.merchant_id = i.merchant_id AND k.key = i.ikey),
	EXISTS (SELECT 1 FROM s WHERE s.id = i.id)
FROM i ORDER BY i.ord`

// CreateSessions inserts many new sessions, each with its idempotency
// record if it has one, in one transaction, and returns each row's outcome,
// index for index:
//
//   - nil: the session and its record are committed;
//   - checkout.ErrMemoTaken: the memo (or the id) is taken on the account;
//     nothing of the row is written, and the caller draws another;
//   - ErrIdempotencyKeyTaken: the merchant's key is already used; nothing
//     of the row is written;
//   - any other error: the row broke a rule of the schema (it alone fails,
//     its neighbours are committed without it), or the transaction failed
//     as a whole (every row gets the error; as with any commit whose
//     answer was lost, the outcome is then unknown).
//
// Only when it returns is anything acknowledged: a nil is a committed row.
func (db *DB) CreateSessions(ctx context.Context, rows []SessionCreate) []error {
	errs := make([]error, len(rows))
	live := make([]int, 0, len(rows))
	type mkey struct{ merchant, key string }
	seen := make(map[mkey]bool)
	for i, r := range rows {
		if r.Idempotency != nil {
			k := mkey{r.Session.MerchantID, r.Idempotency.Key}
			if seen[k] {
				errs[i] = ErrIdempotencyKeyTaken
				continue
			}
			seen[k] = true
		}
		live = append(live, i)
	}
	if len(live) == 0 {
		return errs
	}
	err := db.createSessions(ctx, rows, live, errs)
	if err == nil {
		return errs
	}
	var pgErr *pgconn.PgError
	if len(live) == 1 || !errors.As(err, &pgErr) {
		for _, i := range live {
			errs[i] = fmt.Errorf("create session %s: %w", rows[i].Session.ID, interpretError(err))
		}
		return errs
	}
	// Postgres refused the statement: a row broke a rule, or two batches
	// deadlocked on each other's keys. Each row alone finds out which.
	for _, i := range live {
		if err := db.createSessions(ctx, rows, []int{i}, errs); err != nil {
			errs[i] = fmt.Errorf("create session %s: %w", rows[i].Session.ID, interpretError(err))
		}
	}
	return errs
}

// createSessions inserts the rows live of rows in one transaction and sets
// each one's outcome in errs. An error is the transaction's: nothing of it
// is committed.
func (db *DB) createSessions(ctx context.Context, rows []SessionCreate, live []int, errs []error) error {
	n := len(live)
	var (
		ids, merchants, accounts, memoTypes, memos = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		amounts, received, versions                = make([]int64, n), make([]int64, n), make([]int64, n)
		codes, issuers, statuses, payStatuses      = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		metadata, successURLs, cancelURLs          = make([]string, n), make([]string, n), make([]string, n)
		expires, created, updated                  = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		closed                                     = make([]*time.Time, n)
		ikeys                                      = make([]*string, n)
		ihashes, ibodies                           = make([][]byte, n), make([][]byte, n)
		istatuses                                  = make([]*int32, n)
		icreated                                   = make([]*time.Time, n)
	)
	for j, i := range live {
		s := rows[i].Session
		md := s.Metadata
		if md == nil {
			md = map[string]string{}
		}
		b, err := json.Marshal(md)
		if err != nil {
			return fmt.Errorf("session %s metadata: %w", s.ID, err)
		}
		ids[j], merchants[j], accounts[j], memoTypes[j], memos[j] = s.ID, s.MerchantID, s.ReceivingAccount, string(s.MemoType), s.Memo
		amounts[j], received[j], versions[j] = int64(s.Amount), int64(s.AmountReceived), s.Version
		codes[j], issuers[j], statuses[j], payStatuses[j] = s.Asset.Code, s.Asset.Issuer, string(s.Status), string(s.PaymentStatus)
		metadata[j], successURLs[j], cancelURLs[j] = string(b), s.SuccessURL, s.CancelURL
		expires[j], created[j], updated[j], closed[j] = s.ExpiresAt, s.CreatedAt, s.UpdatedAt, nullTime(s.ClosedAt)
		if r := rows[i].Idempotency; r != nil {
			key, status, at := r.Key, int32(r.Status), r.CreatedAt
			body := r.Body
			if body == nil {
				body = []byte{}
			}
			ikeys[j], ihashes[j], istatuses[j], ibodies[j], icreated[j] = &key, r.RequestHash, &status, body, &at
		}
	}
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		res, err := tx.Query(ctx, createSessionsSQL, ids, merchants, accounts, memoTypes, memos, amounts,
			codes, issuers, received, statuses, payStatuses, expires, metadata, successURLs, cancelURLs,
			created, updated, closed, versions, ikeys, ihashes, istatuses, ibodies, icreated)
		if err != nil {
			return err
		}
		var unspent []string // merchant, key pairs to give back
		j := 0
		for res.Next() {
			var keyOK, inserted bool
			if err := res.Scan(&keyOK, &inserted); err != nil {
				res.Close()
				return err
			}
			i := live[j]
			switch {
			case !keyOK:
				errs[i] = ErrIdempotencyKeyTaken
			case !inserted:
				errs[i] = fmt.Errorf("create session %s: %w", rows[i].Session.ID, checkout.ErrMemoTaken)
				if ikeys[j] != nil {
					unspent = append(unspent, merchants[j], *ikeys[j])
				}
			default:
				errs[i] = nil
			}
			j++
		}
		if err := res.Err(); err != nil {
			return err
		}
		if j != n {
			return fmt.Errorf("create sessions: %d answers for %d rows", j, n)
		}
		if len(unspent) > 0 {
			// The key was inserted for a session that was not: give it back
			// before the commit, so that it never names a missing session.
			ms, ks := make([]string, 0, len(unspent)/2), make([]string, 0, len(unspent)/2)
			for p := 0; p < len(unspent); p += 2 {
				ms, ks = append(ms, unspent[p]), append(ks, unspent[p+1])
			}
			if _, err := tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE (merchant_id, key) IN
				(SELECT * FROM unnest($1::text[], $2::text[]))`, ms, ks); err != nil {
				return err
			}
		}
		return nil
	})
}
