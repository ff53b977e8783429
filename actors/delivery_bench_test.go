package actors_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/keypair"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/persistence/pgtest"
	"github.com/checkoutd/checkoutd/webhooks"
)

// benchWorld is the benchmark's database: merchants with two endpoints
// each (so every event is two deliveries), all on one local receiver.
type benchWorld struct {
	dsn       string // with the pool's settings
	plainDSN  string // for a single connection
	db        *persistence.DB
	pool      *pgxpool.Pool // for events committed in batches
	merchants []checkout.Merchant
	ops       atomic.Int64

	mu      sync.Mutex
	arrived map[string]time.Time // first arrival per endpoint path and webhook-id
	hits    atomic.Int64
	srv     *httptest.Server
}

func newBenchWorld(b *testing.B, merchants, endpointsEach int) *benchWorld {
	b.Helper()
	// pgxpool's default of max(4, CPUs) connections would cap the
	// producers and the engine together; production sizes it the same way,
	// with pool_max_conns in DATABASE_URL.
	dsn := pgtest.New(b)
	plain := dsn
	switch {
	case strings.HasPrefix(dsn, "postgres") && strings.Contains(dsn, "?"):
		dsn += "&pool_max_conns=40"
	case strings.HasPrefix(dsn, "postgres"):
		dsn += "?pool_max_conns=40"
	default:
		dsn += " pool_max_conns=40"
	}
	db, err := persistence.Open(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	w := &benchWorld{dsn: dsn, plainDSN: plain, db: db, pool: pool, arrived: make(map[string]time.Time)}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		now := time.Now()
		w.hits.Add(1)
		key := r.URL.Path + " " + r.Header.Get("webhook-id")
		w.mu.Lock()
		if _, ok := w.arrived[key]; !ok {
			w.arrived[key] = now
		}
		w.mu.Unlock()
	}))
	b.Cleanup(w.srv.Close)
	for i := range merchants {
		m, err := checkout.NewMerchant(fmt.Sprintf("Bench %d", i), keypair.MustRandom().Address(), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if err := db.CreateMerchant(context.Background(), m); err != nil {
			b.Fatal(err)
		}
		for j := range endpointsEach {
			ep := persistence.WebhookEndpoint{ID: checkout.NewID(webhooks.PrefixEndpoint), MerchantID: m.ID,
				URL: fmt.Sprintf("%s/m%d/e%d", w.srv.URL, i, j), EventTypes: []string{"*"}, Secret: webhooks.NewSecret(),
				CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
			if err := db.CreateWebhookEndpoint(context.Background(), ep); err != nil {
				b.Fatal(err)
			}
		}
		w.merchants = append(w.merchants, m)
	}
	return w
}

// event commits one event for merchant i and returns its id.
func (w *benchWorld) event(b *testing.B, i int) string {
	op := w.ops.Add(1)
	m := w.merchants[i%len(w.merchants)]
	now := time.Now()
	p, events := checkout.Unmatched(checkout.Payment{
		OperationID: strconv.FormatInt(9<<32+op, 10), TransactionHash: fmt.Sprintf("%064x", op),
		OperationType: "payment", From: m.Account, To: m.Account, Amount: 1, Asset: checkout.NativeAsset,
		LedgerClosedAt: now.UTC().Truncate(time.Second),
	}, []string{m.ID}, now.UTC().Truncate(time.Microsecond))
	if err := w.db.RecordUnmatched(context.Background(), p, events); err != nil {
		b.Error(err)
		return ""
	}
	return events[0].ID
}

// events commits n events for merchant i in one statement (the trigger
// fans each out) and returns their ids.
func (w *benchWorld) events(b *testing.B, i, n int) []string {
	m := w.merchants[i%len(w.merchants)]
	now := time.Now().UTC().Truncate(time.Microsecond)
	ids := make([]string, n)
	for j := range ids {
		ids[j] = checkout.NewID(checkout.PrefixEvent)
	}
	if _, err := w.pool.Exec(context.Background(), `INSERT INTO events (id, type, merchant_id, payload, created_at)
		SELECT id, $2, $3, '{}', $4 FROM unnest($1::text[]) AS id`,
		ids, checkout.EventPaymentUnmatched, m.ID, now); err != nil {
		b.Error(err)
		return nil
	}
	return ids
}

func (w *benchWorld) engine(b *testing.B) *actors.DeliveryEngine {
	p, _ := webhooks.Policy{AllowInsecure: true}.ParseAllowlist([]string{"127.0.0.1"})
	cfg := actors.DeliveryConfig{Store: w.db, Render: testRender, Client: webhooks.NewClient(webhooks.ClientConfig{Policy: p})}
	if os.Getenv("CHECKOUTD_BENCH_DEBUG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	eng, err := actors.StartDeliveryEngine(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = eng.Stop(ctx)
	})
	return eng
}

