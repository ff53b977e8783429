package webhooks

import (
	"math/rand/v2"
	"time"
)

// defaultSchedule is the delay before each attempt after the first, after
// the Standard Webhooks example: 5 s, 5 min, 30 min, 2 h, 5 h, then every
// 10 h. The last entry repeats.
var defaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour,
}

// DefaultSchedule returns the default retry delays (a fresh copy).
func DefaultSchedule() []time.Duration { return append([]time.Duration(nil), defaultSchedule...) }

// Backoff decides when a failed delivery is tried again, and when it is
// given up.
type Backoff struct {
	// Schedule is the delay after the 1st, 2nd, ... failed attempt; the last
	// entry repeats. Default DefaultSchedule.
	Schedule []time.Duration
	// Horizon is how long after its first attempt a delivery is retried.
	// Default 72 h.
	Horizon time.Duration
	// Jitter spreads each delay uniformly over ±Jitter of itself, so that
	// receivers that fail together are not retried together. Default 0.1;
	// negative for none.
	Jitter float64
	// Rand returns a number in [0, 1). Default math/rand/v2.Float64.
	Rand func() float64
}

func (b Backoff) withDefaults() Backoff {
	if len(b.Schedule) == 0 {
		b.Schedule = defaultSchedule
	}
	if b.Horizon <= 0 {
		b.Horizon = 72 * time.Hour
	}
	if b.Jitter == 0 {
		b.Jitter = 0.1
	}
	if b.Jitter < 0 {
		b.Jitter = 0
	}
	if b.Rand == nil {
		b.Rand = rand.Float64
	}
	return b
}

// Delay is the delay, before jitter, after the given number of failed
// attempts (1 for the first).
func (b Backoff) Delay(failed int) time.Duration {
	b = b.withDefaults()
	i := min(max(failed, 1), len(b.Schedule)) - 1
	return b.Schedule[i]
}

// Next returns when to try again after the given number of failed attempts
// (the last at now), or ok false when the next attempt would fall later than
// Horizon after firstAttempt: the delivery has failed.
func (b Backoff) Next(failed int, firstAttempt, now time.Time) (next time.Time, ok bool) {
	b = b.withDefaults()
	d := b.Delay(failed)
	d += time.Duration((2*b.Rand() - 1) * b.Jitter * float64(d))
	next = now.Add(d)
	if next.Sub(firstAttempt) > b.Horizon {
		return time.Time{}, false
	}
	return next, true
}
