package actors_test

// Benchmarks of the actor core against Postgres (DATABASE_URL, or pgtest's
// throwaway cluster). They start at the watcher's hand-off, Sessions.Observe,
// and end when the session actor's reply says the settlement is committed.
// Commands and figures: docs/benchmarks.md, "Actor core".

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"slices"
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
	store    *timedStore
	sessions []checkout.Session
	from     string
	opSeq    atomic.Int64
}

// newBenchEnv creates n open sessions of 1,000,000 XLM each, so that
// one-stroop payments never complete them, and starts an actor system.
// poolMax, when not zero, sets the Postgres pool's size (pgx's default is
// the larger of 4 and the number of CPUs).
func newBenchEnv(b *testing.B, n, poolMax int, cfg actors.Config) *benchEnv {
	b.Helper()
	ctx := context.Background()
	dsn := pgtest.New(b)
	if poolMax > 0 {
		u, err := url.Parse(dsn)
		if err != nil {
			b.Fatal(err)
		}
		q := u.Query()
		q.Set("pool_max_conns", strconv.Itoa(poolMax))
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	db, err := persistence.Open(ctx, dsn)
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
	e := &benchEnv{db: db, sessions: make([]checkout.Session, n), from: keypair.MustRandom().Address()}
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

	e.store = &timedStore{Store: db}
	cfg.Store = e.store
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

// timedStore records how long each Settle takes, to tell the time spent in
// Postgres from the time spent in the actors.
type timedStore struct {
	actors.Store
	mu    sync.Mutex
	took  []time.Duration
	timed atomic.Bool
}

func (s *timedStore) Settle(ctx context.Context, t checkout.Transition, readVersion int64) error {
	start := time.Now()
	err := s.Store.Settle(ctx, t, readVersion)
	if s.timed.Load() {
		took := time.Since(start)
		s.mu.Lock()
		s.took = append(s.took, took)
		s.mu.Unlock()
	}
	return err
}

// quantile returns the q-quantile of sorted, in milliseconds.
func quantile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	return float64(sorted[int(q*float64(len(sorted)-1))]) / float64(time.Millisecond)
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

// payment is a one-stroop payment to s with a fresh operation id.
func (e *benchEnv) payment(s checkout.Session, closedAt time.Time) checkout.Payment {
	op := e.opSeq.Add(1)
	return checkout.Payment{
		OperationID:     strconv.FormatInt(200<<32+op, 10),
		TransactionHash: fmt.Sprintf("%064x", op),
		OperationType:   "payment",
		From:            e.from,
		To:              s.ReceivingAccount,
		Amount:          1,
		Asset:           checkout.NativeAsset,
		MemoType:        "text",
		Memo:            s.Memo,
		LedgerClosedAt:  closedAt,
	}
}

// checkApplied fails b unless exactly want payments were applied.
func (e *benchEnv) checkApplied(b *testing.B, want int64) {
	b.Helper()
	var applied int64
	for _, s := range e.sessions {
		got, err := e.db.GetSession(context.Background(), s.ID)
		if err != nil {
			b.Fatal(err)
		}
		applied += int64(got.AmountReceived)
	}
	if applied != want {
		b.Fatalf("%d stroops applied, want %d", applied, want)
	}
}

// BenchmarkObserveThroughput hands payments to 10,000 active sessions with
// up to 1,024 in flight (the watcher's default MaxInFlight) and counts
// committed settlements per second.
func BenchmarkObserveThroughput(b *testing.B) {
	for _, pool := range []int{0, 32} {
		name := "pool=default"
		if pool > 0 {
			name = fmt.Sprintf("pool=%d", pool)
		}
		b.Run(name, func(b *testing.B) { benchmarkObserveThroughput(b, pool) })
	}
}

func benchmarkObserveThroughput(b *testing.B, poolMax int) {
	e := newBenchEnv(b, openSessionsN, poolMax, actors.Config{})
	e.activateAll(b)
	sessions := e.system.Sessions()
	closedAt := time.Now().UTC().Truncate(time.Second)
	sem := make(chan struct{}, 1024)
	var wg sync.WaitGroup
	var failed atomic.Int64
	var n int64
	cpu0, cpuOK := processCPU()
	start := time.Now()
	for b.Loop() {
		s := e.sessions[n%int64(len(e.sessions))]
		n++
		sem <- struct{}{}
		pp := sessions.Observe(s.ID, e.payment(s, closedAt), time.Now())
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := pp.Wait(); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, _ := processCPU()
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d payments failed", f, n)
	}
	e.checkApplied(b, n)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "payments/s")
	if cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(time.Microsecond)/float64(n), "cpu-µs/payment")
	}
}

