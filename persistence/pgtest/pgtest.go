// Package pgtest gives each test its own freshly migrated Postgres database.
//
// A test package opts in with
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// and each test then calls New for the DSN of a database nobody else uses.
// The server is the one named by DATABASE_URL when that is set. Otherwise
// pgtest starts a throwaway cluster from the installed PostgreSQL server
// binaries, once per test binary, and removes it when the tests end.
//
// On first use pgtest migrates a template database; New copies it with
// CREATE DATABASE ... TEMPLATE, which is much faster than migrating every
// database, and drops the copy when the test ends. Database names carry the
// process id and a random suffix, so test binaries running side by side
// against one server do not collide.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/checkoutd/checkoutd/persistence"
)

// state is the harness of this test binary. Main marks it in use and stops
// its server at the end; New starts the server on first use.
var state harness

type harness struct {
	mu      sync.Mutex
	inMain  bool
	started bool
	srv     *server
	err     error
}

// server is a Postgres server with this process's template database on it.
type server struct {
	adminDSN string        // DATABASE_URL, or the throwaway cluster's postgres database
	admin    *pgxpool.Pool // runs CREATE and DROP DATABASE
	prefix   string        // checkoutd_<pid>_<random>, unique to this process
	template string
	seq      atomic.Int64
	cluster  *cluster // nil when DATABASE_URL names the server
}

// Main runs the tests of a package that uses pgtest, then drops this
// process's template database and stops the throwaway cluster, if one was
// started. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	state.mu.Lock()
	state.inMain = true
	state.mu.Unlock()

	code := m.Run()
	if err := state.shutdown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// New returns the DSN of a new database with every migration applied, for
// this test alone. The database is dropped when the test and its subtests
// end.
func New(t testing.TB) string {
	t.Helper()
	srv := state.server(t)
	name := srv.nextName("test")
	srv.create(t, name, srv.template)
	return srv.dsn(name)
}

// NewEmpty returns the DSN of a new database with no migrations applied, for
// tests of the migrations themselves. It is dropped when the test ends.
func NewEmpty(t testing.TB) string {
	t.Helper()
	srv := state.server(t)
	name := srv.nextName("empty")
	srv.create(t, name, "template0")
	return srv.dsn(name)
}

// server returns the harness's server, starting it on first use. A failure to
// start is remembered, so every later test fails at once with the same error.
func (h *harness) server(t testing.TB) *server {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.inMain {
		t.Fatal("pgtest: add `func TestMain(m *testing.M) { pgtest.Main(m) }` to this package, " +
			"so the test server is cleaned up when the tests end")
	}
	if !h.started {
		h.started = true
		h.srv, h.err = startServer()
	}
	if h.err != nil {
		t.Fatalf("pgtest: %v", h.err)
	}
	return h.srv
}

func (h *harness) shutdown() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.srv == nil {
		return nil
	}
	err := h.srv.close()
	h.srv = nil
	return err
}

func startServer() (*server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	srv := &server{adminDSN: os.Getenv("DATABASE_URL")}
	if srv.adminDSN == "" {
		c, err := startCluster(ctx)
		if err != nil {
			return nil, err
		}
		srv.cluster = c
		srv.adminDSN = c.dsn
	}
	cfg, err := pgxpool.ParseConfig(srv.adminDSN)
	if err != nil {
		srv.close()
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	cfg.MaxConns = 4
	if srv.admin, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		srv.close()
		return nil, fmt.Errorf("connect to %s: %w", redact(srv.adminDSN), err)
	}

	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	srv.prefix = fmt.Sprintf("checkoutd_%d_%s", os.Getpid(), hex.EncodeToString(suffix))
	srv.template = srv.prefix + "_tmpl"
	if err := srv.createTemplate(ctx); err != nil {
		srv.close()
		return nil, err
	}
	return srv, nil
}

func (s *server) createTemplate(ctx context.Context) error {
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+ident(s.template)+" TEMPLATE template0"); err != nil {
		return fmt.Errorf("create template database on %s: %w", redact(s.adminDSN), err)
	}
	db, err := persistence.Open(ctx, s.dsn(s.template))
	if err != nil {
		return fmt.Errorf("open template database: %w", err)
	}
	err = db.Migrate(ctx)
	db.Close()
	if err != nil {
		return fmt.Errorf("migrate template database: %w", err)
	}
	// CREATE DATABASE ... TEMPLATE fails while anyone is connected to the
	// template, so keep stray sessions out.
	if _, err := s.admin.Exec(ctx, "ALTER DATABASE "+ident(s.template)+" ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("lock template database: %w", err)
	}
	return nil
}

func (s *server) nextName(kind string) string {
	return fmt.Sprintf("%s_%s_%d", s.prefix, kind, s.seq.Add(1))
}

func (s *server) create(t testing.TB, name, template string) {
	t.Helper()
	if _, err := s.admin.Exec(t.Context(), "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(template)); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// t.Context is already done when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
}

// close drops the template and stops the throwaway cluster. Databases of
// tests still running are dropped with the cluster, or left behind on a
// DATABASE_URL server.
func (s *server) close() error {
	var errs []error
	if s.admin != nil {
		if s.template != "" && s.cluster == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(s.template)+" WITH (FORCE)"); err != nil {
				errs = append(errs, fmt.Errorf("drop template database %s: %w", s.template, err))
			}
			cancel()
		}
		s.admin.Close()
	}
	if s.cluster != nil {
		errs = append(errs, s.cluster.stop())
	}
	return errors.Join(errs...)
}

// dsn returns the admin DSN pointed at database name. It accepts both URL
// and keyword/value DSNs.
func (s *server) dsn(name string) string {
	if u, err := url.Parse(s.adminDSN); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + name
		u.RawPath = ""
		q := u.Query()
		q.Del("dbname")
		u.RawQuery = q.Encode()
		return u.String()
	}
	// In keyword/value form the last setting of a keyword wins.
	return s.adminDSN + " dbname=" + name
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// redact hides the password of a DSN, for error messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "the DATABASE_URL server"
	}
	return u.Redacted()
}
