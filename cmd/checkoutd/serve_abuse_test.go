package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/keypair"

	"github.com/checkoutd/checkoutd/persistence/pgtest"
)

// served is `checkoutd serve` run in-process by a test, on 127.0.0.1, with
// the real http.Server serve builds, against a sandbox network and a test
// database, with one merchant.
type served struct {
	base, addr string
	dsn        string
	merchantID string
	key        string
	cliStderr  string
	stop       func()
}

func startServed(t *testing.T, logger *slog.Logger, extra ...string) *served {
	t.Helper()
	dsn := pgtest.New(t)
	n, hsrv := startSandbox(t)
	kp := keypair.MustRandom()
	if err := n.Fund(context.Background(), kp.Address()); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runCLI(t, "merchant", "create", "--name", "Abused", "--account", kp.Address(), "--database-url", dsn)
	if err != nil {
		t.Fatalf("merchant create: %v\n%s", err, stderr)
	}
	out := decodeOne(t, stdout)
	args := append([]string{"--database-url", dsn, "--network", "sandbox", "--horizon-url", hsrv.URL,
		"--http-addr", "127.0.0.1:0", "--public-url", "https://pay.example.test"}, extra...)
	cfg, err := parseServeFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, logger, ready) }()
	s := &served{dsn: dsn, merchantID: out["merchant_id"], key: out["api_key"], cliStderr: stderr}
	select {
	case s.addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("serve did not start")
	}
	s.base = "http://" + s.addr
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve returned %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("serve did not shut down")
			}
		})
	}
	t.Cleanup(s.stop)
	return s
}

// call sends one request with the merchant's key (or auth, when not
// empty) and returns the status, headers and body.
func (s *served) call(t *testing.T, method, path, auth, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth == "" {
		auth = "Bearer " + s.key
	}
	req.Header.Set("Authorization", auth)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, b
}

// TestServeRateLimitFlood floods one key far beyond its burst: the burst
// gets through, everything beyond it is 429 with a Retry-After of whole
// seconds, a flood of writes writes nothing, and another key is not held
// up by it.
func TestServeRateLimitFlood(t *testing.T) {
	const burst, flood = 20, 400
	s := startServed(t, slog.New(slog.DiscardHandler), "--api-rate-limit", "1", "--api-rate-burst", strconv.Itoa(burst))
	start := time.Now()
	var ok, limited, other atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for range flood {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			req, _ := http.NewRequest(http.MethodGet, s.base+"/v1/checkout/sessions", nil)
			req.Header.Set("Authorization", "Bearer "+s.key)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			switch res.StatusCode {
			case http.StatusOK:
				ok.Add(1)
			case http.StatusTooManyRequests:
				limited.Add(1)
				if n, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || n < 1 || n > 2 {
					t.Errorf("429 with Retry-After %q", res.Header.Get("Retry-After"))
				}
			default:
				other.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// The bucket refills one token a second while the flood runs.
	maxOK := int64(burst) + int64(elapsed.Seconds()) + 1
	t.Logf("%d requests in %v: %d ok, %d limited, %d other", flood, elapsed.Round(time.Millisecond), ok.Load(), limited.Load(), other.Load())
	if ok.Load() < burst || ok.Load() > maxOK || other.Load() != 0 || ok.Load()+limited.Load() != flood {
		t.Fatalf("%d ok (want %d to %d), %d limited, %d other", ok.Load(), burst, maxOK, limited.Load(), other.Load())
	}
	// With the bucket empty, writes are refused before they run.
	for range 50 {
		if code, hdr, body := s.call(t, http.MethodPost, "/v1/checkout/sessions", "", `{"amount":"1","asset":"XLM"}`); code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
			if code == http.StatusCreated {
				continue // a token refilled meanwhile
			}
			t.Fatalf("POST while limited: %d %s", code, body)
		}
	}
	var sessions int
	if err := rawQuery(t, s.dsn, `SELECT count(*) FROM sessions`, &sessions); err != nil {
		t.Fatal(err)
	}
	if sessions > 1+int(time.Since(start).Seconds()) {
		t.Fatalf("%d sessions created by a limited key", sessions)
	}
	// Unauthenticated probes have no bucket to drain and are refused
	// before one is looked for; another merchant's key is unaffected.
	if code, _, _ := s.call(t, http.MethodGet, "/v1/events", "Bearer sk_test_"+strings.Repeat("a", 32), ""); code != http.StatusUnauthorized {
		t.Fatalf("unknown key while flooded: %d", code)
	}
	if code, _, _ := s.call(t, http.MethodGet, "/healthz", "", ""); code != http.StatusOK {
		t.Fatalf("/healthz while flooded: %d", code)
	}
}

// raiseNoFile raises the soft open-files limit to want if it can, and says
// how many it may use. The old limit is put back when the test ends.
func raiseNoFile(t *testing.T, want uint64) uint64 {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	old := lim
	if lim.Cur < want {
		lim.Cur = want
		if lim.Max < want {
			lim.Max = want // allowed to root only
		}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			lim = old
			lim.Cur = old.Max
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				return old.Cur
			}
		}
		t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	}
	return lim.Cur
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// readHeaderTimeout is the ReadHeaderTimeout serve gives its http.Server.
// The tests below run against that server and time its closing of idle
// and slow connections; they fail if serve stops closing them in time.
const readHeaderTimeout = 5 * time.Second

