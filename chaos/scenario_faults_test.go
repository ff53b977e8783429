package chaos

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestTwoProcesses runs two checkoutd processes on one database and the
// same accounts: both watch every account and settle every payment, the
// API alternates between them, and now and then one is killed and
// restarted while the other carries on. The version fence and the unique
// operation id must keep every payment exactly once.
func TestTwoProcesses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	nodes := e.startNodes(2, "", "")
	e.dumpLogsOnFailure(nodes...)
	e.setupTraffic(8)
	stop := e.runTraffic()
	deadline := time.Now().Add(scale(45 * time.Second))
	for time.Now().Before(deadline) {
		time.Sleep(3*time.Second + time.Duration(e.rng.Int64N(int64(4*time.Second))))
		n := nodes[e.rng.IntN(2)]
		n.Kill()
		e.fault("kill_one_of_two")
		time.Sleep(time.Duration(e.rng.Int64N(int64(time.Second))))
		if err := n.Start(); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	for _, n := range nodes {
		if err := n.WaitHealthy(context.Background(), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	e.settle(scale(150 * time.Second))
}

// sandboxPhase is one step of the sandbox's fault schedule.
type sandboxPhase struct {
	name   string
	faults string
}

var sandboxPhases = []sandboxPhase{
	{"stream_cut", `{"stream_cut_probability": 0.3}`},
	{"stream_cut_after_2", `{"stream_cut_after": 2}`},
	{"replay_on_reconnect", `{"stream_cut_probability": 0.2, "replay_on_reconnect": 8}`},
	{"burst_429", `{"rate_429": 0.5, "retry_after": "1s"}`},
	{"burst_503", `{"rate_503": 0.5}`},
	{"latency", `{"latency": "300ms"}`},
	// Pages shuffled and adjacent stream events swapped; with cuts, a cut
	// falls between a swapped pair and the stream skips an operation.
	{"reorder", `{"reorder": 0.5}`},
	{"reorder_with_cuts", `{"reorder": 0.5, "stream_cut_probability": 0.2}`},
	{"hold", ``}, // streams of one merchant's account held, then released
}

// TestSandboxFaults drives load while the sandbox cuts streams, replays
// events from before the cursor on reconnect, answers 429 and 503 in
// bursts, adds latency, holds a stream back, and reorders (shuffles JSON
// pages and swaps adjacent stream events, with and without cuts), in a
// seeded order.
func TestSandboxFaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	nodes := e.startNodes(1, "", "")
	e.dumpLogsOnFailure(nodes...)
	e.setupTraffic(8)
	stop := e.runTraffic()
	deadline := time.Now().Add(scale(50 * time.Second))
	for time.Now().Before(deadline) {
		p := sandboxPhases[e.rng.IntN(len(sandboxPhases))]
		body := p.faults
		if p.name == "hold" {
			body = fmt.Sprintf(`{"hold": [%q]}`, e.merch[e.rng.IntN(len(e.merch))].Account)
		}
		e.setFaults(body)
		hold := 2*time.Second + time.Duration(e.rng.Int64N(int64(4*time.Second)))
		e.fault("sandbox_"+p.name, body, " for ", hold)
		time.Sleep(hold)
		e.setFaults(`{}`)
		time.Sleep(time.Duration(e.rng.Int64N(int64(2 * time.Second))))
	}
	stop()
	e.settle(scale(120 * time.Second))
}

// TestWebhookReceiverOutage takes the merchants' webhook receiver down
// (503s, then connection resets), makes it slow, and brings it back, under
// load. Each outage is shorter than the first retry delay (5 s), so that
// every failed delivery succeeds on its first retry and the run stays
// short; TestWebhookLongOutage covers a long outage in process.
func TestWebhookReceiverOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	nodes := e.startNodes(1, "", "")
	e.dumpLogsOnFailure(nodes...)
	e.setupTraffic(8)
	stop := e.runTraffic()
	modes := []struct {
		name string
		mode ReceiverMode
	}{{"down_503", ReceiverDown}, {"reset", ReceiverReset}, {"slow", ReceiverSlow}}
	deadline := time.Now().Add(scale(45 * time.Second))
	for time.Now().Before(deadline) {
		time.Sleep(6*time.Second + time.Duration(e.rng.Int64N(int64(2*time.Second))))
		m := modes[e.rng.IntN(len(modes))]
		e.receiver.SetMode(m.mode, 1500*time.Millisecond)
		e.fault("receiver_" + m.name)
		if m.mode == ReceiverSlow {
			time.Sleep(8 * time.Second)
		} else {
			time.Sleep(time.Duration(2000+e.rng.IntN(2000)) * time.Millisecond)
		}
		e.receiver.SetMode(ReceiverUp, 0)
	}
	stop()
	e.settle(scale(120 * time.Second))
}
