package actors_test

// The memory benchmark of the actor core, and helpers the actor benchmarks
// share, against Postgres (DATABASE_URL, or pgtest's throwaway cluster).
// The throughput and latency benchmarks are in journal_bench_test.go.
// Commands and figures: docs/benchmarks.md, "Actor core".

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/keypair"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/persistence/pgtest"
)

// openSessionsN is how many sessions are open (and their actors active)
// while the throughput and latency benchmarks run.
const openSessionsN = 10_000

// benchEnv is a database with open sessions and an actor system over it.
type benchEnv struct {
	db       *persistence.DB
	system   *actors.System
	sessions []checkout.Session
}

// newBenchEnv creates n open sessions of 1,000,000 XLM each and starts an
// actor system over them.
func newBenchEnv(b *testing.B, n int, cfg actors.Config) *benchEnv {
	b.Helper()
	ctx := context.Background()
	db, err := persistence.Open(ctx, pgtest.New(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	m, err := checkout.NewMerchant("Bench shop", keypair.MustRandom().Address(), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	if err := db.CreateMerchant(ctx, m); err != nil {
		b.Fatal(err)
	}
	e := &benchEnv{db: db, sessions: make([]checkout.Session, n)}
	for i := range e.sessions {
		s, err := checkout.NewSession(checkout.SessionParams{
			MerchantID: m.ID, ReceivingAccount: m.Account, Amount: 1_000_000 * checkout.StroopsPerUnit,
			Asset: checkout.NativeAsset, ExpiresIn: 24 * time.Hour, MemoType: checkout.MemoText,
		}, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		e.sessions[i] = s
	}
	parallel(b, n, 32, func(i int) error { return db.CreateSession(ctx, e.sessions[i]) })

	cfg.Store = db
	e.system, err = actors.Start(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = e.system.Stop(ctx)
	})
	return e
}

// parallel runs f(0..n-1) on workers goroutines and fails b on an error.
func parallel(b *testing.B, n, workers int, f func(i int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// activateAll loads every session into its actor.
func (e *benchEnv) activateAll(b *testing.B) {
	b.Helper()
	parallel(b, len(e.sessions), 16, func(i int) error {
		_, err := e.system.Sessions().Get(e.sessions[i].ID)
		return err
	})
	if got := e.system.ActiveSessions(); got != int64(len(e.sessions)) {
		b.Fatalf("%d active sessions, want %d", got, len(e.sessions))
	}
}

// BenchmarkActorMemory activates 10,000 session actors and measures the
// live heap they add, against the heap the same sessions take as plain
// values. Run it with -benchtime 1x: each run measures all 10,000 at once.
// CHECKOUTD_ACTOR_SESSIONS sets another number of actors. It also reports
// the whole test process's resident set (VmRSS) with every actor active:
// the harness and Postgres pool included, so an upper bound for them.
func BenchmarkActorMemory(b *testing.B) {
	n := 10_000
	if v := os.Getenv("CHECKOUTD_ACTOR_SESSIONS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	e := newBenchEnv(b, n, actors.Config{IdleTimeout: time.Hour})
	ctx := context.Background()

	// The session data: the sessions loaded from Postgres and kept, as an
	// actor keeps its own. This also warms the connection pool.
	before := liveHeap()
	loaded := make([]checkout.Session, n)
	parallel(b, n, 16, func(i int) error {
		var err error
		loaded[i], err = e.db.GetSession(ctx, e.sessions[i].ID)
		return err
	})
	sessionBytes := float64(liveHeap()-before) / float64(n)
	runtime.KeepAlive(loaded)
	loaded = nil

	before = liveHeap()
	e.activateAll(b)
	actorBytes := float64(liveHeap()-before) / float64(n)

	b.ReportMetric(actorBytes, "bytes/actor")
	b.ReportMetric(sessionBytes, "session-bytes")
	b.ReportMetric(actorBytes-sessionBytes, "overhead-bytes/actor")
	b.ReportMetric(float64(residentBytes(b))/(1<<20), "rss-MiB")
}

// residentBytes is this process's resident set size, from /proc.
func residentBytes(tb testing.TB) int64 {
	tb.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// liveHeap is the heap in use after garbage collection.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
