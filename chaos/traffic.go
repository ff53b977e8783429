package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/network"
	"github.com/stellar/go-stellar-sdk/txnbuild"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/stellar/sandbox/wallet"
)

// Kind is what a customer does with a session, after loadgen's kinds, plus
// payments that name no session at all.
type Kind string

// Kinds of traffic.
const (
	KindExact      Kind = "exact"
	KindPartial    Kind = "partial"     // 40 %, then the rest
	KindOverpaid   Kind = "overpaid"    // the amount + 1.5 XLM
	KindWrongAsset Kind = "wrong_asset" // priced in a credit asset, paid in XLM
	KindLate       Kind = "late"        // canceled through the API, then paid
	KindDouble     Kind = "double"      // two full payments in one transaction: the second is late
	KindUnmatched  Kind = "unmatched"   // a payment with a memo of no session
)

// kindWeights is the mix, in percent.
var kindWeights = []struct {
	kind   Kind
	weight int
}{{KindExact, 42}, {KindDouble, 8}, {KindPartial, 15}, {KindOverpaid, 10}, {KindWrongAsset, 8}, {KindLate, 10}, {KindUnmatched, 7}}

// expected is what a session of each kind must end as.
var expected = map[Kind]Outcome{
	KindExact:      {checkout.StatusComplete, checkout.PaymentPaid},
	KindDouble:     {checkout.StatusComplete, checkout.PaymentPaid},
	KindPartial:    {checkout.StatusComplete, checkout.PaymentPaid},
	KindOverpaid:   {checkout.StatusComplete, checkout.PaymentOverpaid},
	KindWrongAsset: {checkout.StatusOpen, checkout.PaymentUnpaid},
	KindLate:       {checkout.StatusCanceled, checkout.PaymentUnpaid},
}

// Merchant is a merchant the traffic pays: its API key, receiving account
// and webhook endpoint.
type Merchant struct {
	ID, Key, Account string
	API              *API
}

// Traffic drives checkoutd the way loadgen does: it creates sessions
// through the API and pays them with real signed transactions on the
// sandbox, from a pool of customers that each pay one session at a time.
type Traffic struct {
	Seed        uint64
	SandboxURL  string
	Merchants   []*Merchant
	Concurrency int

	chain *chain
	pool  chan *keypair.Full
	asset string // LOAD:<issuer>, for wrong_asset sessions
	runID string

	next     atomic.Int64
	mu       sync.Mutex
	expect   map[string]Outcome
	failures []string

	Sessions  atomic.Int64
	Payments  atomic.Int64
	Uncertain atomic.Int64 // payments whose outcome the wallet could not know
}

// chain is the sandbox as customers use it.
type chain struct {
	base   string
	http   *http.Client
	wallet *wallet.Wallet
}

func newChain(base string, hc *http.Client) *chain {
	client := &horizonclient.Client{HorizonURL: base + "/", HTTP: hc}
	// horizonclient fills in a zero timeout on each request, a data race
	// when the client is shared; set it first.
	client.SetHorizonTimeout(horizonclient.HorizonTimeout)
	return &chain{base: base, http: hc, wallet: wallet.New(client, network.TestNetworkPassphrase)}
}

// fund creates addr through friendbot, retrying injected 429s and 503s.
func (c *chain) fund(ctx context.Context, addr string) error {
	var last error
	for attempt := 0; attempt < 30; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/friendbot?addr="+url.QueryEscape(addr), nil)
		if err != nil {
			return err
		}
		resp, err := c.http.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("friendbot answered %d: %.300s", resp.StatusCode, body)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return fmt.Errorf("fund %s: %w", addr, last)
}

// NewTraffic funds customers and loadgen's credit asset issuer on the
// sandbox. Merchants are set up by the caller.
func NewTraffic(ctx context.Context, seed uint64, sandboxURL string, merchants []*Merchant, customers, concurrency int) (*Traffic, error) {
	hc := &http.Client{Timeout: 45 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 256}}
	t := &Traffic{Seed: seed, SandboxURL: sandboxURL, Merchants: merchants, Concurrency: concurrency,
		chain: newChain(sandboxURL, hc), pool: make(chan *keypair.Full, customers), expect: map[string]Outcome{},
		runID: strconv.FormatUint(seed, 36) + "-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 36)}
	issuer := keypair.MustRandom()
	if err := t.chain.fund(ctx, issuer.Address()); err != nil {
		return nil, err
	}
	t.asset = "LOAD:" + issuer.Address()
	// A friendbot grant (10,000 XLM) for each customer. One grant shared
	// among all of them ran dry in the longer scenarios: 8 customers of
	// 1,125 XLM each paid for about 700 sessions, and the kill scenario's
	// last sessions failed op_underfunded.
	for range customers {
		kp := keypair.MustRandom()
		if err := t.chain.fund(ctx, kp.Address()); err != nil {
			return nil, fmt.Errorf("create customers: %w", err)
		}
		t.pool <- kp
	}
	return t, nil
}

// errUncertain is a submission whose outcome is unknown: the transaction
// may or may not be on the ledger.
var errUncertain = errors.New("outcome unknown")

