package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stellar/go-stellar-sdk/keypair"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

// shared is what every scenario of this test binary shares: the checkoutd
// binary and a Postgres cluster, each made on first use and removed by
// TestMain.
var shared struct {
	mu      sync.Mutex
	binDir  string
	bin     string
	binErr  error
	cluster *Cluster
	pgErr   error

	totals totals
}

// totals are the figures of every scenario of the run, for the summary.
type totals struct {
	Scenarios, Faults, Kills, Sessions, Payments, Violations int
	lines                                                    []string
}

func TestMain(m *testing.M) {
	code := m.Run()
	shared.mu.Lock()
	if shared.cluster != nil {
		shared.cluster.Stop()
	}
	if shared.binDir != "" {
		os.RemoveAll(shared.binDir)
	}
	t := shared.totals
	shared.mu.Unlock()
	if t.Scenarios > 0 {
		fmt.Printf("chaos summary: %d scenarios, %d faults injected (%d kills), %d sessions, %d payments, %d violations\n",
			t.Scenarios, t.Faults, t.Kills, t.Sessions, t.Payments, t.Violations)
		for _, l := range t.lines {
			fmt.Println("  " + l)
		}
	}
	os.Exit(code)
}

func checkoutdBin(t testing.TB) string {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.bin == "" && shared.binErr == nil {
		shared.binDir, shared.binErr = os.MkdirTemp("", "checkoutd-chaos-bin-")
		if shared.binErr == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			shared.bin, shared.binErr = BuildCheckoutd(ctx, "..", shared.binDir)
			cancel()
		}
	}
	if shared.binErr != nil {
		t.Fatalf("checkoutd binary: %v", shared.binErr)
	}
	return shared.bin
}

func sharedCluster(t testing.TB) *Cluster {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster == nil && shared.pgErr == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		shared.cluster, shared.pgErr = StartCluster(ctx)
		cancel()
	}
	if shared.pgErr != nil {
		t.Fatalf("postgres: %v", shared.pgErr)
	}
	return shared.cluster
}

// replayName is the top-level test that replays a scenario: a soak round's
// TestSoak/round3/KillCheckoutd is TestKillCheckoutd.
func replayName(name string) string {
	if rest, ok := strings.CutPrefix(name, "TestSoak/"); ok {
		if i := strings.LastIndex(rest, "/"); i >= 0 {
			return "Test" + rest[i+1:]
		}
	}
	return name
}

// seedFor is the scenario's seed: $CHAOS_SEED if set, else random. It is
// logged so that a failing run can be replayed.
func seedFor(t testing.TB) uint64 {
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", s, err)
		}
		return n
	}
	return rand.Uint64() % 1_000_000_000
}

// scale stretches a scenario's durations for the soak ($CHAOS_SCALE, default 1).
func scale(d time.Duration) time.Duration {
	if s := os.Getenv("CHAOS_SCALE"); s != "" {
		if f, err := strconv.ParseFloat(s, 64); err == nil && f > 0 {
			return time.Duration(float64(d) * f)
		}
	}
	return d
}

// env is one scenario's world: a database, a sandbox process, merchants,
// a webhook receiver and the traffic.
type env struct {
	t        *testing.T
	name     string
	seed     uint64
	rng      *rand.Rand
	bin      string
	cluster  *Cluster
	dsn      string
	sandbox  *Proc
	sbURL    string
	receiver *Receiver
	merch    []*Merchant
	watched  []Watched
	traffic  *Traffic
	hc       *http.Client

	mu     sync.Mutex
	nodes  func() []string
	faults map[string]int
}

type envOptions struct {
	cluster     *Cluster // default: the shared one
	merchants   int
	concurrency int
}

