package persistence

import (
	"context"
	"fmt"
	"time"
)

// Cursor is where a receiving account's watcher resumes: the paging token of
// the last operation durably recorded, and the close time of the newest
// ledger it has seen everything up to.
type Cursor struct {
	Account     string
	PagingToken string
	// CaughtUpTo is zero until the watcher has confirmed a ledger.
	CaughtUpTo time.Time
}

// EnsureCursor fixes an account's starting cursor unless it has one. It is
// called before the account's first session is handed out, so no payment to
// that session can fall before the cursor.
func (db *DB) EnsureCursor(ctx context.Context, account, pagingToken string) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO ledger_cursors (account, cursor) VALUES ($1, $2)
		ON CONFLICT (account) DO NOTHING`, account, pagingToken)
	if err != nil {
		return fmt.Errorf("ensure cursor for %s: %w", account, interpretError(err))
	}
	return nil
}

// HasCursor reports whether the account has a starting cursor.
func (db *DB) HasCursor(ctx context.Context, account string) (bool, error) {
	var ok bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM ledger_cursors WHERE account = $1)`, account).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("check cursor for %s: %w", account, interpretError(err))
	}
	return ok, nil
}

// GetCursor loads an account's cursor, or returns checkout.ErrNotFound.
func (db *DB) GetCursor(ctx context.Context, account string) (Cursor, error) {
	c := Cursor{Account: account}
	var caught *time.Time
	err := db.pool.QueryRow(ctx, `SELECT cursor, caught_up_to FROM ledger_cursors WHERE account = $1`,
		account).Scan(&c.PagingToken, &caught)
	if err != nil {
		return Cursor{}, fmt.Errorf("get cursor for %s: %w", account, interpretError(err))
	}
	if caught != nil {
		c.CaughtUpTo = caught.UTC()
	}
	return c, nil
}

// AdvanceCursor moves an account's cursor forward. It never moves it back:
// a stale writer (a second node, or a late flush) cannot rewind it.
func (db *DB) AdvanceCursor(ctx context.Context, c Cursor) error {
	// $2 is cast to text first so that Postgres types the parameter as text,
	// as the THEN branch needs; typed numeric, the CASE fails with "CASE
	// types text and numeric cannot be matched".
	_, err := db.pool.Exec(ctx, `UPDATE ledger_cursors SET
		cursor = CASE WHEN cursor::numeric < $2::text::numeric THEN $2 ELSE cursor END,
		caught_up_to = CASE WHEN $3::timestamptz IS NOT NULL AND (caught_up_to IS NULL OR caught_up_to < $3)
			THEN $3 ELSE caught_up_to END,
		updated_at = now()
		WHERE account = $1`, c.Account, c.PagingToken, nullTime(c.CaughtUpTo))
	if err != nil {
		return fmt.Errorf("advance cursor for %s: %w", c.Account, interpretError(err))
	}
	return nil
}

// WatchedAccounts lists every account that has a cursor: each needs a watcher,
// so that late payments to finished sessions are still recorded.
func (db *DB) WatchedAccounts(ctx context.Context) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT account FROM ledger_cursors ORDER BY account`)
	if err != nil {
		return nil, fmt.Errorf("list watched accounts: %w", interpretError(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("list watched accounts: %w", interpretError(err))
		}
		out = append(out, a)
	}
	return out, interpretError(rows.Err())
}
