package persistence

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