// newEnv sets up a scenario. The API is reached through nodes, which the
// scenario sets before calling setupTraffic.
func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	if os.Getenv("CHAOS") == "" {
		t.Skip("the chaos suite runs with `make chaos` (CHAOS=1): it kills processes and takes minutes")
	}
	seed := seedFor(t)
	t.Logf("seed %d (replay with CHAOS=1 CHAOS_SEED=%d go test -count=1 -v -run '^%s$' ./chaos)", seed, seed, replayName(t.Name()))
	e := &env{t: t, name: t.Name(), seed: seed, rng: rand.New(rand.NewPCG(seed, 0xc4a05)), faults: map[string]int{},
		hc: &http.Client{Timeout: 30 * time.Second}}
	e.bin = checkoutdBin(t)
	e.cluster = o.cluster
	if e.cluster == nil {
		e.cluster = sharedCluster(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	name := fmt.Sprintf("chaos_%s_%d", strings.ToLower(strings.NewReplacer("/", "_", "-", "_").Replace(t.Name())), seed)
	dsn, err := e.cluster.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	e.dsn = dsn
	db, err := persistence.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e.sandbox, e.sbURL, err = StartSandbox(e.bin, seed)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.sandbox.Kill)
	e.receiver, err = StartReceiver()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.receiver.Close() })

	ch := newChain(e.sbURL, e.hc)
	if o.merchants == 0 {
		o.merchants = 3
	}
	for i := range o.merchants {
		kp := keypair.MustRandom()
		if err := ch.fund(ctx, kp.Address()); err != nil {
			t.Fatal(err)
		}
		m, err := checkout.NewMerchant(fmt.Sprintf("Chaos Shop %d", i), kp.Address(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		key, secret := persistence.NewAPIKey(m.ID, false, time.Now())
		if err := db.CreateMerchantWithKey(ctx, m, key, secret); err != nil {
			t.Fatal(err)
		}
		e.merch = append(e.merch, &Merchant{ID: m.ID, Key: secret, Account: kp.Address(),
			API: &API{Nodes: e.apiNodes, Key: secret, HTTP: &http.Client{Timeout: 30 * time.Second}}})
		e.watched = append(e.watched, Watched{Account: kp.Address()})
	}
	db.Close()
	return e
}

func (e *env) apiNodes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.nodes()
}

// setNodes says where the API is.
func (e *env) setNodes(f func() []string) {
	e.mu.Lock()
	e.nodes = f
	e.mu.Unlock()
}

// setupTraffic registers a webhook endpoint per merchant and funds the
// customers. The API must answer.
func (e *env) setupTraffic(concurrency int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, m := range e.merch {
		url := e.receiver.URL("/hooks/" + strconv.Itoa(i))
		var ep struct {
			Secret string `json:"secret"`
		}
		if err := m.API.Do(ctx, http.MethodPost, "/v1/webhook_endpoints", "endpoint-"+m.ID,
			map[string]any{"url": url, "events": []string{"*"}}, &ep); err != nil {
			e.t.Fatalf("register webhook endpoint: %v", err)
		}
		if err := e.receiver.AddEndpoint(url, ep.Secret); err != nil {
			e.t.Fatal(err)
		}
	}
	// A merchant's account is watched from its first session on: payments
	// before that are history checkoutd never replays. So each merchant
	// gets a session first, and what checkoutd must record is every credit
	// after the cursor that fixed.
	for _, m := range e.merch {
		if err := m.API.Create(ctx, "/v1/checkout/sessions", "first-"+m.ID,
			map[string]any{"amount": "1", "asset": "XLM"}, nil); err != nil {
			e.t.Fatalf("first session: %v", err)
		}
	}
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := range e.watched {
		if err := conn.QueryRow(ctx, `SELECT cursor FROM ledger_cursors WHERE account = $1`, e.watched[i].Account).
			Scan(&e.watched[i].From); err != nil {
			e.t.Fatalf("cursor of %s: %v", e.watched[i].Account, err)
		}
	}
	conn.Close(ctx)
	tr, err := NewTraffic(ctx, e.seed, e.sbURL, e.merch, concurrency, concurrency)
	if err != nil {
		e.t.Fatalf("traffic: %v", err)
	}
	e.traffic = tr
}

// fault counts an injected fault and logs it with its parameters.
func (e *env) fault(kind string, params ...any) {
	e.mu.Lock()
	e.faults[kind]++
	n := 0
	for _, c := range e.faults {
		n += c
	}
	e.mu.Unlock()
	// The schedule, in order: a replay with the same seed logs the same
	// sequence (how many fit in a timed phase depends on the machine).
	e.t.Logf("fault %d: %s %s", n, kind, fmt.Sprint(params...))
}

// runTraffic runs the traffic in the background until the returned stop
// is called.
func (e *env) runTraffic() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.traffic.Run(ctx, 0)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// setFaults sets the sandbox's faults through its control endpoint.
func (e *env) setFaults(body string) {
	e.t.Helper()
	resp, err := e.hc.Post(e.sbURL+"/_sandbox/faults", "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatalf("set sandbox faults: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("set sandbox faults %s: %d", body, resp.StatusCode)
	}
}

