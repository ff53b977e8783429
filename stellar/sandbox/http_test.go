package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/checkoutd/checkoutd/stellar/sandbox"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/network"
	"github.com/stellar/go-stellar-sdk/support/render/problem"
	"github.com/stellar/go-stellar-sdk/txnbuild"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// signedPayment builds and signs a 1 XLM payment envelope from src.
func signedPayment(t *testing.T, e *env, src *keypair.Full, passphrase string, mutate func(*xdr.TransactionEnvelope)) string {
	t.Helper()
	acc, err := e.client.AccountDetail(horizonclient.AccountRequest{AccountID: src.Address()})
	if err != nil {
		t.Fatal(err)
	}
	tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
		SourceAccount: &acc, IncrementSequenceNum: true, BaseFee: txnbuild.MinBaseFee,
		Preconditions: txnbuild.Preconditions{TimeBounds: txnbuild.NewTimeout(60)},
		Operations:    []txnbuild.Operation{&txnbuild.Payment{Destination: src.Address(), Amount: "1", Asset: txnbuild.NativeAsset{}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	envx := tx.ToXDR()
	if mutate != nil {
		mutate(&envx)
	}
	hash, err := network.HashTransactionInEnvelope(envx, passphrase)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := src.SignDecorated(hash[:])
	if err != nil {
		t.Fatal(err)
	}
	envx.V1.Signatures = []xdr.DecoratedSignature{sig}
	b64, err := xdr.MarshalBase64(envx)
	if err != nil {
		t.Fatal(err)
	}
	return b64
}

func TestBadInputGetsProblems(t *testing.T) {
	e := newEnv(t, sandbox.Config{CloseEachTransaction: true})
	alice := e.funded(t)
	post := func(body string) *http.Response {
		resp, err := http.Post(e.srv.URL+"/transactions", "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	form := func(tx string) string { return url.Values{"tx": {tx}}.Encode() }
	get := func(path string) *http.Response {
		resp, err := http.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	negative := signedPayment(t, e, alice, e.net.Passphrase(), func(env *xdr.TransactionEnvelope) {
		env.V1.Tx.Operations[0].Body.PaymentOp.Amount = -10
	})
	wrongNet := signedPayment(t, e, alice, network.PublicNetworkPassphrase, nil)
	stranger := keypair.MustRandom()
	unknownSrc := func() string {
		tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
			SourceAccount: &txnbuild.SimpleAccount{AccountID: stranger.Address()}, IncrementSequenceNum: true,
			BaseFee: txnbuild.MinBaseFee, Preconditions: txnbuild.Preconditions{TimeBounds: txnbuild.NewTimeout(60)},
			Operations: []txnbuild.Operation{&txnbuild.Payment{Destination: alice.Address(), Amount: "1", Asset: txnbuild.NativeAsset{}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		tx, _ = tx.Sign(e.net.Passphrase(), stranger)
		s, _ := tx.Base64()
		return s
	}()
	cases := []struct {
		name   string
		resp   func() *http.Response
		status int
		typ    string
		txCode string
		opCode string
	}{
		{"malformed xdr", func() *http.Response { return post(form("not-base64-xdr!!")) }, 400, "transaction_malformed", "", ""},
		{"truncated xdr", func() *http.Response { return post(form(negative[:40])) }, 400, "transaction_malformed", "", ""},
		{"missing tx", func() *http.Response { return post("") }, 400, "bad_request", "", ""},
		{"negative amount", func() *http.Response { return post(form(negative)) }, 400, "transaction_failed", "tx_failed", "op_malformed"},
		{"wrong passphrase", func() *http.Response { return post(form(wrongNet)) }, 400, "transaction_failed", "tx_bad_auth", ""},
		{"unknown source", func() *http.Response { return post(form(unknownSrc)) }, 400, "transaction_failed", "tx_no_source_account", ""},
		{"oversized body", func() *http.Response { return post("tx=" + strings.Repeat("A", 300<<10)) }, 413, "request_entity_too_large", "", ""},
		{"unknown account", func() *http.Response { return get("/accounts/" + stranger.Address()) }, 404, "not_found", "", ""},
		{"invalid account id", func() *http.Response { return get("/accounts/GABC") }, 400, "bad_request", "", ""},
		{"bad cursor", func() *http.Response { return get("/accounts/" + alice.Address() + "/payments?cursor=abc") }, 400, "bad_request", "", ""},
		{"limit too big", func() *http.Response { return get("/accounts/" + alice.Address() + "/payments?limit=201") }, 400, "bad_request", "", ""},
		{"limit zero", func() *http.Response { return get("/payments?limit=0") }, 400, "bad_request", "", ""},
		{"bad order", func() *http.Response { return get("/payments?order=sideways") }, 400, "bad_request", "", ""},
		{"unknown transaction", func() *http.Response { return get("/transactions/" + strings.Repeat("ab", 32)) }, 404, "not_found", "", ""},
		{"bad transaction hash", func() *http.Response { return get("/transactions/xyz") }, 400, "bad_request", "", ""},
		{"unknown operation", func() *http.Response { return get("/operations/999999999999") }, 404, "not_found", "", ""},
		{"bad operation id", func() *http.Response { return get("/operations/-1") }, 400, "bad_request", "", ""},
		{"unknown ledger", func() *http.Response { return get("/ledgers/99999") }, 404, "not_found", "", ""},
		{"unknown path", func() *http.Response { return get("/nope") }, 404, "not_found", "", ""},
		{"friendbot twice", func() *http.Response { return get("/friendbot?addr=" + alice.Address()) }, 400, "transaction_failed", "tx_failed", "op_already_exists"},
		{"friendbot bad addr", func() *http.Response { return get("/friendbot?addr=nope") }, 400, "bad_request", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.resp()
			defer resp.Body.Close()
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Errorf("content type %q", ct)
			}
			var p problem.P
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatalf("decode problem: %v", err)
			}
			if resp.StatusCode != tc.status || p.Status != tc.status || p.Type != "https://stellar.org/horizon-errors/"+tc.typ {
				t.Errorf("status %d, problem %+v", resp.StatusCode, p)
			}
			if tc.txCode == "" {
				return
			}
			rc, _ := p.Extras["result_codes"].(map[string]any)
			ops, _ := rc["operations"].([]any)
			if rc["transaction"] != tc.txCode || tc.opCode != "" && (len(ops) != 1 || ops[0] != tc.opCode) {
				t.Errorf("result codes %v, want %s %s", rc, tc.txCode, tc.opCode)
			}
			if p.Extras["envelope_xdr"] == "" || p.Extras["result_xdr"] == "" {
				t.Errorf("extras %v", p.Extras)
			}
		})
	}
}

func TestRootAndLedger(t *testing.T) {
	clock := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	e := newEnv(t, sandbox.Config{CloseEachTransaction: true, Clock: func() time.Time { return clock }})
	e.funded(t)
	root, err := e.client.Root()
	if err != nil {
		t.Fatal(err)
	}
	if root.NetworkPassphrase != network.TestNetworkPassphrase || root.HorizonSequence != int32(e.net.LatestLedger()) || root.CoreSequence != root.HorizonSequence {
		t.Errorf("root %+v", root)
	}
	l, err := e.client.LedgerDetail(uint32(root.HorizonSequence))
	if err != nil || l.SuccessfulTransactionCount != 1 || !l.ClosedAt.Equal(clock) {
		t.Errorf("ledger %+v: %v", l, err)
	}
}

func TestLedgerVisibility(t *testing.T) {
	// No Start, no CloseEachTransaction: ledgers close only on demand.
	n, err := sandbox.New(sandbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx := context.Background()
	kp := keypair.MustRandom()
	errc := make(chan error, 1)
	go func() { errc <- n.Fund(ctx, kp.Address()) }()
	time.Sleep(50 * time.Millisecond)
	// Applied at once: the account exists before its ledger closes ...
	if _, err := n.Account(kp.Address()); err != nil {
		t.Fatalf("account not applied: %v", err)
	}
	select {
	case err := <-errc:
		t.Fatalf("submission answered before its ledger closed: %v", err)
	default:
	}
	// ... but the submission answers only when the ledger closes.
	seq := n.CloseLedger()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n.LatestLedger() != seq || seq != 2 {
		t.Errorf("latest %d, closed %d", n.LatestLedger(), seq)
	}
}

func TestFaultsEndpoint(t *testing.T) {
	e := newEnv(t, sandbox.Config{CloseEachTransaction: true, Seed: 1})
	set := func(body string) sandbox.Faults {
		resp, err := http.Post(e.srv.URL+"/_sandbox/faults", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("set faults %s: %d %s", body, resp.StatusCode, b)
		}
		var f sandbox.Faults
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatal(err)
		}
		return f
	}
	if f := set(`{"rate_429": 1, "retry_after": "3s"}`); f.Rate429 != 1 || f.RetryAfter != 3*time.Second {
		t.Errorf("faults %+v", f)
	}
	resp, err := http.Get(e.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
		t.Errorf("429 fault: %d retry-after %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	set(`{"rate_503": 1}`)
	if _, err := e.client.Root(); err == nil || !strings.Contains(err.Error(), "Service Unavailable") {
		t.Errorf("503 fault: %v", err)
	}
	set(`{"latency": "80ms"}`)
	start := time.Now()
	if _, err := e.client.Root(); err != nil || time.Since(start) < 80*time.Millisecond {
		t.Errorf("latency fault: %v after %s", err, time.Since(start))
	}
	set(`{}`)
	resp, err = http.Post(e.srv.URL+"/_sandbox/faults", "application/json", bytes.NewReader([]byte(`{"rate_429": 2}`)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("invalid faults accepted: %d", resp.StatusCode)
	}
}

func TestFaultScheduleIsSeeded(t *testing.T) {
	schedule := func(seed uint64) string {
		e := newEnv(t, sandbox.Config{CloseEachTransaction: true, Seed: seed, Faults: sandbox.Faults{Rate429: 0.5}})
		var b strings.Builder
		for range 32 {
			resp, err := http.Get(e.srv.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests {
				b.WriteByte('x')
			} else {
				b.WriteByte('.')
			}
		}
		return b.String()
	}
	a, b, c := schedule(42), schedule(42), schedule(43)
	if a != b || a == c {
		t.Errorf("schedules: seed 42 %s / %s, seed 43 %s", a, b, c)
	}
}

// TestFriendbotFundsConcurrentRequestsInOneLedger checks that friendbot
// requests made together are applied together, like testnet's, instead of
// one per ledger close: a load test funding hundreds of accounts would
// otherwise wait a ledger close for each.
func TestFriendbotFundsConcurrentRequestsInOneLedger(t *testing.T) {
	e := newEnv(t, sandbox.Config{LedgerClose: 300 * time.Millisecond})
	const n = 12
	ledgers := make(chan int32, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			tx, err := e.client.Fund(keypair.MustRandom().Address())
			if err != nil {
				errs <- err
				return
			}
			ledgers <- tx.Ledger
		}()
	}
	seen := map[int32]int{}
	for range n {
		select {
		case err := <-errs:
			t.Fatalf("fund: %v", err)
		case l := <-ledgers:
			seen[l]++
		case <-time.After(10 * time.Second):
			t.Fatalf("friendbot answered %d requests in 10 s", len(seen))
		}
	}
	// Requests that straddle a close land in two ledgers; one per ledger
	// would be twelve.
	if len(seen) > 2 {
		t.Fatalf("%d concurrent friendbot requests landed in %d ledgers (%v); want them applied together", n, len(seen), seen)
	}
}
