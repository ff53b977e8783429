package sandbox_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/checkoutd/checkoutd/stellar/sandbox"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// serverEnv, when set in the environment, makes the test binary a bare
// sandbox server instead of running tests: "each-tx" closes a ledger per
// transaction, a duration (such as "100ms") closes ledgers on that timer.
const serverEnv = "CHECKOUTD_SANDBOX_BENCH_SERVER"

// profileEnv names a directory: each server benchmark then writes the
// server process's CPU profile of its timed part there, as
// <benchmark>.cpu.prof.
const profileEnv = "CHECKOUTD_SANDBOX_SERVER_PROFILE"

// TestMain runs the package's tests, or, with serverEnv set, serves the
// sandbox for a benchmark in the parent process (see startServerProc).
func TestMain(m *testing.M) {
	if mode := os.Getenv(serverEnv); mode != "" {
		os.Exit(runBenchServer(mode, os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// runBenchServer serves a sandbox network on a free port of 127.0.0.1,
// prints its address, then answers commands read from in, one a line,
// until in ends:
//   - "cpu": the CPU time the process has used, in nanoseconds;
//   - "profile <path>": start a CPU profile written to path;
//   - "stop": stop the profile.
//
// Each command is answered with one line; an error starts with "error:".
func runBenchServer(closeMode string, in io.Reader, out io.Writer) int {
	cfg := sandbox.Config{FriendbotAmount: 1_000_000 * 10_000_000}
	if closeMode == "each-tx" {
		cfg.CloseEachTransaction = true
	} else {
		d, err := time.ParseDuration(closeMode)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s=%q: %v\n", serverEnv, closeMode, err)
			return 2
		}
		cfg.LedgerClose = d
	}
	n, err := sandbox.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := n.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer n.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{Handler: n.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	fmt.Fprintln(out, "http://"+ln.Addr().String())

	var profile *os.File
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		cmd, arg, _ := strings.Cut(sc.Text(), " ")
		switch cmd {
		case "cpu":
			fmt.Fprintln(out, int64(processCPU()))
		case "profile":
			f, err := os.Create(arg)
			if err == nil {
				err = pprof.StartCPUProfile(f)
			}
			if err != nil {
				fmt.Fprintln(out, "error:", err)
				continue
			}
			profile = f
			fmt.Fprintln(out, "ok")
		case "stop":
			if profile != nil {
				pprof.StopCPUProfile()
				profile.Close()
				profile = nil
			}
			fmt.Fprintln(out, "ok")
		default:
			fmt.Fprintln(out, "error: unknown command", cmd)
		}
	}
	if profile != nil {
		pprof.StopCPUProfile()
		profile.Close()
	}
	return 0
}

// serverProc is a sandbox served by a child process (this test binary
// with serverEnv set), so that the server's CPU time and profile are its
// own, apart from the client's. Both still share the machine's cores.
type serverProc struct {
	url     string
	client  *horizonclient.Client
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *bufio.Reader
	profile string // where the timed part's CPU profile goes, if asked for
}

// startServerProc starts the server; closeMode is serverEnv's value. The
// process ends with the benchmark.
func startServerProc(b *testing.B, closeMode string) *serverProc {
	b.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serverEnv+"="+closeMode)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &serverProc{cmd: cmd, in: in, out: bufio.NewReader(stdout)}
	b.Cleanup(func() {
		in.Close() // the server exits when its commands end
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	if p.url, err = p.line(); err != nil {
		b.Fatalf("sandbox server: %v", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	b.Cleanup(tr.CloseIdleConnections)
	p.client = &horizonclient.Client{HorizonURL: p.url, HTTP: &http.Client{Transport: tr, Timeout: time.Minute}}
	if dir := os.Getenv(profileEnv); dir != "" {
		name := regexp.MustCompile(`[^A-Za-z0-9_.=-]+`).ReplaceAllString(b.Name(), "_")
		p.profile = filepath.Join(dir, name+".cpu.prof")
	}
	return p
}

func (p *serverProc) line() (string, error) {
	s, err := p.out.ReadString('\n')
	if err != nil {
		return "", err
	}
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "error:") {
		return "", fmt.Errorf("%s", s)
	}
	return s, nil
}

func (p *serverProc) command(b *testing.B, cmd string) string {
	b.Helper()
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		b.Fatalf("sandbox server %q: %v", cmd, err)
	}
	s, err := p.line()
	if err != nil {
		b.Fatalf("sandbox server %q: %v", cmd, err)
	}
	return s
}

// cpu is the CPU time the server has used so far.
func (p *serverProc) cpu(b *testing.B) time.Duration {
	ns, err := strconv.ParseInt(p.command(b, "cpu"), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return time.Duration(ns)
}

// timed measures the server's and this process's CPU time from start to
// stop, with the server's CPU profile if one was asked for.
type timed struct {
	p                    *serverProc
	server0, client0     time.Duration
	serverCPU, clientCPU time.Duration
}

func (p *serverProc) start(b *testing.B) *timed {
	if p.profile != "" {
		p.command(b, "profile "+p.profile)
	}
	return &timed{p: p, server0: p.cpu(b), client0: processCPU()}
}

func (t *timed) stop(b *testing.B) {
	t.serverCPU = t.p.cpu(b) - t.server0
	t.clientCPU = processCPU() - t.client0
	if t.p.profile != "" {
		t.p.command(b, "stop")
	}
}

// report adds the server's and the client's CPU per unit, and what the
// server's alone would allow on two otherwise idle cores.
func (t *timed) report(b *testing.B, unit string, n int) {
	per := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(n) }
	b.ReportMetric(per(t.serverCPU), "server-cpu-µs/"+unit)
	if t.client0 >= 0 {
		b.ReportMetric(per(t.clientCPU), "client-cpu-µs/"+unit)
	}
	if t.serverCPU > 0 {
		b.ReportMetric(2*float64(n)/t.serverCPU.Seconds(), "server-2core-"+unit+"s/s")
	}
}

// payersOver creates count funded accounts over HTTP: a friendbot-funded
// bank creates them, 100 per transaction.
func (p *serverProc) payersOver(b *testing.B, count int) []*keypair.Full {
	b.Helper()
	bank := keypair.MustRandom()
	if _, err := p.client.Fund(bank.Address()); err != nil {
		b.Fatal(err)
	}
	acc, err := p.client.AccountDetail(horizonclient.AccountRequest{AccountID: bank.Address()})
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
		if err == nil {
			tx, err = tx.Sign(p.passphrase(b), bank)
		}
		var b64 string
		if err == nil {
			b64, err = tx.Base64()
		}
		if err == nil {
			_, err = p.client.SubmitTransactionXDR(b64)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	return kps
}

func (p *serverProc) passphrase(b *testing.B) string {
	root, err := p.client.Root()
	if err != nil {
		b.Fatal(err)
	}
	return root.NetworkPassphrase
}

// nativeBalanceOver returns the account's lumens in stroops, read over HTTP.
func (p *serverProc) nativeBalanceOver(b *testing.B, address string) int64 {
	b.Helper()
	acc, err := p.client.AccountDetail(horizonclient.AccountRequest{AccountID: address})
	if err != nil {
		b.Fatal(err)
	}
	for _, bal := range acc.Balances {
		if bal.Type == "native" {
			return mustStroops(b, bal.Balance)
		}
	}
	b.Fatalf("%s has no native balance", address)
	return 0
}