// cpuTime is the CPU time used so far by this process, and by the
// throwaway Postgres cluster pgtest started as its child (the postmaster
// and its children), or 0 for Postgres when the server is someone else's.
// CPU time, unlike wall time, does not depend on what else the machine
// runs.
func cpuTime() (self, pg time.Duration) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	ticks := func(stat string) (ppid int, t int64, ok bool) {
		// pid (comm) state ppid ... utime(14) stime(15)
		i := strings.LastIndexByte(stat, ')')
		if i < 0 {
			return 0, 0, false
		}
		f := strings.Fields(stat[i+1:])
		if len(f) < 13 {
			return 0, 0, false
		}
		ppid, _ = strconv.Atoi(f[1])
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		return ppid, u + st, true
	}
	procs, _ := os.ReadDir("/proc")
	type proc struct {
		ppid  int
		ticks int64
	}
	all := map[int]proc{}
	for _, d := range procs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		if ppid, t, ok := ticks(string(b)); ok {
			all[pid] = proc{ppid, t}
		}
	}
	var total int64
	me := os.Getpid()
	for pid, p := range all {
		if p.ppid == me && strings.Contains(readComm(pid), "postgres") {
			total += p.ticks
			for _, c := range all {
				if c.ppid == pid {
					total += c.ticks
				}
			}
		}
	}
	const hz = 100 // USER_HZ on Linux
	return self, time.Duration(total) * time.Second / hz
}

func readComm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return string(b)
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))]
}

// BenchmarkWebhookDelivery measures, with the default engine settings and
// a local receiver:
//
//   - latency: events committed at 50/s, 250/s and 1,000/s for 5 s by 32
//     producers, each event delivered to 2 endpoints (so 100, 500 and 2,000
//     deliveries/s); from just before the committing call to the first
//     attempt's arrival, p50 and p99;
//   - drain: 10,000 deliveries already due when the engine starts, and how
//     fast it sends and records them.
//
// It does a fixed amount of work whatever b.N; run it with -benchtime 1x.
//
// The endpoints=1 cases send everything to a single endpoint (one merchant
// with one endpoint, so one delivery per event): the one busy endpoint of
// a single-merchant live load, where the per-endpoint limit binds.
func BenchmarkWebhookDelivery(b *testing.B) {
	for _, rate := range []int{50, 250, 1000} {
		b.Run(fmt.Sprintf("latency/events=%d/s", rate), func(b *testing.B) { benchLatency(b, rate, 10, 2, 1) })
	}
	b.Run("drain", func(b *testing.B) { benchDrain(b, 5000, 10, 2) })
	for _, rate := range []int{1000, 2000} {
		b.Run(fmt.Sprintf("latency/endpoints=1/events=%d/s", rate), func(b *testing.B) { benchLatency(b, rate, 1, 1, 1) })
	}
	// One commit per event costs the producers more than the engine spends
	// delivering it; committed 10 at a time, the producers reach these
	// rates on this machine.
	for _, rate := range []int{1000, 2000} {
		b.Run(fmt.Sprintf("latency/endpoints=1/batch=10/events=%d/s", rate), func(b *testing.B) { benchLatency(b, rate, 1, 1, 10) })
	}
	b.Run("drain/endpoints=1", func(b *testing.B) { benchDrain(b, 10000, 1, 1) })
}

// pgWork is what the Postgres server did for the benchmark's database so
// far: the CPU time of the backends connected to it now (the pool's
// connections, which live through a run, and the engine's listener), and
// the transactions committed in it. It reads them over a connection of its
// own, so each reading adds one transaction. Postgres publishes a backend's
// counters up to a second late; the caller waits before the last reading.
func pgWork(b *testing.B, dsn string) (cpu time.Duration, commits int64) {
	b.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	for _, pid := range pids {
		if t, ok := procCPU(int(pid)); ok {
			cpu += t
		}
	}
	if err := conn.QueryRow(context.Background(), `SELECT xact_commit FROM pg_stat_database
		WHERE datname = current_database()`).Scan(&commits); err != nil {
		b.Fatal(err)
	}
	return cpu, commits
}

// reportPG reports the Postgres work between two pgWork readings per unit
// of work, when the server is DATABASE_URL's (pgtest's own cluster is
// already in cpuTime).
func reportPG(b *testing.B, cpu0, cpu1 time.Duration, commits0, commits1 int64, n int, unit string) {
	if os.Getenv("DATABASE_URL") != "" {
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(n), "pg-backend-cpu-µs/"+unit)
	}
	b.ReportMetric(float64(commits1-commits0-1)/float64(n), "pg-commits/"+unit)
}

