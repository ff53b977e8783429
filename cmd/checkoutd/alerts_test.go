package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"
)

const (
	dashboardPath = "../../docs/grafana/checkoutd.json"
	alertsPath    = "../../docs/prometheus/alerts.yml"
)

// TestAlertRules checks docs/prometheus/alerts.yml with promtool, and runs
// its unit tests (docs/prometheus/alerts_test.yml).
func TestAlertRules(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", alertsPath},
		{"test", "rules", "../../docs/prometheus/alerts_test.yml"},
	} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	rules := alertRules(t)
	for _, want := range []string{"CheckoutdHorizonLagHigh", "CheckoutdWebhookBacklogGrowing",
		"CheckoutdWebhookQueueNotVacuumed", "CheckoutdActorRestartsSpiking", "CheckoutdNotReady"} {
		if _, ok := rules[want]; !ok {
			t.Errorf("alerts.yml has no %s", want)
		}
	}
	// Every alert has a runbook section in docs/operations.md.
	ops, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for name := range rules {
		if !strings.Contains(string(ops), "### "+name) {
			t.Errorf("docs/operations.md has no section ### %s", name)
		}
	}
}

// alertRules reads alerts.yml: alert name to expression.
func alertRules(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	rules := map[string]string{}
	for _, g := range doc.Groups {
		for _, r := range g.Rules {
			rules[r.Alert] = r.Expr
		}
	}
	return rules
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Title  string `json:"title"`
	UID    string `json:"uid"`
	Panels []struct {
		Title   string `json:"title"`
		Type    string `json:"type"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardPath, err)
	}
	return d
}

// TestDashboard checks that the Grafana dashboard parses and has the
// panels operators look for, each with a query.
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q, uid %q", d.Title, d.UID)
	}
	var titles []string
	for _, p := range d.Panels {
		titles = append(titles, p.Title)
		if len(p.Targets) == 0 || p.Targets[0].Expr == "" {
			t.Errorf("panel %q has no query", p.Title)
		}
	}
	for _, want := range []string{"Payment throughput", "Settle latency", "Watcher lag", "Webhook backlog",
		"Webhook failures", "Active actors", "Actor restarts", "HTTP errors"} {
		if !slices.Contains(titles, want) {
			t.Errorf("no panel %q in %v", want, titles)
		}
	}
}

// metricName matches the metric names a PromQL expression may reference.
var metricName = regexp.MustCompile(`\b(?:checkoutd|protoactor|go|process)_[a-z0-9_]+\b`)

// checkReferencedMetrics checks that every metric the dashboard and the
// alerts query is in a real scrape.
func checkReferencedMetrics(t *testing.T, families map[string]*dto.MetricFamily) {
	t.Helper()
	exprs := map[string]string{}
	for _, p := range loadDashboard(t).Panels {
		for _, target := range p.Targets {
			exprs["dashboard panel "+p.Title] += target.Expr + "\n"
		}
	}
	for name, expr := range alertRules(t) {
		exprs["alert "+name] = expr
	}
	for where, expr := range exprs {
		for _, name := range metricName.FindAllString(expr, -1) {
			if families[name] != nil {
				continue
			}
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			if f := families[base]; f != nil && f.GetType() == dto.MetricType_HISTOGRAM {
				continue
			}
			t.Errorf("%s queries %s, which /metrics does not export", where, name)
		}
	}
}
