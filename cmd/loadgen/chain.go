package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/network"
	"github.com/stellar/go-stellar-sdk/txnbuild"

	"github.com/checkoutd/checkoutd/stellar/sandbox/wallet"
)

// chain is the sandbox network as customers use it: friendbot to fund
// accounts, and a wallet that builds, signs and submits real payments.
type chain struct {
	base   string
	http   *http.Client
	wallet *wallet.Wallet
}

func newChain(base string, hc *http.Client) *chain {
	client := &horizonclient.Client{HorizonURL: base + "/", HTTP: hc}
	// Set now, not lazily by the first request: the treasuries submit from
	// goroutines of their own, and that first write races.
	client.SetHorizonTimeout(horizonclient.HorizonTimeout)
	return &chain{base: base, http: hc, wallet: wallet.New(client, network.TestNetworkPassphrase)}
}

// fund creates addr's account through friendbot, retrying a refused or
// failed request a few times.
func (c *chain) fund(ctx context.Context, addr string) error {
	var last error
	for attempt := 0; attempt < 5; attempt++ {
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
			if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests {
				return err
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 200 * time.Millisecond):
		}
	}
	return fmt.Errorf("fund %s: %w", addr, last)
}

// friendbotBudget is what loadgen spends of one friendbot grant (10,000
// XLM on the sandbox), keeping the rest for fees and the reserve.
const friendbotBudget = 9_000 * stroopsPerUnit

// createBatch is the most create_account operations one transaction
// carries (Stellar allows 100 operations).
const createBatch = 100

// fundCustomers gives every keypair an account holding each. One
// friendbot grant funds a treasury, which creates its share of customers
// with real signed transactions of up to 100 create_account operations.
// Treasuries are funded fundingParallel at a time: friendbot applies
// requests made together in one ledger, while one request at a time
// would wait a ledger close each.
func (c *chain) fundCustomers(ctx context.Context, kps []*keypair.Full, each stroops) error {
	perTreasury := max(1, min(int(friendbotBudget/each), len(kps)))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	slots := make(chan struct{}, fundingParallel)
	for lo := 0; lo < len(kps); lo += perTreasury {
		batch := kps[lo:min(lo+perTreasury, len(kps))]
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-slots }()
			treasury := keypair.MustRandom()
			if err := c.fund(ctx, treasury.Address()); err != nil {
				fail(fmt.Errorf("fund a treasury through friendbot: %w", err))
				return
			}
			for i := 0; i < len(batch); i += createBatch {
				var ops []txnbuild.Operation
				for _, kp := range batch[i:min(i+createBatch, len(batch))] {
					ops = append(ops, &txnbuild.CreateAccount{Destination: kp.Address(), Amount: each.String()})
				}
				if _, err := c.wallet.Submit(ctx, treasury, nil, ops...); err != nil {
					fail(fmt.Errorf("create customer accounts: %w", err))
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fundingParallel is how many treasuries are funded at once.
const fundingParallel = 64

// pay sends amount of XLM from kp to a session's pay_to, and returns the
// transaction's hash and its ledger's sequence once its ledger closed.
func (c *chain) pay(ctx context.Context, kp *keypair.Full, s sessionObj, amount stroops) (string, int32, error) {
	memo, err := memoOf(s)
	if err != nil {
		return "", 0, err
	}
	tx, err := c.wallet.Pay(ctx, kp, s.PayTo.Destination, txnbuild.NativeAsset{}, amount.String(), memo)
	if err != nil {
		if codes := wallet.ResultCodes(err); codes != nil {
			if slices.Contains(codes.OperationCodes, "op_no_destination") {
				return "", 0, fmt.Errorf("%w: the merchant's receiving account does not exist on the sandbox, "+
					"which forgets every account when it restarts; fund it through friendbot", err)
			}
			return "", 0, fmt.Errorf("%w (%s %v)", err, codes.TransactionCode, codes.OperationCodes)
		}
		return "", 0, err
	}
	if !tx.Successful {
		return tx.Hash, tx.Ledger, fmt.Errorf("transaction %s failed", tx.Hash)
	}
	return tx.Hash, tx.Ledger, nil
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
	return nil, fmt.Errorf("session %s: unknown memo type %q", s.ID, s.PayTo.MemoType)
}

// customers is a pool of funded customer accounts; each pays one session
// at a time, so its sequence numbers never race.
type customers chan *keypair.Full

func (p customers) take(ctx context.Context) (*keypair.Full, error) {
	select {
	case kp := <-p:
		return kp, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p customers) give(kp *keypair.Full) { p <- kp }
