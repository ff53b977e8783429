package api

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"golang.org/x/time/rate"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

// requestInfo is what the middleware learns about a request, for the
// handlers and the access log.
type requestInfo struct {
	id       string
	logger   *slog.Logger
	route    string // the route's path template, set by the route's wrapper
	merchant string // set by authed
	key      string // the API key's id, set by authed
	// pending, set by idempotentCreate, is the Idempotency-Key whose
	// record the session create commits together with the session.
	pending *pendingKey
}

type requestInfoKey struct{}

func requestInfoFrom(ctx context.Context) *requestInfo {
	if info, ok := ctx.Value(requestInfoKey{}).(*requestInfo); ok {
		return info
	}
	return &requestInfo{logger: slog.New(slog.DiscardHandler)}
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// withRequestID gives every request an id, echoed in the Request-Id header
// and carried by every log line about the request, and logs the request
// when it ends.
func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &requestInfo{id: checkout.NewID("req")}
		info.logger = s.cfg.Logger.With("request_id", info.id)
		w.Header().Set("Request-Id", info.id)
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, info)))
		d := time.Since(start)
		s.metrics.request(r.Method, info.route, sw.status, d)
		info.logger.Info("request", "method", r.Method, "path", redactPath(r.URL.Path), "route", info.route,
			"status", sw.status, "duration", d)
	})
}

// secretPrefixes start the values that must never reach a log: API keys and
// webhook signing secrets.
var secretPrefixes = [...]string{"sk_", "whsec_"}

// redactPath keeps only the prefix of any path segment that looks like a
// secret. A client that pastes its key into a URL (GET /v1/events/sk_live_…)
// must not have it written to the access log.
func redactPath(p string) string {
	if !strings.Contains(p, "sk_") && !strings.Contains(p, "whsec_") {
		return p
	}
	segs := strings.Split(p, "/")
	for i, seg := range segs {
		for _, pre := range secretPrefixes {
			if j := strings.Index(seg, pre); j >= 0 {
				segs[i] = seg[:j] + pre + "[redacted]"
				break
			}
		}
	}
	return strings.Join(segs, "/")
}

// withRecover turns a handler's panic into a 500 and a log line with the
// stack, rather than a dropped connection.
func (s *Server) withRecover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				requestInfoFrom(r.Context()).logger.Error("handler panicked", "panic", v, "stack", string(debug.Stack()))
				s.Error(w, r, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// public wraps a handler that needs no API key.
func (s *Server) public(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setRoute(r)
		h(w, r)
	})
}

// setRoute records the matched route's template for the access log and the
// metrics.
func setRoute(r *http.Request) {
	if m := mux.CurrentRoute(r); m != nil {
		if tpl, err := m.GetPathTemplate(); err == nil {
			requestInfoFrom(r.Context()).route = tpl
		}
	}
}

// Authentication errors.
var (
	errKeyMissing = &checkout.Error{Code: checkout.EUNAUTHORIZED, Reason: "api_key_missing",
		Message: "no API key: send it as Authorization: Bearer sk_..."}
	errKeyMalformed = &checkout.Error{Code: checkout.EUNAUTHORIZED, Reason: "api_key_invalid",
		Message: "the API key is invalid or revoked"}
)

// authed admits a request that carries a valid API key as
// "Authorization: Bearer <key>", and spends a token of the key's rate
// limit. The merchant's id reaches the handler through the request info.
func (s *Server) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setRoute(r)
		info := requestInfoFrom(r.Context())
		auth := r.Header.Get("Authorization")
		if auth == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="checkoutd"`)
			s.Error(w, r, errKeyMissing)
			return
		}
		scheme, secret, ok := strings.Cut(auth, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || !persistence.LooksLikeAPIKey(secret) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="checkoutd", error="invalid_token"`)
			s.Error(w, r, errKeyMalformed)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
		key, err := s.auth.authenticate(ctx, s.cfg.Store, secret)
		cancel()
		if err != nil {
			if checkout.ErrorCode(err) == checkout.EUNAUTHORIZED {
				w.Header().Set("WWW-Authenticate", `Bearer realm="checkoutd", error="invalid_token"`)
			}
			s.Error(w, r, err)
			return
		}
		info.merchant, info.key = key.MerchantID, key.ID
		info.logger = info.logger.With("merchant", key.MerchantID)
		if wait, ok := s.allow(key.ID); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			s.Error(w, r, &checkout.Error{Code: checkout.ERATELIMITED, Reason: "rate_limited",
				Message: "too many requests with this API key; retry after the Retry-After header's seconds"})
			return
		}
		h(w, r)
	})
}

// allow spends one token of key's bucket. When the bucket is empty it
// spends nothing and says how long until a token is there.
func (s *Server) allow(keyID string) (time.Duration, bool) {
	s.limitersMu.Lock()
	l, ok := s.limiters[keyID]
	if !ok {
		l = rate.NewLimiter(rate.Limit(s.cfg.RateLimit), s.cfg.RateBurst)
		s.limiters[keyID] = l
	}
	s.limitersMu.Unlock()
	now := s.cfg.Clock()
	res := l.ReserveN(now, 1)
	if !res.OK() {
		return time.Second, false
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		if d < time.Second {
			d = time.Second
		}
		return d, false
	}
	return 0, true
}

func (s *Server) handleNotFound(w http.ResponseWriter, r *http.Request) {
	s.Error(w, r, &checkout.Error{Code: checkout.ENOTFOUND, Reason: "route_not_found",
		Message: fmt.Sprintf("no route %s %s", r.Method, redactPath(r.URL.Path))})
}

func (s *Server) handleMethodNotAllowed(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		var match mux.RouteMatch
		probe := r.Clone(r.Context())
		probe.Method = m
		if s.router.Match(probe, &match) && match.MatchErr == nil {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
	}
	s.Error(w, r, &checkout.Error{Code: checkout.EINVALID, Reason: reasonMethodNotAllowed,
		Message: fmt.Sprintf("%s is not allowed on %s", r.Method, redactPath(r.URL.Path))})
}
