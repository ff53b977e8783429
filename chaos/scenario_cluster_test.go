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

// clusterNode is one checkoutd cluster member, which reaches etcd through
// a proxy of its own (so that a test can cut it off) and names its Postgres
// connections after itself (so that a test sees which watcher locks it holds).
type clusterNode struct {
	*Node
	name string
	etcd *Proxy
}

// startClusterNodes starts n checkoutd serve processes forming one etcd
// cluster, and spreads the API traffic over all of them.
func (e *env) startClusterNodes(n int, etcd string) []*clusterNode {
	e.t.Helper()
	var nodes []*clusterNode
	for i := range n {
		port, err := freePort()
		if err != nil {
			e.t.Fatal(err)
		}
		px, err := StartProxy(etcd)
		if err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(px.Close)
		name := "chaos-node-" + strconv.Itoa(i)
		node, err := NewNode(ServeConfig{Bin: e.bin, DatabaseURL: e.dsn + "&application_name=" + name, HorizonURL: e.sbURL, Args: []string{
			"--cluster", "etcd", "--etcd-endpoints", px.Addr(), "--cluster-name", "chaos",
			"--node-addr", "127.0.0.1:" + strconv.Itoa(port)}})
		if err != nil {
			e.t.Fatal(err)
		}
		if err := node.Start(); err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(node.Kill)
		nodes = append(nodes, &clusterNode{Node: node, name: name, etcd: px})
	}
	for _, node := range nodes {
		if err := node.WaitHealthy(context.Background(), time.Minute); err != nil {
			e.t.Fatal(err)
		}
	}
	urls := make([]string, len(nodes))
	plain := make([]*Node, len(nodes))
	for i, node := range nodes {
		urls[i] = node.URL()
		plain[i] = node.Node
	}
	e.setNodes(func() []string { return urls })
	e.dumpLogsOnFailure(plain...)
	return nodes
}

// watcherLocks is how many watcher advisory locks each node holds, by the
// application name of its Postgres connections.
func (e *env) watcherLocks(ctx context.Context) (map[string]int, error) {
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT a.application_name, count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		GROUP BY 1`)
	if err != nil {
		return nil, err
	}
	held := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			return nil, err
		}
		held[name] = n
	}
	return held, rows.Err()
}

// waitWatchersOwned waits until every watched account's lock is held by a
// node other than gone (if set), and reports how long that took. It fails
// the test after within.
func (e *env) waitWatchersOwned(within time.Duration, gone string) time.Duration {
	e.t.Helper()
	ctx := context.Background()
	start := time.Now()
	want := len(e.merch)
	for {
		held, err := e.watcherLocks(ctx)
		locks := 0
		for name, n := range held {
			if name != gone {
				locks += n
			}
		}
		if err == nil && locks >= want && held[gone] == 0 {
			return time.Since(start)
		}
		if time.Since(start) > within {
			e.t.Fatalf("after %s: watcher locks held %v (err %v), want %d, none by %q", within, held, err, want, gone)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lockHolder is a node holding at least one watcher lock.
func (e *env) lockHolder(nodes []*clusterNode) *clusterNode {
	e.t.Helper()
	held, err := e.watcherLocks(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for _, n := range nodes {
		if held[n.name] > 0 {
			return n
		}
	}
	e.t.Fatalf("no node holds a watcher lock: %v", held)
	return nil
}

// TestClusterKillNode runs three cluster nodes under load spread over all
// of them, kills one that watches accounts with SIGKILL, checks that its
// watchers fail over to the others within 10 s, brings it back, and checks
// every invariant: every payment applied exactly once, every session in its
// state.
func TestClusterKillNode(t *testing.T) {
	e := newEnv(t, envOptions{})
	etcd := startEtcd(t)
	nodes := e.startClusterNodes(3, etcd)
	e.setupTraffic(8)
	stop := e.runTraffic()
	e.waitWatchersOwned(30*time.Second, "")

	time.Sleep(5 * time.Second)
	victim := e.lockHolder(nodes)
	victim.Kill()
	e.fault("kill_cluster_node")
	took := e.waitWatchersOwned(10*time.Second, victim.name)
	t.Logf("%s killed; its watchers failed over in %s", victim.name, took.Round(100*time.Millisecond))
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
	e.waitWatchersOwned(30*time.Second, "")
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
	e.waitWatchersOwned(10*time.Second, "")
	time.Sleep(4 * time.Second)
	stop()
	t.Logf("traffic: %d sessions, %d payments", e.traffic.Sessions.Load(), e.traffic.Payments.Load())
	e.settle(scale(150 * time.Second))
}

// TestClusterNetworkCut cuts one node that watches accounts off from etcd
// (its proxy holds every byte) under load. Once its membership lease has
// expired the others place its sessions on themselves, so it must stop
// acting as their owner: it leaves by itself, giving its watchers up, and
// they fail over. It comes back once etcd is reachable again; the checker
// then proves that the brief double activation around the cut settled
// nothing twice.
func TestClusterNetworkCut(t *testing.T) {
	e := newEnv(t, envOptions{})
	etcd := startEtcd(t)
	nodes := e.startClusterNodes(3, etcd)
	e.setupTraffic(8)
	stop := e.runTraffic()
	e.waitWatchersOwned(30*time.Second, "")

	time.Sleep(5 * time.Second)
	cut := e.lockHolder(nodes)
	cut.etcd.Set(ProxyBlackhole, 0)
	e.fault("cut_cluster_node_from_etcd")
	start := time.Now()
	deadline := start.Add(time.Minute)
	for {
		if exited, _ := cut.Exited(); exited {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still runs a minute after it was cut off from etcd", cut.name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%s left the cluster %s after the cut", cut.name, time.Since(start).Round(100*time.Millisecond))
	took := e.waitWatchersOwned(10*time.Second, cut.name)
	t.Logf("its watchers failed over %s after it left", took.Round(100*time.Millisecond))
	time.Sleep(5 * time.Second)
	cut.etcd.Set(ProxyPass, 0)
	cut.Kill() // reaps the exited process
	if err := cut.Start(); err != nil {
		t.Fatal(err)
	}
	if err := cut.WaitHealthy(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	stop()
	t.Logf("traffic: %d sessions, %d payments", e.traffic.Sessions.Load(), e.traffic.Payments.Load())
	e.settle(scale(150 * time.Second))
}
