package persistence

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	checkout "github.com/checkoutd/checkoutd"
)

// Settle commits a transition in one transaction: the payment row (if any),
// the session update checked against readVersion, and the outbox events. It
// is the only way a payment or a session change is written.
//
// A payment whose operation id is already recorded returns
// checkout.ErrAlreadyApplied and writes nothing. A session whose version is
// no longer readVersion returns checkout.ErrVersionConflict and writes
// nothing; the caller reloads and decides again.
func (db *DB) Settle(ctx context.Context, t checkout.Transition, readVersion int64) error {
	if !t.Changed {
		return nil
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		return settleTx(ctx, tx, t, readVersion)
	})
	if err != nil {
		return fmt.Errorf("settle session %s: %w", t.Session.ID, interpretError(err))
	}
	return nil
}

func settleTx(ctx context.Context, tx pgx.Tx, t checkout.Transition, readVersion int64) error {
	if t.Payment != nil {
		if err := insertPayment(ctx, tx, *t.Payment); err != nil {
			return err
		}
	}
	s := t.Session
	tag, err := tx.Exec(ctx, `UPDATE sessions SET amount_received = $3, status = $4,
		payment_status = $5, closed_at = $6, updated_at = $7, version = $8
		WHERE id = $1 AND version = $2`,
		s.ID, readVersion, s.AmountReceived, s.Status, s.PaymentStatus,
		nullTime(s.ClosedAt), s.UpdatedAt, s.Version)
	if err != nil {
		return interpretError(err)
	}
	if tag.RowsAffected() == 0 {
		return checkout.ErrVersionConflict
	}
	return insertEvents(ctx, tx, t.Events)
}

// RecordUnmatched records a payment that names no session, with its events.
// A payment already recorded returns checkout.ErrAlreadyApplied.
func (db *DB) RecordUnmatched(ctx context.Context, p checkout.Payment, events []checkout.Event) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := insertPayment(ctx, tx, p); err != nil {
			return err
		}
		return insertEvents(ctx, tx, events)
	})
	if err != nil {
		return fmt.Errorf("record unmatched payment %s: %w", p.OperationID, interpretError(err))
	}
	return nil
}

func insertPayment(ctx context.Context, tx pgx.Tx, p checkout.Payment) error {
	var sessionID *string
	if p.SessionID != "" {
		sessionID = &p.SessionID
	}
	tag, err := tx.Exec(ctx, `INSERT INTO payments (id, operation_id, transaction_hash,
		operation_type, from_account, to_account, to_muxed_id, amount, asset_code, asset_issuer,
		memo_type, memo, ledger_closed_at, session_id, disposition, created_at)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16)
		ON CONFLICT (operation_id) DO NOTHING`,
		p.ID, p.OperationID, p.TransactionHash, p.OperationType, p.From, p.To, p.ToMuxedID,
		p.Amount, p.Asset.Code, p.Asset.Issuer, p.MemoType, p.Memo, p.LedgerClosedAt,
		sessionID, p.Disposition, p.CreatedAt)
	if err != nil {
		return interpretError(err)
	}
	if tag.RowsAffected() == 0 {
		return checkout.ErrAlreadyApplied
	}
	return nil
}

// eventPayload is what the outbox keeps of an event: snapshots of the
// session and payment as the transition left them.
type eventPayload struct {
	Session *checkout.Session `json:"session,omitempty"`
	Payment *checkout.Payment `json:"payment,omitempty"`
}

func insertEvents(ctx context.Context, tx pgx.Tx, events []checkout.Event) error {
	if len(events) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, e := range events {
		payload, err := json.Marshal(eventPayload{Session: e.Session, Payment: e.Payment})
		if err != nil {
			return fmt.Errorf("event %s payload: %w", e.ID, err)
		}
		batch.Queue(`INSERT INTO events (id, type, merchant_id, session_id, payment_id, payload, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			e.ID, e.Type, e.MerchantID, nullString(e.SessionID), nullString(e.PaymentID), payload, e.CreatedAt)
	}
	results := tx.SendBatch(ctx, batch)
	for range events {
		if _, err := results.Exec(); err != nil {
			_ = results.Close()
			return interpretError(err)
		}
	}
	return interpretError(results.Close())
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
