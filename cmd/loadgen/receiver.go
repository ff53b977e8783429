package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// receiver is loadgen's webhook endpoint: one path per merchant, each
// verified with that endpoint's secret by the Standard Webhooks reference
// library, the same one checkoutd's own tests verify with. It records
// every verified event by session, and wakes whoever waits for a session
// once all the events it expects have arrived.
type receiver struct {
	clock func() time.Time

	mu        sync.Mutex
	verifiers map[string]*standardwebhooks.Webhook // by path
	sessions  map[string]*sessionHooks             // by session id
	// arrivals are the arrival times of first deliveries, for throughput.
	arrivals []time.Time
	// lags pair each first delivery's event time with its arrival.
	lags       [][2]time.Time
	deliveries int // every verified request, redeliveries included
	duplicates int // deliveries of an event id already seen
	foreign    int // verified events of sessions this run did not make
	badSigs    []string
	unreadable []string
}

// sessionHooks is what the receiver saw for one session.
type sessionHooks struct {
	eventIDs map[string]bool
	byType   map[string]int
	// firstAt is when the first event of each type arrived.
	firstAt map[string]time.Time
	// paymentAt is when the first event naming each transaction arrived,
	// and recordedAt when checkoutd recorded that event.
	paymentAt  map[string]time.Time
	recordedAt map[string]time.Time
	// want and done are set by expect: done is closed once byType covers
	// want.
	want map[string]int
	done chan struct{}
}

func newReceiver(clock func() time.Time) *receiver {
	return &receiver{clock: clock, verifiers: map[string]*standardwebhooks.Webhook{},
		sessions: map[string]*sessionHooks{}}
}

// addEndpoint makes path verify with secret.
func (r *receiver) addEndpoint(path, secret string) error {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return fmt.Errorf("webhook secret of %s: %w", path, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.verifiers[path] = wh
	return nil
}

func (r *receiver) session(id string) *sessionHooks {
	s := r.sessions[id]
	if s == nil {
		s = &sessionHooks{eventIDs: map[string]bool{}, byType: map[string]int{},
			firstAt: map[string]time.Time{}, paymentAt: map[string]time.Time{}, recordedAt: map[string]time.Time{}}
		r.sessions[id] = s
	}
	return s
}

// expect registers the events session id must get, and returns a channel
// closed once they all have arrived.
func (r *receiver) expect(id string, want map[string]int) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.session(id)
	s.want, s.done = want, make(chan struct{})
	s.checkDone()
	return s.done
}

func (s *sessionHooks) checkDone() {
	if s.done == nil || s.want == nil {
		return
	}
	for typ, n := range s.want {
		if s.byType[typ] < n {
			return
		}
	}
	close(s.done)
	s.want = nil // closed once
}

