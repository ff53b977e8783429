package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// healthcheckConfig is everything `checkoutd healthcheck` is configured
// with.
type healthcheckConfig struct {
	URL     string
	Timeout time.Duration
}

func parseHealthcheckFlags(args []string, stderr io.Writer) (healthcheckConfig, error) {
	var c healthcheckConfig
	f := newFlags("healthcheck")
	f.SetOutput(stderr)
	f.string(&c.URL, "url", "CHECKOUTD_HEALTHCHECK_URL", "http://127.0.0.1:8080/healthz", "URL to GET; a 2xx answer is healthy")
	f.duration(&c.Timeout, "timeout", "CHECKOUTD_HEALTHCHECK_TIMEOUT", 3*time.Second, "how long to wait for the answer")
	if err := f.parse(args); err != nil {
		return c, err
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c, usagef("healthcheck: --url %q: want http(s)://host/path", c.URL)
	}
	if c.Timeout <= 0 {
		return c, usagef("healthcheck: --timeout must be positive")
	}
	return c, nil
}

// runHealthcheck is a container's HEALTHCHECK: the distroless image has no
// shell or curl. It exits 0 on a 2xx answer and 1 otherwise.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseHealthcheckFlags(args, stderr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("healthcheck: %s answered %s", cfg.URL, res.Status)
	}
	fmt.Fprintln(stdout, "healthy")
	return nil
}
