package pgtest_test

import (
	"context"
	"crypto/sha256"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/checkoutd/checkoutd/persistence/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestNewGivesIsolatedMigratedDatabases(t *testing.T) {
	t.Parallel()
	dsnA, dsnB := pgtest.New(t), pgtest.New(t)
	if dsnA == dsnB {
		t.Fatalf("New returned the same DSN twice: %s", dsnA)
	}
	a, b := connect(t, dsnA), connect(t, dsnB)

	var nameA, nameB string
	if err := a.QueryRow(t.Context(), `SELECT current_database()`).Scan(&nameA); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(t.Context(), `SELECT current_database()`).Scan(&nameB); err != nil {
		t.Fatal(err)
	}
	if nameA == nameB {
		t.Fatalf("both DSNs name database %s", nameA)
	}

	for _, conn := range []*pgx.Conn{a, b} {
		var migrations int
		if err := conn.QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&migrations); err != nil {
			t.Fatalf("schema_migrations: %v", err)
		}
		if migrations == 0 {
			t.Fatal("no migration recorded in schema_migrations")
		}
	}

	if _, err := a.Exec(t.Context(),
		`INSERT INTO merchants (id, name, account) VALUES ('mer_1', 'Acme', $1)`,
		"G"+strings.Repeat("A", 55)); err != nil {
		t.Fatalf("insert merchant: %v", err)
	}
	var inA, inB int
	if err := a.QueryRow(t.Context(), `SELECT count(*) FROM merchants`).Scan(&inA); err != nil {
		t.Fatal(err)
	}
	if err := b.QueryRow(t.Context(), `SELECT count(*) FROM merchants`).Scan(&inB); err != nil {
		t.Fatal(err)
	}
	if inA != 1 || inB != 0 {
		t.Fatalf("merchants: %d in the first database, %d in the second; want 1 and 0", inA, inB)
	}
}

func TestNewEmptyHasNoSchema(t *testing.T) {
	t.Parallel()
	conn := connect(t, pgtest.NewEmpty(t))
	var tables int
	if err := conn.QueryRow(t.Context(),
		`SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("empty database has %d tables", tables)
	}
}

func TestDatabaseIsDroppedAfterTest(t *testing.T) {
	var name string
	t.Run("uses a database", func(t *testing.T) {
		conn := connect(t, pgtest.New(t))
		if err := conn.QueryRow(t.Context(), `SELECT current_database()`).Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	// Look from another database on the same server.
	conn := connect(t, pgtest.New(t))
	var exists bool
	if err := conn.QueryRow(t.Context(),
		`SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Fatalf("database %s still exists after its test ended", name)
	}
}

func TestProcessCPU(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	_, before, ok := pgtest.ProcessCPU(os.Getpid())
	if !ok {
		t.Fatal("cannot read this process")
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		_ = sha256.Sum256(make([]byte, 1<<20)) // burn CPU
		comm, after, ok := pgtest.ProcessCPU(os.Getpid())
		if !ok || comm == "" {
			t.Fatalf("ProcessCPU(self) = %q, %v, %v", comm, after, ok)
		}
		if after > before {
			return
		}
	}
	t.Fatal("this process's CPU time did not grow while it worked")
}
