//go:build cluster

package actors_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster/clusterproviders/test"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/actors"
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// clusterNode starts a cluster member on the env's database, configured by
// cfg. Members sharing agent and name form one cluster (protoactor's
// in-memory provider).
func (e *env) clusterNode(agent *test.InMemAgent, name string, cfg actors.Config) *actors.System {
	e.t.Helper()
	cfg.Cluster = &actors.ClusterConfig{Name: name, Provider: test.NewTestProvider(agent), Host: "127.0.0.1", Port: freePort(e.t)}
	return e.start(cfg)
}

// conflictCounting counts the version conflicts its store's Settle returns.
type conflictCounting struct {
	actors.Store
	conflicts *atomic.Int64
}

func (s conflictCounting) Settle(ctx context.Context, t checkout.Transition, readVersion int64) error {
	err := s.Store.Settle(ctx, t, readVersion)
	if errors.Is(err, checkout.ErrVersionConflict) {
		s.conflicts.Add(1)
	}
	return err
}

// TestClusterGrains runs the in-process cluster checks on one set of nodes:
// protoactor's remote keeps process-wide state (grpclog's logger, which is
// also why these tests run without -race), and a second generation of
// in-process members in one test binary dead-letters its first grain
// requests. Production runs one member per process.
func TestClusterGrains(t *testing.T) {
	e := newEnv(t, actors.Config{})
	// Cluster x's activation commits first; cluster y's activation, which
	// loaded the session before, then commits on a stale version and must
	// meet the fence.
	xCommitted := make(chan struct{})
	var once sync.Once
	var yConflicts atomic.Int64
	x := actors.Config{Hooks: actors.Hooks{AfterSettle: func(string, *actors.ObservePayment) { once.Do(func() { close(xCommitted) }) }}}
	y := actors.Config{Store: conflictCounting{Store: e.db, conflicts: &yConflicts}, Hooks: actors.Hooks{
		BeforeSettle: func(string, *actors.ObservePayment) {
			select {
			case <-xCommitted:
			case <-time.After(10 * time.Second):
			}
		}}}
	agent := test.NewInMemAgent()
	a := e.clusterNode(agent, "x", x)
	b := e.clusterNode(agent, "x", x)
	c := e.clusterNode(test.NewInMemAgent(), "y", y)
	fenceTwoActivations(t, e, []*actors.System{a, b, c}, c, &yConflicts)
	grainRepliesCrossNodes(t, e, a, b)
}

// fenceTwoActivations is TestTwoNodesFenceOneSession over session grains:
// nodes A and B form one cluster, which places the session on one of them
// (so the other's calls cross the wire as protobuf), and node late is a
// second cluster over the same database, as a partition during a topology
// change would be — the session is active on two nodes at once. Payments go
// through all three; the version check makes each loser reload (the late
// activation at least once), and every payment counts once.
func fenceTwoActivations(t *testing.T, e *env, nodes []*actors.System, late *actors.System, lateConflicts *atomic.Int64) {
	s := e.session("30", checkout.NativeAsset, time.Hour)
	// The late activation loads the session now, at version 1.
	if _, err := late.Sessions().Get(s.ID); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		node := nodes[i%len(nodes)]
		p := e.payment(s, "1", checkout.NativeAsset, time.Now())
		wg.Go(func() {
			if _, err := node.Sessions().Observe(s.ID, p, time.Now()).Wait(); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := e.load(s.ID)
	if got.AmountReceived.String() != "30.0000000" || got.Status != checkout.StatusComplete || got.Version != 31 {
		t.Fatalf("session %s received at version %d status %s; want 30.0000000 at 31, complete", got.AmountReceived, got.Version, got.Status)
	}
	assertEventCount(t, e, s.ID, checkout.EventSessionCompleted, 1)
	if lateConflicts.Load() == 0 {
		t.Fatal("the late activation met no version conflict: the two activations did not overlap")
	}
	t.Logf("the late activation lost %d commits to the version check and reloaded", lateConflicts.Load())
	for _, n := range nodes {
		// Every activation, whether it won or lost the races, converges on
		// what Postgres holds.
		eventually(t, 5*time.Second, "node sees the settled session", func() bool {
			ss, err := n.Sessions().Repair(s.ID)
			return err == nil && ss.Version == got.Version && ss.Status == checkout.StatusComplete
		})
	}
}

// grainRepliesCrossNodes checks that replies and the errors callers test
// with errors.Is survive the trip between nodes, and that a replayed payment
// is acknowledged as already applied.
func grainRepliesCrossNodes(t *testing.T, e *env, a, b *actors.System) {
	s := e.session("5", checkout.NativeAsset, time.Hour)
	p := e.payment(s, "2", checkout.NativeAsset, time.Now())
	for i, n := range []*actors.System{a, b} {
		r, err := n.Sessions().Observe(s.ID, p, time.Now()).Wait()
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if r.Payment.OperationID != p.OperationID || r.Session.AmountReceived.String() != "2.0000000" || r.AlreadyApplied != (i == 1) {
			t.Fatalf("node %d: reply %+v", i, r)
		}
	}
	for _, n := range []*actors.System{a, b} {
		if _, err := n.Sessions().Expire(s.ID, time.Now()); !errors.Is(err, checkout.ErrNotYetExpired) {
			t.Fatalf("expire before expiry: %v, want ErrNotYetExpired", err)
		}
		got, err := n.Sessions().Get(s.ID)
		if err != nil || got.ID != s.ID || got.Amount != s.Amount || got.ReceivingAccount != s.ReceivingAccount {
			t.Fatalf("get: %+v, %v", got, err)
		}
	}
	if got, err := a.Sessions().Cancel(s.ID); err != nil || got.Status != checkout.StatusCanceled {
		t.Fatalf("cancel: %+v, %v", got.Status, err)
	}
	if _, err := b.Sessions().Observe(s.ID, e.payment(s, "1", checkout.NativeAsset, time.Now()), time.Now()).Wait(); err != nil {
		t.Fatalf("payment after cancel: %v", err)
	}
	if _, err := b.Sessions().Get("no-such-session"); !errors.Is(err, checkout.ErrNotFound) {
		t.Fatalf("missing session: %v, want ErrNotFound", err)
	}
}
