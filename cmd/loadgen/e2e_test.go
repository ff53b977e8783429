package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/keypair"

	"github.com/checkoutd/checkoutd/persistence/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// devServer is the real checkoutd binary running `checkoutd dev`.
type devServer struct {
	bin, dsn             string
	api, sandbox, apiKey string
}

// startDev builds checkoutd, runs `checkoutd dev` on free ports against a
// fresh database, with the settings docs/loadgen.md asks for, and reads the
// addresses and the key from its banner.
func startDev(t *testing.T) *devServer {
	t.Helper()
	dir := t.TempDir()
	d := &devServer{bin: filepath.Join(dir, "checkoutd"), dsn: pgtest.New(t)}
	build := exec.Command("go", "build", "-o", d.bin, "github.com/checkoutd/checkoutd/cmd/checkoutd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build checkoutd: %v\n%s", err, out)
	}
	cmd := exec.Command(d.bin, "dev", "--database-url", d.dsn, "--http-addr", "127.0.0.1:0",
		"--sandbox-addr", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"), "--log-level", "warn")
	cmd.Env = append(os.Environ(),
		"CHECKOUTD_WEBHOOKS_ALLOWLIST=127.0.0.1",
		"CHECKOUTD_API_RATE_LIMIT=1000", "CHECKOUTD_API_RATE_BURST=1000")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	banner := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			field := func(prefix string) string { return strings.Fields(strings.TrimPrefix(line, prefix))[0] }
			switch {
			case strings.HasPrefix(line, "API and checkout pages"):
				d.api = field("API and checkout pages")
			case strings.HasPrefix(line, "Sandbox Stellar network"):
				d.sandbox = field("Sandbox Stellar network")
			case strings.HasPrefix(line, "API key for this run"):
				d.apiKey = field("API key for this run")
				close(banner)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	// Registered after pgtest.New, so it runs first: dev lets go of the
	// database before the harness drops it.
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(time.Minute):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case <-banner:
	case <-exited:
		t.Fatalf("checkoutd dev exited:\n%s", stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("checkoutd dev printed no banner within 2 minutes:\n%s", stderr.String())
	}
	return d
}

// secondMerchant creates another merchant, with a receiving account funded
// on the sandbox, and returns its API key.
func (d *devServer) secondMerchant(t *testing.T) string {
	t.Helper()
	account := keypair.MustRandom().Address()
	resp, err := http.Get(d.sandbox + "/friendbot?addr=" + account)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("fund the second merchant: %v %v", err, resp)
	}
	resp.Body.Close()
	out, err := exec.Command(d.bin, "merchant", "create", "--name", "Second Shop", "--account", account,
		"--database-url", d.dsn).Output()
	if err != nil {
		t.Fatalf("checkoutd merchant create: %v", err)
	}
	var m struct {
		APIKey string `json:"api_key"`
	}
	if err := json.Unmarshal(out, &m); err != nil || m.APIKey == "" {
		t.Fatalf("merchant create printed %q: %v", out, err)
	}
	return m.APIKey
}

// TestLoadAgainstCheckoutdDev runs a small load of every kind, over two
// merchants, against the real `checkoutd dev`, in both pacing modes, and
// requires zero violations.
func TestLoadAgainstCheckoutdDev(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs checkoutd dev")
	}
	d := startDev(t)
	keys := d.apiKey + "," + d.secondMerchant(t)
	common := []string{"--api", d.api, "--sandbox", d.sandbox, "--api-key", keys, "--dev-env", "",
		"--mix", "exact=35,partial=15,overpaid=15,wrong_asset=15,late=10,unpaid=10", "--progress", "none",
		"--duration", "3m", "--settle", "45s", "--json"}
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"closed loop", []string{"--sessions", "30", "--concurrency", "10"}},
		{"open loop", []string{"--sessions", "30", "--rate", "15"}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			report := filepath.Join(t.TempDir(), "report.html")
			var stdout, stderr bytes.Buffer
			args := append(append(append([]string{}, common...), mode.args...), "--report", report)
			err := run(context.Background(), args, &stdout, &stderr)
			if err != nil {
				t.Errorf("loadgen: %v\n%s", err, stderr.String())
			}
			var res result
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				t.Fatalf("the --json summary does not parse: %v\n%s", err, stdout.String())
			}
			if len(res.Violations) != 0 {
				t.Errorf("violations: %v", res.Violations)
			}
			if res.Sessions.Finished != 30 || res.Merchants != 2 {
				t.Errorf("finished %d sessions over %d merchants, want 30 over 2", res.Sessions.Finished, res.Merchants)
			}
			for _, k := range kinds {
				if res.ByKind[k].Finished == 0 {
					t.Errorf("no %s session finished: %+v", k, res.ByKind)
				}
			}
			if res.Webhooks.BadSignatures != 0 || res.Latency[latPayComplete].Count == 0 {
				t.Errorf("webhooks %+v, pay→complete %+v", res.Webhooks, res.Latency[latPayComplete])
			}
			page, err := os.ReadFile(report)
			if err != nil || !bytes.Contains(page, []byte("<svg")) {
				t.Errorf("report: %v", err)
			}
			if t.Failed() {
				t.Logf("summary:\n%s", stderr.String())
			}
		})
	}
}
