package chaos

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// ReceiverMode is how the webhook receiver answers.
type ReceiverMode int

// Receiver modes.
const (
	// ReceiverUp verifies, records and answers 204.
	ReceiverUp ReceiverMode = iota
	// ReceiverDown answers 503 without recording.
	ReceiverDown
	// ReceiverReset drops the connection without an answer.
	ReceiverReset
	// ReceiverSlow waits Receiver.Delay, then behaves as ReceiverUp.
	ReceiverSlow
)

// Receiver is a merchant's webhook endpoint on 127.0.0.1: one path per
// endpoint, each verified with its secret by the Standard Webhooks
// reference library. Its mode can be changed at any time.
type Receiver struct {
	srv *http.Server
	ln  net.Listener
	log *HookLog

	mu    sync.Mutex
	mode  ReceiverMode
	delay time.Duration
}

// HookLog is what a receiver saw: every webhook-id it acknowledged, by
// endpoint URL, and everything it refused as not from checkoutd.
type HookLog struct {
	base string

	mu        sync.Mutex
	verifiers map[string]*standardwebhooks.Webhook // by URL
	acked     map[string]map[string]int            // URL -> webhook-id -> acknowledgements
	rejected  []string
	requests  int
}

// StartReceiver listens on a free port of 127.0.0.1.
func StartReceiver() (*Receiver, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: %w", err)
	}
	r := &Receiver{ln: ln, log: &HookLog{base: "http://" + ln.Addr().String(),
		verifiers: map[string]*standardwebhooks.Webhook{}, acked: map[string]map[string]int{}}}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = r.srv.Serve(ln) }()
	return r, nil
}

// Close stops the receiver.
func (r *Receiver) Close() error { return r.srv.Close() }

// URL is the receiver's URL for path.
func (r *Receiver) URL(path string) string { return r.log.base + path }

// Log is what the receiver saw.
func (r *Receiver) Log() *HookLog { return r.log }

// AddEndpoint makes url verify with secret.
func (r *Receiver) AddEndpoint(url, secret string) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return fmt.Errorf("webhook secret: %w", err)
	}
	r.log.mu.Lock()
	defer r.log.mu.Unlock()
	r.log.verifiers[url] = wh
	return nil
}

// SetMode changes how the receiver answers; delay is for ReceiverSlow.
func (r *Receiver) SetMode(m ReceiverMode, delay time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mode, r.delay = m, delay
}

func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	mode, delay := r.mode, r.delay
	r.mu.Unlock()
	switch mode {
	case ReceiverDown:
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	case ReceiverReset:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // RST, not FIN
				}
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case ReceiverSlow:
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
	if err != nil {
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	url := r.log.base + req.URL.Path
	id := req.Header.Get(standardwebhooks.HeaderWebhookID)
	if err := r.log.record(url, id, body, req.Header); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (l *HookLog) record(url, id string, body []byte, h http.Header) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests++
	wh := l.verifiers[url]
	if wh == nil {
		l.rejected = append(l.rejected, fmt.Sprintf("webhook %s to %s, which is no endpoint", id, url))
		return fmt.Errorf("no endpoint %s", url)
	}
	if err := wh.Verify(body, h); err != nil {
		l.rejected = append(l.rejected, fmt.Sprintf("webhook %s to %s: bad signature: %v", id, url, err))
		return err
	}
	if l.acked[url] == nil {
		l.acked[url] = map[string]int{}
	}
	l.acked[url][id]++
	return nil
}

// Acked returns a copy of the acknowledged webhook-ids by endpoint URL.
func (l *HookLog) Acked() map[string]map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]map[string]int, len(l.acked))
	for u, ids := range l.acked {
		m := make(map[string]int, len(ids))
		for id, n := range ids {
			m[id] = n
		}
		out[u] = m
	}
	return out
}

// Owns reports whether url is one of this receiver's endpoints.
func (l *HookLog) Owns(url string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.verifiers[url] != nil
}

// Rejected lists the requests that were not verified webhooks.
func (l *HookLog) Rejected() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.rejected...)
}

// Requests counts every request that reached the verifier.
func (l *HookLog) Requests() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.requests
}
