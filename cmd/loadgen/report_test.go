package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sampleResult is a small run's result, as summarize would make it.
func sampleResult() *result {
	res := &result{RunID: "deadbeef", API: "http://127.0.0.1:8080", Sandbox: "http://127.0.0.1:8000",
		Pacing: "open loop at 20 sessions/s", Mix: "exact=1", LateMode: lateCancel, Merchants: 1, Customers: 8,
		StartedAt: time.Unix(1_900_000_000, 0), ElapsedSeconds: 3.2,
		ByKind:          map[kind]sessionCounts{kindExact: {Planned: 3, Started: 3, Created: 3, Paid: 3, Finished: 3}},
		Sessions:        sessionCounts{Planned: 3, Started: 3, Created: 3, Paid: 3, Finished: 3},
		Latency:         map[string]latencySummary{},
		LatencyOverTime: map[string][]latencyBucket{},
	}
	for s := 0; s < 4; s++ {
		res.Throughput = append(res.Throughput, secondBucket{Second: s, Created: s, Payments: 2 * s, Completed: s, Webhooks: 3 * s})
	}
	for _, name := range latencyOrder {
		res.Latency[name] = latencySummary{Count: 3, Min: 1, P50: 2, P90: 3, P99: 4, P999: 4, Max: 5}
		res.LatencyOverTime[name] = []latencyBucket{{Second: 1, Count: 2, P50: 10, P90: 20, P99: 30, Max: 31}, {Second: 3, Count: 1, P50: 5, P90: 5, P99: 5, Max: 5}}
	}
	return res
}

func TestReportIsSelfContainedHTMLWithSVGCharts(t *testing.T) {
	res := sampleResult()
	res.Violations = []violation{{Session: "cs_1", Kind: kindExact, Problem: `ended <open>/unpaid & "more"`}}
	var b bytes.Buffer
	if err := writeReport(&b, res); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, bad := range []string{"<script", " src=", "<link", "@import", "url("} {
		if strings.Contains(page, bad) {
			t.Errorf("the report contains %q: it must load nothing", bad)
		}
	}
	svgs := regexp.MustCompile(`(?s)<svg .*?</svg>`).FindAllString(page, -1)
	if want := len(charts(res)); len(svgs) != want || want != 6 {
		t.Fatalf("%d charts in the page, want %d (and 6)", len(svgs), want)
	}
	for i, s := range svgs {
		var v any
		if err := xml.Unmarshal([]byte(s), &v); err != nil {
			t.Errorf("chart %d is not well-formed SVG: %v", i, err)
		}
		if n := strings.Count(s, "<polyline"); n != 4 {
			t.Errorf("chart %d has %d lines, want 4", i, n)
		}
	}
	if !strings.Contains(page, "ended &lt;open&gt;/unpaid &amp; &#34;more&#34;") {
		t.Error("the violation is not in the page, escaped")
	}
	if !strings.Contains(page, latPayComplete) {
		t.Error("the latency table is missing")
	}
}

func TestChartScalesPointsIntoThePlot(t *testing.T) {
	c := chart{Title: "t", Series: []series{{Name: "a", Color: "#000", Points: [][2]float64{{0, 0}, {10, 100}}}}}
	s := string(c.svg())
	m := regexp.MustCompile(`points="([^"]*)"`).FindStringSubmatch(s)
	if m == nil {
		t.Fatal("no polyline")
	}
	// x from padLeft to chartW-padRight, y from the bottom to the top.
	want := fmt.Sprintf("%d.0,%d.0 %d.0,%d.0", padLeft, chartH-padBottom, chartW-padRight, padTop)
	if m[1] != want {
		t.Errorf("points %q, want %q", m[1], want)
	}
}

func TestNiceCeil(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 0.3: 0.5, 1: 1, 1.1: 2, 3: 5, 7: 10, 101: 200, 4999: 5000} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%g) = %g, want %g", in, got, want)
		}
	}
}

func TestTableListsViolations(t *testing.T) {
	res := sampleResult()
	var b bytes.Buffer
	writeTable(&b, res)
	if !strings.Contains(b.String(), "violations: none") {
		t.Errorf("table without violations:\n%s", b.String())
	}
	res.Violations = []violation{{Problem: "signature check failed: x"}}
	b.Reset()
	writeTable(&b, res)
	if !strings.Contains(b.String(), "violations: 1\n  - signature check failed: x") {
		t.Errorf("table with a violation:\n%s", b.String())
	}
}
