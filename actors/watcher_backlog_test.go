package actors_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"
	"github.com/stellar/go-stellar-sdk/xdr"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/persistence/pgtest"
	"github.com/checkoutd/checkoutd/stellar/horizon"
	"github.com/checkoutd/checkoutd/stellar/sandbox"
)

// backlogWorld is a merchant whose account received a backlog of payments
// while no watcher ran: a database, the sandbox over HTTP (counting JSON
// page and stream requests), and session actors settling through the
// chosen store.
type backlogWorld struct {
	tb       testing.TB
	db       *persistence.DB
	sql      *pgxpool.Pool
	net      *sandbox.Network
	url      string
	horizon  *horizon.Client
	kp       *keypair.Full
	merchant checkout.Merchant
	system   *actors.System
	journal  *actors.Journal // nil when settling straight on the pool
	sessions []checkout.Session
	// pages and streams count the full-size JSON pages and the streams of
	// payments the sandbox answered.
	pages, streams atomic.Int64
}

// backlogOptions shape a backlogWorld.
type backlogOptions struct {
	journal  bool
	poolSize int // 0: pgx's default
	// maxBatch and committers shape the journal; 0 takes its defaults.
	maxBatch, committers int
}

func newBacklogWorld(tb testing.TB, opts backlogOptions) *backlogWorld {
	tb.Helper()
	ctx := context.Background()
	dsn := pgtest.New(tb)
	if opts.poolSize > 0 {
		u, err := url.Parse(dsn)
		if err != nil {
			tb.Fatal(err)
		}
		q := u.Query()
		q.Set("pool_max_conns", strconv.Itoa(opts.poolSize))
		u.RawQuery = q.Encode()
		dsn = u.String()
	}
	db, err := persistence.Open(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(db.Close)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	w := &backlogWorld{tb: tb, db: db, sql: pool}

	n, err := sandbox.New(sandbox.Config{LedgerClose: 100 * time.Millisecond})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/payments") {
			if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
				w.streams.Add(1)
			} else if r.URL.Query().Get("limit") == strconv.Itoa(horizon.MaxPageLimit) {
				w.pages.Add(1) // not the caught-up check's one-record pages
			}
		}
		n.Handler().ServeHTTP(rw, r)
	}))
	tb.Cleanup(srv.Close)
	tb.Cleanup(func() { _ = n.Close() }) // first: ends streams so srv.Close does not wait
	nctx, cancel := context.WithCancel(ctx)
	tb.Cleanup(cancel)
	if err := n.Start(nctx); err != nil {
		tb.Fatal(err)
	}
	w.net, w.url = n, srv.URL
	if w.horizon, err = horizon.New(horizon.Config{URL: srv.URL, RequestTimeout: 10 * time.Second}); err != nil {
		tb.Fatal(err)
	}

	w.kp = keypair.MustRandom()
	if err := n.Fund(ctx, w.kp.Address()); err != nil {
		tb.Fatal(err)
	}
	if w.merchant, err = checkout.NewMerchant("Backlog shop", w.kp.Address(), time.Now()); err != nil {
		tb.Fatal(err)
	}
	if err := db.CreateMerchant(ctx, w.merchant); err != nil {
		tb.Fatal(err)
	}
	// The account is watched from here on, though no watcher runs yet.
	if err := db.EnsureCursor(ctx, w.kp.Address(), horizon.CursorAfterLedger(n.LatestLedger())); err != nil {
		tb.Fatal(err)
	}

	var store actors.Store = db
	if opts.journal {
		if w.journal, err = actors.StartJournal(actors.JournalConfig{
			Store: db, MaxBatch: opts.maxBatch, Committers: opts.committers,
		}); err != nil {
			tb.Fatal(err)
		}
		store = w.journal
		tb.Cleanup(func() { _ = w.journal.Stop(context.Background()) })
	}
	if w.system, err = actors.Start(actors.Config{Store: store, Logger: testLogger()}, nil); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = w.system.Stop(ctx)
	})
	return w
}