// TestServeIdleConnections opens 10,000 TCP connections to serve that
// never send a byte: the server's heap grows by a bounded amount per
// connection, and ReadHeaderTimeout closes every one of them, after which
// the heap and the goroutines come back down. The client ends live in a
// child process (TestHelperIdleDialer), so that the server's process needs
// one descriptor per connection, not two, and its heap is the server's
// alone.
func TestServeIdleConnections(t *testing.T) {
	conns := 10_000
	if testing.Short() {
		conns = 2_000
	}
	if raceEnabled {
		conns = 4_000
	}
	limit := raiseNoFile(t, uint64(conns+1024))
	if fit := int(limit) - 1024; fit < conns {
		if fit < 2_000 {
			t.Skipf("RLIMIT_NOFILE is %d and cannot be raised: too few descriptors for 2,000 idle connections", limit)
		}
		t.Logf("RLIMIT_NOFILE %d: %d connections instead of %d", limit, fit, conns)
		conns = fit
	}
	s := startServed(t, slog.New(slog.DiscardHandler))
	baseHeap, baseG := heapInUse(), runtime.NumGoroutine()

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	child := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperIdleDialer$")
	child.Env = append(os.Environ(), "CHECKOUTD_TEST_IDLE_DIAL="+s.addr, "CHECKOUTD_TEST_IDLE_CONNS="+strconv.Itoa(conns))
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = child.Process.Kill(); _ = child.Wait() })
	lines := bufio.NewScanner(out)
	// expect reads the child's next "word n" line.
	expect := func(word string) int {
		t.Helper()
		for lines.Scan() {
			if n, ok := strings.CutPrefix(lines.Text(), word+" "); ok {
				v, err := strconv.Atoi(n)
				if err != nil {
					t.Fatalf("dialer: %q", lines.Text())
				}
				return v
			}
		}
		t.Fatalf("the dialer ended before saying %q", word)
		return 0
	}
	if n := expect("dialed"); n != conns {
		t.Fatalf("the dialer opened %d of %d connections", n, conns)
	}

	// Each open connection has one server goroutine. On a slow machine the
	// first connections may already have timed out when the last is
	// dialed, so the heap is divided by the connections the server holds
	// now.
	time.Sleep(200 * time.Millisecond)
	peakHeap, peakG := heapInUse(), runtime.NumGoroutine()
	live := max(peakG-baseG, 1)
	perConn := (int64(peakHeap) - int64(baseHeap)) / int64(live)
	t.Logf("%d idle connections dialed in %v, %d held by the server: heap in use %d → %d MiB (%d bytes a connection), goroutines %d → %d",
		conns, time.Since(start).Round(time.Millisecond), live, baseHeap>>20, peakHeap>>20, perConn, baseG, peakG)
	if live < conns/2 {
		t.Errorf("the server held only %d of %d connections", live, conns)
	}
	if perConn > 16<<10 {
		t.Errorf("%d bytes of heap per idle connection, want at most 16 KiB", perConn)
	}

	// Every connection is closed by the server once ReadHeaderTimeout has
	// passed since it was accepted: the dialer counts the ones that were.
	if n := expect("closed"); n != conns {
		t.Fatalf("%d of %d idle connections closed by the server within ReadHeaderTimeout+5s", n, conns)
	}
	settle := time.Now()
	for runtime.NumGoroutine() > baseG+50 && time.Since(settle) < 5*time.Second {
		time.Sleep(50 * time.Millisecond)
	}
	endHeap, endG := heapInUse(), runtime.NumGoroutine()
	t.Logf("after the server closed them: heap in use %d MiB, goroutines %d", endHeap>>20, endG)
	if endG > baseG+50 {
		t.Errorf("%d goroutines left, %d before", endG, baseG)
	}
	if endHeap > baseHeap+(peakHeap-baseHeap)/2+8<<20 {
		t.Errorf("heap in use %d MiB after the connections closed, %d MiB before them", endHeap>>20, baseHeap>>20)
	}
	if code, _, _ := s.call(t, http.MethodGet, "/healthz", "", ""); code != http.StatusOK {
		t.Fatalf("/healthz after the idle flood: %d", code)
	}
}

