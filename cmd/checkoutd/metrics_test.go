package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/checkoutd/checkoutd/persistence/pgtest"
)

// promtool returns the path of promtool, skipping the test without it
// unless CI=true (.ci/run installs Debian's prometheus package for it).
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool is not installed (apt-get install prometheus); CI must have it")
		}
		t.Skip("promtool is not installed (apt-get install prometheus)")
	}
	return path
}

// scrape reads GET /metrics and parses it.
func scrape(t *testing.T, base string) ([]byte, map[string]*dto.MetricFamily) {
	t.Helper()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %s", res.StatusCode, body)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("GET /metrics: content type %q", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	return body, families
}

// sample is the value of the series of family name whose labels include
// labels: a counter's or gauge's value, a histogram's count. ok is false
// when there is no such series.
func sample(families map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := families[name]
	if f == nil {
		return 0, false
	}
	var sum float64
	found := false
series:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range labels {
			if have[k] != v {
				continue series
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum, found
}

// TestMetricsEndToEnd pays sessions through `checkoutd dev` (the real serve
// against the sandbox network), scrapes /metrics, and checks that the
// numbers moved and that promtool accepts the exposition.
func TestMetricsEndToEnd(t *testing.T) {
	dsn := pgtest.New(t)
	d := startDev(t, devConfig{DatabaseURL: dsn, HTTPAddr: "127.0.0.1:0", SandboxAddr: "127.0.0.1:0",
		DataDir: t.TempDir(), LogLevel: "warn"})
	// A webhook receiver, so that deliveries are attempted and timed.
	var hooks atomic.Int64
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hooks.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(receiver.Close)
	if code := d.call(t, http.MethodPost, "/v1/webhook_endpoints", `{"url":"`+receiver.URL+`","events":["*"]}`, nil); code != http.StatusCreated {
		t.Fatalf("create webhook endpoint: %d", code)
	}
	const paid = 2
	for range paid {
		d.payThroughThePage(t)
	}
	if code := d.call(t, http.MethodGet, "/v1/checkout/sessions/cs_aaaaaaaaaaaaaaaaaaaaaaaa", "", nil); code != http.StatusNotFound {
		t.Fatalf("get a missing session: %d", code)
	}

	// The watcher counts a payment once the session actor acknowledged it,
	// which may be just after the API shows the session paid.
	var body []byte
	var families map[string]*dto.MetricFamily
	deadline := time.Now().Add(10 * time.Second)
	for {
		body, families = scrape(t, d.info.APIURL)
		applied, _ := sample(families, "checkoutd_payments_observed_total", map[string]string{"disposition": "applied"})
		delivered, _ := sample(families, "checkoutd_webhook_deliveries_total", map[string]string{"outcome": "succeeded"})
		if applied >= paid && delivered >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("payments observed never reached %d, or no webhook was delivered (%d received):\n%s\n%s", paid, hooks.Load(),
				grepLines(body, "checkoutd_payments_observed_total"), grepLines(body, "checkoutd_webhook_deliveries_total"))
		}
		time.Sleep(100 * time.Millisecond)
	}

	for _, tc := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"checkoutd_payments_observed_total", map[string]string{"disposition": "applied"}, paid},
		{"checkoutd_payment_settle_duration_seconds", nil, paid},
		{"checkoutd_sessions_created_total", nil, paid},
		{"checkoutd_sessions_completed_total", map[string]string{"payment_status": "paid"}, paid},
		{"checkoutd_sessions_active", nil, 1},
		{"checkoutd_http_requests_total", map[string]string{"method": "POST", "route": "/v1/checkout/sessions", "status_class": "2xx"}, paid},
		{"checkoutd_http_requests_total", map[string]string{"method": "GET", "route": "/v1/checkout/sessions/{id}", "status_class": "4xx"}, 1},
		{"checkoutd_http_request_duration_seconds", map[string]string{"route": "/c/"}, paid},
		{"checkoutd_ready", nil, 1},
		{"checkoutd_webhook_deliveries_total", map[string]string{"outcome": "succeeded"}, 1},
		{"checkoutd_webhook_delivery_duration_seconds", nil, 1},
		{"checkoutd_watchers", map[string]string{"state": "streaming"}, 1},
		{"checkoutd_db_pool_acquires_total", nil, 1},
		{"checkoutd_db_pool_max_connections", nil, 1},
		{"checkoutd_build_info", nil, 1},
		{"go_goroutines", nil, 1},
		{"process_resident_memory_bytes", nil, 1},
		// protoactor's own instruments, through the otel exporter.
		{"protoactor_actor_spawn_count_total", nil, paid},
		{"protoactor_futures_started_count_total", nil, 1},
	} {
		v, ok := sample(families, tc.name, tc.labels)
		if !ok || v < tc.min {
			t.Errorf("%s%v = %v (present: %v), want at least %v\n%s", tc.name, tc.labels, v, ok, tc.min, grepLines(body, tc.name))
		}
	}
	// Present, whatever their value.
	for _, name := range []string{
		"checkoutd_sessions_expired_total", "checkoutd_session_actor_restarts_total",
		"checkoutd_horizon_stream_reconnects_total", "checkoutd_horizon_lag_seconds", "checkoutd_horizon_cursor_age_seconds",
		"checkoutd_webhook_backlog", "checkoutd_webhook_queue_dead_rows", "checkoutd_recovery_runs_total", "checkoutd_recovery_actions_total",
		"checkoutd_actor_mailbox_length",
	} {
		if _, ok := families[name]; !ok {
			t.Errorf("%s is not exported", name)
		}
	}
	if lag, _ := sample(families, "checkoutd_horizon_lag_seconds", nil); lag > 30 {
		t.Errorf("horizon lag %vs on a sandbox closing ledgers every few seconds", lag)
	}
	// No session id may be a label value.
	for name, f := range families {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if strings.Contains(l.GetValue(), "cs_") {
					t.Errorf("%s has a session id in label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}

	checkReferencedMetrics(t, families)

	cmd := exec.Command(promtool(t), "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// grepLines returns the lines of body that mention name, for failure
// messages.
func grepLines(body []byte, name string) string {
	var out []string
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.Contains(line, name) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
