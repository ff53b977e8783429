// Package horizon is checkoutd's adapter to a Stellar Horizon server: it
// reads the latest ledger, streams an account's payments, pages them, reads
// an operation's effects, and turns Horizon's operation records into
// checkout.Payment values (Normalize).
//
// Every call is bound to the caller's ctx: the SDK's horizonclient does not
// bind requests to a context, so each call goes through an HTTP doer that
// does. Nothing here retries; a non-2xx answer is a *StatusError, and the
// caller (the ledger watcher) owns backoff.
package horizon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/effects"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
)

// DefaultRequestTimeout bounds a non-streaming request when
// Config.RequestTimeout is zero.
const DefaultRequestTimeout = 30 * time.Second

// Config configures a Client.
type Config struct {
	// URL is Horizon's base URL, such as https://horizon-testnet.stellar.org.
	URL string
	// HTTP sends the requests. Default: a new http.Client without a timeout
	// (streams are long-lived; non-streaming calls get RequestTimeout).
	HTTP *http.Client
	// RequestTimeout bounds each non-streaming request. Default 30 s.
	RequestTimeout time.Duration
}

// Client talks to one Horizon server. It is safe for concurrent use.
type Client struct {
	base    string // without a trailing slash
	http    *http.Client
	timeout time.Duration
}

// New validates cfg and returns a Client.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("horizon url %q: want http(s)://host", cfg.URL)
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{}
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.RequestTimeout < 0 {
		return nil, fmt.Errorf("horizon request timeout %s: must be positive", cfg.RequestTimeout)
	}
	return &Client{base: strings.TrimRight(cfg.URL, "/"), http: cfg.HTTP, timeout: cfg.RequestTimeout}, nil
}

// URL is the Horizon base URL, without a trailing slash.
func (c *Client) URL() string { return c.base }

// sdk returns a horizonclient whose requests are bound to ctx and to the
// request timeout. The SDK client is cheap and holds a sync.Once, so one is
// made per call rather than copied.
func (c *Client) sdk(ctx context.Context) *horizonclient.Client {
	hc := &horizonclient.Client{HorizonURL: c.base + "/", HTTP: ctxDoer{ctx: ctx, c: c.http}, AppName: "checkoutd"}
	hc.SetHorizonTimeout(c.timeout)
	return hc
}

// Ledger is what Horizon reports of the newest ledger it has ingested.
type Ledger struct {
	// Sequence is history_latest_ledger: every operation of this ledger and
	// the ones before it can be read.
	Sequence uint32
	// ClosedAt is history_latest_ledger_closed_at.
	ClosedAt time.Time
}

// LatestLedger reads Horizon's root resource.
func (c *Client) LatestLedger(ctx context.Context) (Ledger, error) {
	root, err := c.sdk(ctx).Root()
	if err != nil {
		return Ledger{}, fmt.Errorf("read horizon root: %w", wrapError(err))
	}
	if root.HorizonSequence <= 0 {
		return Ledger{}, fmt.Errorf("read horizon root: history_latest_ledger is %d", root.HorizonSequence)
	}
	return Ledger{Sequence: uint32(root.HorizonSequence), ClosedAt: root.HorizonLatestClosedAt.UTC()}, nil
}

// FirstPaymentAfter returns the first payment operation of account after
// cursor in ascending order, and false when there is none yet.
func (c *Client) FirstPaymentAfter(ctx context.Context, account, cursor string) (operations.Operation, bool, error) {
	page, err := c.sdk(ctx).Payments(horizonclient.OperationRequest{
		ForAccount: account, Cursor: cursor, Limit: 1, Order: horizonclient.OrderAsc,
	})
	if err != nil {
		return nil, false, fmt.Errorf("list payments of %s after %s: %w", account, cursor, wrapError(err))
	}
	if len(page.Embedded.Records) == 0 {
		return nil, false, nil
	}
	return page.Embedded.Records[0], true, nil
}

// OperationEffects lists the effects of one operation (at most 200, which
// covers every operation that can credit an account).
func (c *Client) OperationEffects(ctx context.Context, operationID string) ([]effects.Effect, error) {
	page, err := c.sdk(ctx).Effects(horizonclient.EffectRequest{
		ForOperation: operationID, Limit: 200, Order: horizonclient.OrderAsc,
	})
	if err != nil {
		return nil, fmt.Errorf("list effects of operation %s: %w", operationID, wrapError(err))
	}
	return page.Embedded.Records, nil
}

// StatusError is a non-2xx answer from Horizon.
type StatusError struct {
	StatusCode int
	// RetryAfter is the Retry-After header of a 429 or 503, if any.
	RetryAfter time.Duration
	// Title is the problem's title, if Horizon sent one.
	Title string
}

// Error implements the error interface.
func (e *StatusError) Error() string {
	if e.Title != "" {
		return fmt.Sprintf("horizon answered %d: %s", e.StatusCode, e.Title)
	}
	return fmt.Sprintf("horizon answered %d", e.StatusCode)
}

// StatusCode returns the HTTP status of the first *StatusError in err's
// chain, or 0.
func StatusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.StatusCode
	}
	return 0
}

// RetryAfter returns the Retry-After of the first *StatusError in err's
// chain, or 0.
func RetryAfter(err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	return 0
}

// wrapError turns the SDK's *horizonclient.Error into a *StatusError.
func wrapError(err error) error {
	var he *horizonclient.Error
	if errors.As(err, &he) && he.Response != nil {
		return &StatusError{
			StatusCode: he.Response.StatusCode,
			RetryAfter: parseRetryAfter(he.Response.Header.Get("Retry-After")),
			Title:      he.Problem.Title,
		}
	}
	return err
}

func statusError(resp *http.Response) *StatusError {
	return &StatusError{
		StatusCode: resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After")),
		Title:      http.StatusText(resp.StatusCode),
	}
}

// parseRetryAfter reads the delay-seconds form; an HTTP date is ignored.
func parseRetryAfter(v string) time.Duration {
	secs, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || secs < 0 {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// ctxDoer binds every request to ctx, in addition to the context the SDK
// gives it (its own timeout), because the SDK uses context.Background.
type ctxDoer struct {
	ctx context.Context
	c   *http.Client
}

func (d ctxDoer) Do(req *http.Request) (*http.Response, error) {
	rctx, cancel := context.WithCancel(req.Context())
	stop := context.AfterFunc(d.ctx, cancel)
	resp, err := d.c.Do(req.WithContext(rctx)) // #nosec G704 -- the Horizon URL is the operator's configuration, not request input
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	resp.Body = &releaseBody{ReadCloser: resp.Body, release: func() { stop(); cancel() }}
	return resp, nil
}

func (d ctxDoer) Get(u string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return d.Do(req)
}

func (d ctxDoer) PostForm(u string, data url.Values) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(data.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return d.Do(req)
}

// releaseBody releases the request's context once the body is closed, not
// when Do returns: the SDK reads the body after Do.
type releaseBody struct {
	io.ReadCloser
	release func()
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}
