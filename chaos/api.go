package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// API is a merchant's client of checkoutd's API, after loadgen's: every
// POST carries an Idempotency-Key, so a retry never does a thing twice.
// Unlike loadgen's, it keeps retrying while checkoutd is down (killed,
// restarting, cut off from Postgres), until its context ends, and spreads
// requests over every node of a multi-process run.
type API struct {
	Nodes func() []string // base URLs of the checkoutd processes, tried in turn
	Key   string
	HTTP  *http.Client

	next    atomic.Uint64
	Retries atomic.Int64
}

type sessionObj struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	PaymentStatus string `json:"payment_status"`
	PayTo         struct {
		Destination string `json:"destination"`
		Memo        string `json:"memo"`
		MemoType    string `json:"memo_type"`
	} `json:"pay_to"`
}

type apiError struct {
	Status int
	Code   string
	Body   string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %.300s", e.Status, e.Code, e.Body) }

// inProgressLimit is how long a request keeps waiting out
// idempotency_request_in_progress: a claim left by a killed process stays
// in progress until the API takes it for abandoned (5 minutes), so the
// caller gives up and uses a new key instead.
const inProgressLimit = 20 * time.Second

// Do sends one request and decodes a 2xx answer into out. It retries
// transport errors, 5xx, 429 and an idempotency claim in progress until ctx
// ends, or in the last case for inProgressLimit.
func (a *API) Do(ctx context.Context, method, path, idemKey string, body, out any) error {
	return a.do(ctx, method, path, idemKey, body, out, 0)
}

// Create is Do for a POST whose outcome may be left unknown by a killed
// process: each retry uses a fresh idempotency key (idemKey and the attempt
// number), rather than wait out the claim the dead process left in
// progress. A retried create may therefore leave an extra object behind;
// the caller knows only the one it was answered.
func (a *API) Create(ctx context.Context, path, idemKey string, body, out any) error {
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := a.do(ctx, http.MethodPost, path, fmt.Sprintf("%s-%d", idemKey, attempt), body, out, 1)
		var aerr *apiError
		if err == nil || ctx.Err() != nil || (errors.As(err, &aerr) && aerr.Status < 500 &&
			aerr.Status != http.StatusTooManyRequests && aerr.Code != "idempotency_request_in_progress") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Second)
	}
}

// do is Do with at most maxAttempts attempts (0: until ctx ends).
func (a *API) do(ctx context.Context, method, path, idemKey string, body, out any, maxAttempts int) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return err
		}
	}
	backoff := 50 * time.Millisecond
	var inProgressSince time.Time
	var lastErr error
	for attempt := 1; ; attempt++ {
		nodes := a.Nodes()
		base := nodes[int(a.next.Add(1))%len(nodes)]
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(payload))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+a.Key)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if idemKey != "" {
			req.Header.Set("Idempotency-Key", idemKey)
		}
		resp, err := a.HTTP.Do(req)
		wait := backoff
		if err == nil {
			raw, rerr := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			resp.Body.Close()
			if resp.StatusCode/100 == 2 && rerr == nil {
				if out == nil {
					return nil
				}
				return json.Unmarshal(raw, out)
			}
			var e struct {
				Error struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			_ = json.Unmarshal(raw, &e)
			aerr := &apiError{Status: resp.StatusCode, Code: e.Error.Code, Body: string(raw)}
			lastErr = aerr
			switch {
			case resp.StatusCode == http.StatusTooManyRequests:
				secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
				wait = time.Duration(max(secs, 1)) * time.Second
			case resp.StatusCode == http.StatusConflict && aerr.Code == "idempotency_request_in_progress":
				if inProgressSince.IsZero() {
					inProgressSince = time.Now()
				} else if time.Since(inProgressSince) > inProgressLimit {
					return aerr
				}
				wait = 500 * time.Millisecond
			case resp.StatusCode >= 500 || rerr != nil:
			default:
				return aerr
			}
		}
		if maxAttempts > 0 && attempt >= maxAttempts {
			if err != nil {
				return err
			}
			return lastErr
		}
		a.Retries.Add(1)
		backoff = min(backoff*2, time.Second)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s: %w (last: %v)", method, path, ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}
