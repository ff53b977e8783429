package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// startProgress shows the run's progress on w until the returned stop is
// called: a bar redrawn in place on a terminal, a plain line every five
// seconds otherwise.
func startProgress(cfg config, w io.Writer, r *runner, start time.Time) (stop func()) {
	mode := cfg.Progress
	if mode == "auto" {
		mode = "lines"
		if isTerminal(w) {
			mode = "bar"
		}
	}
	if mode == "none" {
		return func() {}
	}
	every := 5 * time.Second
	if mode == "bar" {
		every = 200 * time.Millisecond
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-quit:
				if mode == "bar" {
					fmt.Fprintf(w, "\r%s\n", progressLine(cfg, r, start, true))
				}
				return
			case <-t.C:
				if mode == "bar" {
					fmt.Fprintf(w, "\r%s\x1b[K", progressLine(cfg, r, start, true))
				} else {
					fmt.Fprintln(w, progressLine(cfg, r, start, false))
				}
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

func progressLine(cfg config, r *runner, start time.Time, bar bool) string {
	p := &r.progress
	finished, failed := p.Finished.Load(), p.Failed.Load()
	events, badSigs := r.rcv.counts()
	elapsed := time.Since(start)
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(finished) / s
	}
	text := fmt.Sprintf("%5.0fs  created %d  paid %d  finished %d/%d  failed %d  webhooks %d  bad sigs %d  %.1f sessions/s  429s %d",
		elapsed.Seconds(), p.Created.Load(), p.Paid.Load(), finished, cfg.Sessions, failed, events, badSigs, rate,
		r.apis[0].stats.RateLimited.Load())
	if !bar {
		return text
	}
	const width = 30
	filled := int(float64(width) * float64(finished+failed) / float64(cfg.Sessions))
	return "[" + strings.Repeat("=", filled) + strings.Repeat(" ", width-filled) + "] " + text
}
