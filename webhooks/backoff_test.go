package webhooks_test

import (
	"testing"
	"time"

	"github.com/checkoutd/checkoutd/webhooks"
)

func TestBackoffSchedule(t *testing.T) {
	first := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := webhooks.Backoff{Jitter: -1}
	want := []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
		5 * time.Hour, 10 * time.Hour, 10 * time.Hour, 10 * time.Hour, 10 * time.Hour, 10 * time.Hour, 10 * time.Hour}
	now := first
	for i, d := range want {
		next, ok := b.Next(i+1, first, now)
		if !ok {
			t.Fatalf("attempt %d: gave up at %s", i+1, now.Sub(first))
		}
		if got := next.Sub(now); got != d {
			t.Fatalf("after attempt %d: delay %s, want %s", i+1, got, d)
		}
		now = next
	}
	// The 12th attempt is 67h35m05s in; another 10 h would pass 72 h.
	if got := now.Sub(first); got != 67*time.Hour+35*time.Minute+5*time.Second {
		t.Fatalf("12th attempt at %s", got)
	}
	if next, ok := b.Next(12, first, now); ok {
		t.Fatalf("retried past the horizon, at %s", next.Sub(first))
	}
}

func TestBackoffJitter(t *testing.T) {
	now := time.Now()
	for _, r := range []float64{0, 0.5, 0.999999} {
		b := webhooks.Backoff{Rand: func() float64 { return r }}
		next, ok := b.Next(2, now, now)
		d := next.Sub(now)
		if !ok || d < 270*time.Second || d > 330*time.Second {
			t.Errorf("rand %v: delay %s, want 5 min ±10%%", r, d)
		}
	}
}