// webhookBody is the part of checkoutd's webhook body loadgen reads.
type webhookBody struct {
	Type string `json:"type"`
	// Timestamp is when checkoutd recorded the event.
	Timestamp time.Time `json:"timestamp"`
	Data      struct {
		Session *struct {
			ID string `json:"id"`
		} `json:"session"`
		Payment *struct {
			TransactionHash string `json:"transaction_hash"`
		} `json:"payment"`
	} `json:"data"`
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := r.clock()
	if req.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
	if err != nil {
		http.Error(w, "unreadable body", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	wh := r.verifiers[req.URL.Path]
	r.mu.Unlock()
	if wh == nil {
		http.NotFound(w, req)
		return
	}
	id := req.Header.Get(standardwebhooks.HeaderWebhookID)
	if err := wh.Verify(body, req.Header); err != nil {
		r.mu.Lock()
		r.badSigs = append(r.badSigs, fmt.Sprintf("webhook %s to %s: %v", id, req.URL.Path, err))
		r.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var b webhookBody
	if err := json.Unmarshal(body, &b); err != nil || b.Type == "" {
		r.mu.Lock()
		r.unreadable = append(r.unreadable, fmt.Sprintf("webhook %s: a signed body loadgen cannot read: %.200s", id, body))
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent) // signed, so checkoutd meant it: do not make it retry
		return
	}
	r.record(id, b, now)
	w.WriteHeader(http.StatusNoContent)
}

// record notes a verified event that arrived at now.
func (r *receiver) record(eventID string, b webhookBody, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.deliveries++
	if b.Data.Session == nil {
		r.foreign++
		return
	}
	s := r.session(b.Data.Session.ID)
	if s.eventIDs[eventID] {
		r.duplicates++ // at-least-once delivery: a retry of one we had
		return
	}
	s.eventIDs[eventID] = true
	r.arrivals = append(r.arrivals, now)
	if !b.Timestamp.IsZero() {
		r.lags = append(r.lags, [2]time.Time{b.Timestamp, now})
	}
	s.byType[b.Type]++
	if _, ok := s.firstAt[b.Type]; !ok {
		s.firstAt[b.Type] = now
	}
	if b.Data.Payment != nil && b.Data.Payment.TransactionHash != "" {
		if _, ok := s.paymentAt[b.Data.Payment.TransactionHash]; !ok {
			s.paymentAt[b.Data.Payment.TransactionHash] = now
			s.recordedAt[b.Data.Payment.TransactionHash] = b.Timestamp
		}
	}
	s.checkDone()
}

// hooksSnapshot is a copy of what the receiver saw, for the final check.
type hooksSnapshot struct {
	Sessions   map[string]sessionHooksCopy
	Arrivals   []time.Time
	Lags       [][2]time.Time
	Deliveries int
	Duplicates int
	Foreign    int
	BadSigs    []string
	Unreadable []string
}

type sessionHooksCopy struct {
	ByType     map[string]int
	FirstAt    map[string]time.Time
	PaymentAt  map[string]time.Time
	RecordedAt map[string]time.Time
}

// snapshot copies the receiver's records; foreign counts the verified
// events of sessions not in ours.
func (r *receiver) snapshot(ours map[string]bool) hooksSnapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := hooksSnapshot{Sessions: map[string]sessionHooksCopy{}, Arrivals: append([]time.Time(nil), r.arrivals...), Lags: append([][2]time.Time(nil), r.lags...),
		Deliveries: r.deliveries, Duplicates: r.duplicates, Foreign: r.foreign,
		BadSigs: append([]string(nil), r.badSigs...), Unreadable: append([]string(nil), r.unreadable...)}
	for id, s := range r.sessions {
		if !ours[id] {
			for _, n := range s.byType {
				out.Foreign += n
			}
			continue
		}
		c := sessionHooksCopy{ByType: map[string]int{}, FirstAt: map[string]time.Time{}, PaymentAt: map[string]time.Time{},
			RecordedAt: map[string]time.Time{}}
		for k, v := range s.byType {
			c.ByType[k] = v
		}
		for k, v := range s.firstAt {
			c.FirstAt[k] = v
		}
		for k, v := range s.paymentAt {
			c.PaymentAt[k] = v
		}
		for k, v := range s.recordedAt {
			c.RecordedAt[k] = v
		}
		out.Sessions[id] = c
	}
	return out
}

// counts returns how many first deliveries and signature failures the
// receiver has seen, for the progress display.
func (r *receiver) counts() (events, badSigs int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.arrivals), len(r.badSigs)
}

// receiverServer serves a receiver on a loopback listener.
type receiverServer struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

func startReceiver(addr string, h http.Handler) (*receiverServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: listen on %s: %w", addr, err)
	}
	s := &receiverServer{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = err // Serve fails only if the listener does; stop reports nothing more useful
		}
	}()
	return s, nil
}

// url returns the receiver's URL for path.
func (s *receiverServer) url(path string) string {
	a := s.ln.Addr().(*net.TCPAddr)
	return "http://" + net.JoinHostPort(a.IP.String(), strconv.Itoa(a.Port)) + path
}

func (s *receiverServer) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}
