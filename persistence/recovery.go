package persistence

import (
	"context"
	"fmt"
	"time"
)

// ExpirableSession is an open session whose account's watcher has seen every
// ledger up to a close time past the session's expiry.
type ExpirableSession struct {
	ID         string
	CaughtUpTo time.Time
}

// ExpirableSessions lists up to limit open sessions that ledger time has
// carried past their expiry. A session whose watcher is behind is not listed.
func (db *DB) ExpirableSessions(ctx context.Context, limit int) ([]ExpirableSession, error) {
	rows, err := db.pool.Query(ctx, `SELECT s.id, c.caught_up_to FROM sessions s
		JOIN ledger_cursors c ON c.account = s.receiving_account
		WHERE s.status = 'open' AND c.caught_up_to > s.expires_at
		ORDER BY s.expires_at LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list expirable sessions: %w", interpretError(err))
	}
	defer rows.Close()
	var out []ExpirableSession
	for rows.Next() {
		var e ExpirableSession
		if err := rows.Scan(&e.ID, &e.CaughtUpTo); err != nil {
			return nil, fmt.Errorf("list expirable sessions: %w", interpretError(err))
		}
		e.CaughtUpTo = e.CaughtUpTo.UTC()
		out = append(out, e)
	}
	return out, interpretError(rows.Err())
}

// InconsistentSessions lists up to limit sessions whose amount_received is
// not the sum of their applied payments, or that are open although fully
// paid. It looks at open sessions and those changed within the last day, so
// its cost does not grow with history.
func (db *DB) InconsistentSessions(ctx context.Context, limit int) ([]string, error) {
	rows, err := db.pool.Query(ctx, `SELECT s.id FROM sessions s
		LEFT JOIN LATERAL (SELECT coalesce(sum(p.amount), 0) AS total FROM payments p
			WHERE p.session_id = s.id AND p.disposition = 'applied') p ON true
		WHERE (s.status = 'open' OR s.updated_at > now() - interval '1 day')
		AND (s.amount_received <> p.total OR (s.status = 'open' AND p.total >= s.amount))
		LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list inconsistent sessions: %w", interpretError(err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("list inconsistent sessions: %w", interpretError(err))
		}
		out = append(out, id)
	}
	return out, interpretError(rows.Err())
}
