package horizon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func newTestClient(t *testing.T, h http.Handler) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(Config{URL: srv.URL, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func paymentJSON(token string) string {
	js := fixture("payment", 1, true, "text", "M"+token,
		`"asset_type":"native","from":"`+customer+`","to":"`+merchant+`","amount":"1.0000000"`)
	return strings.ReplaceAll(js, "528280981505", token)
}

func TestStreamPaymentTokens(t *testing.T) {
	var gotQuery string
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery = r.URL.Path + "?" + r.URL.RawQuery
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 1000\nevent: open\ndata: \"hello\"\n\n")
		fmt.Fprint(w, ": keepalive\n\n")
		for _, tok := range []string{"101", "102"} {
			fmt.Fprintf(w, "id: %s\ndata: %s\n\n", tok, paymentJSON(tok))
		}
		fmt.Fprint(w, "event: close\ndata: \"byebye\"\n\n")
	}))
	var tokens []string
	err := c.StreamPaymentTokens(context.Background(), merchant, "100", time.Second, func(tok string) error {
		tokens = append(tokens, tok)
		return nil
	})
	if err != nil {
		t.Fatalf("StreamPaymentTokens: %v", err)
	}
	if want := "/accounts/" + merchant + "/payments?cursor=100"; gotQuery != want {
		t.Errorf("request = %s, want %s", gotQuery, want)
	}
	if got := strings.Join(tokens, ","); got != "101,102" {
		t.Errorf("paging tokens = %s", got)
	}
}

func TestStreamPaymentTokensIdleWatchdog(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, ": one\n\n")
		w.(http.Flusher).Flush()
		// Keepalives keep the stream alive for a while, then silence.
		for range 3 {
			time.Sleep(60 * time.Millisecond)
			fmt.Fprint(w, ": keepalive\n\n")
			w.(http.Flusher).Flush()
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	start := time.Now()
	err := c.StreamPaymentTokens(context.Background(), merchant, "1", 150*time.Millisecond, func(string) error { return nil })
	if !errors.Is(err, ErrStreamIdle) {
		t.Fatalf("err = %v, want ErrStreamIdle", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("watchdog fired after %s, before the keepalives stopped", d)
	}
}

func TestStreamPaymentTokensCancel(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err := c.StreamPaymentTokens(ctx, merchant, "1", 0, func(string) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestStatusErrors(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		if strings.Contains(r.URL.Path, "payments") {
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"type":"rate_limit_exceeded","title":"Rate Limit Exceeded","status":429}`)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"type":"service_unavailable","title":"Service Unavailable","status":503}`)
	}))
	ctx := context.Background()
	err := c.StreamPaymentTokens(ctx, merchant, "1", 0, func(string) error { return nil })
	if StatusCode(err) != 429 || RetryAfter(err) != 3*time.Second {
		t.Errorf("stream: err = %v (status %d, retry after %s)", err, StatusCode(err), RetryAfter(err))
	}
	_, _, err = c.FirstPaymentAfter(ctx, merchant, "1")
	if StatusCode(err) != 429 || RetryAfter(err) != 3*time.Second {
		t.Errorf("page: err = %v", err)
	}
	_, err = c.LatestLedger(ctx)
	if StatusCode(err) != 503 {
		t.Errorf("root: err = %v", err)
	}
}

func TestRequestsAreBoundToContext(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.LatestLedger(ctx); err == nil {
		t.Fatal("LatestLedger: want an error")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("LatestLedger took %s after its context ended", d)
	}
}

func TestLatestLedgerAndFirstPayment(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/hal+json")
		switch {
		case r.URL.Path == "/":
			fmt.Fprint(w, `{"history_latest_ledger":77,"history_latest_ledger_closed_at":"2026-03-01T12:00:05Z"}`)
		case r.URL.Query().Get("cursor") == "200":
			fmt.Fprint(w, `{"_links":{},"_embedded":{"records":[]}}`)
		default:
			if q := r.URL.Query(); q.Get("limit") != "1" || q.Get("order") != "asc" {
				http.Error(w, "bad query "+r.URL.RawQuery, 400)
				return
			}
			fmt.Fprintf(w, `{"_links":{},"_embedded":{"records":[%s]}}`, paymentJSON("330712481793"))
		}
	}))
	ctx := context.Background()
	l, err := c.LatestLedger(ctx)
	if err != nil || l.Sequence != 77 || !l.ClosedAt.Equal(time.Date(2026, 3, 1, 12, 0, 5, 0, time.UTC)) {
		t.Fatalf("LatestLedger = %+v, %v", l, err)
	}
	op, ok, err := c.FirstPaymentAfter(ctx, merchant, "100")
	if err != nil || !ok || op.PagingToken() != "330712481793" {
		t.Fatalf("FirstPaymentAfter = %v, %v, %v", op, ok, err)
	}
	if seq, err := LedgerOf(op.PagingToken()); err != nil || seq != 77 {
		t.Fatalf("LedgerOf = %d, %v; want 77", seq, err)
	}
	if _, ok, err := c.FirstPaymentAfter(ctx, merchant, "200"); err != nil || ok {
		t.Fatalf("FirstPaymentAfter past the end = %v, %v", ok, err)
	}
}

func TestCursorAfterLedger(t *testing.T) {
	cur := CursorAfterLedger(77)
	if cur != "335007449087" { // 78<<32 - 1
		t.Fatalf("CursorAfterLedger(77) = %s", cur)
	}
	if l, _ := LedgerOf(cur); l != 77 {
		t.Fatalf("LedgerOf(%s) = %d, want 77", cur, l)
	}
	if ComparePagingTokens(cur, "335007449088") != -1 || ComparePagingTokens("335007449088", cur) != 1 ||
		ComparePagingTokens(cur, cur) != 0 || ComparePagingTokens("x", cur) != -1 {
		t.Fatal("ComparePagingTokens is wrong")
	}
}
