package persistence_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stellar/go-stellar-sdk/keypair"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/persistence/pgtest"
	"github.com/checkoutd/checkoutd/webhooks"
)

// BenchmarkSettleBatch commits batches of one-payment settlements to
// distinct sessions of 10,000 open ones, one batch at a time, with
// SettleBatch straight on the pool: what a settlement costs Postgres and
// this process at each batch size, without the actors. It reports, per
// settlement, the wall time and the CPU time of this process and of the
// Postgres backends serving it (read from /proc, so only when Postgres runs
// on this machine), which unlike the wall time hardly depend on what else
// the machine runs.
func BenchmarkSettleBatch(b *testing.B) {
	for _, size := range []int{1, 2, 4, 16, 128} {
		b.Run(fmt.Sprintf("rows=%d", size), func(b *testing.B) {
			ctx := context.Background()
			db, raw := benchDB(b)
			sessions := benchSessions(b, db, 10_000)
			now := time.Now().UTC().Truncate(time.Microsecond)
			var op int64
			next := 0
			batch := make([]persistence.Settlement, size)
			settleOnce := func() {
				for k := range batch {
					s := &sessions[next%len(sessions)]
					next++
					op++
					p := checkout.Payment{
						OperationID: strconv.FormatInt(400<<32+op, 10), TransactionHash: fmt.Sprintf("%064x", op),
						OperationType: "payment", From: s.ReceivingAccount, To: s.ReceivingAccount, Amount: 1,
						Asset: checkout.NativeAsset, MemoType: "text", Memo: s.Memo, LedgerClosedAt: now,
					}
					tr, err := checkout.Apply(*s, checkout.PaymentObserved{Payment: p}, now)
					if err != nil {
						b.Fatal(err)
					}
					batch[k] = persistence.Settlement{Transition: tr, ReadVersion: s.Version}
					*s = tr.Session
				}
				for i, err := range db.SettleBatch(ctx, batch) {
					if err != nil {
						b.Fatalf("row %d: %v", i, err)
					}
				}
			}
			settleOnce() // connect and prepare outside the clock
			rows := 0
			pids := backends(b, raw)
			wal0 := walLSN(b, raw)
			pg0, self0 := pidsCPU(pids), selfCPU()
			for b.Loop() {
				settleOnce()
				rows += size
			}
			pg, self := pidsCPU(pids)-pg0, selfCPU()-self0
			// WAL written in the loop, the whole cluster's: a measure of the
			// writes a settlement makes (heap and index entries) that the
			// machine's load does not change, when nothing else writes to
			// this cluster (pgtest's own, without DATABASE_URL).
			b.ReportMetric(float64(walLSN(b, raw)-wal0)/float64(rows), "wal-B/row")
			per := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(rows) }
			b.ReportMetric(per(b.Elapsed()), "wall-µs/row")
			b.ReportMetric(per(self), "cpu-µs/row")
			if pg > 0 {
				b.ReportMetric(per(pg), "pg-cpu-µs/row")
			}
		})
	}
}

// benchDB opens a fresh database through the store, and a plain
// connection to it for reading Postgres's own figures (backends, WAL).
func benchDB(b *testing.B) (*persistence.DB, *pgx.Conn) {
	b.Helper()
	ctx := context.Background()
	dsn := pgtest.New(b)
	db, err := persistence.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(db.Close)
	raw, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = raw.Close(context.Background()) })
	return db, raw
}

// benchSessions creates n open sessions of a million XLM, so that
// one-stroop payments never complete them.
func benchSessions(b *testing.B, db *persistence.DB, n int) []checkout.Session {
	ctx := context.Background()
	m, err := checkout.NewMerchant("Bench shop", keypair.MustRandom().Address(), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	if err := db.CreateMerchant(ctx, m); err != nil {
		b.Fatal(err)
	}
	// As in production, the merchant has a webhook endpoint, so each
	// event fans out to a delivery.
	if err := db.CreateWebhookEndpoint(ctx, persistence.WebhookEndpoint{
		ID: checkout.NewID(webhooks.PrefixEndpoint), MerchantID: m.ID, URL: "https://example.com/hook",
		EventTypes: []string{"*"}, Secret: webhooks.NewSecret(), CreatedAt: time.Now(),
	}); err != nil {
		b.Fatal(err)
	}
	sessions := make([]checkout.Session, n)
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && failed.Load() == nil; i = int(next.Add(1) - 1) {
				s, err := checkout.NewSession(checkout.SessionParams{
					MerchantID: m.ID, ReceivingAccount: m.Account, Amount: 1_000_000 * checkout.StroopsPerUnit,
					Asset: checkout.NativeAsset, ExpiresIn: 24 * time.Hour, MemoType: checkout.MemoText,
				}, time.Now())
				if err == nil {
					err = db.CreateSession(ctx, s)
				}
				if err != nil {
					failed.Store(&err)
					return
				}
				sessions[i] = s
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(*err)
	}
	for i := range sessions {
		s, err := db.GetSession(ctx, sessions[i].ID)
		if err != nil {
			b.Fatal(err)
		}
		sessions[i] = s
	}
	return sessions
}

// backends lists the server processes connected to raw's database, but
// for raw's own.
func backends(b *testing.B, raw *pgx.Conn) []int {
	rows, err := raw.Query(context.Background(),
		`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`)
	if err != nil {
		b.Fatal(err)
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		b.Fatal(err)
	}
	out := make([]int, len(pids))
	for i, p := range pids {
		out[i] = int(p)
	}
	return out
}

// pidsCPU sums the user and system time of the processes (0 for those it
// cannot read).
func pidsCPU(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		if _, cpu, ok := pgtest.ProcessCPU(pid); ok {
			total += cpu
		}
	}
	return total
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// walLSN is the cluster's current WAL insert position, in bytes.
func walLSN(b *testing.B, conn *pgx.Conn) int64 {
	b.Helper()
	var n int64
	if err := conn.QueryRow(context.Background(), `SELECT pg_current_wal_insert_lsn() - '0/0'`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}
