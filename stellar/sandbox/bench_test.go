package sandbox_test

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkoutd/checkoutd/stellar/sandbox"
	"github.com/checkoutd/checkoutd/stellar/sandbox/wallet"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// benchEnv is an env whose HTTP client keeps enough idle connections for
// many parallel submitters.
func benchEnv(b *testing.B, cfg sandbox.Config) *env {
	cfg.FriendbotAmount = 1_000_000 * 10_000_000 // a million XLM: enough to fund every payer
	e := newEnv(b, cfg)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4096
	e.client = &horizonclient.Client{HorizonURL: e.srv.URL, HTTP: &http.Client{Transport: tr}}
	e.wallet = wallet.New(e.client, e.net.Passphrase())
	return e
}

// payers creates count funded accounts, 100 per transaction, without HTTP.
func payers(b *testing.B, e *env, count int) []*keypair.Full {
	ctx := context.Background()
	bank := keypair.MustRandom()
	if err := e.net.Fund(ctx, bank.Address()); err != nil {
		b.Fatal(err)
	}
	acc, err := e.net.Account(bank.Address())
	if err != nil {
		b.Fatal(err)
	}
	var kps []*keypair.Full
	for len(kps) < count {
		var ops []txnbuild.Operation
		for i := 0; i < 100 && len(kps) < count; i++ {
			kp := keypair.MustRandom()
			kps = append(kps, kp)
			ops = append(ops, &txnbuild.CreateAccount{Destination: kp.Address(), Amount: "20"})
		}
		tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
			SourceAccount: &acc, IncrementSequenceNum: true, BaseFee: txnbuild.MinBaseFee,
			Preconditions: txnbuild.Preconditions{TimeBounds: txnbuild.NewInfiniteTimeout()}, Operations: ops,
		})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.net.SubmitTransaction(ctx, tx, bank); err != nil {
			b.Fatal(err)
		}
	}
	return kps
}

func benchmarkSubmit(b *testing.B, cfg sandbox.Config, parallelism int) {
	e := benchEnv(b, cfg)
	merchant := keypair.MustRandom()
	if err := e.net.Fund(context.Background(), merchant.Address()); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(parallelism)
	kps := payers(b, e, parallelism*runtime.GOMAXPROCS(0))
	var next atomic.Int64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		kp := kps[next.Add(1)-1]
		for pb.Next() {
			if _, err := e.wallet.Pay(context.Background(), kp, merchant.Address(), txnbuild.NativeAsset{}, "0.0000001", txnbuild.MemoText("bench")); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
}

// BenchmarkSubmitPayments measures payments built, signed and POSTed over
// HTTP by parallel wallets, each answered after its ledger closed.
func BenchmarkSubmitPayments(b *testing.B) {
	b.Run("close=each-tx", func(b *testing.B) {
		benchmarkSubmit(b, sandbox.Config{CloseEachTransaction: true}, 16)
	})
	b.Run("close=100ms", func(b *testing.B) {
		benchmarkSubmit(b, sandbox.Config{LedgerClose: 100 * time.Millisecond}, 512)
	})
}

// BenchmarkStreamPayments measures payments streamed with join=transactions
// from a backlog of one-payment transactions: "horizonclient" decodes every
// event with horizonclient.StreamPayments as the watcher does; "raw" reads
// the SSE bytes, measuring the server alone (including the first, lazy
// JSON marshalling of each record).
func BenchmarkStreamPayments(b *testing.B) {
	b.Run("horizonclient", func(b *testing.B) {
		e, merchant := streamBacklog(b)
		b.ResetTimer()
		got := e.stream(b, merchant, "0", b.N+1)
		b.StopTimer()
		if p, ok := got[len(got)-1].(operations.Payment); !ok || p.Transaction == nil || p.Transaction.Memo != "bench" {
			b.Fatalf("last record %+v", got[len(got)-1])
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("raw", func(b *testing.B) {
		e, merchant := streamBacklog(b)
		b.ResetTimer()
		req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/accounts/"+merchant+"/payments?cursor=0&join=transactions", nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Accept", "text/event-stream")
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		r := bufio.NewReaderSize(resp.Body, 64<<10)
		for n := 0; n < b.N+1; {
			line, err := r.ReadSlice('\n')
			if err != nil && err != bufio.ErrBufferFull {
				b.Fatal(err)
			}
			if bytes.HasPrefix(line, []byte("id: ")) {
				n++
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// streamBacklog submits b.N one-payment transactions (with a text memo)
// to a new merchant without HTTP and returns the merchant's address.
func streamBacklog(b *testing.B) (*env, string) {
	e := benchEnv(b, sandbox.Config{CloseEachTransaction: true})
	ctx := context.Background()
	src := payers(b, e, 1)[0]
	merchant := keypair.MustRandom()
	if err := e.net.Fund(ctx, merchant.Address()); err != nil {
		b.Fatal(err)
	}
	acc, err := e.net.Account(src.Address())
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
			SourceAccount: &acc, IncrementSequenceNum: true, BaseFee: txnbuild.MinBaseFee, Memo: txnbuild.MemoText("bench"),
			Preconditions: txnbuild.Preconditions{TimeBounds: txnbuild.NewInfiniteTimeout()},
			Operations:    []txnbuild.Operation{&txnbuild.Payment{Destination: merchant.Address(), Amount: "0.0000001", Asset: txnbuild.NativeAsset{}}},
		})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.net.SubmitTransaction(ctx, tx, src); err != nil {
			b.Fatal(err)
		}
	}
	return e, merchant.Address()
}

// BenchmarkSubmitAndStream measures end to end: parallel wallets submit
// over HTTP while one horizonclient stream receives every payment.
func BenchmarkSubmitAndStream(b *testing.B) {
	e := benchEnv(b, sandbox.Config{CloseEachTransaction: true})
	merchant := keypair.MustRandom()
	if err := e.net.Fund(context.Background(), merchant.Address()); err != nil {
		b.Fatal(err)
	}
	cursor := strconv.FormatInt(0, 10)
	const parallelism = 16
	b.SetParallelism(parallelism)
	kps := payers(b, e, parallelism*runtime.GOMAXPROCS(0))
	var next atomic.Int64
	streamed := make(chan int, 1)
	b.ResetTimer()
	go func() {
		got := e.streamUntil(b, merchant.Address(), cursor, func(ops []operations.Operation) bool { return len(ops) >= b.N+1 })
		streamed <- len(got)
	}()
	b.RunParallel(func(pb *testing.PB) {
		kp := kps[next.Add(1)-1]
		for pb.Next() {
			if _, err := e.wallet.Pay(context.Background(), kp, merchant.Address(), txnbuild.NativeAsset{}, "0.0000001", txnbuild.MemoText("bench")); err != nil {
				b.Error(err)
				return
			}
		}
	})
	<-streamed
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
}
