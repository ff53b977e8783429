package persistence_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/persistence/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t *testing.T, dsn string) *persistence.DB {
	t.Helper()
	db, err := persistence.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(db.Close)
	return db
}

// migrationRows returns the versions recorded in schema_migrations, in order.
func migrationRows(t *testing.T, dsn string) []int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	return versions
}

func schemaVersion(t *testing.T, db *persistence.DB) int {
	t.Helper()
	v, err := db.SchemaVersion(t.Context())
	if err != nil {
		t.Fatalf("SchemaVersion: %v", err)
	}
	return v
}

func TestMigrateFreshDatabase(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewEmpty(t)
	db := open(t, dsn)
	if v := schemaVersion(t, db); v != 0 {
		t.Fatalf("SchemaVersion of an empty database = %d, want 0", v)
	}
	if err := db.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	versions := migrationRows(t, dsn)
	if len(versions) == 0 || versions[0] != 1 {
		t.Fatalf("schema_migrations = %v, want versions starting at 1", versions)
	}
	if v := schemaVersion(t, db); v != versions[len(versions)-1] {
		t.Fatalf("SchemaVersion = %d, want %d", v, versions[len(versions)-1])
	}
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	dsn := pgtest.New(t) // already migrated once
	db := open(t, dsn)
	before, version := migrationRows(t, dsn), schemaVersion(t, db)
	for range 2 {
		if err := db.Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate again: %v", err)
		}
	}
	after := migrationRows(t, dsn)
	if !slices.Equal(before, after) {
		t.Fatalf("schema_migrations changed from %v to %v", before, after)
	}
	if v := schemaVersion(t, db); v != version {
		t.Fatalf("SchemaVersion changed from %d to %d", version, v)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	dsn := pgtest.NewEmpty(t)
	// Separate pools, as two processes starting at once would have.
	dbs := []*persistence.DB{open(t, dsn), open(t, dsn), open(t, dsn)}
	errs := make([]error, len(dbs))
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Go(func() { errs[i] = db.Migrate(t.Context()) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate %d: %v", i, err)
		}
	}
	want := migrationRows(t, pgtest.New(t))
	if got := migrationRows(t, dsn); !slices.Equal(got, want) {
		t.Fatalf("schema_migrations = %v, want each migration once: %v", got, want)
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	dsn := pgtest.New(t)
	db := open(t, dsn)
	embedded := schemaVersion(t, db)
	future := embedded + 1000

	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(),
		`INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future')`, future); err != nil {
		t.Fatal(err)
	}

	err = db.Migrate(t.Context())
	if !errors.Is(err, persistence.ErrSchemaTooNew) {
		t.Fatalf("Migrate = %v, want ErrSchemaTooNew", err)
	}
	for _, v := range []int{future, embedded} {
		if !strings.Contains(err.Error(), strconv.Itoa(v)) {
			t.Errorf("error %q does not name version %d", err, v)
		}
	}
	if v := schemaVersion(t, db); v != future {
		t.Fatalf("SchemaVersion = %d, want %d", v, future)
	}
}

// The webhook queue is vacuumed after a fixed number of dead rows, not
// after a fraction of the table: the claim walks the due index's dead
// entries until a vacuum clears them (migration 0008).
func TestWebhookQueueVacuumedByCount(t *testing.T) {
	dsn := pgtest.New(t)
	if err := open(t, dsn).Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(t.Context())
	var opts []string
	if err := conn.QueryRow(t.Context(),
		`SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = 'webhook_deliveries'::regclass`).Scan(&opts); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"autovacuum_vacuum_scale_factor=0", "autovacuum_vacuum_threshold=5000",
		"autovacuum_analyze_scale_factor=0", "autovacuum_analyze_threshold=5000",
	} {
		if !slices.Contains(opts, want) {
			t.Errorf("webhook_deliveries options %v lack %s", opts, want)
		}
	}
}
