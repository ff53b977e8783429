package persistence_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/keypair"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

// BenchmarkCreateSessions creates sessions, each with an idempotency
// record, one batch at a time: "classic" is what a create cost before the
// group commit (claim the key, insert the session, store the answer: three
// statements and three commits), "batch" is CreateSessions with that many
// rows in one commit. It reports, per session, the wall time and the CPU
// time of this process and of the Postgres backends serving it (see
// BenchmarkSettleBatch), which hardly depend on what else the machine runs.
func BenchmarkCreateSessions(b *testing.B) {
	for _, size := range []int{0, 1, 4, 16, 128} {
		name := fmt.Sprintf("batch/rows=%d", size)
		if size == 0 {
			name = "classic"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			db, raw := benchDB(b)
			m, err := checkout.NewMerchant("Bench shop", keypair.MustRandom().Address(), time.Now())
			if err != nil {
				b.Fatal(err)
			}
			if err := db.CreateMerchant(ctx, m); err != nil {
				b.Fatal(err)
			}
			body := make([]byte, 1100) // about a session answer's size
			n := 0
			newRow := func() persistence.SessionCreate {
				n++
				s, err := checkout.NewSession(checkout.SessionParams{MerchantID: m.ID, ReceivingAccount: m.Account,
					Amount: 10 * checkout.StroopsPerUnit, Asset: checkout.NativeAsset, ExpiresIn: time.Hour,
					Metadata: map[string]string{"order": "bench"}}, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				return persistence.SessionCreate{Session: s, Idempotency: &persistence.IdempotentResponse{
					Key: fmt.Sprintf("bench-%d", n), RequestHash: make([]byte, 32), Status: 201, Body: body, CreatedAt: time.Now()}}
			}
			rows := make([]persistence.SessionCreate, max(size, 1))
			once := func() {
				for i := range rows {
					rows[i] = newRow()
				}
				if size == 0 {
					r := rows[0]
					now := time.Now()
					if _, claimed, err := db.ClaimIdempotencyKey(ctx, m.ID, r.Idempotency.Key, r.Idempotency.RequestHash, now, now.Add(-time.Minute)); err != nil || !claimed {
						b.Fatalf("claim: %v %v", claimed, err)
					}
					if err := db.CreateSession(ctx, r.Session); err != nil {
						b.Fatal(err)
					}
					if err := db.CompleteIdempotencyKey(ctx, m.ID, r.Idempotency.Key, 201, body); err != nil {
						b.Fatal(err)
					}
					return
				}
				for i, err := range db.CreateSessions(ctx, rows) {
					if err != nil {
						b.Fatalf("row %d: %v", i, err)
					}
				}
			}
			once() // connect and prepare outside the clock
			created := 0
			pids := backends(b, raw)
			pg0, self0 := pidsCPU(pids), selfCPU()
			for b.Loop() {
				once()
				created += len(rows)
			}
			pg, self := pidsCPU(pids)-pg0, selfCPU()-self0
			per := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(created) }
			b.ReportMetric(per(b.Elapsed()), "wall-µs/session")
			b.ReportMetric(per(self), "cpu-µs/session")
			if pg > 0 {
				b.ReportMetric(per(pg), "pg-cpu-µs/session")
			}
		})
	}
}
