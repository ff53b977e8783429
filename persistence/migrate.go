package persistence

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrationFiles holds the schema migrations, named NNNN_name.sql (four
// digits, then lowercase letters, digits and underscores) and applied in the
// order of their number. Each runs in a transaction, so a migration cannot
// use statements that refuse one, such as CREATE INDEX CONCURRENTLY.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrSchemaTooNew is returned by Migrate when the database records a schema
// version newer than any migration this build embeds: an older binary must not
// run against a schema it does not know.
var ErrSchemaTooNew = errors.New("database schema is newer than this build")

// migrateLockKey is the key of the advisory lock that serializes Migrate
// across processes. Advisory locks are scoped to one database, so migrations
// of different databases on one server do not wait for each other.
const migrateLockKey int64 = 0x636b6f75_6d696772 // "ckoumigr"

type migration struct {
	version int
	name    string
	sql     string
}

var migrationName = regexp.MustCompile(`^([0-9]{4})_([a-z0-9_]+)\.sql$`)

// loadMigrations reads the migrations in fsys's migrations directory, sorted
// by version. Two files with one version are an error.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q is not named NNNN_name.sql", e.Name())
		}
		version, _ := strconv.Atoi(m[1])
		if version == 0 {
			return nil, fmt.Errorf("migration file %q: versions start at 0001", e.Name())
		}
		body, err := fs.ReadFile(fsys, path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: version, name: m[2], sql: string(body)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("two migrations have version %04d: %s and %s",
				ms[i].version, ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// Migrate brings the schema up to the newest embedded migration. It applies
// each pending migration in its own transaction and records it in
// schema_migrations, so running it again changes nothing. Concurrent callers,
// in this process or others, are serialized by an advisory lock. It returns an
// error wrapping ErrSchemaTooNew, and changes nothing, when the database is at
// a version newer than this build knows.
func (db *DB) Migrate(ctx context.Context) error {
	ms, err := loadMigrations(migrationFiles)
	if err != nil {
		return err
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer conn.Release()

	// A session lock rather than a transaction lock, so it is held across the
	// separate transactions of the individual migrations.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrateLockKey); err != nil {
		return fmt.Errorf("migrate: take advisory lock: %w", err)
	}
	defer unlockMigrations(ctx, conn)

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version     int PRIMARY KEY,
		name        text NOT NULL,
		applied_at  timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	rows, err := conn.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("migrate: read applied versions: %w", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return fmt.Errorf("migrate: read applied versions: %w", err)
	}

	newest := 0
	if len(ms) > 0 {
		newest = ms[len(ms)-1].version
	}
	if len(applied) > 0 {
		if current := slices.Max(applied); current > newest {
			return fmt.Errorf("migrate: database is at schema version %d, this build knows up to %d: %w",
				current, newest, ErrSchemaTooNew)
		}
	}

	for _, m := range ms {
		if slices.Contains(applied, m.version) {
			continue
		}
		if err := applyMigration(ctx, conn, m); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *pgxpool.Conn, m migration) error {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		// Without arguments Exec uses the simple protocol, which runs a
		// file of several statements in one round trip.
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`,
			m.version, m.name)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate: apply %04d_%s: %w", m.version, m.name, err)
	}
	return nil
}

// unlockMigrations releases the advisory lock. If that fails, for example
// because ctx is done, the connection is closed instead: closing the session
// is the only other way to release a session lock, and a pooled connection
// still holding it would block every later Migrate.
func unlockMigrations(ctx context.Context, conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, migrateLockKey); err != nil {
		_ = conn.Conn().Close(ctx)
	}
}

// SchemaVersion returns the version of the newest migration applied to the
// database, or 0 when none has been.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var exists bool
	if err := db.pool.QueryRow(ctx,
		`SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var version int
	if err := db.pool.QueryRow(ctx,
		`SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return version, nil
}
