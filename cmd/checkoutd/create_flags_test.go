package main

import (
	"testing"
	"time"
)

// TestServeCreateFlags checks that the session-create group commit and the
// API-key cache take their settings from their flags or environment twins,
// with the documented defaults, that values out of range are usage errors
// naming the setting, and that --auth-cache-ttl 0 turns the cache off.
func TestServeCreateFlags(t *testing.T) {
	db := []string{"--database-url", "postgres://nowhere.invalid/x"}
	type want struct {
		committers, batch int
		ttl               time.Duration
	}
	for _, tc := range []struct {
		name      string
		args      []string
		env       map[string]string
		want      want
		wantError string
	}{
		{"defaults", db, nil, want{2, 128, time.Second}, ""},
		{"flags", append(db, "--create-committers", "4", "--create-max-batch", "512", "--auth-cache-ttl", "5s"), nil, want{4, 512, 5 * time.Second}, ""},
		{"environment", db, map[string]string{"CHECKOUTD_CREATE_COMMITTERS": "1", "CHECKOUTD_CREATE_MAX_BATCH": "16",
			"CHECKOUTD_AUTH_CACHE_TTL": "0"}, want{1, 16, 0}, ""},
		{"zero committers", append(db, "--create-committers", "0"), nil, want{}, "--create-committers"},
		{"too many committers", append(db, "--create-committers", "65"), nil, want{}, "--create-committers"},
		{"zero batch", append(db, "--create-max-batch", "0"), nil, want{}, "--create-max-batch"},
		{"huge batch", append(db, "--create-max-batch", "100000"), nil, want{}, "--create-max-batch"},
		{"negative cache", append(db, "--auth-cache-ttl", "-1s"), nil, want{}, "--auth-cache-ttl"},
		{"cache over a minute", append(db, "--auth-cache-ttl", "2m"), nil, want{}, "--auth-cache-ttl"},
		{"not a duration", db, map[string]string{"CHECKOUTD_AUTH_CACHE_TTL": "soon"}, want{}, "CHECKOUTD_AUTH_CACHE_TTL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := serveFlagCase(t, tc.args, tc.env, tc.wantError)
			if got := (want{c.CreateCommitters, c.CreateMaxBatch, c.AuthCacheTTL}); ok && got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	// api.Config reads 0 as its default and a negative TTL as no cache.
	if got := authCacheTTL(0); got >= 0 {
		t.Errorf("--auth-cache-ttl 0 gives api.Config %s, want negative (no cache)", got)
	}
	if got := authCacheTTL(3 * time.Second); got != 3*time.Second {
		t.Errorf("--auth-cache-ttl 3s gives api.Config %s", got)
	}
}
