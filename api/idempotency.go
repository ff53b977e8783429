package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	checkout "github.com/checkoutd/checkoutd"
)

// MaxBodyBytes is the largest request body the API reads.
const MaxBodyBytes = 64 << 10

// maxIdempotencyKeyLen is the longest Idempotency-Key, as the schema allows.
const maxIdempotencyKeyLen = 255

var errBodyTooLarge = &checkout.Error{Code: checkout.EINVALID, Reason: reasonBodyTooLarge,
	Message: "the request body is larger than 64 KiB"}

// readBody reads the whole request body, up to MaxBodyBytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, errBodyTooLarge
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errBodyTooLarge
		}
		return nil, &checkout.Error{Code: checkout.EINVALID, Reason: "body_unreadable", Message: "the request body could not be read"}
	}
	return b, nil
}

// recorder buffers a response so that it can be stored before it is sent.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (rec *recorder) Header() http.Header { return rec.header }
func (rec *recorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
}
func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.body.Write(b)
}

// idempotent makes a POST safe to retry. It reads the body (refusing one
// over MaxBodyBytes), and when the request carries an Idempotency-Key:
//
//   - the first request with the key claims it in Postgres, runs, and stores
//     its status and body, which every retry then gets back byte for byte;
//   - a request with the key and a different method, path or body is 409
//     idempotency_key_reused;
//   - a request that arrives while the first is still running waits for it
//     up to IdempotencyWait, then answers 409
//     idempotency_request_in_progress. Two requests never both run.
//
// A response of 500 or more is not stored: the claim is released, so a
// retry runs again.
func (s *Server) idempotent(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, key, ok := s.readIdempotent(w, r)
		if !ok {
			return
		}
		if key == "" {
			h(w, r)
			return
		}
		s.idempotentRun(w, r, h, key, requestHash(r, body))
	}
}

// readIdempotent reads the body (putting it back for the handler) and the
// Idempotency-Key header, which may be empty. When either is bad it answers
// the request and returns false.
func (s *Server) readIdempotent(w http.ResponseWriter, r *http.Request) (body []byte, key string, ok bool) {
	body, err := readBody(w, r)
	if err != nil {
		s.Error(w, r, err)
		return nil, "", false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	key = r.Header.Get("Idempotency-Key")
	// Postgres text cannot hold NUL; HTTP/1 refuses it in a header, but
	// not every way in is HTTP/1.
	if key != "" && (len(key) > maxIdempotencyKeyLen || !utf8.ValidString(key) || strings.IndexByte(key, 0) >= 0) {
		s.Error(w, r, checkout.InvalidParam("Idempotency-Key", "idempotency_key_invalid",
			"the Idempotency-Key header must be 1 to %d bytes of UTF-8, without NUL", maxIdempotencyKeyLen))
		return nil, "", false
	}
	return body, key, true
}

// idempotentRun claims key for the request, runs h if the claim is its
// own, and otherwise replays, refuses or waits, as idempotent's comment
// says.
func (s *Server) idempotentRun(w http.ResponseWriter, r *http.Request, h http.HandlerFunc, key string, hash []byte) {
	info := requestInfoFrom(r.Context())
	deadline := time.Now().Add(s.cfg.IdempotencyWait)
	for {
		now := s.cfg.Clock()
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
		rec, claimed, err := s.cfg.Store.ClaimIdempotencyKey(ctx, info.merchant, key, hash, now, now.Add(-s.cfg.IdempotencyStale))
		cancel()
		switch {
		case err != nil:
			s.Error(w, r, err)
			return
		case claimed:
			s.runClaimed(w, r, h, key)
			return
		case !bytes.Equal(rec.RequestHash, hash):
			s.Error(w, r, &checkout.Error{Code: checkout.ECONFLICT, Reason: "idempotency_key_reused", Param: "Idempotency-Key",
				Message: "this Idempotency-Key was used with a different request; use a new key for a new request"})
			return
		case rec.Done:
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(rec.Status)
			_, _ = w.Write(rec.Body)
			return
		}
		if time.Now().After(deadline) {
			s.Error(w, r, &checkout.Error{Code: checkout.ECONFLICT, Reason: "idempotency_request_in_progress", Param: "Idempotency-Key",
				Message: "a request with this Idempotency-Key is still being handled; retry later"})
			return
		}
		select {
		case <-r.Context().Done():
			s.Error(w, r, r.Context().Err())
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// pendingKey is an Idempotency-Key that a session create stores together
// with its session, in one commit, instead of claiming it first and
// storing the response after (three commits).
type pendingKey struct {
	key  string
	hash []byte
	at   time.Time
	// stored is set once the session and the key's record are committed;
	// taken when the key was found used, and nothing was written.
	stored, taken bool
}

// errKeyTaken ends a create whose pending key was found used. Its answer
// is never sent: idempotentCreate handles the request as a retry.
var errKeyTaken = errors.New("idempotency key taken")

// idempotentCreate is idempotent for session creation, with the same
// answers, in fewer round trips. The handler runs first, with the key
// pending: its session and the key's record (status and body) are
// committed together, and only if the key was free. Every other outcome
// falls back to idempotent's way: when the key was taken (a retry, a reuse
// with another body, a request still running), or when the handler
// answered before it wrote anything (a 4xx, which idempotent stores too).
// A 5xx stores nothing either way, so it is sent as it is.
func (s *Server) idempotentCreate(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, key, ok := s.readIdempotent(w, r)
		if !ok {
			return
		}
		if key == "" {
			h(w, r)
			return
		}
		info := requestInfoFrom(r.Context())
		hash := requestHash(r, body)
		p := &pendingKey{key: key, hash: hash, at: s.cfg.Clock()}
		info.pending = p
		rec := &recorder{header: http.Header{}}
		h(rec, r)
		info.pending = nil
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		if p.stored || (rec.status >= 500 && !p.taken) {
			for name, v := range rec.header {
				w.Header()[name] = v
			}
			w.WriteHeader(rec.status)
			_, _ = w.Write(rec.body.Bytes())
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		s.idempotentRun(w, r, h, key, hash)
	}
}

// runClaimed runs the request whose key this call claimed, and stores its
// response, or releases the key if the request failed on our side.
func (s *Server) runClaimed(w http.ResponseWriter, r *http.Request, h http.HandlerFunc, key string) {
	info := requestInfoFrom(r.Context())
	rec := &recorder{header: w.Header()}
	completed := false
	defer func() {
		if completed {
			return
		}
		// The handler panicked or failed: let a retry run it afresh. The
		// request's own context may be gone, so use a fresh one.
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallTimeout)
		defer cancel()
		if err := s.cfg.Store.ReleaseIdempotencyKey(ctx, info.merchant, key); err != nil {
			info.logger.Error("release idempotency key", "err", err)
		}
	}()
	h(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status < 500 {
		completed = true
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallTimeout)
		err := s.cfg.Store.CompleteIdempotencyKey(ctx, info.merchant, key, rec.status, rec.body.Bytes())
		cancel()
		if err != nil {
			// The work is done but its response is not stored. Keeping the
			// claim makes retries wait (409 in progress) until it turns
			// stale, rather than run the work twice at once.
			info.logger.Error("store idempotent response", "err", err)
		}
	}
	w.WriteHeader(rec.status)
	_, _ = w.Write(rec.body.Bytes())
}

// requestHash identifies a request for its idempotency key: method, path
// and body.
func requestHash(r *http.Request, body []byte) []byte {
	h := sha256.New()
	_, _ = io.WriteString(h, r.Method+" "+r.URL.Path+"\n")
	_, _ = h.Write(body)
	return h.Sum(nil)
}
