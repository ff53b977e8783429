package persistence

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// IdempotencyRecord is what is kept of a request made with an
// Idempotency-Key: the hash of the request and, once it finished, its
// response.
type IdempotencyRecord struct {
	RequestHash []byte
	// Done is false while the first request is still being handled.
	Done      bool
	Status    int
	Body      []byte
	CreatedAt time.Time
}

// ClaimIdempotencyKey claims a merchant's idempotency key for a request with
// the given hash. The first caller claims it and gets claimed true; it then
// handles the request and calls CompleteIdempotencyKey or
// ReleaseIdempotencyKey. Every other caller gets claimed false and the
// record as it stands, in progress or done.
//
// A claim still in progress that was made before staleBefore for the same
// request is taken to be abandoned (its process died) and is claimed anew.
func (db *DB) ClaimIdempotencyKey(ctx context.Context, merchantID, key string, requestHash []byte, now, staleBefore time.Time) (IdempotencyRecord, bool, error) {
	var claimed bool
	err := db.pool.QueryRow(ctx, `INSERT INTO idempotency_keys (merchant_id, key, request_hash, created_at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (merchant_id, key) DO UPDATE SET created_at = EXCLUDED.created_at
		WHERE idempotency_keys.response_status IS NULL
		  AND idempotency_keys.created_at < $5
		  AND idempotency_keys.request_hash = EXCLUDED.request_hash
		RETURNING true`, merchantID, key, requestHash, now, staleBefore).Scan(&claimed)
	switch {
	case err == nil:
		return IdempotencyRecord{RequestHash: requestHash, CreatedAt: now}, true, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return IdempotencyRecord{}, false, fmt.Errorf("claim idempotency key: %w", interpretError(err))
	}
	rec, err := db.GetIdempotencyKey(ctx, merchantID, key)
	if err != nil {
		return IdempotencyRecord{}, false, err
	}
	return rec, false, nil
}

// GetIdempotencyKey loads a merchant's idempotency record, or returns
// checkout.ErrNotFound.
func (db *DB) GetIdempotencyKey(ctx context.Context, merchantID, key string) (IdempotencyRecord, error) {
	var (
		rec    IdempotencyRecord
		status *int32
	)
	err := db.pool.QueryRow(ctx, `SELECT request_hash, response_status, response_body, created_at
		FROM idempotency_keys WHERE merchant_id = $1 AND key = $2`, merchantID, key).
		Scan(&rec.RequestHash, &status, &rec.Body, &rec.CreatedAt)
	if err != nil {
		return IdempotencyRecord{}, fmt.Errorf("get idempotency key: %w", interpretError(err))
	}
	if status != nil {
		rec.Done, rec.Status = true, int(*status)
	}
	rec.CreatedAt = rec.CreatedAt.UTC()
	return rec, nil
}

// CompleteIdempotencyKey stores the response to a claimed request. Later
// requests with the key get it back byte for byte.
func (db *DB) CompleteIdempotencyKey(ctx context.Context, merchantID, key string, status int, body []byte) error {
	if body == nil {
		body = []byte{}
	}
	_, err := db.pool.Exec(ctx, `UPDATE idempotency_keys SET response_status = $3, response_body = $4
		WHERE merchant_id = $1 AND key = $2`, merchantID, key, status, body)
	if err != nil {
		return fmt.Errorf("complete idempotency key: %w", interpretError(err))
	}
	return nil
}

// ReleaseIdempotencyKey drops a claim whose request did not finish (it
// failed on our side), so that a retry runs it again.
func (db *DB) ReleaseIdempotencyKey(ctx context.Context, merchantID, key string) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM idempotency_keys
		WHERE merchant_id = $1 AND key = $2 AND response_status IS NULL`, merchantID, key)
	if err != nil {
		return fmt.Errorf("release idempotency key: %w", interpretError(err))
	}
	return nil
}

// DeleteIdempotencyKeysBefore deletes the records created before t and
// reports how many went.
func (db *DB) DeleteIdempotencyKeysBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, t)
	if err != nil {
		return 0, fmt.Errorf("delete old idempotency keys: %w", interpretError(err))
	}
	return tag.RowsAffected(), nil
}
