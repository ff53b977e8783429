package sandbox_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/checkoutd/checkoutd/stellar/sandbox"
	"github.com/checkoutd/checkoutd/stellar/sandbox/wallet"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	hProtocol "github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
)

// ctxDoer binds every request to ctx, so cancelling ctx also aborts a
// stream blocked in a read (horizonclient does not do this itself).
type ctxDoer struct {
	ctx context.Context
	c   *http.Client
}

func (d ctxDoer) Do(r *http.Request) (*http.Response, error) { return d.c.Do(r.WithContext(d.ctx)) }

func (d ctxDoer) Get(url string) (*http.Response, error) {
	r, err := http.NewRequestWithContext(d.ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return d.c.Do(r)
}

func (d ctxDoer) PostForm(u string, data url.Values) (*http.Response, error) {
	r, err := http.NewRequestWithContext(d.ctx, http.MethodPost, u, strings.NewReader(data.Encode()))
	if err != nil {
		return nil, err
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return d.c.Do(r)
}

// env is one test's network, server, client and wallet.
type env struct {
	net    *sandbox.Network
	srv    *httptest.Server
	client *horizonclient.Client
	wallet *wallet.Wallet
}

func newEnv(t testing.TB, cfg sandbox.Config) *env {
	t.Helper()
	n, err := sandbox.New(cfg)
	if err != nil {
		t.Fatalf("new network: %v", err)
	}
	srv := httptest.NewServer(n.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = n.Close() }) // runs first: ends streams so srv.Close does not wait
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := n.Start(ctx); err != nil {
		t.Fatalf("start: %v", err)
	}
	c := &horizonclient.Client{HorizonURL: srv.URL, HTTP: srv.Client()}
	c.SetHorizonTimeout(horizonclient.HorizonTimeout) // the client sets it lazily otherwise: a race between concurrent first requests
	return &env{net: n, srv: srv, client: c, wallet: wallet.New(c, n.Passphrase())}
}

// funded returns a new keypair funded through the friendbot HTTP endpoint.
func (e *env) funded(t testing.TB) *keypair.Full {
	t.Helper()
	kp := keypair.MustRandom()
	if _, err := e.client.Fund(kp.Address()); err != nil {
		t.Fatalf("fund: %v", err)
	}
	return kp
}

// stream collects n payments for account from cursor with join=transactions.
func (e *env) stream(t testing.TB, account, cursor string, n int) []operations.Operation {
	t.Helper()
	got := e.streamUntil(t, account, cursor, func(got []operations.Operation) bool { return len(got) >= n })
	if len(got) < n {
		t.Fatalf("stream got %d of %d payments", len(got), n)
	}
	return got
}

// streamUntil streams payments for account until enough reports true.
func (e *env) streamUntil(t testing.TB, account, cursor string, enough func([]operations.Operation) bool) []operations.Operation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := &horizonclient.Client{HorizonURL: e.srv.URL, HTTP: ctxDoer{ctx, e.srv.Client()}}
	var got []operations.Operation
	done := false
	err := c.StreamPayments(ctx, horizonclient.OperationRequest{ForAccount: account, Cursor: cursor, Join: "transactions"},
		func(op operations.Operation) {
			got = append(got, op)
			if enough(got) {
				done = true
				cancel()
			}
		})
	if !done {
		t.Fatalf("stream stopped after %d payments: %v", len(got), err)
	}
	return got
}

func resultCodes(t testing.TB, err error) *hProtocol.TransactionResultCodes {
	t.Helper()
	var herr *horizonclient.Error
	if !errors.As(err, &herr) {
		t.Fatalf("want horizonclient.Error, got %T %v", err, err)
	}
	rc, rerr := herr.ResultCodes()
	if rerr != nil {
		t.Fatalf("no result codes in %+v: %v", herr.Problem, rerr)
	}
	return rc
}

func balance(t testing.TB, c *horizonclient.Client, address, code string) string {
	t.Helper()
	acc, err := c.AccountDetail(horizonclient.AccountRequest{AccountID: address})
	if err != nil {
		t.Fatalf("account %s: %v", address, err)
	}
	for _, b := range acc.Balances {
		if b.Code == code || code == "" && b.Type == "native" {
			return b.Balance
		}
	}
	return ""
}
