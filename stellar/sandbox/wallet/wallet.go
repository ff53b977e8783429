// Package wallet builds, signs and submits payments with the real Stellar
// SDK (txnbuild and horizonclient) against any Horizon, typically the
// sandbox network. It caches sequence numbers per keypair so a payment
// costs one HTTP round trip.
package wallet

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	hProtocol "github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// Wallet submits transactions for any number of keypairs through one
// horizonclient. Transactions for the same keypair are serialized so their
// sequence numbers arrive in order; different keypairs run in parallel.
type Wallet struct {
	client     *horizonclient.Client
	passphrase string

	mu       sync.Mutex
	accounts map[string]*source
}

// source is one keypair's cached sequence number.
type source struct {
	mu    sync.Mutex
	seq   int64
	known bool
}

// New returns a wallet that signs for the network passphrase and submits
// through client.
func New(client *horizonclient.Client, passphrase string) *Wallet {
	return &Wallet{client: client, passphrase: passphrase, accounts: make(map[string]*source)}
}

func (w *Wallet) source(address string) *source {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.accounts[address]
	if s == nil {
		s = &source{}
		w.accounts[address] = s
	}
	return s
}

// Pay sends amount (a decimal string such as "12.5") of asset from kp to
// dest, which may be a G or M address. memo may be nil.
func (w *Wallet) Pay(ctx context.Context, kp *keypair.Full, dest string, asset txnbuild.Asset, amount string, memo txnbuild.Memo) (hProtocol.Transaction, error) {
	tx, err := w.Submit(ctx, kp, memo, &txnbuild.Payment{Destination: dest, Amount: amount, Asset: asset})
	if err != nil {
		return tx, fmt.Errorf("pay %s %s to %s: %w", amount, asset.GetCode(), dest, err)
	}
	return tx, nil
}

// Trust creates (or updates) kp's trustline to asset with the maximum limit.
func (w *Wallet) Trust(ctx context.Context, kp *keypair.Full, asset txnbuild.CreditAsset) (hProtocol.Transaction, error) {
	line, err := asset.ToChangeTrustAsset()
	if err != nil {
		return hProtocol.Transaction{}, fmt.Errorf("trust %s: %w", asset.Code, err)
	}
	tx, err := w.Submit(ctx, kp, nil, &txnbuild.ChangeTrust{Line: line, Limit: txnbuild.MaxTrustlineLimit})
	if err != nil {
		return tx, fmt.Errorf("trust %s: %w", asset.Code, err)
	}
	return tx, nil
}

// Submit builds a transaction of ops from kp's account with the cached
// sequence number, signs it with kp and submits it. On tx_bad_seq it
// reloads the sequence from Horizon and retries once. ctx is checked
// before each attempt; horizonclient's submit call itself takes no context.
func (w *Wallet) Submit(ctx context.Context, kp *keypair.Full, memo txnbuild.Memo, ops ...txnbuild.Operation) (hProtocol.Transaction, error) {
	s := w.source(kp.Address())
	s.mu.Lock()
	defer s.mu.Unlock()
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		if err := ctx.Err(); err != nil {
			return hProtocol.Transaction{}, err
		}
		if !s.known {
			acc, err := w.client.AccountDetail(horizonclient.AccountRequest{AccountID: kp.Address()})
			if err != nil {
				return hProtocol.Transaction{}, fmt.Errorf("load account %s: %w", kp.Address(), err)
			}
			s.seq, s.known = acc.Sequence, true
		}
		acct := txnbuild.SimpleAccount{AccountID: kp.Address(), Sequence: s.seq}
		tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
			SourceAccount:        &acct,
			IncrementSequenceNum: true,
			BaseFee:              txnbuild.MinBaseFee,
			Memo:                 memo,
			Preconditions:        txnbuild.Preconditions{TimeBounds: txnbuild.NewTimeout(300)},
			Operations:           ops,
		})
		if err != nil {
			return hProtocol.Transaction{}, fmt.Errorf("build transaction: %w", err)
		}
		if tx, err = tx.Sign(w.passphrase, kp); err != nil {
			return hProtocol.Transaction{}, fmt.Errorf("sign transaction: %w", err)
		}
		res, err := w.client.SubmitTransactionWithOptions(tx, horizonclient.SubmitTxOpts{SkipMemoRequiredCheck: true})
		if err == nil {
			s.seq = tx.SequenceNumber()
			return res, nil
		}
		lastErr = err
		codes := ResultCodes(err)
		switch {
		case codes == nil:
			// Unknown outcome (network error, timeout): the sequence may or
			// may not have been consumed, so reload it next time.
			s.known = false
			return hProtocol.Transaction{}, err
		case codes.TransactionCode == "tx_bad_seq":
			s.known = false
			continue
		case codes.TransactionCode == "tx_failed" && len(codes.OperationCodes) > 0 && codes.OperationCodes[0] != "op_malformed" && codes.OperationCodes[0] != "op_bad_auth":
			// Applied but failed: the sequence number was consumed.
			s.seq = tx.SequenceNumber()
			return hProtocol.Transaction{}, err
		default:
			return hProtocol.Transaction{}, err
		}
	}
	return hProtocol.Transaction{}, lastErr
}

// ResultCodes extracts Horizon's result codes from a submission error, or
// returns nil if err carries none.
func ResultCodes(err error) *hProtocol.TransactionResultCodes {
	var herr *horizonclient.Error
	if !errors.As(err, &herr) {
		var v horizonclient.Error
		if !errors.As(err, &v) {
			return nil
		}
		herr = &v
	}
	rc, rerr := herr.ResultCodes()
	if rerr != nil {
		return nil
	}
	return rc
}
