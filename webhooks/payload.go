package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Body renders a webhook's body the way the specification recommends:
// {"type", "timestamp", "data"}, with the time the event happened (not the
// time of the attempt) in RFC 3339 UTC with microseconds. data is the
// object the event is about, rendered by its owner (the API's presenter), so
// that a webhook and the API show the same object the same way. The same
// inputs give the same bytes, so every attempt of a delivery sends one body.
func Body(eventType string, occurredAt time.Time, data any) ([]byte, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("render webhook data: %w", err)
	}
	return json.Marshal(struct {
		Type      string          `json:"type"`
		Timestamp string          `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}{eventType, occurredAt.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), raw})
}

// UserAgent is sent with every webhook.
const UserAgent = "checkoutd-webhooks/1"

// NewRequest builds a signed webhook POST: the body, content type,
// webhook-id, the attempt's webhook-timestamp and webhook-signature signed
// with every secret given (the current one first).
func NewRequest(ctx context.Context, url, id string, attemptAt time.Time, body []byte, secrets ...Secret) (*http.Request, error) {
	sig, err := Sign(id, attemptAt, body, secrets...)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", UserAgent)
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(attemptAt.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	return req, nil
}