// sleep waits d, scaled.
func (e *env) sleep(d time.Duration) { time.Sleep(d) }

// settle waits until the checker finds nothing wrong or timeout passes,
// then reports the last check as the scenario's result.
func (e *env) settle(timeout time.Duration) Report {
	e.t.Helper()
	return e.settleWith(timeout, nil)
}

// settleWith is settle, calling before (if not nil) just before the report.
func (e *env) settleWith(timeout time.Duration, before func()) Report {
	e.t.Helper()
	checker := &Checker{DSN: e.dsn, HTTP: e.hc}
	in := CheckInput{SandboxURL: e.sbURL, Accounts: e.watched, Hooks: e.receiver.Log(), Expect: e.traffic.Expect()}
	deadline := time.Now().Add(timeout)
	start := time.Now()
	var rep Report
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		var err error
		rep, err = checker.Check(ctx, in)
		cancel()
		if err != nil {
			e.t.Logf("check: %v", err)
		} else if len(rep.Violations) == 0 || time.Now().After(deadline) {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("checker failed until the deadline: %v", err)
		}
		time.Sleep(2 * time.Second)
	}
	e.t.Logf("quiescent after %s", time.Since(start).Round(100*time.Millisecond))
	if before != nil {
		before()
	}
	e.report(rep)
	return rep
}

// report logs the scenario's figures, fails it on any violation and adds
// it to the run's totals.
func (e *env) report(rep Report) {
	e.t.Helper()
	e.mu.Lock()
	var nFaults, kills int
	var kinds []string
	for k, n := range e.faults {
		nFaults += n
		if strings.HasPrefix(k, "kill") {
			kills += n
		}
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	e.mu.Unlock()
	sort.Strings(kinds)
	line := fmt.Sprintf("%s seed=%d: faults %d (%s), sessions %d, payments %d (sandbox credits %d, uncertain %d), events %d, deliveries %d, webhook ids received %d, violations %d",
		e.name, e.seed, nFaults, strings.Join(kinds, " "), rep.Sessions, rep.Payments, rep.SandboxOps,
		e.traffic.Uncertain.Load(), rep.Events, rep.Deliveries, rep.Received, len(rep.Violations))
	e.t.Log(line)
	if f := e.traffic.Failures(); len(f) > 0 {
		e.t.Logf("traffic failures (not violations; %d): %s", len(f), strings.Join(f[:min(len(f), 10)], "; "))
	}
	for i, v := range rep.Violations {
		if i == 60 {
			e.t.Errorf("... and %d more violations", len(rep.Violations)-i)
			break
		}
		e.t.Errorf("VIOLATION %s", v)
	}
	if rep.Payments == 0 {
		e.t.Errorf("no payment was recorded: the scenario drove nothing")
	}
	shared.mu.Lock()
	tt := &shared.totals
	tt.Scenarios++
	tt.Faults += nFaults
	tt.Kills += kills
	tt.Sessions += rep.Sessions
	tt.Payments += rep.Payments
	tt.Violations += len(rep.Violations)
	tt.lines = append(tt.lines, line)
	shared.mu.Unlock()
}

// startNodes starts n serve processes on the scenario's database and
// waits for them.
func (e *env) startNodes(n int, horizonURL, dsn string) []*Node {
	e.t.Helper()
	if horizonURL == "" {
		horizonURL = e.sbURL
	}
	if dsn == "" {
		dsn = e.dsn
	}
	var nodes []*Node
	for range n {
		node, err := NewNode(ServeConfig{Bin: e.bin, DatabaseURL: dsn, HorizonURL: horizonURL})
		if err != nil {
			e.t.Fatal(err)
		}
		if err := node.Start(); err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(node.Kill)
		nodes = append(nodes, node)
	}
	for _, node := range nodes {
		if err := node.WaitHealthy(context.Background(), time.Minute); err != nil {
			e.t.Fatal(err)
		}
	}
	urls := make([]string, len(nodes))
	for i, node := range nodes {
		urls[i] = node.URL()
	}
	e.setNodes(func() []string { return urls })
	return nodes
}

// dumpLogsOnFailure logs the end of each node's output if the test fails.
func (e *env) dumpLogsOnFailure(nodes ...*Node) {
	e.t.Cleanup(func() {
		if !e.t.Failed() {
			return
		}
		for i, n := range nodes {
			e.t.Logf("checkoutd %d output (end):\n%s", i, tail([]byte(n.Logs()), 6000))
		}
	})
}
