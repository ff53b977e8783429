package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// apiClient talks to checkoutd's merchant API with one key. It retries
// what is safe to retry: 429 after Retry-After, and 5xx, network errors
// and idempotency_request_in_progress with backoff; every POST it sends
// carries an Idempotency-Key, so a retry never does a thing twice.
type apiClient struct {
	base  string
	key   string
	http  *http.Client
	stats *apiStats
}

// apiStats counts what the API answered, across every client of a run.
type apiStats struct {
	Requests    atomic.Int64
	RateLimited atomic.Int64 // 429 answers
	Retries     atomic.Int64
	ServerErrs  atomic.Int64 // 5xx answers and transport errors
}

// apiError is a non-2xx answer that was not retried (or ran out of
// retries).
type apiError struct {
	Status int
	Type   string
	Code   string
	Msg    string
	Method string
	Path   string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%s %s: %d %s/%s: %s", e.Method, e.Path, e.Status, e.Type, e.Code, e.Msg)
}

// sessionObj is the part of checkoutd's checkout.session loadgen reads.
type sessionObj struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	PaymentStatus  string `json:"payment_status"`
	Amount         string `json:"amount"`
	AmountReceived string `json:"amount_received"`
	Asset          string `json:"asset"`
	PayTo          struct {
		Destination string `json:"destination"`
		Memo        string `json:"memo"`
		MemoType    string `json:"memo_type"`
	} `json:"pay_to"`
	ExpiresAt time.Time `json:"expires_at"`
	CreatedAt time.Time `json:"created_at"`
}

// paymentObj is the part of a payment object loadgen reads.
type paymentObj struct {
	ID              string `json:"id"`
	Session         string `json:"session"`
	OperationID     string `json:"operation_id"`
	TransactionHash string `json:"transaction_hash"`
	Amount          string `json:"amount"`
	Asset           string `json:"asset"`
	Disposition     string `json:"disposition"`
}

type listObj[T any] struct {
	Data    []T  `json:"data"`
	HasMore bool `json:"has_more"`
}

type sessionCreate struct {
	Amount    string            `json:"amount"`
	Asset     string            `json:"asset"`
	ExpiresIn int               `json:"expires_in,omitempty"`
	MemoType  string            `json:"memo_type,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

func (c *apiClient) createSession(ctx context.Context, idemKey string, req sessionCreate) (sessionObj, error) {
	var s sessionObj
	err := c.do(ctx, http.MethodPost, "/v1/checkout/sessions", idemKey, req, &s)
	return s, err
}

func (c *apiClient) cancelSession(ctx context.Context, id string) (sessionObj, error) {
	var s sessionObj
	err := c.do(ctx, http.MethodPost, "/v1/checkout/sessions/"+id+"/cancel", "cancel-"+id, nil, &s)
	return s, err
}

func (c *apiClient) getSession(ctx context.Context, id string) (sessionObj, error) {
	var s sessionObj
	err := c.do(ctx, http.MethodGet, "/v1/checkout/sessions/"+id, "", nil, &s)
	return s, err
}

// listSessions returns a page of the merchant's sessions, newest first.
func (c *apiClient) listSessions(ctx context.Context, startingAfter string) (listObj[sessionObj], error) {
	path := "/v1/checkout/sessions?limit=100"
	if startingAfter != "" {
		path += "&starting_after=" + startingAfter
	}
	var l listObj[sessionObj]
	err := c.do(ctx, http.MethodGet, path, "", nil, &l)
	return l, err
}

// sessionPayments returns every payment recorded for a session.
func (c *apiClient) sessionPayments(ctx context.Context, id string) ([]paymentObj, error) {
	var all []paymentObj
	path := "/v1/checkout/sessions/" + id + "/payments?limit=100"
	for {
		var l listObj[paymentObj]
		if err := c.do(ctx, http.MethodGet, path, "", nil, &l); err != nil {
			return nil, err
		}
		all = append(all, l.Data...)
		if !l.HasMore || len(l.Data) == 0 {
			return all, nil
		}
		path = "/v1/checkout/sessions/" + id + "/payments?limit=100&starting_after=" + l.Data[len(l.Data)-1].ID
	}
}

type endpointObj struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
}

func (c *apiClient) createEndpoint(ctx context.Context, idemKey, url, description string) (endpointObj, error) {
	var e endpointObj
	err := c.do(ctx, http.MethodPost, "/v1/webhook_endpoints", idemKey,
		map[string]any{"url": url, "events": []string{"*"}, "description": description}, &e)
	return e, err
}

func (c *apiClient) deleteEndpoint(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/webhook_endpoints/"+id, "delete-"+id, nil, nil)
}

const maxAttempts = 8

// do sends one request, retrying as the type's comment says, and decodes
// a 2xx answer into out.
func (c *apiClient) do(ctx context.Context, method, path, idemKey string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
	}
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(payload))
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		req.Header.Set("Authorization", "Bearer "+c.key)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if idemKey != "" {
			req.Header.Set("Idempotency-Key", idemKey)
		}
		c.stats.Requests.Add(1)
		resp, err := c.http.Do(req)
		var wait time.Duration
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
			}
			c.stats.ServerErrs.Add(1)
			if attempt == maxAttempts {
				return fmt.Errorf("%s %s: %w", method, path, err)
			}
			wait = backoff
		default:
			raw, readErr := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			resp.Body.Close()
			if resp.StatusCode/100 == 2 && readErr == nil {
				if out == nil {
					return nil
				}
				if err := json.Unmarshal(raw, out); err != nil {
					return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
				}
				return nil
			}
			apiErr := decodeAPIError(method, path, resp.StatusCode, raw)
			switch {
			case resp.StatusCode == http.StatusTooManyRequests:
				c.stats.RateLimited.Add(1)
				secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
				wait = time.Duration(max(secs, 1)) * time.Second
			case resp.StatusCode >= 500 || readErr != nil:
				c.stats.ServerErrs.Add(1)
				wait = backoff
			case resp.StatusCode == http.StatusConflict && apiErr.Code == "idempotency_request_in_progress":
				wait = time.Second
			default:
				return apiErr
			}
			// A 429 is the server pacing us and never uses up attempts:
			// the run's deadline bounds it.
			if resp.StatusCode != http.StatusTooManyRequests && attempt >= maxAttempts {
				return apiErr
			}
		}
		c.stats.Retries.Add(1)
		backoff = min(backoff*2, 2*time.Second)
		// Jitter spreads the retries of many requests turned away at once.
		wait += time.Duration(rand.Int64N(int64(wait)/4 + 1))
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		case <-time.After(wait):
		}
	}
}

func decodeAPIError(method, path string, status int, raw []byte) *apiError {
	var e struct {
		Error struct {
			Type    string `json:"type"`
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	out := &apiError{Status: status, Method: method, Path: path}
	if err := json.Unmarshal(raw, &e); err != nil {
		out.Msg = string(raw)
		return out
	}
	out.Type, out.Code, out.Msg = e.Error.Type, e.Error.Code, e.Error.Message
	return out
}

// isAPICode reports whether err is an API answer with the given code.
func isAPICode(err error, code string) bool {
	var e *apiError
	return errors.As(err, &e) && e.Code == code
}