// benchLatency commits rate events a second for 5 s, one event per
// commit through RecordUnmatched, or with batch > 1, batch events per
// commit (the journal commits many settlements' events at once).
func benchLatency(b *testing.B, rate, merchants, perMerchant, batch int) {
	{
		const seconds, producers = 5, 32
		w := newBenchWorld(b, merchants, perMerchant)
		w.engine(b)
		time.Sleep(200 * time.Millisecond) // LISTEN is up
		type sent struct {
			id string
			at time.Time
		}
		var (
			mu    sync.Mutex
			sents []sent
			wg    sync.WaitGroup
		)
		total := rate * seconds / batch
		interval := time.Duration(producers*batch) * time.Second / time.Duration(rate)
		pgCPU0, commits0 := pgWork(b, w.plainDSN)
		start := time.Now()
		selfBefore, pgBefore := cpuTime()
		b.ResetTimer()
		for p := range producers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				next := start.Add(time.Duration(p*batch) * time.Second / time.Duration(rate))
				for i := p; i < total; i += producers {
					time.Sleep(time.Until(next))
					next = next.Add(interval)
					at := time.Now()
					var ids []string
					if batch == 1 {
						ids = []string{w.event(b, i)}
					} else {
						ids = w.events(b, i, batch)
					}
					mu.Lock()
					for _, id := range ids {
						if id != "" {
							sents = append(sents, sent{id, at})
						}
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		produced := time.Since(start)
		want := int64(len(sents) * perMerchant)
		deadline := time.Now().Add(60 * time.Second)
		for w.hits.Load() < want && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		selfAfter, pgAfter := cpuTime()
		b.StopTimer()
		time.Sleep(1500 * time.Millisecond) // the backends publish their counters
		pgCPU1, commits1 := pgWork(b, w.plainDSN)
		reportPG(b, pgCPU0, pgCPU1, commits0, commits1, len(sents), "event")
		w.mu.Lock()
		defer w.mu.Unlock()
		// Per event: its commit (with the trigger's fan-out) and its two
		// deliveries.
		b.ReportMetric(float64((selfAfter-selfBefore).Microseconds())/float64(len(sents)), "go-cpu-µs/event")
		b.ReportMetric(float64((pgAfter-pgBefore).Microseconds())/float64(len(sents)), "pg-cpu-µs/event")
		byID := map[string]time.Time{}
		var last time.Time
		for key, at := range w.arrived {
			id := key[len(key)-len("evt_")-24:]
			if prev, ok := byID[id]; !ok || at.Before(prev) {
				byID[id] = at
			}
			if at.After(last) {
				last = at
			}
		}
		var lat []time.Duration
		for _, s := range sents {
			if at, ok := byID[s.id]; ok {
				lat = append(lat, max(0, at.Sub(s.at)))
			}
		}
		if testing.Verbose() {
			// p99 per second of the run, to tell warm-up from steady state.
			buckets := map[int][]time.Duration{}
			for _, s := range sents {
				if at, ok := byID[s.id]; ok {
					sec := int(s.at.Sub(start) / time.Second)
					buckets[sec] = append(buckets[sec], max(0, at.Sub(s.at)))
				}
			}
			for sec := range seconds + 1 {
				l := buckets[sec]
				slices.Sort(l)
				b.Logf("second %d: %d events, p50 %s, p99 %s", sec, len(l), percentile(l, 0.5), percentile(l, 0.99))
			}
		}
		slices.Sort(lat)
		b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		b.ReportMetric(float64(len(sents))/produced.Seconds(), "events/s")
		b.ReportMetric(float64(len(w.arrived))/last.Sub(start).Seconds(), "deliveries/s")
		if len(w.arrived) != int(want) {
			b.Errorf("%d of %d deliveries arrived", len(w.arrived), want)
		}
	}
}

func benchDrain(b *testing.B, events, merchants, perMerchant int) {
	{
		w := newBenchWorld(b, merchants, perMerchant)
		for i := range events {
			w.event(b, i)
		}
		want := int64(events * perMerchant)
		time.Sleep(1500 * time.Millisecond) // the backends publish their counters
		pgCPU0, commits0 := pgWork(b, w.plainDSN)
		b.ResetTimer()
		start := time.Now()
		selfBefore, pgBefore := cpuTime()
		eng := w.engine(b)
		deadline := time.Now().Add(120 * time.Second)
		for eng.Stats().Succeeded.Load() < want && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		took := time.Since(start)
		selfAfter, pgAfter := cpuTime()
		pgCPU1, _ := pgWork(b, w.plainDSN)
		b.StopTimer()
		time.Sleep(1500 * time.Millisecond) // the backends publish their counters
		_, commits1 := pgWork(b, w.plainDSN)
		reportPG(b, pgCPU0, pgCPU1, commits0, commits1-1, int(want), "delivery")
		done := float64(eng.Stats().Succeeded.Load())
		b.ReportMetric(done/took.Seconds(), "deliveries/s")
		b.ReportMetric(float64((selfAfter-selfBefore).Microseconds())/done, "go-cpu-µs/delivery")
		b.ReportMetric(float64((pgAfter-pgBefore).Microseconds())/done, "pg-cpu-µs/delivery")
		if got := eng.Stats().Succeeded.Load(); got != want {
			b.Errorf("%d of %d deliveries recorded", got, want)
		}
	}
}