// TestHelperIdleDialer is TestServeIdleConnections' client, run by it in a
// child process: it opens $CHECKOUTD_TEST_IDLE_CONNS connections to
// $CHECKOUTD_TEST_IDLE_DIAL, sends nothing, prints "dialed n", waits for
// the server to close each (at most ReadHeaderTimeout+5s after its dial),
// and prints "closed n".
func TestHelperIdleDialer(t *testing.T) {
	addr := os.Getenv("CHECKOUTD_TEST_IDLE_DIAL")
	if addr == "" {
		t.Skip("run by TestServeIdleConnections")
	}
	conns, err := strconv.Atoi(os.Getenv("CHECKOUTD_TEST_IDLE_CONNS"))
	if err != nil {
		t.Fatal(err)
	}
	raiseNoFile(t, uint64(conns+256))
	open := make([]net.Conn, conns)
	dialed := make([]time.Time, conns)
	var wg sync.WaitGroup
	var ok atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			d := net.Dialer{Timeout: 5 * time.Second}
			for i := w; i < conns; i += 8 {
				c, err := d.Dial("tcp", addr)
				if err != nil {
					fmt.Fprintf(os.Stderr, "dial: %v\n", err)
					return
				}
				open[i], dialed[i] = c, time.Now()
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	fmt.Printf("dialed %d\n", ok.Load())
	var closed atomic.Int64
	for w := range 8 {
		wg.Go(func() {
			buf := make([]byte, 1)
			for i := w; i < conns; i += 8 {
				if open[i] == nil {
					continue
				}
				_ = open[i].SetReadDeadline(dialed[i].Add(readHeaderTimeout + 5*time.Second))
				if _, err := open[i].Read(buf); errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
					closed.Add(1)
				}
				open[i].Close()
			}
		})
	}
	wg.Wait()
	fmt.Printf("closed %d\n", closed.Load())
}

// TestServeSlowloris sends request headers a byte at a time, never
// finishing them: the server closes each connection once ReadHeaderTimeout
// has passed, however steadily bytes arrive, and serves others meanwhile.
func TestServeSlowloris(t *testing.T) {
	const clients = 64
	s := startServed(t, slog.New(slog.DiscardHandler))
	header := "GET /v1/checkout/sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + s.key + "\r\nX-Slow: "
	start := time.Now()
	lasted := make([]time.Duration, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c, err := net.Dial("tcp", s.addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			opened := time.Now()
			// Read in the background: the server's close shows as EOF.
			closed := make(chan struct{})
			go func() {
				_, _ = io.Copy(io.Discard, bufio.NewReader(c))
				close(closed)
			}()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for j := 0; ; j++ {
				b := byte('a')
				if j < len(header) {
					b = header[j]
				}
				select {
				case <-closed:
					lasted[i] = time.Since(opened)
					return
				case <-tick.C:
					if _, err := c.Write([]byte{b}); err != nil {
						<-closed
						lasted[i] = time.Since(opened)
						return
					}
				}
				if time.Since(opened) > readHeaderTimeout+10*time.Second {
					lasted[i] = time.Since(opened)
					return
				}
			}
		})
	}
	// Meanwhile a normal client is served promptly.
	time.Sleep(time.Second)
	t0 := time.Now()
	if code, _, body := s.call(t, http.MethodGet, "/v1/checkout/sessions", "", ""); code != http.StatusOK || time.Since(t0) > 2*time.Second {
		t.Errorf("normal request during slowloris: %d in %v: %s", code, time.Since(t0), body)
	}
	wg.Wait()
	var longest time.Duration
	for i, d := range lasted {
		if d < readHeaderTimeout-500*time.Millisecond || d > readHeaderTimeout+3*time.Second {
			t.Errorf("slow client %d was closed after %v, want about %v", i, d, readHeaderTimeout)
		}
		longest = max(longest, d)
	}
	t.Logf("%d slowloris clients closed after at most %v (ReadHeaderTimeout %v); test took %v", clients, longest.Round(time.Millisecond), readHeaderTimeout, time.Since(start).Round(time.Millisecond))
}
