package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
)

// writeOutputs prints the summary table (on stdout, or stderr with
// --json), the JSON summary and the HTML report, as configured.
func writeOutputs(cfg config, res *result, stdout, stderr io.Writer) error {
	tableOut := stdout
	if cfg.JSON {
		tableOut = stderr
	}
	writeTable(tableOut, res)
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("write the JSON summary: %w", err)
		}
	}
	if cfg.ReportPath != "" {
		f, err := os.Create(cfg.ReportPath)
		if err != nil {
			return fmt.Errorf("write the report: %w", err)
		}
		if err := writeReport(f, res); err != nil {
			f.Close()
			return fmt.Errorf("write the report: %w", err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("write the report: %w", err)
		}
		fmt.Fprintf(stderr, "report written to %s\n", cfg.ReportPath)
	}
	return nil
}

// writeTable prints the run's summary as aligned text.
func writeTable(w io.Writer, res *result) {
	fmt.Fprintf(w, "\nloadgen run %s against %s: %s, mix %s, late by %s, %d merchant(s), %d customers\n",
		res.RunID, res.API, res.Pacing, res.Mix, res.LateMode, res.Merchants, res.Customers)
	rate := 0.0
	if res.ElapsedSeconds > 0 {
		rate = float64(res.Sessions.Finished) / res.ElapsedSeconds
	}
	fmt.Fprintf(w, "%d sessions finished in %.1f s: %.1f sessions/s\n\n", res.Sessions.Finished, res.ElapsedSeconds, rate)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "kind\tplanned\tstarted\tcreated\tpaid\tfinished\t")
	for _, k := range append(kinds, "total") {
		c := res.ByKind[k]
		if k == "total" {
			c = res.Sessions
		} else if c.Planned == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t\n", k, c.Planned, c.Started, c.Created, c.Paid, c.Finished)
	}
	tw.Flush()
	fmt.Fprintln(w)

	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "latency (ms)\tcount\tmin\tp50\tp90\tp99\tp99.9\tmax\t")
	for _, name := range latencyOrder {
		l := res.Latency[name]
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", name, l.Count, l.Min, l.P50, l.P90, l.P99, l.P999, l.Max)
	}
	tw.Flush()

	peak, peakPay := 0, 0
	for _, b := range res.Throughput {
		peak = max(peak, b.Completed)
		peakPay = max(peakPay, b.Payments)
	}
	fmt.Fprintf(w, "\nthroughput: peak %d sessions completed/s, peak %d payments confirmed/s\n", peak, peakPay)
	a := res.APIStats
	fmt.Fprintf(w, "API: %d requests, %d rate limited (429), %d retries, %d server errors\n",
		a.Requests, a.RateLimited, a.Retries, a.ServerErrors)
	h := res.Webhooks
	fmt.Fprintf(w, "webhooks: %d events in %d deliveries (%d redelivered), %d of other sessions, %d bad signatures\n",
		h.Events, h.Deliveries, h.Duplicates, h.Foreign, h.BadSignatures)
	if len(res.Violations) == 0 {
		fmt.Fprintln(w, "violations: none")
		return
	}
	fmt.Fprintf(w, "violations: %d\n", len(res.Violations))
	for i, v := range res.Violations {
		if i == 200 {
			fmt.Fprintf(w, "  … and %d more (see --json)\n", len(res.Violations)-i)
			break
		}
		fmt.Fprintf(w, "  - %s\n", v)
	}
}
