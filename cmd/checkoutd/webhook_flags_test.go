package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
)

// TestServeWebhookEngineFlags checks that the delivery engine's limits
// come from their flags or environment twins, with the documented
// defaults, and that values out of range are usage errors naming the
// setting.
func TestServeWebhookEngineFlags(t *testing.T) {
	db := []string{"--database-url", "postgres://nowhere.invalid/x"}
	for _, tc := range []struct {
		name      string
		args      []string
		env       map[string]string
		per, max  int
		wantError string
	}{
		{"defaults", db, nil, 32, 1024, ""},
		{"flags", append(db, "--webhooks-per-endpoint", "100", "--webhooks-max-in-flight", "400"), nil, 100, 400, ""},
		{"environment", db, map[string]string{"CHECKOUTD_WEBHOOKS_PER_ENDPOINT": "8",
			"CHECKOUTD_WEBHOOKS_MAX_IN_FLIGHT": "64"}, 8, 64, ""},
		{"zero per endpoint", append(db, "--webhooks-per-endpoint", "0"), nil, 0, 0, "--webhooks-per-endpoint"},
		{"huge per endpoint", append(db, "--webhooks-per-endpoint", "1000000", "--webhooks-max-in-flight", "1000000"), nil, 0, 0, "--webhooks-per-endpoint"},
		{"in flight below per endpoint", append(db, "--webhooks-per-endpoint", "64", "--webhooks-max-in-flight", "32"), nil, 0, 0, "--webhooks-max-in-flight"},
		{"huge in flight", append(db, "--webhooks-max-in-flight", "100000000"), nil, 0, 0, "--webhooks-max-in-flight"},
		{"not a number", db, map[string]string{"CHECKOUTD_WEBHOOKS_PER_ENDPOINT": "many"}, 0, 0, "CHECKOUTD_WEBHOOKS_PER_ENDPOINT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := serveFlagCase(t, tc.args, tc.env, tc.wantError)
			if ok && (c.WebhooksPerEndpoint != tc.per || c.WebhooksMaxInFlight != tc.max) {
				t.Fatalf("per endpoint %d, in flight %d; want %d, %d", c.WebhooksPerEndpoint, c.WebhooksMaxInFlight, tc.per, tc.max)
			}
		})
	}
}

// serveFlagCase sets env (with DATABASE_URL unset) and, when wantError is
// empty, parses args as serve's flags and returns the configuration and
// true. Otherwise it runs serve with args and checks that it fails with a
// usage error naming wantError, and returns false.
func serveFlagCase(t *testing.T, args []string, env map[string]string, wantError string) (serveConfig, bool) {
	t.Helper()
	t.Setenv("DATABASE_URL", "")
	os.Unsetenv("DATABASE_URL")
	for k, v := range env {
		t.Setenv(k, v)
	}
	if wantError == "" {
		c, err := parseServeFlags(args, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		return c, true
	}
	err := run(context.Background(), append([]string{"serve"}, args...), &bytes.Buffer{}, &bytes.Buffer{})
	var usage *usageError
	if !errors.As(err, &usage) {
		t.Fatalf("err = %v, want a usage error", err)
	}
	if !strings.Contains(err.Error(), wantError) {
		t.Errorf("err %q does not name %s", err, wantError)
	}
	return serveConfig{}, false
}