// submit submits through the wallet, retrying the 429 and 503 answers the
// sandbox injects (they come before the transaction is looked at, so it
// was not applied). Any other failure without result codes is uncertain.
func (t *Traffic) submit(ctx context.Context, kp *keypair.Full, memo txnbuild.Memo, ops ...txnbuild.Operation) (string, error) {
	for attempt := 0; ; attempt++ {
		tx, err := t.chain.wallet.Submit(ctx, kp, memo, ops...)
		if err == nil {
			if !tx.Successful {
				return tx.Hash, fmt.Errorf("transaction %s failed", tx.Hash)
			}
			return tx.Hash, nil
		}
		var herr *horizonclient.Error
		if errors.As(err, &herr) && (herr.Problem.Status == http.StatusTooManyRequests || herr.Problem.Status == http.StatusServiceUnavailable) && attempt < 100 {
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		if wallet.ResultCodes(err) == nil {
			return "", fmt.Errorf("%w: %v", errUncertain, err)
		}
		return "", err
	}
}

// Run drives sessions with Concurrency workers until ctx ends or max
// sessions have started (0: no limit).
func (t *Traffic) Run(ctx context.Context, maxSessions int) {
	var wg sync.WaitGroup
	for range t.Concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(t.next.Add(1)) - 1
				if maxSessions > 0 && i >= maxSessions {
					return
				}
				if err := t.one(ctx, i); err != nil && ctx.Err() == nil {
					t.mu.Lock()
					t.failures = append(t.failures, fmt.Sprintf("session %d: %v", i, err))
					t.mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
}

// Expect is the outcome each session whose payments all had a known
// result must end in.
func (t *Traffic) Expect() map[string]Outcome {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]Outcome, len(t.expect))
	for k, v := range t.expect {
		out[k] = v
	}
	return out
}

// Failures lists the traffic's own failures (not violations: a payment
// the sandbox refused, say), for the log.
func (t *Traffic) Failures() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.failures...)
}

func pickKind(rng *rand.Rand) Kind {
	n := rng.IntN(100)
	for _, w := range kindWeights {
		if n < w.weight {
			return w.kind
		}
		n -= w.weight
	}
	return KindExact
}

// one drives session i: its kind, merchant and amount come from the seed.
func (t *Traffic) one(ctx context.Context, i int) error {
	rng := rand.New(rand.NewPCG(t.Seed, uint64(i)))
	kind := pickKind(rng)
	m := t.Merchants[rng.IntN(len(t.Merchants))]
	amount := checkout.Amount(1+rng.IntN(20))*10_000_000 + checkout.Amount(rng.IntN(10_000_000))
	memoType := []string{"text", "id", "muxed"}[rng.IntN(3)]

	kp, err := t.take(ctx)
	if err != nil {
		return err
	}
	defer func() { t.pool <- kp }()

	if kind == KindUnmatched {
		memo := fmt.Sprintf("NOSESSION%d", rng.Uint32())
		return t.pay(ctx, kp, m.Account, amount, txnbuild.MemoText(memo), 1)
	}
	asset := "XLM"
	if kind == KindWrongAsset {
		asset = t.asset
	}
	body := map[string]any{"amount": amount.String(), "asset": asset, "memo_type": memoType,
		"metadata": map[string]string{"chaos_run": t.runID, "kind": string(kind)}}
	var s sessionObj
	if err := m.API.Create(ctx, "/v1/checkout/sessions", fmt.Sprintf("chaos-%s-%d", t.runID, i), body, &s); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	t.Sessions.Add(1)
	if kind == KindLate {
		// A replayed cancel is a no-op, so a fresh key per retry is safe.
		if err := m.API.Create(ctx, "/v1/checkout/sessions/"+s.ID+"/cancel", "cancel-"+s.ID, nil, nil); err != nil {
			return fmt.Errorf("cancel %s: %w", s.ID, err)
		}
	}
	memo, err := memoOf(s)
	if err != nil {
		return err
	}
	var amounts []checkout.Amount
	switch kind {
	case KindPartial:
		first := amount * 4 / 10
		amounts = []checkout.Amount{first, amount - first}
	case KindOverpaid:
		amounts = []checkout.Amount{amount + 15_000_000}
	default:
		amounts = []checkout.Amount{amount}
	}
	if kind == KindDouble {
		amounts = nil
		if err := t.pay(ctx, kp, s.PayTo.Destination, amount, memo, 2); err != nil {
			return fmt.Errorf("session %s: %w", s.ID, err)
		}
	}
	for _, a := range amounts {
		if err := t.pay(ctx, kp, s.PayTo.Destination, a, memo, 1); err != nil {
			return fmt.Errorf("session %s: %w", s.ID, err)
		}
	}
	t.mu.Lock()
	t.expect[s.ID] = expected[kind]
	t.mu.Unlock()
	return nil
}

func (t *Traffic) take(ctx context.Context) (*keypair.Full, error) {
	select {
	case kp := <-t.pool:
		return kp, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pay submits one transaction of n payments of amount to dest.
func (t *Traffic) pay(ctx context.Context, kp *keypair.Full, dest string, amount checkout.Amount, memo txnbuild.Memo, n int) error {
	ops := make([]txnbuild.Operation, n)
	for i := range ops {
		ops[i] = &txnbuild.Payment{Destination: dest, Amount: amount.String(), Asset: txnbuild.NativeAsset{}}
	}
	_, err := t.submit(ctx, kp, memo, ops...)
	if errors.Is(err, errUncertain) {
		t.Uncertain.Add(1)
	} else if err == nil {
		t.Payments.Add(int64(n))
	}
	return err
}

// memoOf is the memo a session asks for: none for muxed sessions, whose
// destination is an M address.
func memoOf(s sessionObj) (txnbuild.Memo, error) {
	switch s.PayTo.MemoType {
	case "text":
		return txnbuild.MemoText(s.PayTo.Memo), nil
	case "id":
		n, err := strconv.ParseUint(s.PayTo.Memo, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("session %s: id memo %q: %w", s.ID, s.PayTo.Memo, err)
		}
		return txnbuild.MemoID(n), nil
	case "muxed", "":
		return nil, nil
	}
	return nil, fmt.Errorf("session %s: memo type %q", s.ID, s.PayTo.MemoType)
}
