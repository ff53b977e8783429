//go:build cluster

package chaos

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestClusterAPIThroughput measures the API on one node against three:
// session creates (HTTP and Postgres on whichever node is asked) and then
// cancels of those sessions (each through its session's actor, a grain
// that may live on another node). It is a measurement for
// docs/benchmarks.md, not a check, so it runs only with CLUSTER_BENCH=1.
// Every process shares this machine's cores.
func TestClusterAPIThroughput(t *testing.T) {
	if os.Getenv("CLUSTER_BENCH") == "" {
		t.Skip("a measurement: run with CHAOS=1 CLUSTER_BENCH=1")
	}
	const concurrency = 16
	phase := 15 * time.Second
	for _, tc := range []struct {
		name    string
		nodes   int
		cluster bool
		// dsn is added to the single node's database URL.
		dsn string
	}{
		{"single-node mode", 1, false, ""},
		// pgxpool's default is max(4, cores) connections per node: three
		// nodes have three times the connections of one.
		{"single-node mode, 12 connections", 1, false, "&pool_max_conns=12"},
		{"cluster of 1", 1, true, ""},
		{"cluster of 3", 3, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			if tc.cluster {
				e.startClusterNodes(tc.nodes, startEtcd(t))
			} else {
				e.startNodes(tc.nodes, "", e.dsn+tc.dsn)
			}
			created := e.benchPhase(concurrency, phase, nil)
			t.Logf("%s, %d node(s), %d workers: %s", tc.name, tc.nodes, concurrency, created)
			canceled := e.benchPhase(concurrency, phase, created.created)
			t.Logf("%s, %d node(s), %d workers: %s", tc.name, tc.nodes, concurrency, canceled)
		})
	}
}

// benchResult is what one phase of the throughput measurement did.
type benchResult struct {
	op       string
	ok, errs int
	took     time.Duration
	latency  time.Duration // mean
	created  []benchSession
}

// benchSession is a session the measurement created, and its merchant.
type benchSession struct {
	id string
	m  *Merchant
}

func (r benchResult) String() string {
	return fmt.Sprintf("%s: %d in %s = %.0f/s, mean latency %s, %d errors", r.op, r.ok, r.took.Round(time.Millisecond),
		float64(r.ok)/r.took.Seconds(), r.latency.Round(10*time.Microsecond), r.errs)
}

// benchPhase runs workers that, for d, create sessions (cancel == nil) or
// cancel the sessions in cancel until none is left. The API client spreads
// the requests over every node in turn.
func (e *env) benchPhase(workers int, d time.Duration, cancel []benchSession) benchResult {
	ctx, stop := context.WithTimeout(context.Background(), d)
	defer stop()
	var (
		mu        sync.Mutex
		res       = benchResult{op: "create"}
		next      atomic.Int64
		totalTime atomic.Int64
	)
	if cancel != nil {
		res.op = "cancel"
	}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		m := e.merch[w%len(e.merch)]
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				var err error
				var s sessionObj
				t0 := time.Now()
				if cancel == nil {
					err = m.API.do(ctx, http.MethodPost, "/v1/checkout/sessions", fmt.Sprintf("bench-%d", i),
						map[string]any{"amount": "1", "asset": "XLM"}, &s, 1)
				} else {
					if int(i) >= len(cancel) {
						return
					}
					c := cancel[i]
					err = c.m.API.do(ctx, http.MethodPost, "/v1/checkout/sessions/"+c.id+"/cancel",
						fmt.Sprintf("bench-cancel-%d", i), nil, nil, 1)
				}
				if ctx.Err() != nil {
					return
				}
				totalTime.Add(int64(time.Since(t0)))
				mu.Lock()
				if err != nil {
					res.errs++
				} else {
					res.ok++
					if cancel == nil {
						res.created = append(res.created, benchSession{id: s.ID, m: m})
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.took = time.Since(start)
	if n := res.ok + res.errs; n > 0 {
		res.latency = time.Duration(totalTime.Load() / int64(n))
	}
	return res
}
