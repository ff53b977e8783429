package main

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// result is a run's summary: what --json prints, and what the table and
// the report show.
type result struct {
	RunID     string    `json:"run_id"`
	API       string    `json:"api"`
	Sandbox   string    `json:"sandbox"`
	Pacing    string    `json:"pacing"`
	Mix       string    `json:"mix"`
	LateMode  string    `json:"late_mode"`
	Merchants int       `json:"merchants"`
	Customers int       `json:"customers"`
	StartedAt time.Time `json:"started_at"`
	// ElapsedSeconds is the load phase: from the first scheduled session
	// until every started session finished (or --duration ran out).
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	CutOff         bool    `json:"cut_off"`

	Sessions sessionCounts             `json:"sessions"`
	ByKind   map[kind]sessionCounts    `json:"by_kind"`
	APIStats apiCounts                 `json:"api_requests"`
	Webhooks webhookCounts             `json:"webhooks"`
	Latency  map[string]latencySummary `json:"latency_ms"`
	// Throughput is per second of the run.
	Throughput []secondBucket `json:"throughput"`
	// LatencyOverTime holds, per second, percentiles of the latencies that
	// ended in that second.
	LatencyOverTime map[string][]latencyBucket `json:"latency_over_time"`
	Violations      []violation                `json:"violations"`
}

type sessionCounts struct {
	Planned  int `json:"planned"`
	Started  int `json:"started"`
	Created  int `json:"created"`
	Paid     int `json:"paid"`
	Finished int `json:"finished"`
}

type apiCounts struct {
	Requests     int64 `json:"requests"`
	RateLimited  int64 `json:"rate_limited"`
	Retries      int64 `json:"retries"`
	ServerErrors int64 `json:"server_errors"`
}

type webhookCounts struct {
	Events        int `json:"events"`
	Deliveries    int `json:"deliveries"`
	Duplicates    int `json:"duplicates"`
	Foreign       int `json:"foreign"`
	BadSignatures int `json:"bad_signatures"`
}

