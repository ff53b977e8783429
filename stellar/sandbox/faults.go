package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/stellar/go-stellar-sdk/strkey"
)

// Faults are the failures the sandbox injects. All are off in the zero
// value. Random choices come from one math/rand/v2 PCG source seeded by
// Config.Seed, so a seed replays the same schedule for the same sequence of
// requests and events.
type Faults struct {
	// StreamCutAfter ends every stream response after this many events (0: never).
	StreamCutAfter int `json:"stream_cut_after"`
	// StreamCutProbability ends a stream response after an event with this probability.
	StreamCutProbability float64 `json:"stream_cut_probability"`
	// ReplayOnReconnect makes a stream that starts from a cursor first resend
	// this many events from before the cursor, as a flaky proxy would.
	ReplayOnReconnect int `json:"replay_on_reconnect"`
	// Latency is added before every response.
	Latency time.Duration `json:"-"`
	// Rate429 is the probability of answering 429 Too Many Requests (with Retry-After).
	Rate429 float64 `json:"rate_429"`
	// Rate503 is the probability of answering 503 Service Unavailable.
	Rate503 float64 `json:"rate_503"`
	// RetryAfter is the Retry-After sent with 429 answers, rounded up to seconds. Default 1 s.
	RetryAfter time.Duration `json:"-"`
	// Hold lists accounts (G addresses) whose streams send nothing until released.
	Hold []string `json:"hold"`
	// Reorder breaks Horizon's ordering contract: with this probability a
	// JSON payments page comes back with its records shuffled, and each
	// pair of adjacent stream events (pairs do not overlap) is sent
	// swapped. A stream cut can fall between the two events of a pair, so
	// the later operation arrives and the earlier one does not.
	Reorder float64 `json:"reorder"`
}

// MarshalJSON writes durations as strings such as "50ms".
func (f Faults) MarshalJSON() ([]byte, error) {
	type plain Faults
	return json.Marshal(struct {
		plain
		Latency    string `json:"latency"`
		RetryAfter string `json:"retry_after"`
	}{plain(f), f.Latency.String(), f.RetryAfter.String()})
}

