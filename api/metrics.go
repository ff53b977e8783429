package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's Prometheus metrics. A nil *metrics records nothing.
type metrics struct {
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	sessionsCreated prometheus.Counter
}

// newMetrics registers the API's metrics with reg; nil reg, nil metrics.
// ready is the readiness check, run at every scrape for checkoutd_ready.
func newMetrics(reg prometheus.Registerer, ready func(context.Context) error) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	labels := []string{"method", "route", "status_class"}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "checkoutd_http_requests_total",
			Help: "HTTP requests by method, route template and status class (2xx, 4xx, ...).",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "checkoutd_http_request_duration_seconds",
			Help:    "HTTP request durations by method, route template and status class.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, labels),
		sessionsCreated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "checkoutd_sessions_created_total",
			Help: "Checkout sessions created through the API.",
		}),
	}
	readyGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "checkoutd_ready",
		Help: "1 when the readiness check (/readyz) passes: Postgres answers and, if any account is watched, a watcher streams from Horizon.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		if ready(ctx) != nil {
			return 0
		}
		return 1
	})
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.sessionsCreated, readyGauge} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register api metrics: %w", err)
		}
	}
	return m, nil
}

// request records one request. route is the matched route's path template,
// empty when no route matched (reported as "unmatched", so that probing
// random paths cannot grow the label set); an unknown method is "other".
func (m *metrics) request(method, route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodHead, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		method = "other"
	}
	if route == "" {
		route = "unmatched"
	}
	if status == 0 {
		status = http.StatusOK
	}
	class := strconv.Itoa(status/100) + "xx"
	m.requests.WithLabelValues(method, route, class).Inc()
	m.duration.WithLabelValues(method, route, class).Observe(d.Seconds())
}

func (m *metrics) sessionCreated() {
	if m != nil {
		m.sessionsCreated.Inc()
	}
}