// backlogPayment is the amount of each backlog payment: 0.01 XLM.
const backlogPayment = checkout.StroopsPerUnit / 100

// fillBacklog opens sessionsN muxed sessions, each due per payments of
// backlogPayment, and has 50 customers pay all of them, in transactions of
// 100 payments to the sessions' M-addresses, submitted in parallel. It
// returns the paging token of the last payment.
func (w *backlogWorld) fillBacklog(sessionsN, per int) string {
	w.tb.Helper()
	ctx := context.Background()
	w.sessions = make([]checkout.Session, sessionsN)
	for i := range w.sessions {
		s, err := checkout.NewSession(checkout.SessionParams{
			MerchantID: w.merchant.ID, ReceivingAccount: w.kp.Address(),
			Amount: checkout.Amount(per) * backlogPayment, Asset: checkout.NativeAsset,
			ExpiresIn: 24 * time.Hour, MemoType: checkout.MemoMuxed,
		}, time.Now())
		if err != nil {
			w.tb.Fatal(err)
		}
		w.sessions[i] = s
	}
	runParallel(w.tb, sessionsN, 8, func(i int) error { return w.db.CreateSession(ctx, w.sessions[i]) })

	dests := make([]string, sessionsN)
	for i, s := range w.sessions {
		id, err := strconv.ParseUint(s.Memo, 10, 64)
		if err != nil {
			w.tb.Fatal(err)
		}
		m, err := xdr.MuxedAccountFromAccountId(w.kp.Address(), id)
		if err != nil {
			w.tb.Fatal(err)
		}
		dests[i] = m.Address()
	}
	// Round r pays every session once, so each transaction pays 100
	// different sessions and a session's payments are spread out.
	var txs [][]txnbuild.Operation
	var ops []txnbuild.Operation
	amount := checkout.Amount(backlogPayment).String()
	for range per {
		for _, d := range dests {
			ops = append(ops, &txnbuild.Payment{Destination: d, Amount: amount, Asset: txnbuild.NativeAsset{}})
			if len(ops) == 100 {
				txs, ops = append(txs, ops), nil
			}
		}
	}
	if len(ops) > 0 {
		txs = append(txs, ops)
	}

	const customersN = 50
	bank := keypair.MustRandom()
	if err := w.net.Fund(ctx, bank.Address()); err != nil {
		w.tb.Fatal(err)
	}
	customers := make([]*keypair.Full, customersN)
	var create []txnbuild.Operation
	for i := range customers {
		customers[i] = keypair.MustRandom()
		create = append(create, &txnbuild.CreateAccount{Destination: customers[i].Address(), Amount: "150"})
	}
	w.submit(bank, create)
	var wg sync.WaitGroup
	errs := make(chan error, customersN)
	for c, kp := range customers {
		wg.Go(func() {
			for k := c; k < len(txs); k += customersN {
				if err := w.trySubmit(kp, txs[k]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		w.tb.Fatal(err)
	}
	return w.lastPaymentToken()
}

func (w *backlogWorld) submit(kp *keypair.Full, ops []txnbuild.Operation) {
	w.tb.Helper()
	if err := w.trySubmit(kp, ops); err != nil {
		w.tb.Fatal(err)
	}
}

// trySubmit builds, signs and submits one transaction without HTTP and
// waits for its ledger.
func (w *backlogWorld) trySubmit(kp *keypair.Full, ops []txnbuild.Operation) error {
	acc, err := w.net.Account(kp.Address())
	if err != nil {
		return err
	}
	src := txnbuild.SimpleAccount{AccountID: kp.Address(), Sequence: acc.Sequence}
	tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
		SourceAccount: &src, IncrementSequenceNum: true, BaseFee: txnbuild.MinBaseFee,
		Preconditions: txnbuild.Preconditions{TimeBounds: txnbuild.NewInfiniteTimeout()},
		Operations:    ops,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := w.net.SubmitTransaction(ctx, tx, kp); err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	return nil
}

// lastPaymentToken reads the paging token of the account's newest payment.
func (w *backlogWorld) lastPaymentToken() string {
	w.tb.Helper()
	resp, err := http.Get(w.url + "/accounts/" + w.kp.Address() + "/payments?order=desc&limit=1")
	if err != nil {
		w.tb.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct {
		Embedded struct {
			Records []struct {
				PT string `json:"paging_token"`
			} `json:"records"`
		} `json:"_embedded"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil || len(page.Embedded.Records) != 1 {
		w.tb.Fatalf("newest payment: %+v, %v", page, err)
	}
	return page.Embedded.Records[0].PT
}

func (w *backlogWorld) watchers(flush time.Duration) *actors.Watchers {
	w.tb.Helper()
	ws, err := actors.NewWatchers(actors.WatchersConfig{
		DB: w.db, Horizon: w.horizon, Sessions: w.system.Sessions(), Logger: testLogger(),
		FlushInterval: flush, CaughtUpInterval: 100 * time.Millisecond,
		WatchdogTimeout: 10 * time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		w.tb.Fatal(err)
	}
	w.tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = ws.Stop(ctx)
	})
	return ws
}

func (w *backlogWorld) count(query string, args ...any) int {
	w.tb.Helper()
	var n int
	if err := w.sql.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		w.tb.Fatal(err)
	}
	return n
}

// cursorReached reports whether the durable cursor is at or past token.
func (w *backlogWorld) cursorReached(token string) bool {
	w.tb.Helper()
	c, err := w.db.GetCursor(context.Background(), w.kp.Address())
	if err != nil {
		w.tb.Fatal(err)
	}
	return horizon.ComparePagingTokens(c.PagingToken, token) >= 0
}

// TestWatcherDrainsBacklogInPages starts a watcher 2,000 payments behind:
// it pages through them in full JSON pages rather than streaming them one
// event at a time, records each exactly once, moves its cursor to the
// last, and then follows the stream.
func TestWatcherDrainsBacklogInPages(t *testing.T) {
	const sessionsN, per = 200, 10
	const n = sessionsN * per
	w := newBacklogWorld(t, backlogOptions{journal: true})
	last := w.fillBacklog(sessionsN, per)

	ws := w.watchers(50 * time.Millisecond)
	if err := ws.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the backlog to settle and the cursor to reach its end", func() bool {
		return w.count(`SELECT count(*) FROM payments`) == n && w.cursorReached(last)
	})
	if got := w.count(`SELECT count(DISTINCT operation_id) FROM payments`); got != n {
		t.Fatalf("%d distinct operations recorded, want %d", got, n)
	}
	if got := w.count(`SELECT count(*) FROM sessions WHERE status = 'complete' AND payment_status = 'paid'
		AND amount_received = amount`); got != sessionsN {
		t.Fatalf("%d sessions paid exactly, want %d", got, sessionsN)
	}
	if got := w.count(`SELECT count(*) FROM payments WHERE disposition = 'applied'`); got != n {
		t.Fatalf("%d payments applied, want %d", got, n)
	}
	// 2,000 payments are ten full pages and an empty one that ends the
	// paging; the stream then opened after the last payment and resent none.
	if p := w.pages.Load(); p < n/horizon.MaxPageLimit+1 || p > n/horizon.MaxPageLimit+3 {
		t.Errorf("%d JSON pages read, want about %d", p, n/horizon.MaxPageLimit+1)
	}
	waitFor(t, 10*time.Second, "the stream to open", func() bool { return w.streams.Load() >= 1 })
	st := ws.Stats()
	if st.Payments["applied"] != n || st.Payments["replayed"] != 0 || st.Payments["already_applied"] != 0 {
		t.Errorf("watcher stats %+v, want %d applied and nothing replayed", st.Payments, n)
	}

	// And on with the stream: a new payment rings it, and one page brings it.
	pagesBefore := w.pages.Load()
	s := w.sessions[0]
	fresh, err := checkout.NewSession(checkout.SessionParams{
		MerchantID: w.merchant.ID, ReceivingAccount: w.kp.Address(), Amount: backlogPayment,
		Asset: checkout.NativeAsset, ExpiresIn: time.Hour, MemoType: checkout.MemoText,
	}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.db.CreateSession(context.Background(), fresh); err != nil {
		t.Fatal(err)
	}
	customer := keypair.MustRandom()
	if err := w.net.Fund(context.Background(), customer.Address()); err != nil {
		t.Fatal(err)
	}
	tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
		SourceAccount:        &txnbuild.SimpleAccount{AccountID: customer.Address(), Sequence: mustSeq(t, w.net, customer.Address())},
		IncrementSequenceNum: true, BaseFee: txnbuild.MinBaseFee, Memo: txnbuild.MemoText(fresh.Memo),
		Preconditions: txnbuild.Preconditions{TimeBounds: txnbuild.NewInfiniteTimeout()},
		Operations: []txnbuild.Operation{&txnbuild.Payment{Destination: w.kp.Address(),
			Amount: checkout.Amount(backlogPayment).String(), Asset: txnbuild.NativeAsset{}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.net.SubmitTransaction(context.Background(), tx, customer); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the streamed payment", func() bool {
		return w.count(`SELECT count(*) FROM payments WHERE session_id = $1`, fresh.ID) == 1
	})
	// The stream's event rang the bell: one short page brought the payment
	// (the watcher takes operations only from sorted pages, see
	// watcher.stream).
	if p := w.pages.Load(); p != pagesBefore+1 {
		t.Errorf("%d more pages read for a streamed payment, want 1", p-pagesBefore)
	}
	if got := w.count(`SELECT count(*) FROM payments WHERE session_id = $1`, s.ID); got != per {
		t.Errorf("session 0 has %d payments, want %d", got, per)
	}
}

func mustSeq(t *testing.T, n *sandbox.Network, address string) int64 {
	t.Helper()
	acc, err := n.Account(address)
	if err != nil {
		t.Fatal(err)
	}
	return acc.Sequence
}

// BenchmarkBacklogDrain times a watcher draining a backlog: payments
// submitted while checkoutd was down, to sessions of 10 payments each,
// from the watcher's start until every payment is settled (settled/s) and
// until its durable cursor reaches the last one (drain-s). Run it with
// -benchtime 1x; CHECKOUTD_BACKLOG sets the number of payments (default
// 10,000), CHECKOUTD_BACKLOG_POOL the Postgres pool size (default 16),
// and CHECKOUTD_BACKLOG_MAX_BATCH and CHECKOUTD_BACKLOG_COMMITTERS the
// journal's (default: the journal's defaults).
// CHECKOUTD_BACKLOG_PROFILE=dir writes CPU, allocation and mutex profiles
// of the drain alone (not the backlog's making) into dir: journal-cpu.pprof,
// and allocs and mutex before and after, for pprof -base.
func BenchmarkBacklogDrain(b *testing.B) {
	env := func(name string, def int) int {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		return n
	}
	n := env("CHECKOUTD_BACKLOG", 10_000)
	pool := env("CHECKOUTD_BACKLOG_POOL", 16)
	maxBatch := env("CHECKOUTD_BACKLOG_MAX_BATCH", 0)
	committers := env("CHECKOUTD_BACKLOG_COMMITTERS", 0)
	const per = 10
	for _, store := range []string{"db", "journal"} {
		b.Run("store="+store, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				w := newBacklogWorld(b, backlogOptions{
					journal: store == "journal", poolSize: pool, maxBatch: maxBatch, committers: committers,
				})
				filled := time.Now()
				last := w.fillBacklog(n/per, per)
				b.Logf("backlog of %d payments filled in %s", n, time.Since(filled))
				ws := w.watchers(100 * time.Millisecond)
				stopProfiles := startProfiles(b, os.Getenv("CHECKOUTD_BACKLOG_PROFILE"), store)
				self0, pg0 := selfCPU(), postgresCPU()
				b.StartTimer()
				start := time.Now()
				if err := ws.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				// The watchers count a payment once its commit is
				// acknowledged. Asking Postgres for count(*) every 20 ms
				// instead cost it a scan of the growing payments table each
				// time, which slowed the 100,000 drain it was timing; the
				// count is checked in SQL at the end.
				recorded := func() int64 {
					st := ws.Stats()
					return st.Payments[string(checkout.DispositionApplied)] + st.Payments["already_applied"]
				}
				var settled time.Duration
				for {
					if settled == 0 && recorded() >= int64(n) {
						settled = time.Since(start)
					}
					if settled != 0 && w.cursorReached(last) {
						break
					}
					if time.Since(start) > 10*time.Minute {
						b.Fatal("the backlog did not drain in 10 minutes")
					}
					time.Sleep(20 * time.Millisecond)
				}
				drained := time.Since(start)
				b.StopTimer()
				self, pg := selfCPU()-self0, postgresCPU()-pg0
				stopProfiles()
				// CPU per payment hardly depends on what else the machine
				// runs, unlike settled/s: the drain keeps both cores busy,
				// so its rate is the cores over this cost.
				b.ReportMetric(float64(self.Microseconds())/float64(n), "cpu-µs/payment")
				b.ReportMetric(float64(pg.Microseconds())/float64(n), "pg-cpu-µs/payment")
				b.ReportMetric(float64(n)/settled.Seconds(), "settled/s")
				b.ReportMetric(drained.Seconds(), "drain-s")
				b.ReportMetric(float64(w.pages.Load()), "pages")
				if w.journal != nil {
					st := w.journal.Stats()
					b.ReportMetric(float64(st.Rows)/float64(max(st.Batches, 1)), "rows/batch")
					b.ReportMetric(float64(st.CommitTime.Milliseconds())/float64(max(st.Batches, 1)), "ms/batch")
				}
				if got := w.count(`SELECT count(*) FROM payments`); got != n {
					b.Fatalf("%d payments recorded, want %d", got, n)
				}
				if got := w.count(`SELECT count(*) FROM sessions WHERE status = 'complete' AND amount_received = amount`); got != n/per {
					b.Fatalf("%d sessions paid exactly, want %d", got, n/per)
				}
			}
		})
	}
}

// selfCPU is this process's user and system time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// postgresCPU is the user and system time so far of every process named
// postgres on this machine (backends, WAL writer, checkpointer), from
// /proc: the cost of a drain to the Postgres it runs on, when that is the
// only Postgres busy. It is 0 where /proc cannot be read.
func postgresCPU() time.Duration {
	dirs, _ := os.ReadDir("/proc")
	var total time.Duration
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if comm, cpu, ok := pgtest.ProcessCPU(pid); ok && comm == "postgres" {
			total += cpu
		}
	}
	return total
}

// startProfiles starts a CPU profile and snapshots the allocation and
// mutex profiles into dir, named after name; the returned func stops the
// CPU profile and snapshots the others again. An empty dir does nothing.
func startProfiles(tb testing.TB, dir, name string) (stop func()) {
	tb.Helper()
	if dir == "" {
		return func() {}
	}
	write := func(profile, suffix string) {
		f, err := os.Create(filepath.Join(dir, name+"-"+profile+"-"+suffix+".pprof"))
		if err != nil {
			tb.Fatal(err)
		}
		defer f.Close()
		if err := pprof.Lookup(profile).WriteTo(f, 0); err != nil {
			tb.Fatal(err)
		}
	}
	runtime.SetMutexProfileFraction(10)
	write("allocs", "before")
	write("mutex", "before")
	cpu, err := os.Create(filepath.Join(dir, name+"-cpu.pprof"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		tb.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		cpu.Close()
		write("allocs", "after")
		write("mutex", "after")
		runtime.SetMutexProfileFraction(0)
	}
}
