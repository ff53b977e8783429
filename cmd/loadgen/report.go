package main

import (
	"bytes"
	"fmt"
	"html"
	"html/template"
	"io"
	"math"
	"strings"
)

// series is one line of a chart.
type series struct {
	Name   string
	Color  string
	Points [][2]float64 // x, y
}

// chart is a line chart rendered as inline SVG.
type chart struct {
	Title  string
	XLabel string
	YLabel string
	// XMax, if set, is the least the x axis spans, so that every chart of
	// a run spans the same seconds.
	XMax   float64
	Series []series
}

const (
	chartW, chartH                       = 880, 300
	padLeft, padRight, padTop, padBottom = 64, 16, 52, 44
)

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func fmtTick(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", v), "0"), ".")
}

// svg renders the chart: axes with ticks, one polyline per series, and a
// legend. It needs nothing but the browser's SVG support.
func (c chart) svg() template.HTML {
	maxX, maxY := math.Max(c.XMax, 1), 0.0
	for _, s := range c.Series {
		for _, p := range s.Points {
			maxX, maxY = math.Max(maxX, p[0]), math.Max(maxY, p[1])
		}
	}
	const xTicks, yTicks = 10, 5
	xStep, yStep := niceCeil(maxX/xTicks), niceCeil(maxY/yTicks)
	maxX, maxY = math.Ceil(maxX/xStep)*xStep, math.Max(math.Ceil(maxY/yStep), 1)*yStep
	plotW, plotH := float64(chartW-padLeft-padRight), float64(chartH-padTop-padBottom)
	px := func(x float64) float64 { return padLeft + x/maxX*plotW }
	py := func(y float64) float64 { return padTop + plotH - y/maxY*plotH }

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`,
		chartW, chartH, chartW, chartH, html.EscapeString(c.Title))
	fmt.Fprintf(&b, `<text x="%d" y="20" class="title">%s</text>`, padLeft, html.EscapeString(c.Title))
	for y := 0.0; y <= maxY+yStep/2; y += yStep {
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" class="grid"/>`, padLeft, chartW-padRight, py(y), py(y))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" class="tick" text-anchor="end">%s</text>`, padLeft-6, py(y)+4, fmtTick(y))
	}
	for x := 0.0; x <= maxX+xStep/2; x += xStep {
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" class="axis"/>`, px(x), px(x), chartH-padBottom, chartH-padBottom+4)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="tick" text-anchor="middle">%s</text>`, px(x), chartH-padBottom+16, fmtTick(x))
	}
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" class="axis"/>`, padLeft, chartW-padRight, chartH-padBottom, chartH-padBottom)
	fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%d" y2="%d" class="axis"/>`, padLeft, padLeft, padTop, chartH-padBottom)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" class="label" text-anchor="middle">%s</text>`, padLeft+plotW/2, chartH-6, html.EscapeString(c.XLabel))
	fmt.Fprintf(&b, `<text x="14" y="%.1f" class="label" text-anchor="middle" transform="rotate(-90 14 %.1f)">%s</text>`,
		padTop+plotH/2, padTop+plotH/2, html.EscapeString(c.YLabel))
	for i, s := range c.Series {
		var pts []string
		for _, p := range s.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(p[0]), py(p[1])))
		}
		if len(pts) > 0 {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"/>`, s.Color, strings.Join(pts, " "))
		}
		lx := float64(padLeft + i*200)
		fmt.Fprintf(&b, `<rect x="%.1f" y="32" width="12" height="4" fill="%s"/><text x="%.1f" y="38" class="tick">%s</text>`,
			lx, s.Color, lx+16, html.EscapeString(s.Name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // built above from numbers and escaped text only
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"}

// charts returns the report's charts for res.
func charts(res *result) []chart {
	xMax := math.Ceil(res.ElapsedSeconds)
	tp := chart{Title: "Throughput per second", XLabel: "seconds since start", YLabel: "per second", XMax: xMax}
	names := []string{"sessions created", "payments confirmed", "sessions completed (webhook)", "webhook events"}
	for i, name := range names {
		s := series{Name: name, Color: palette[i]}
		for _, b := range res.Throughput {
			v := []int{b.Created, b.Payments, b.Completed, b.Webhooks}[i]
			s.Points = append(s.Points, [2]float64{float64(b.Second), float64(v)})
		}
		tp.Series = append(tp.Series, s)
	}
	out := []chart{tp}
	for _, name := range []string{latCreate, latPayComplete, latRecorded, latDelivery, latSubmit} {
		c := chart{Title: "Latency over time: " + name + " (by the second it ended in)", XLabel: "seconds since start", YLabel: "milliseconds", XMax: xMax}
		for i, p := range []string{"p50", "p90", "p99", "max"} {
			s := series{Name: p, Color: palette[i]}
			for _, b := range res.LatencyOverTime[name] {
				v := map[string]float64{"p50": b.P50, "p90": b.P90, "p99": b.P99, "max": b.Max}[p]
				s.Points = append(s.Points, [2]float64{float64(b.Second), v})
			}
			c.Series = append(c.Series, s)
		}
		out = append(out, c)
	}
	return out
}

var reportTmpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>loadgen run {{.Res.RunID}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 960px; }
table { border-collapse: collapse; margin: 8px 0 20px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
svg { display: block; margin: 12px 0 24px; background: #fcfcfc; border: 1px solid #eee; }
svg .title { font-weight: 600; font-size: 14px; }
svg .tick { font-size: 11px; fill: #555; }
svg .label { font-size: 12px; fill: #333; }
svg .grid { stroke: #e6e6e6; }
svg .axis { stroke: #888; }
.ok { color: #1a7f37; } .bad { color: #c62828; }
</style></head><body>
<h1>loadgen run {{.Res.RunID}}</h1>
<p>Against {{.Res.API}} (sandbox {{.Res.Sandbox}}), started {{.Res.StartedAt.Format "2006-01-02 15:04:05 UTC"}}:
{{.Res.Pacing}}, mix {{.Res.Mix}}, late sessions by {{.Res.LateMode}}, {{.Res.Merchants}} merchant(s), {{.Res.Customers}} customers.
{{.Res.Sessions.Finished}} of {{.Res.Sessions.Planned}} sessions finished in {{printf "%.1f" .Res.ElapsedSeconds}} s.</p>
{{if .Res.Violations}}<p class="bad"><strong>{{len .Res.Violations}} violation(s)</strong></p>
<ul>{{range .Res.Violations}}<li>{{.}}</li>{{end}}</ul>
{{else}}<p class="ok"><strong>No violations.</strong></p>{{end}}
{{range .Charts}}{{.}}{{end}}
<h2>Latency (ms)</h2>
<table><tr><th>measure</th><th>count</th><th>min</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>
{{range .Latency}}<tr><td>{{.Name}}</td><td>{{.L.Count}}</td><td>{{printf "%.1f" .L.Min}}</td><td>{{printf "%.1f" .L.P50}}</td><td>{{printf "%.1f" .L.P90}}</td><td>{{printf "%.1f" .L.P99}}</td><td>{{printf "%.1f" .L.P999}}</td><td>{{printf "%.1f" .L.Max}}</td></tr>
{{end}}</table>
<h2>Sessions</h2>
<table><tr><th>kind</th><th>planned</th><th>started</th><th>created</th><th>paid</th><th>finished</th></tr>
{{range .Kinds}}<tr><td>{{.Name}}</td><td>{{.C.Planned}}</td><td>{{.C.Started}}</td><td>{{.C.Created}}</td><td>{{.C.Paid}}</td><td>{{.C.Finished}}</td></tr>
{{end}}</table>
<p>API: {{.Res.APIStats.Requests}} requests, {{.Res.APIStats.RateLimited}} rate limited (429), {{.Res.APIStats.Retries}} retries, {{.Res.APIStats.ServerErrors}} server errors.
Webhooks: {{.Res.Webhooks.Events}} events in {{.Res.Webhooks.Deliveries}} deliveries ({{.Res.Webhooks.Duplicates}} redelivered), {{.Res.Webhooks.BadSignatures}} bad signatures.</p>
</body></html>
`))

// writeReport writes a self-contained HTML page: the summary, the
// violations, and the charts as inline SVG; it loads nothing.
func writeReport(w io.Writer, res *result) error {
	type lat struct {
		Name string
		L    latencySummary
	}
	type kc struct {
		Name string
		C    sessionCounts
	}
	data := struct {
		Res     *result
		Charts  []template.HTML
		Latency []lat
		Kinds   []kc
	}{Res: res}
	for _, c := range charts(res) {
		data.Charts = append(data.Charts, c.svg())
	}
	for _, name := range latencyOrder {
		data.Latency = append(data.Latency, lat{name, res.Latency[name]})
	}
	for _, k := range kinds {
		if c, ok := res.ByKind[k]; ok {
			data.Kinds = append(data.Kinds, kc{string(k), c})
		}
	}
	data.Kinds = append(data.Kinds, kc{"total", res.Sessions})
	return reportTmpl.Execute(w, data)
}
