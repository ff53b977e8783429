package persistence

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	checkout "github.com/checkoutd/checkoutd"
)

// ListParams selects one page of a merchant's sessions or events, newest
// first, in the manner of Stripe's lists: StartingAfter names the last item
// of the previous page and gives the older items after it; EndingBefore
// names the first item of the next page and gives the newer items before it.
// At most one of the two is set.
type ListParams struct {
	MerchantID string
	// Filter is a session status or an event type; empty for all.
	Filter        string
	Limit         int
	StartingAfter string
	EndingBefore  string
}

// cursorMissing is the error for a cursor id that names nothing the merchant
// owns; it does not say which.
func cursorMissing(param, id string) error {
	return checkout.InvalidParam(param, "resource_missing", "no such object: %s", id)
}

func (p ListParams) check() error {
	if p.Limit < 1 {
		return fmt.Errorf("list: limit %d must be positive", p.Limit)
	}
	if p.StartingAfter != "" && p.EndingBefore != "" {
		return checkout.InvalidParam("ending_before", "parameters_exclusive", "starting_after and ending_before cannot be used together")
	}
	return nil
}

// ListSessions returns a page of a merchant's sessions ordered by
// (created_at, id) descending, and whether more lie beyond it in the
// direction of travel.
func (db *DB) ListSessions(ctx context.Context, p ListParams) ([]checkout.Session, bool, error) {
	if err := p.check(); err != nil {
		return nil, false, err
	}
	where, order := `merchant_id = $1 AND ($2 = '' OR status = $2)`, `created_at DESC, id DESC`
	args := []any{p.MerchantID, p.Filter}
	cursorID, param, after := p.StartingAfter, "starting_after", true
	if p.EndingBefore != "" {
		cursorID, param, after = p.EndingBefore, "ending_before", false
	}
	if cursorID != "" {
		var createdAt time.Time
		err := db.pool.QueryRow(ctx, `SELECT created_at FROM sessions WHERE id = $1 AND merchant_id = $2`,
			cursorID, p.MerchantID).Scan(&createdAt)
		if err != nil {
			if interpretError(err) == checkout.ErrNotFound {
				return nil, false, cursorMissing(param, cursorID)
			}
			return nil, false, fmt.Errorf("list sessions: %w", interpretError(err))
		}
		args = append(args, createdAt, cursorID)
		if after {
			where += ` AND (created_at, id) < ($3, $4)`
		} else {
			where += ` AND (created_at, id) > ($3, $4)`
			order = `created_at ASC, id ASC`
		}
	}
	args = append(args, p.Limit+1)
	rows, err := db.pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM sessions WHERE %s ORDER BY %s LIMIT $%d`,
		sessionColumns, where, order, len(args)), args...)
	if err != nil {
		return nil, false, fmt.Errorf("list sessions: %w", interpretError(err))
	}
	defer rows.Close()
	var out []checkout.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, false, fmt.Errorf("list sessions: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("list sessions: %w", interpretError(err))
	}
	return page(out, p.Limit, after)
}

// page trims the extra row that says there is more, and puts a page read
// backwards (ending_before) into newest-first order.
func page[T any](items []T, limit int, forward bool) ([]T, bool, error) {
	more := len(items) > limit
	if more {
		items = items[:limit]
	}
	if !forward {
		slices.Reverse(items)
	}
	if items == nil {
		items = []T{}
	}
	return items, more, nil
}

const eventColumns = `id, type, merchant_id, coalesce(session_id, ''), coalesce(payment_id, ''), payload, created_at`

func scanEvent(row pgx.Row) (checkout.Event, error) {
	var (
		e       checkout.Event
		payload []byte
	)
	if err := row.Scan(&e.ID, &e.Type, &e.MerchantID, &e.SessionID, &e.PaymentID, &payload, &e.CreatedAt); err != nil {
		return checkout.Event{}, interpretError(err)
	}
	var body eventPayload
	if err := json.Unmarshal(payload, &body); err != nil {
		return checkout.Event{}, fmt.Errorf("event %s payload: %w", e.ID, err)
	}
	e.Session, e.Payment, e.CreatedAt = body.Session, body.Payment, e.CreatedAt.UTC()
	return e, nil
}

// ListEvents returns a page of a merchant's events, newest first (in the
// order they were committed), and whether more lie beyond it in the
// direction of travel. Filter is an event type.
func (db *DB) ListEvents(ctx context.Context, p ListParams) ([]checkout.Event, bool, error) {
	if err := p.check(); err != nil {
		return nil, false, err
	}
	where, order := `merchant_id = $1 AND ($2 = '' OR type = $2)`, `seq DESC`
	args := []any{p.MerchantID, p.Filter}
	cursorID, param, after := p.StartingAfter, "starting_after", true
	if p.EndingBefore != "" {
		cursorID, param, after = p.EndingBefore, "ending_before", false
	}
	if cursorID != "" {
		var seq int64
		err := db.pool.QueryRow(ctx, `SELECT seq FROM events WHERE id = $1 AND merchant_id = $2`,
			cursorID, p.MerchantID).Scan(&seq)
		if err != nil {
			if interpretError(err) == checkout.ErrNotFound {
				return nil, false, cursorMissing(param, cursorID)
			}
			return nil, false, fmt.Errorf("list events: %w", interpretError(err))
		}
		args = append(args, seq)
		if after {
			where += ` AND seq < $3`
		} else {
			where += ` AND seq > $3`
			order = `seq ASC`
		}
	}
	args = append(args, p.Limit+1)
	rows, err := db.pool.Query(ctx, fmt.Sprintf(`SELECT %s FROM events WHERE %s ORDER BY %s LIMIT $%d`,
		eventColumns, where, order, len(args)), args...)
	if err != nil {
		return nil, false, fmt.Errorf("list events: %w", interpretError(err))
	}
	defer rows.Close()
	var out []checkout.Event
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, false, fmt.Errorf("list events: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("list events: %w", interpretError(err))
	}
	return page(out, p.Limit, after)
}

// GetEvent loads one of a merchant's events. Another merchant's event is
// checkout.ErrNotFound, as is an unknown id.
func (db *DB) GetEvent(ctx context.Context, merchantID, id string) (checkout.Event, error) {
	e, err := scanEvent(db.pool.QueryRow(ctx, `SELECT `+eventColumns+` FROM events
		WHERE id = $1 AND merchant_id = $2`, id, merchantID))
	if err != nil {
		return checkout.Event{}, fmt.Errorf("get event %s: %w", id, err)
	}
	return e, nil
}

// GetMerchantSession loads one of a merchant's sessions. Another merchant's
// session is checkout.ErrNotFound, as is an unknown id.
func (db *DB) GetMerchantSession(ctx context.Context, merchantID, id string) (checkout.Session, error) {
	s, err := scanSession(db.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions
		WHERE id = $1 AND merchant_id = $2`, id, merchantID))
	if err != nil {
		return checkout.Session{}, fmt.Errorf("get session %s: %w", id, err)
	}
	return s, nil
}
