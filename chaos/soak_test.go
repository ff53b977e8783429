package chaos

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// TestSoak runs every scenario, in parallel rounds with fresh seeds, until
// $CHAOS_SOAK_DURATION has passed (`make soak SOAK_DURATION=30m`). The
// figures of the whole soak are printed at the end by TestMain.
func TestSoak(t *testing.T) {
	spec := os.Getenv("CHAOS_SOAK_DURATION")
	if spec == "" {
		t.Skip("set CHAOS_SOAK_DURATION (make soak)")
	}
	d, err := time.ParseDuration(spec)
	if err != nil || d <= 0 {
		t.Fatalf("CHAOS_SOAK_DURATION=%q: want a positive duration", spec)
	}
	scenarios := []struct {
		name string
		run  func(*testing.T)
	}{
		{"KillCheckoutd", TestKillCheckoutd},
		{"TwoProcesses", TestTwoProcesses},
		{"SandboxFaults", TestSandboxFaults},
		{"WebhookReceiverOutage", TestWebhookReceiverOutage},
		{"WebhookLongOutage", TestWebhookLongOutage},
		{"ActorPanics", TestActorPanics},
		{"PostgresKill", TestPostgresKill},
		{"ProxyFaults", TestProxyFaults},
	}
	deadline := time.Now().Add(d)
	for round := 1; time.Now().Before(deadline); round++ {
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
			for _, s := range scenarios {
				t.Run(s.name, s.run)
			}
		})
	}
}