// UnmarshalJSON reads durations as strings such as "50ms".
func (f *Faults) UnmarshalJSON(data []byte) error {
	type plain Faults
	var w struct {
		plain
		Latency    string `json:"latency"`
		RetryAfter string `json:"retry_after"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*f = Faults(w.plain)
	var err error
	if w.Latency != "" {
		if f.Latency, err = time.ParseDuration(w.Latency); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	if w.RetryAfter != "" {
		if f.RetryAfter, err = time.ParseDuration(w.RetryAfter); err != nil {
			return fmt.Errorf("retry_after: %w", err)
		}
	}
	return nil
}

var errFaultRange = errors.New("out of range")

func (f Faults) validate() error {
	switch {
	case f.StreamCutAfter < 0:
		return fmt.Errorf("stream_cut_after %d: %w", f.StreamCutAfter, errFaultRange)
	case f.StreamCutProbability < 0 || f.StreamCutProbability > 1:
		return fmt.Errorf("stream_cut_probability %v: %w", f.StreamCutProbability, errFaultRange)
	case f.ReplayOnReconnect < 0:
		return fmt.Errorf("replay_on_reconnect %d: %w", f.ReplayOnReconnect, errFaultRange)
	case f.Latency < 0:
		return fmt.Errorf("latency %s: %w", f.Latency, errFaultRange)
	case f.Rate429 < 0 || f.Rate429 > 1:
		return fmt.Errorf("rate_429 %v: %w", f.Rate429, errFaultRange)
	case f.Rate503 < 0 || f.Rate503 > 1:
		return fmt.Errorf("rate_503 %v: %w", f.Rate503, errFaultRange)
	case f.RetryAfter < 0:
		return fmt.Errorf("retry_after %s: %w", f.RetryAfter, errFaultRange)
	case f.Reorder < 0 || f.Reorder > 1:
		return fmt.Errorf("reorder %v: %w", f.Reorder, errFaultRange)
	}
	for _, a := range f.Hold {
		if !strkey.IsValidEd25519PublicKey(a) {
			return fmt.Errorf("hold %q: not an account id: %w", a, errFaultRange)
		}
	}
	return nil
}

// faultState is the live fault configuration and its random source.
type faultState struct {
	mu     sync.Mutex
	f      Faults
	hold   map[string]bool
	rng    *rand.Rand
	active bool // any fault on; read without mu only via loadActive
	// changed is closed and replaced whenever faults change, waking held streams.
	changed chan struct{}
}

func newFaultState(seed uint64, f Faults) *faultState {
	s := &faultState{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), changed: make(chan struct{})}
	s.setLocked(f)
	return s
}

func (s *faultState) setLocked(f Faults) {
	if f.RetryAfter == 0 {
		f.RetryAfter = time.Second
	}
	s.f = f
	s.hold = make(map[string]bool, len(f.Hold))
	for _, a := range f.Hold {
		s.hold[a] = true
	}
	s.active = f.StreamCutAfter > 0 || f.StreamCutProbability > 0 || f.ReplayOnReconnect > 0 ||
		f.Latency > 0 || f.Rate429 > 0 || f.Rate503 > 0 || len(f.Hold) > 0 || f.Reorder > 0
}

func (s *faultState) set(f Faults) {
	s.mu.Lock()
	s.setLocked(f)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *faultState) get() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f
}

// requestFault decides the latency and the injected status for one request.
func (s *faultState) requestFault() (latency time.Duration, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.active {
		return 0, 0, 0
	}
	latency = s.f.Latency
	if s.f.Rate429 > 0 && s.rng.Float64() < s.f.Rate429 {
		return latency, http.StatusTooManyRequests, s.f.RetryAfter
	}
	if s.f.Rate503 > 0 && s.rng.Float64() < s.f.Rate503 {
		return latency, http.StatusServiceUnavailable, 0
	}
	return latency, 0, 0
}

// streamFaults is a snapshot of the stream-related faults.
type streamFaults struct {
	cutAfter int
	cutProb  float64
	replay   int
	reorder  float64
	changed  <-chan struct{}
}

func (s *faultState) streamSnapshot() streamFaults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return streamFaults{cutAfter: s.f.StreamCutAfter, cutProb: s.f.StreamCutProbability, replay: s.f.ReplayOnReconnect,
		reorder: s.f.Reorder, changed: s.changed}
}

// held reports whether streams for the account are held back, and the
// channel that is closed when faults next change.
func (s *faultState) held(account string) (bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hold[account], s.changed
}

// cutNow draws whether to cut a stream after the current event.
func (s *faultState) cutNow(p float64) bool {
	if p <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < p
}

// shufflePage shuffles a JSON page's records with the Reorder probability.
func (s *faultState) shufflePage(recs []*opRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f.Reorder <= 0 || len(recs) < 2 || s.rng.Float64() >= s.f.Reorder {
		return
	}
	s.rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
}

// swapAdjacent swaps each pair (i, i+1) of a stream batch with probability
// p; a swapped pair is not swapped again with its neighbours.
func (s *faultState) swapAdjacent(batch []*opRecord, p float64) {
	if p <= 0 || len(batch) < 2 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i+1 < len(batch); i++ {
		if s.rng.Float64() < p {
			batch[i], batch[i+1] = batch[i+1], batch[i]
			i++
		}
	}
}

// middleware applies latency and injected 429/503 answers. The control
// endpoint is exempt so a test can always turn faults off.
func (s *faultState) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.URL.Path) >= 10 && r.URL.Path[:10] == "/_sandbox/" {
			next.ServeHTTP(w, r)
			return
		}
		latency, status, retryAfter := s.requestFault()
		if latency > 0 {
			t := time.NewTimer(latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		switch status {
		case http.StatusTooManyRequests:
			secs := int((retryAfter + time.Second - 1) / time.Second)
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			writeProblem(w, problemRateLimited)
			return
		case http.StatusServiceUnavailable:
			writeProblem(w, problemUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// SetFaults replaces the injected faults, as POST /_sandbox/faults does.
func (n *Network) SetFaults(f Faults) error {
	if err := f.validate(); err != nil {
		return fmt.Errorf("set faults: %w", err)
	}
	n.faults.set(f)
	return nil
}

// CurrentFaults returns the injected faults.
func (n *Network) CurrentFaults() Faults { return n.faults.get() }

func (n *Network) handleFaultsGet(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, n.faults.get())
}

func (n *Network) handleFaultsSet(w http.ResponseWriter, r *http.Request) {
	var f Faults
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	if err := dec.Decode(&f); err != nil {
		writeProblem(w, badRequest("body", fmt.Sprintf("invalid faults JSON: %v", err)))
		return
	}
	if err := n.SetFaults(f); err != nil {
		writeProblem(w, badRequest("body", err.Error()))
		return
	}
	writeJSON(w, http.StatusOK, n.faults.get())
}
