// Package persistence keeps checkoutd's state in Postgres. It owns every SQL
// statement, the embedded migrations and the mapping of pgx errors to domain
// errors; no pgx type leaves the package.
package persistence

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is a pool of Postgres connections and the operations checkoutd runs on it.
type DB struct {
	pool *pgxpool.Pool
}

// Open connects to the database named by dsn and checks that it answers.
func Open(ctx context.Context, dsn string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping database: %w", err)
	}
	return &DB{pool: pool}, nil
}

// Close waits for in-flight queries and closes every connection.
func (db *DB) Close() { db.pool.Close() }

// Ping reports whether Postgres answers.
func (db *DB) Ping(ctx context.Context) error { return db.pool.Ping(ctx) }
