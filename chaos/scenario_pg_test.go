package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestPostgresKill kills Postgres (the postmaster and every backend, with
// SIGKILL) at random moments under load and starts it again after a
// moment, on a cluster of the suite's own. checkoutd's pool must recover,
// and a commit whose outcome it could not learn must be resolved by the
// unique operation id when the watcher hands the payment off again.
func TestPostgresKill(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := StartCluster(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Stop)
	e := newEnv(t, envOptions{cluster: pg})
	nodes := e.startNodes(1, "", "")
	e.dumpLogsOnFailure(nodes...)
	e.setupTraffic(8)
	stop := e.runTraffic()
	deadline := time.Now().Add(scale(45 * time.Second))
	for time.Now().Before(deadline) {
		time.Sleep(3*time.Second + time.Duration(e.rng.Int64N(int64(4*time.Second))))
		pg.Kill()
		down := 200*time.Millisecond + time.Duration(e.rng.Int64N(int64(1800*time.Millisecond)))
		e.fault("kill_postgres", "down for ", down)
		time.Sleep(down)
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Minute)
		err := pg.Start(sctx)
		scancel()
		if err != nil {
			t.Fatalf("restart postgres: %v", err)
		}
	}
	stop()
	if exited, out := nodes[0].Exited(); exited {
		t.Fatalf("checkoutd exited while Postgres was down: %s", tail([]byte(out), 3000))
	}
	e.settle(scale(150 * time.Second))
}

// TestProxyFaults puts a TCP proxy between checkoutd and Postgres, and
// another between checkoutd and the sandbox, and makes each slow, black-holed
// (it seems to hang) or resetting for a while, in a seeded order, under load.
func TestProxyFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	pgProxy, err := StartProxy(fmt.Sprintf("127.0.0.1:%d", e.cluster.Port()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pgProxy.Close)
	sbProxy, err := StartProxy(strings.TrimPrefix(e.sbURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sbProxy.Close)
	dsn := strings.Replace(e.dsn, fmt.Sprintf(":%d/", e.cluster.Port()), fmt.Sprintf(":%d/", pgProxy.Port()), 1)
	nodes := e.startNodes(1, "http://"+sbProxy.Addr(), dsn)
	e.dumpLogsOnFailure(nodes...)
	e.setupTraffic(8)
	stop := e.runTraffic()
	proxies := []struct {
		name string
		p    *Proxy
	}{{"postgres", pgProxy}, {"sandbox", sbProxy}}
	modes := []ProxyMode{ProxyLatency, ProxyBlackhole, ProxyReset}
	deadline := time.Now().Add(scale(50 * time.Second))
	for time.Now().Before(deadline) {
		time.Sleep(2*time.Second + time.Duration(e.rng.Int64N(int64(3*time.Second))))
		px := proxies[e.rng.IntN(len(proxies))]
		mode := modes[e.rng.IntN(len(modes))]
		latency := time.Duration(20+e.rng.IntN(200)) * time.Millisecond
		hold := time.Duration(2000+e.rng.IntN(6000)) * time.Millisecond
		px.p.Set(mode, latency)
		e.fault(px.name+"_"+mode.String(), "latency ", latency, " for ", hold)
		time.Sleep(hold)
		px.p.Set(ProxyPass, 0)
	}
	stop()
	if exited, out := nodes[0].Exited(); exited {
		t.Fatalf("checkoutd exited: %s", tail([]byte(out), 3000))
	}
	e.settle(scale(150 * time.Second))
}
