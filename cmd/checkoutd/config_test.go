package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// serveFlags returns serve's flags and their environment twins, read from
// `checkoutd serve --help`.
func serveFlags(t *testing.T) map[string]string {
	t.Helper()
	var help bytes.Buffer
	if _, err := parseServeFlags([]string{"--help"}, &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve --help: %v", err)
	}
	flags := map[string]string{}
	name := regexp.MustCompile(`^  -([a-z0-9-]+)`)
	env := regexp.MustCompile(`\(\$([A-Z0-9_]+)\)`)
	var current string
	for line := range strings.SplitSeq(help.String(), "\n") {
		if m := name.FindStringSubmatch(line); m != nil {
			current = m[1]
			flags[current] = ""
		}
		if m := env.FindStringSubmatch(line); m != nil && current != "" {
			flags[current] = m[1]
		}
	}
	if len(flags) < 10 {
		t.Fatalf("only %d flags in serve --help:\n%s", len(flags), help.String())
	}
	return flags
}

// TestServeFlagsHaveEnvTwins checks that every serve flag names its
// environment twin in --help.
func TestServeFlagsHaveEnvTwins(t *testing.T) {
	for name, env := range serveFlags(t) {
		if env == "" {
			t.Errorf("--%s has no environment twin in its usage", name)
		} else if env != "DATABASE_URL" && !strings.HasPrefix(env, "CHECKOUTD_") {
			t.Errorf("--%s's twin $%s does not start with CHECKOUTD_", name, env)
		}
	}
}

// TestServeFlagsDocumented checks that docs/configuration.md lists every
// serve flag and its environment twin.
func TestServeFlagsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, env := range serveFlags(t) {
		if !bytes.Contains(doc, []byte("`--"+name+"`")) {
			t.Errorf("docs/configuration.md does not list `--%s`", name)
		}
		if env != "" && !bytes.Contains(doc, []byte("`"+env+"`")) {
			t.Errorf("docs/configuration.md does not list `%s` (the twin of --%s)", env, name)
		}
	}
}

// TestServeBadConfiguration checks that serve refuses bad values, from a
// flag or from the environment, with a usage error (exit 2) that names
// the setting, before connecting to anything.
func TestServeBadConfiguration(t *testing.T) {
	db := []string{"--database-url", "postgres://nowhere.invalid/x"}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"no database", nil, nil, "--database-url"},
		{"unknown network", append(db, "--network", "mars"), nil, "--network"},
		{"bad horizon url", append(db, "--horizon-url", "ftp://x"), nil, "--horizon-url"},
		{"bad http addr", append(db, "--http-addr", "8080"), nil, "--http-addr"},
		{"bad public url", append(db, "--public-url", "pay.example.com"), nil, "--public-url"},
		{"bad log level", append(db, "--log-level", "loud"), nil, "--log-level"},
		{"bad log format", append(db, "--log-format", "xml"), nil, "--log-format"},
		{"zero rate limit", append(db, "--api-rate-limit", "0"), nil, "--api-rate-limit"},
		{"negative idle timeout", append(db, "--session-idle-timeout", "-1s"), nil, "session-idle-timeout"},
		{"negative journal window", append(db, "--journal-window", "-1ms"), nil, "--journal-window"},
		{"bad allowlist", append(db, "--webhooks-allowlist", "10.0.0.0/99"), nil, "--webhooks-allowlist"},
		{"not a duration", db, map[string]string{"CHECKOUTD_RECOVERY_INTERVAL": "soon"}, "CHECKOUTD_RECOVERY_INTERVAL"},
		{"not a boolean", db, map[string]string{"CHECKOUTD_WEBHOOKS_ALLOW_INSECURE": "maybe"}, "CHECKOUTD_WEBHOOKS_ALLOW_INSECURE"},
		{"not a number", db, map[string]string{"CHECKOUTD_API_RATE_BURST": "lots"}, "CHECKOUTD_API_RATE_BURST"},
		{"env level", db, map[string]string{"CHECKOUTD_LOG_LEVEL": "chatty"}, "--log-level"},
		{"unknown flag", append(db, "--colour", "blue"), nil, "colour"},
		{"unknown cluster provider", append(db, "--cluster", "zookeeper"), nil, "--cluster"},
		{"cluster node addr without port", append(db, "--cluster", "etcd", "--node-addr", "127.0.0.1"), nil, "--node-addr"},
		{"cluster node addr on port 0", append(db, "--cluster", "etcd", "--node-addr", "127.0.0.1:0"), nil, "--node-addr"},
		{"cluster without etcd", append(db, "--cluster", "etcd", "--etcd-endpoints", " "), nil, "--etcd-endpoints"},
		{"pprof beyond loopback", append(db, "--pprof-addr", "0.0.0.0:6060"), nil, "--pprof-addr"},
		{"pprof on a public host", append(db, "--pprof-addr", "example.com:6060"), nil, "--pprof-addr"},
		{"pprof without port", db, map[string]string{"CHECKOUTD_PPROF_ADDR": "127.0.0.1"}, "--pprof-addr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("DATABASE_URL", "")
			os.Unsetenv("DATABASE_URL")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stderr bytes.Buffer
			err := run(context.Background(), append([]string{"serve"}, tc.args...), &bytes.Buffer{}, &stderr)
			var usage *usageError
			if !errors.As(err, &usage) {
				t.Fatalf("err = %v, want a usage error", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %q does not name %s", err, tc.want)
			}
		})
	}
}

// TestMainExitCodes runs the real program: a bad setting exits 2 with the
// reason on stderr, and healthcheck exits 0 or 1 by the answer.
func TestMainExitCodes(t *testing.T) {
	if os.Getenv("CHECKOUTD_TEST_MAIN") == "1" {
		os.Args = append([]string{"checkoutd"}, strings.Split(os.Getenv("CHECKOUTD_TEST_ARGS"), " ")...)
		main()
		os.Exit(0)
	}
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer healthy.Close()
	for _, tc := range []struct {
		args   string
		code   int
		stderr string
	}{
		{"serve --database-url postgres://x/y --network mars", 2, `--network "mars"`},
		{"serve --database-url postgres://x/y --log-level loud", 2, "--log-level"},
		{"frobnicate", 2, "unknown command"},
		{"healthcheck --url " + healthy.URL + "/healthz", 0, ""},
		{"healthcheck --url " + healthy.URL + "/readyz", 1, "503"},
		{"healthcheck --url nope", 2, "--url"},
		{"version", 0, ""},
	} {
		t.Run(tc.args, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestMainExitCodes$")
			cmd.Env = append(os.Environ(), "CHECKOUTD_TEST_MAIN=1", "CHECKOUTD_TEST_ARGS="+tc.args)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				code = exit.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tc.code, tc.stderr)
			}
		})
	}
}
