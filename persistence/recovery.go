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

// InconsistentSessions checks the next n sessions in id order after the
// session after ("" to start at the first) and lists those whose
// amount_received is not the sum of their applied payments, or that are
// open although fully paid. It also returns the last session it checked,
// for the next call to go on from, or "" once it has reached the end, so
// that calls made one after the other sweep every session over and over
// at a cost per call bounded by n, however many sessions there are.
func (db *DB) InconsistentSessions(ctx context.Context, after string, n int) (bad []string, last string, err error) {
	rows, err := db.pool.Query(ctx, `SELECT s.id, s.amount_received <> p.total OR (s.status = 'open' AND p.total >= s.amount)
		FROM (SELECT id, status, amount, amount_received FROM sessions WHERE id > $1 ORDER BY id LIMIT $2) s
		LEFT JOIN LATERAL (SELECT coalesce(sum(p.amount), 0) AS total FROM payments p
			WHERE p.session_id = s.id AND p.disposition = 'applied') p ON true
		ORDER BY s.id`, after, n)
	if err != nil {
		return nil, "", fmt.Errorf("check sessions against their payments: %w", interpretError(err))
	}
	defer rows.Close()
	checked := 0
	for rows.Next() {
		var inconsistent bool
		if err := rows.Scan(&last, &inconsistent); err != nil {
			return nil, "", fmt.Errorf("check sessions against their payments: %w", interpretError(err))
		}
		checked++
		if inconsistent {
			bad = append(bad, last)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("check sessions against their payments: %w", interpretError(err))
	}
	if checked < n {
		last = "" // the end: the next call starts over
	}
	return bad, last, nil
}