// processCPU is the CPU time this process has used, user and system, read
// from /proc/self/stat; false where there is no such file.
func processCPU() (time.Duration, bool) {
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	// The fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th, in clock ticks of 1/100 s on Linux.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(raw[i+1:]))
	if len(fields) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, true
}

// BenchmarkObserveLatencyPaced sends payments at a fixed rate (1,000/s, the
// target, and 250/s, which this 2-core machine sustains) to 10,000 active
// sessions, open loop: each is stamped and measured from the
// time it was scheduled, so a stall delays the measurement of every payment
// scheduled behind it (no coordinated omission). Latency runs to the
// committed settlement's reply.
func BenchmarkObserveLatencyPaced(b *testing.B) {
	for _, rate := range []int{1000, 250} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) {
			benchmarkObserveLatencyPaced(b, time.Second/time.Duration(rate))
		})
	}
}

func benchmarkObserveLatencyPaced(b *testing.B, interval time.Duration) {
	// Past the machine's capacity the queue grows for the whole run; a long
	// ask timeout measures that wait instead of failing the payments.
	e := newBenchEnv(b, openSessionsN, 0, actors.Config{AskTimeout: 10 * time.Minute})
	e.activateAll(b)
	sessions := e.system.Sessions()
	closedAt := time.Now().UTC().Truncate(time.Second)
	var mu sync.Mutex
	var latencies []time.Duration
	var wg sync.WaitGroup
	var failed atomic.Int64
	var n int64
	e.store.timed.Store(true)
	start := time.Now().Add(10 * time.Millisecond)
	for b.Loop() {
		scheduled := start.Add(time.Duration(n) * interval)
		s := e.sessions[n%int64(len(e.sessions))]
		n++
		if d := time.Until(scheduled); d > 0 {
			time.Sleep(d)
		}
		pp := sessions.Observe(s.ID, e.payment(s, closedAt), scheduled)
		wg.Go(func() {
			_, err := pp.Wait()
			took := time.Since(scheduled)
			if err != nil {
				failed.Add(1)
				return
			}
			mu.Lock()
			latencies = append(latencies, took)
			mu.Unlock()
		})
	}
	wg.Wait()
	b.StopTimer()
	if f := failed.Load(); f > 0 {
		b.Fatalf("%d of %d payments failed", f, n)
	}
	e.checkApplied(b, n)
	slices.Sort(latencies)
	b.ReportMetric(quantile(latencies, 0.50), "p50-ms")
	b.ReportMetric(quantile(latencies, 0.99), "p99-ms")
	b.ReportMetric(quantile(latencies, 0.999), "p99.9-ms")
	b.ReportMetric(quantile(latencies, 1), "max-ms")
	// The same quantiles of the Settle calls alone: Postgres's share.
	settles := slices.Clone(e.store.took)
	slices.Sort(settles)
	b.ReportMetric(quantile(settles, 0.50), "settle-p50-ms")
	b.ReportMetric(quantile(settles, 0.99), "settle-p99-ms")
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
	e := newBenchEnv(b, n, 0, actors.Config{IdleTimeout: time.Hour})
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