// latencySummary is an HDR histogram's percentiles, in milliseconds.
type latencySummary struct {
	Count int64   `json:"count"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

type secondBucket struct {
	Second    int `json:"second"`
	Created   int `json:"sessions_created"`
	Payments  int `json:"payments_confirmed"`
	Completed int `json:"sessions_completed"`
	Webhooks  int `json:"webhooks"`
}

type latencyBucket struct {
	Second int     `json:"second"`
	Count  int64   `json:"count"`
	P50    float64 `json:"p50"`
	P90    float64 `json:"p90"`
	P99    float64 `json:"p99"`
	Max    float64 `json:"max"`
}

// The latencies measured, in the order the table shows them.
const (
	latCreate         = "session create (from schedule)"
	latCreateService  = "session create (request only)"
	latSubmit         = "payment submit → ledger closed"
	latRecorded       = "payment submit → event recorded"
	latClosedRecorded = "ledger closed → event recorded"
	latDelivery       = "event recorded → webhook received"
	latPayWebhook     = "payment submit → its webhook"
	latPayComplete    = "last payment submit → completed webhook"
	latEndToEnd       = "scheduled → completed webhook"
	latencyHistMaxUs  = int64(30 * time.Minute / time.Microsecond)
	latencySigFigures = 3
)

var latencyOrder = []string{latCreate, latCreateService, latSubmit, latRecorded, latClosedRecorded, latDelivery, latPayWebhook, latPayComplete, latEndToEnd}

// timeline collects one latency into a whole-run histogram and a
// histogram per second of the run.
type timeline struct {
	start  time.Time
	all    *hdrhistogram.Histogram
	perSec map[int]*hdrhistogram.Histogram
}

func newTimeline(start time.Time) *timeline {
	return &timeline{start: start, all: newHist(), perSec: map[int]*hdrhistogram.Histogram{}}
}

func newHist() *hdrhistogram.Histogram {
	return hdrhistogram.New(1, latencyHistMaxUs, latencySigFigures)
}

// add records the latency from `from` to `to`, in the second `to` falls in.
func (t *timeline) add(from, to time.Time) {
	if from.IsZero() || to.IsZero() {
		return
	}
	us := max(to.Sub(from).Microseconds(), 1)
	_ = t.all.RecordValue(min(us, latencyHistMaxUs))
	sec := max(int(to.Sub(t.start)/time.Second), 0)
	h := t.perSec[sec]
	if h == nil {
		h = newHist()
		t.perSec[sec] = h
	}
	_ = h.RecordValue(min(us, latencyHistMaxUs))
}

func ms(us int64) float64 { return float64(us) / 1000 }

func summarizeHist(h *hdrhistogram.Histogram) latencySummary {
	if h.TotalCount() == 0 {
		return latencySummary{}
	}
	return latencySummary{Count: h.TotalCount(), Min: ms(h.Min()), Mean: h.Mean() / 1000,
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max())}
}

func (t *timeline) buckets() []latencyBucket {
	last := -1
	for s := range t.perSec {
		last = max(last, s)
	}
	var out []latencyBucket
	for s := 0; s <= last; s++ {
		h := t.perSec[s]
		if h == nil {
			continue
		}
		out = append(out, latencyBucket{Second: s, Count: h.TotalCount(), P50: ms(h.ValueAtQuantile(50)),
			P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)), Max: ms(h.Max())})
	}
	return out
}

// summarize turns the run's records into its result.
func summarize(r *runner, snap hooksSnapshot, stats *apiStats, start, end time.Time) *result {
	res := &result{RunID: r.runID, API: r.cfg.APIURL, Sandbox: r.cfg.SandboxURL, Pacing: r.pacing(),
		Mix: r.cfg.Mix.String(), LateMode: r.cfg.LateMode, Merchants: len(r.apis), Customers: r.cfg.Customers,
		StartedAt: start.UTC(), ElapsedSeconds: end.Sub(start).Seconds(), ByKind: map[kind]sessionCounts{},
		Latency: map[string]latencySummary{}, LatencyOverTime: map[string][]latencyBucket{}}
	res.APIStats = apiCounts{Requests: stats.Requests.Load(), RateLimited: stats.RateLimited.Load(),
		Retries: stats.Retries.Load(), ServerErrors: stats.ServerErrs.Load()}
	res.Webhooks = webhookCounts{Events: len(snap.Arrivals), Deliveries: snap.Deliveries, Duplicates: snap.Duplicates,
		Foreign: snap.Foreign, BadSignatures: len(snap.BadSigs)}

	tl := map[string]*timeline{}
	for _, name := range latencyOrder {
		tl[name] = newTimeline(start)
	}
	counts := map[int]*secondBucket{}
	bucket := func(t time.Time) *secondBucket {
		sec := max(int(t.Sub(start)/time.Second), 0)
		b := counts[sec]
		if b == nil {
			b = &secondBucket{Second: sec}
			counts[sec] = b
		}
		return b
	}
	// A ledger's close instant, to the millisecond: the first answer to a
	// payment in it (the sandbox answers them all when it closes). The
	// close time the sandbox reports is whole seconds, as Stellar's is.
	closed := map[int32]time.Time{}
	for _, s := range r.runs {
		for _, p := range s.Payments {
			if p.Err == "" && p.Ledger > 0 {
				if at, ok := closed[p.Ledger]; !ok || p.AckAt.Before(at) {
					closed[p.Ledger] = p.AckAt
				}
			}
		}
	}
	for _, s := range r.runs {
		c := res.ByKind[s.Kind]
		c.Planned++
		hooks := snap.Sessions[s.ID]
		if !s.Scheduled.IsZero() {
			c.Started++
		}
		if s.ID != "" {
			c.Created++
			bucket(s.CreateDone).Created++
			tl[latCreate].add(s.Scheduled, s.CreateDone)
			tl[latCreateService].add(s.CreateStart, s.CreateDone)
		}
		paid := len(s.Payments) > 0
		for _, p := range s.Payments {
			if p.Err != "" {
				paid = false
				continue
			}
			bucket(p.AckAt).Payments++
			tl[latSubmit].add(p.SubmitAt, p.AckAt)
			tl[latPayWebhook].add(p.SubmitAt, hooks.PaymentAt[p.Hash])
			tl[latRecorded].add(p.SubmitAt, hooks.RecordedAt[p.Hash])
			tl[latClosedRecorded].add(closed[p.Ledger], hooks.RecordedAt[p.Hash])
		}
		if paid {
			c.Paid++
		}
		if !s.Finished.IsZero() {
			c.Finished++
		}
		if at, ok := hooks.FirstAt["checkout.session.completed"]; ok && s.Kind.completes() && len(s.Payments) > 0 {
			bucket(at).Completed++
			tl[latPayComplete].add(s.Payments[len(s.Payments)-1].SubmitAt, at)
			tl[latEndToEnd].add(s.Scheduled, at)
		}
		res.ByKind[s.Kind] = c
	}
	for _, at := range snap.Arrivals {
		bucket(at).Webhooks++
	}
	for _, l := range snap.Lags {
		tl[latDelivery].add(l[0], l[1])
	}
	for _, c := range res.ByKind {
		res.Sessions.Planned += c.Planned
		res.Sessions.Started += c.Started
		res.Sessions.Created += c.Created
		res.Sessions.Paid += c.Paid
		res.Sessions.Finished += c.Finished
	}
	last := -1
	for s := range counts {
		last = max(last, s)
	}
	for s := 0; s <= last; s++ {
		b := secondBucket{Second: s}
		if c := counts[s]; c != nil {
			b = *c
		}
		res.Throughput = append(res.Throughput, b)
	}
	for _, name := range latencyOrder {
		res.Latency[name] = summarizeHist(tl[name].all)
		res.LatencyOverTime[name] = tl[name].buckets()
	}
	return res
}
