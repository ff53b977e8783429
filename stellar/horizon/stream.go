package horizon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// ErrStreamIdle is returned by StreamPaymentTokens when the server sent nothing,
// not even a keepalive, for longer than the idle timeout.
var ErrStreamIdle = errors.New("horizon stream idle")

// maxEventBytes bounds one SSE line; a payment with its joined transaction
// is a few kilobytes.
const maxEventBytes = 1 << 20

// StreamPaymentTokens opens one Server-Sent Events connection to
// /accounts/{account}/payments starting after cursor, and calls fn with the
// paging token of each operation, in stream order. It asks for no joined
// transactions and decodes nothing else: its caller takes operations from
// JSON pages (PaymentsPage) and uses the stream only to learn that there
// are new ones, so decoding each streamed operation was wasted work. It
// does not reconnect: it returns nil when the server ends the stream,
// ErrStreamIdle when nothing arrived for idle (0: no watchdog), a
// *StatusError for a non-2xx answer, fn's error, an error for an event
// without a paging token, or the error that ended the connection. A
// canceled ctx returns ctx.Err().
//
// cursor must not be empty: Horizon reads an empty cursor as "now".
func (c *Client) StreamPaymentTokens(ctx context.Context, account, cursor string, idle time.Duration, fn func(pagingToken string) error) error {
	if cursor == "" {
		return fmt.Errorf("stream payments of %s: empty cursor", account)
	}
	u := fmt.Sprintf("%s/accounts/%s/payments?%s", c.base, url.PathEscape(account),
		url.Values{"cursor": {cursor}}.Encode())

	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("stream payments of %s: %w", account, err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")

	var watchdog *time.Timer
	if idle > 0 {
		watchdog = time.AfterFunc(idle, func() { cancel(ErrStreamIdle) })
		defer watchdog.Stop()
	}
	err = c.streamConnection(req, watchdog, idle, fn)
	if cause := context.Cause(cctx); cause != nil && ctx.Err() == nil && errors.Is(cause, ErrStreamIdle) {
		return ErrStreamIdle
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("stream payments of %s: %w", account, err)
	}
	return nil
}

func (c *Client) streamConnection(req *http.Request, watchdog *time.Timer, idle time.Duration, fn func(string) error) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return statusError(resp)
	}
	var body io.Reader = resp.Body
	if watchdog != nil {
		body = &activityReader{r: resp.Body, t: watchdog, idle: idle}
	}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventBytes)

	var event string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if line == "" { // end of an event
			if data.Len() > 0 && (event == "" || event == "message") {
				if err := dispatch([]byte(data.String()), fn); err != nil {
					return err
				}
			}
			event = ""
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") { // comment: a keepalive
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			event = value
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
		// id and retry need no handling: the caller resumes from the
		// paging token of the last operation it received.
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return nil
}

// dispatch reads the paging token of one event's operation and calls fn
// with it. Data that is not a JSON object (Horizon's "hello" and "byebye")
// is skipped.
func dispatch(data []byte, fn func(string) error) error {
	if len(data) == 0 || data[0] != '{' {
		return nil
	}
	var op struct {
		ID string `json:"id"`
		PT string `json:"paging_token"`
	}
	if err := json.Unmarshal(data, &op); err != nil {
		return fmt.Errorf("decode streamed operation: %w", err)
	}
	if op.PT == "" {
		return fmt.Errorf("decode streamed operation %q: no paging token", op.ID)
	}
	return fn(op.PT)
}

// DecodeOperation decodes one operation record as Horizon serves it. An
// operation of a type the SDK does not know decodes to its operations.Base.
func DecodeOperation(data []byte) (operations.Operation, error) {
	var b operations.Base
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("decode operation: %w", err)
	}
	if b.PT == "" {
		return nil, fmt.Errorf("decode operation %q: no paging token", b.ID)
	}
	op, err := operations.UnmarshalOperation(b.TypeI, data)
	if err != nil {
		if !xdr.OperationType(b.TypeI).ValidEnum(b.TypeI) || strings.Contains(err.Error(), "Invalid operation format") {
			return b, nil
		}
		return nil, fmt.Errorf("decode operation %s (%s): %w", b.ID, b.Type, err)
	}
	return op, nil
}

// activityReader pushes the idle watchdog back on every read that returns
// bytes, keepalive comments included.
type activityReader struct {
	r    io.Reader
	t    *time.Timer
	idle time.Duration
}

func (a *activityReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if n > 0 {
		a.t.Reset(a.idle)
	}
	return n, err
}
