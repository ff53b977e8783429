package sandbox_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkoutd/checkoutd/stellar/sandbox"
	"github.com/checkoutd/checkoutd/stellar/sandbox/wallet"
	"github.com/stellar/go-stellar-sdk/amount"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// The benchmarks come in two kinds, because the client shares the two
// cores with the sandbox:
//   - "server" measures what the sandbox can take. Envelopes are built and
//     signed before the timer starts (signing is the wallet's cost), then
//     POSTed as raw tx= form bodies by a plain keep-alive net/http client
//     that discards the answers; streams are read as raw SSE bytes.
//   - "wallet" measures end to end with the client included: txnbuild
//     builds and signs in the loop and horizonclient submits, streams and
//     decodes, as checkoutd's load tests do.
//
// Each reports its throughput and the process's CPU time (client and
// server together) per payment, which depends much less on other load on
// the machine than the throughput does.

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

// cpuMeter reports the process's CPU time (user and system, all threads)
// per operation between start and stop.
type cpuMeter struct{ start time.Duration }

func (m *cpuMeter) reset() { m.start = processCPU() }

func (m *cpuMeter) report(b *testing.B, unit string) {
	if m.start < 0 {
		return
	}
	used := processCPU() - m.start
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/"+unit)
}

// signedPayments builds and signs total payments of one stroop with a text
// memo from the senders to dest, round robin, and returns each sender's
// envelopes as POST /transactions form bodies in sequence order. It signs
// on every core: this is setup, not the sandbox's work.
func signedPayments(b *testing.B, p *serverProc, senders []*keypair.Full, dest string, total int) [][][]byte {
	passphrase := p.passphrase(b)
	bodies := make([][][]byte, len(senders))
	var wg sync.WaitGroup
	var next atomic.Int64
	var failed atomic.Value
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(senders) {
					return
				}
				n := total / len(senders)
				if i < total%len(senders) {
					n++
				}
				acc, err := p.client.AccountDetail(horizonclient.AccountRequest{AccountID: senders[i].Address()})
				if err != nil {
					failed.Store(err)
					return
				}
				for range n {
					tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
						SourceAccount: &acc, IncrementSequenceNum: true, BaseFee: txnbuild.MinBaseFee, Memo: txnbuild.MemoText("bench"),
						Preconditions: txnbuild.Preconditions{TimeBounds: txnbuild.NewInfiniteTimeout()},
						Operations:    []txnbuild.Operation{&txnbuild.Payment{Destination: dest, Amount: "0.0000001", Asset: txnbuild.NativeAsset{}}},
					})
					if err == nil {
						tx, err = tx.Sign(passphrase, senders[i])
					}
					var b64 string
					if err == nil {
						b64, err = tx.Base64()
					}
					if err != nil {
						failed.Store(err)
						return
					}
					bodies[i] = append(bodies[i], []byte("tx="+url.QueryEscape(b64)))
				}
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
	return bodies
}

