package chaos

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

// kills is how many times TestKillCheckoutd kills checkoutd ($CHAOS_KILLS,
// default 50).
func kills() int {
	if n, err := strconv.Atoi(os.Getenv("CHAOS_KILLS")); err == nil && n > 0 {
		return n
	}
	return 50
}

// TestKillCheckoutd kills checkoutd with SIGKILL at random moments under
// load, restarts it at once, and checks every invariant once it is
// quiescent. Kills land anywhere: in a settlement, in a webhook attempt,
// during startup and migration.
func TestKillCheckoutd(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	nodes := e.startNodes(1, "", "")
	node := nodes[0]
	e.dumpLogsOnFailure(node)
	e.setupTraffic(8)
	stop := e.runTraffic()

	n := kills()
	for i := range n {
		// Uniform in [0.4 s, 3.6 s] after the start: about 2 s apart, some
		// before the process has even finished starting.
		after := 400*time.Millisecond + time.Duration(e.rng.Int64N(int64(3200*time.Millisecond)))
		time.Sleep(after)
		node.Kill()
		e.fault("kill_checkoutd", "after ", after)
		if exited, out := node.Exited(); exited {
			t.Fatalf("checkoutd exited by itself before kill %d: %s", i, out)
		}
		if err := node.Start(); err != nil {
			t.Fatal(err)
		}
	}
	// A little more load with checkoutd up, then quiescence.
	time.Sleep(3 * time.Second)
	stop()
	if err := node.WaitHealthy(context.Background(), time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d kills; traffic: %d sessions, %d payments", node.Kills(), e.traffic.Sessions.Load(), e.traffic.Payments.Load())
	// Deliveries claimed by a killed process come due again when their
	// lease lapses: a minute and ten seconds.
	e.settle(scale(150 * time.Second))
}
