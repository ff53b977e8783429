package main

import (
	"io"
	"log/slog"
	"net/http"
	"testing"
)

// TestPprofListener: with an address, the profiles answer on their own
// listener (and only there: the API's mux has no /debug/pprof); with none,
// nothing listens.
func TestPprofListener(t *testing.T) {
	addr, stop, err := startPprof("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || len(b) == 0 {
		t.Fatalf("cmdline: %d %q", res.StatusCode, b)
	}
	stop()
	if _, err := http.Get("http://" + addr + "/debug/pprof/"); err == nil {
		t.Fatal("the pprof listener still answers after stop")
	}
	if addr, stop, err := startPprof("", nil); err != nil || addr != "" {
		t.Fatalf("empty address: %q, %v", addr, err)
	} else {
		stop()
	}
}
