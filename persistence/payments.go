package persistence

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	checkout "github.com/checkoutd/checkoutd"
)

const paymentColumns = `id, operation_id, transaction_hash, operation_type, from_account,
	to_account, to_muxed_id, amount, asset_code, asset_issuer, memo_type, memo,
	ledger_closed_at, coalesce(session_id, ''), disposition, created_at`

func scanPayment(row pgx.Row) (checkout.Payment, error) {
	var p checkout.Payment
	err := row.Scan(&p.ID, &p.OperationID, &p.TransactionHash, &p.OperationType, &p.From,
		&p.To, &p.ToMuxedID, &p.Amount, &p.Asset.Code, &p.Asset.Issuer, &p.MemoType, &p.Memo,
		&p.LedgerClosedAt, &p.SessionID, &p.Disposition, &p.CreatedAt)
	p.LedgerClosedAt, p.CreatedAt = p.LedgerClosedAt.UTC(), p.CreatedAt.UTC()
	return p, interpretError(err)
}

// SessionPayments lists every payment recorded for a session, oldest first.
func (db *DB) SessionPayments(ctx context.Context, sessionID string) ([]checkout.Payment, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+paymentColumns+` FROM payments
		WHERE session_id = $1 ORDER BY created_at, operation_id::numeric`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("list payments of %s: %w", sessionID, interpretError(err))
	}
	defer rows.Close()
	var out []checkout.Payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, fmt.Errorf("list payments of %s: %w", sessionID, err)
		}
		out = append(out, p)
	}
	return out, interpretError(rows.Err())
}

// PaymentByOperation loads the payment recorded for a Horizon operation id.
func (db *DB) PaymentByOperation(ctx context.Context, operationID string) (checkout.Payment, error) {
	p, err := scanPayment(db.pool.QueryRow(ctx, `SELECT `+paymentColumns+` FROM payments
		WHERE operation_id = $1`, operationID))
	if err != nil {
		return checkout.Payment{}, fmt.Errorf("get payment for operation %s: %w", operationID, err)
	}
	return p, nil
}

// SessionEvents lists the events recorded for a session, oldest first, with
// their payloads.
func (db *DB) SessionEvents(ctx context.Context, sessionID string) ([]checkout.Event, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, type, merchant_id, coalesce(session_id, ''),
		coalesce(payment_id, ''), payload, created_at FROM events WHERE session_id = $1 ORDER BY seq`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("list events of %s: %w", sessionID, interpretError(err))
	}
	defer rows.Close()
	var out []checkout.Event
	for rows.Next() {
		var (
			e       checkout.Event
			payload []byte
		)
		if err := rows.Scan(&e.ID, &e.Type, &e.MerchantID, &e.SessionID, &e.PaymentID, &payload, &e.CreatedAt); err != nil {
			return nil, fmt.Errorf("list events of %s: %w", sessionID, interpretError(err))
		}
		var body eventPayload
		if err := json.Unmarshal(payload, &body); err != nil {
			return nil, fmt.Errorf("event %s payload: %w", e.ID, err)
		}
		e.Session, e.Payment, e.CreatedAt = body.Session, body.Payment, e.CreatedAt.UTC()
		out = append(out, e)
	}
	return out, interpretError(rows.Err())
}
