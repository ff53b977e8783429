//go:build cluster

package chaos

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// startEtcd runs Debian's etcd on private ports with a throwaway data dir
// and returns its client endpoint.
func startEtcd(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Skip("etcd not installed (apt-get install -y etcd-server)")
	}
	client, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	peer, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cu := "http://127.0.0.1:" + strconv.Itoa(client)
	pu := "http://127.0.0.1:" + strconv.Itoa(peer)
	p, err := StartProc("etcd", bin, []string{"--name", "chaos", "--data-dir", t.TempDir(),
		"--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
		"--initial-cluster", "chaos=" + pu, "--log-level", "warn"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return "127.0.0.1:" + strconv.Itoa(client)
}

// startClusterNodes starts n checkoutd serve processes forming one etcd
// cluster, and spreads the API traffic over all of them.
func (e *env) startClusterNodes(n int, etcd string) []*Node {
	e.t.Helper()
	var nodes []*Node
	for range n {
		port, err := freePort()
		if err != nil {
			e.t.Fatal(err)
		}
		node, err := NewNode(ServeConfig{Bin: e.bin, DatabaseURL: e.dsn, HorizonURL: e.sbURL, Args: []string{
			"--cluster", "etcd", "--etcd-endpoints", etcd, "--cluster-name", "chaos",
			"--node-addr", "127.0.0.1:" + strconv.Itoa(port)}})
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
	e.dumpLogsOnFailure(nodes...)
	return nodes
}

// watcherLocks is how many watcher advisory locks are held, and by how
// many Postgres backends (one per live node owning at least one).
func (e *env) watcherLocks(ctx context.Context) (locks, holders int, err error) {
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).
		Scan(&locks, &holders)
	return locks, holders, err
}

// waitWatchersOwned waits until every watched account's lock is held, and
// reports how long that took.
func (e *env) waitWatchersOwned(within time.Duration) time.Duration {
	e.t.Helper()
	ctx := context.Background()
	start := time.Now()
	want := len(e.merch)
	for {
		locks, _, err := e.watcherLocks(ctx)
		if err == nil && locks >= want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			e.t.Fatalf("after %s: %d watcher locks held (err %v), want %d", within, locks, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestClusterKillNode runs three cluster nodes under load spread over all
// of them, kills one with SIGKILL, checks that its watchers fail over to
// the others within 10 s, brings it back, and checks every invariant:
// every payment applied exactly once, every session in its state.
func TestClusterKillNode(t *testing.T) {
	e := newEnv(t, envOptions{})
	etcd := startEtcd(t)
	nodes := e.startClusterNodes(3, etcd)
	e.setupTraffic(8)
	stop := e.runTraffic()
	e.waitWatchersOwned(30 * time.Second)

	time.Sleep(5 * time.Second)
	// Kill a node that owns watchers (its Postgres backend holds locks).
	victim := nodes[0]
	victim.Kill()
	e.fault("kill_cluster_node")
	took := e.waitWatchersOwned(10 * time.Second)
	t.Logf("watchers failed over in %s", took.Round(100*time.Millisecond))
	time.Sleep(5 * time.Second)
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	if err := victim.WaitHealthy(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	stop()
	t.Logf("traffic: %d sessions, %d payments", e.traffic.Sessions.Load(), e.traffic.Payments.Load())
	e.settle(scale(150 * time.Second))
}

// TestClusterRollingRestart restarts the three nodes one after another
// (SIGTERM, graceful) under load, and checks that nothing is lost.
func TestClusterRollingRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	etcd := startEtcd(t)
	nodes := e.startClusterNodes(3, etcd)
	e.setupTraffic(8)
	stop := e.runTraffic()
	e.waitWatchersOwned(30 * time.Second)
	for i, node := range nodes {
		time.Sleep(4 * time.Second)
		node.Stop()
		e.fault("restart_cluster_node")
		if err := node.Start(); err != nil {
			t.Fatal(err)
		}
		if err := node.WaitHealthy(context.Background(), time.Minute); err != nil {
			t.Fatal(fmt.Errorf("node %d after restart: %w", i, err))
		}
	}
	e.waitWatchersOwned(10 * time.Second)
	time.Sleep(4 * time.Second)
	stop()
	t.Logf("traffic: %d sessions, %d payments", e.traffic.Sessions.Load(), e.traffic.Payments.Load())
	e.settle(scale(150 * time.Second))
}