// postAll POSTs every sender's bodies in order, one goroutine per sender,
// over keep-alive connections, and fails the benchmark on any non-200.
// Every 64 senders share a transport: with one transport for a thousand
// senders, its idle-connection lock became the benchmark's bottleneck.
func postAll(b *testing.B, url string, bodies [][][]byte) {
	const perTransport = 64
	clients := make([]*http.Client, (len(bodies)+perTransport-1)/perTransport)
	for i := range clients {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = perTransport
		defer tr.CloseIdleConnections()
		clients[i] = &http.Client{Transport: tr}
	}
	var wg sync.WaitGroup
	for i, own := range bodies {
		client := clients[i/perTransport]
		wg.Go(func() {
			for _, body := range own {
				req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Errorf("POST /transactions: %d %v", resp.StatusCode, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// rawEvents reads a payments stream as SSE bytes until it has seen n
// events, then closes it. It gives up after five minutes or when ctx ends.
func rawEvents(ctx context.Context, streamURL string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, streamURL, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("stream: status %d", resp.StatusCode)
	}
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for seen := 0; seen < n; {
		line, err := r.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return fmt.Errorf("stream after %d events: %w", seen, err)
		}
		if bytes.HasPrefix(line, []byte("id: ")) {
			seen++
		}
	}
	return nil
}

// serverSubmit measures POST /transactions alone, served by a child
// process, with senders concurrent accounts: the payments are signed before
// the timer starts. It reports the server's CPU per payment apart from the
// client's.
func serverSubmit(b *testing.B, closeMode string, senders int) {
	p := startServerProc(b, closeMode)
	merchant := keypair.MustRandom()
	if _, err := p.client.Fund(merchant.Address()); err != nil {
		b.Fatal(err)
	}
	bodies := signedPayments(b, p, p.payersOver(b, min(senders, b.N)), merchant.Address(), b.N)
	before := p.nativeBalanceOver(b, merchant.Address())
	runtime.GC()
	b.ResetTimer()
	cpu := p.start(b)
	postAll(b, p.url+"/transactions", bodies)
	b.StopTimer()
	cpu.stop(b)
	cpu.report(b, "payment", b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
	if got := p.nativeBalanceOver(b, merchant.Address()); got != before+int64(b.N) && !b.Failed() {
		b.Fatalf("merchant holds %d stroops, want %d", got, before+int64(b.N))
	}
}

// mustStroops parses a Horizon amount into stroops.
func mustStroops(b *testing.B, s string) int64 {
	v, err := amount.ParseInt64(s)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// walletSubmit measures payments built, signed and submitted by parallel
// wallets through horizonclient: the client's cost is included.
func walletSubmit(b *testing.B, cfg sandbox.Config, parallelism int) {
	e := benchEnv(b, cfg)
	merchant := keypair.MustRandom()
	if err := e.net.Fund(context.Background(), merchant.Address()); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(parallelism)
	kps := payers(b, e, parallelism*runtime.GOMAXPROCS(0))
	var next atomic.Int64
	var cpu cpuMeter
	b.ResetTimer()
	cpu.reset()
	b.RunParallel(func(pb *testing.PB) {
		kp := kps[next.Add(1)-1]
		for pb.Next() {
			if _, err := e.wallet.Pay(context.Background(), kp, merchant.Address(), txnbuild.NativeAsset{}, "0.0000001", txnbuild.MemoText("bench")); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	cpu.report(b, "payment")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
}

// BenchmarkSubmitPayments measures payments submitted over HTTP, each
// answered after its ledger closed. "server" is the sandbox's capacity
// (pre-signed envelopes, raw POSTs); "wallet" is end to end with txnbuild
// and horizonclient in the loop. With close=100ms every account can pay
// once per ledger, so those runs need over 500 concurrent accounts to
// reach 5,000/s.
func BenchmarkSubmitPayments(b *testing.B) {
	b.Run("server/close=each-tx", func(b *testing.B) {
		serverSubmit(b, "each-tx", 64)
	})
	b.Run("server/close=100ms", func(b *testing.B) {
		serverSubmit(b, "100ms", 1024)
	})
	b.Run("wallet/close=each-tx", func(b *testing.B) {
		walletSubmit(b, sandbox.Config{CloseEachTransaction: true}, 16)
	})
	b.Run("wallet/close=100ms", func(b *testing.B) {
		walletSubmit(b, sandbox.Config{LedgerClose: 100 * time.Millisecond}, 512)
	})
}

// BenchmarkStreamPayments measures payments streamed with join=transactions
// from a backlog of one-payment transactions: "raw" reads the SSE bytes,
// measuring the server alone (including the first, lazy JSON marshalling
// of each record); "horizonclient" decodes every event with
// horizonclient.StreamPayments as the watcher does.
func BenchmarkStreamPayments(b *testing.B) {
	b.Run("raw", func(b *testing.B) {
		p := startServerProc(b, "each-tx")
		merchant := keypair.MustRandom()
		if _, err := p.client.Fund(merchant.Address()); err != nil {
			b.Fatal(err)
		}
		postAll(b, p.url+"/transactions", signedPayments(b, p, p.payersOver(b, min(64, b.N)), merchant.Address(), b.N))
		runtime.GC()
		b.ResetTimer()
		cpu := p.start(b)
		// b.N payments and the merchant's own create_account.
		if err := rawEvents(context.Background(), p.url+"/accounts/"+merchant.Address()+"/payments?cursor=0&join=transactions", b.N+1); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu.stop(b)
		cpu.report(b, "event", b.N)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("horizonclient", func(b *testing.B) {
		e, merchant := streamBacklog(b)
		var cpu cpuMeter
		b.ResetTimer()
		cpu.reset()
		last, err := clientEvents(e, merchant, b.N+1)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu.report(b, "event")
		if p, ok := last.(operations.Payment); !ok || p.Transaction == nil || p.Transaction.Memo != "bench" {
			b.Fatalf("last record %+v", last)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// clientEvents streams the account's payments with join=transactions
// through horizonclient, decoding each as the watcher does, until it has
// n of them, and returns the last. Unlike env.stream it allows minutes, not
// seconds: on a loaded machine a long benchmark stream takes longer.
func clientEvents(e *env, account string, n int) (operations.Operation, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := &horizonclient.Client{HorizonURL: e.srv.URL, HTTP: ctxDoer{ctx, e.srv.Client()}}
	var last operations.Operation
	seen := 0
	err := c.StreamPayments(ctx, horizonclient.OperationRequest{ForAccount: account, Cursor: "0", Join: "transactions"},
		func(op operations.Operation) {
			last = op
			if seen++; seen == n {
				cancel()
			}
		})
	if seen < n {
		return nil, fmt.Errorf("stream stopped after %d of %d payments: %w", seen, n, err)
	}
	return last, nil
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

// BenchmarkSubmitAndStream measures payments submitted while one stream of
// the merchant's payments receives every one of them; the clock stops when
// the last payment has been streamed. "server" POSTs pre-signed envelopes
// and reads raw SSE; "wallet" submits through parallel wallets and streams
// through horizonclient.
func BenchmarkSubmitAndStream(b *testing.B) {
	b.Run("server", func(b *testing.B) {
		p := startServerProc(b, "each-tx")
		merchant := keypair.MustRandom()
		if _, err := p.client.Fund(merchant.Address()); err != nil {
			b.Fatal(err)
		}
		bodies := signedPayments(b, p, p.payersOver(b, min(64, b.N)), merchant.Address(), b.N)
		streamed := make(chan error, 1)
		runtime.GC()
		b.ResetTimer()
		cpu := p.start(b)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			streamed <- rawEvents(ctx, p.url+"/accounts/"+merchant.Address()+"/payments?cursor=0&join=transactions", b.N+1)
		}()
		postAll(b, p.url+"/transactions", bodies)
		if b.Failed() {
			cancel() // some payments will never be streamed
		}
		if err := <-streamed; err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu.stop(b)
		cpu.report(b, "payment", b.N)
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
	})
	b.Run("wallet", func(b *testing.B) {
		e := benchEnv(b, sandbox.Config{CloseEachTransaction: true})
		merchant := keypair.MustRandom()
		if err := e.net.Fund(context.Background(), merchant.Address()); err != nil {
			b.Fatal(err)
		}
		const parallelism = 16
		b.SetParallelism(parallelism)
		kps := payers(b, e, parallelism*runtime.GOMAXPROCS(0))
		var next atomic.Int64
		streamed := make(chan error, 1)
		var cpu cpuMeter
		b.ResetTimer()
		cpu.reset()
		go func() {
			_, err := clientEvents(e, merchant.Address(), b.N+1)
			streamed <- err
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
		if err := <-streamed; err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu.report(b, "payment")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "payments/s")
	})
}
