package sandbox

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/network"
	hProtocol "github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/txnbuild"
)

// Network is an in-memory Stellar network with a Horizon-compatible HTTP
// API (see Handler). All methods are safe for concurrent use.
type Network struct {
	cfg       Config
	faults    *faultState
	root      *keypair.Full
	networkID [32]byte // sha256 of the passphrase, the prefix of every transaction hash

	// mu guards the ledger state and the history below it.
	mu        sync.RWMutex
	accounts  map[accountKey]*account
	ledgers   []*ledgerRecord // ledgers[i].seq == i+1
	pending   *pendingLedger
	txByHash  map[string]*txRecord
	payments  *opIndex
	byAccount map[accountKey]*opIndex
	toWake    []*opIndex

	// friendbotMu serializes friendbot transactions, which share the root sequence.
	friendbotMu sync.Mutex

	// rawPool holds buffers for decoded envelopes (*[]byte); the XDR
	// decoder copies what it keeps, so a buffer is free once decoding ends.
	rawPool sync.Pool
	// bodyPool holds buffers for POST /transactions bodies (*bytes.Buffer).
	bodyPool sync.Pool

	// done is closed by Close: streams end and waiting submitters give up.
	done      chan struct{}
	closeOnce sync.Once

	runMu   sync.Mutex
	started bool
	stop    chan struct{}
	stopped chan struct{}
}

// ErrClosed is returned by operations on a closed Network.
var ErrClosed = errors.New("sandbox network closed")

// New creates a network with a genesis ledger whose root account (the
// friendbot) holds all lumens. Call Start to close ledgers on a timer,
// unless Config.CloseEachTransaction is set or the caller uses CloseLedger.
func New(cfg Config) (*Network, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("sandbox config: %w", err)
	}
	n := &Network{
		cfg:       cfg,
		faults:    newFaultState(cfg.Seed, cfg.Faults),
		root:      keypair.Root(cfg.NetworkPassphrase),
		networkID: network.ID(cfg.NetworkPassphrase),
		accounts:  make(map[accountKey]*account),
		txByHash:  make(map[string]*txRecord),
		payments:  newOpIndex(),
		byAccount: make(map[accountKey]*opIndex),
		done:      make(chan struct{}),
	}
	n.rawPool.New = func() any { return new([]byte) }
	n.bodyPool.New = func() any { return new(bytes.Buffer) }
	rootKey, _ := keyOfAddress(n.root.Address())
	closedAt := n.now()
	n.accounts[rootKey] = &account{key: rootKey, address: n.root.Address(), native: totalCoins, lastModified: 1, lastTime: closedAt}
	genesis := &ledgerRecord{seq: 1, closedAt: closedAt}
	genesis.hash = sha256.Sum256([]byte(cfg.NetworkPassphrase))
	n.ledgers = append(n.ledgers, genesis)
	n.pending = &pendingLedger{seq: 2, done: make(chan struct{})}
	return n, nil
}

// Passphrase returns the network passphrase transactions must be signed for.
func (n *Network) Passphrase() string { return n.cfg.NetworkPassphrase }

// LatestLedger returns the sequence of the latest closed ledger.
func (n *Network) LatestLedger() uint32 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.ledgers[len(n.ledgers)-1].seq
}

// Start runs the ledger-close timer until ctx is done or Close is called.
// It does nothing when Config.CloseEachTransaction is set. Start may be
// called once.
func (n *Network) Start(ctx context.Context) error {
	n.runMu.Lock()
	defer n.runMu.Unlock()
	if n.started {
		return errors.New("sandbox network already started")
	}
	select {
	case <-n.done:
		return ErrClosed
	default:
	}
	n.started = true
	if n.cfg.CloseEachTransaction {
		return nil
	}
	n.stop = make(chan struct{})
	n.stopped = make(chan struct{})
	go n.closeLoop(ctx, n.cfg.LedgerClose)
	return nil
}

func (n *Network) closeLoop(ctx context.Context, every time.Duration) {
	defer close(n.stopped)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.stop:
			return
		case <-t.C:
			n.CloseLedger()
		}
	}
}

// Close stops the ledger-close timer and waits for it, ends open streams
// and releases submitters waiting for a ledger. It is idempotent. The
// ledger stays readable.
func (n *Network) Close() error {
	n.closeOnce.Do(func() {
		n.runMu.Lock()
		if n.stop != nil {
			close(n.stop)
			<-n.stopped
		}
		n.runMu.Unlock()
		close(n.done)
	})
	return nil
}

// CloseLedger closes the pending ledger now, making its transactions
// visible, and returns its sequence. Ledgers without transactions close too.
func (n *Network) CloseLedger() uint32 {
	n.mu.Lock()
	seq := n.closeLedgerLocked()
	n.mu.Unlock()
	return seq
}

func (n *Network) now() time.Time {
	return n.cfg.Clock().UTC().Truncate(time.Second)
}

func (n *Network) closeLedgerLocked() uint32 {
	p := n.pending
	prev := n.ledgers[len(n.ledgers)-1]
	closedAt := n.now()
	if closedAt.Before(prev.closedAt) {
		closedAt = prev.closedAt // close times never go backwards
	}
	lr := &ledgerRecord{seq: p.seq, closedAt: closedAt, prevHash: prev.hash, txs: p.txs}
	h := sha256.New()
	var head [32 + 4 + 8]byte
	copy(head[:], prev.hash[:])
	binary.BigEndian.PutUint32(head[32:], p.seq)
	binary.BigEndian.PutUint64(head[36:], uint64(closedAt.Unix()))
	h.Write(head[:])
	for _, tx := range p.txs {
		h.Write([]byte(tx.hash))
		tx.resp.LedgerCloseTime = closedAt
		if tx.successful {
			lr.successful++
		} else {
			lr.failed++
		}
		lr.ops += int32(len(tx.ops))
		n.txByHash[tx.hash] = tx
		for _, op := range tx.ops {
			op.base.LedgerCloseTime = closedAt
			if !op.payment {
				continue
			}
			n.appendIndex(n.payments, op)
			for _, k := range op.participants {
				idx := n.byAccount[k]
				if idx == nil {
					idx = newOpIndex()
					n.byAccount[k] = idx
				}
				n.appendIndex(idx, op)
			}
		}
	}
	h.Sum(lr.hash[:0])
	n.ledgers = append(n.ledgers, lr)
	for _, idx := range n.toWake {
		close(idx.wake)
		idx.wake = make(chan struct{})
		idx.queued = false
	}
	clear(n.toWake)
	n.toWake = n.toWake[:0]
	close(p.done)
	n.pending = &pendingLedger{seq: p.seq + 1, done: make(chan struct{})}
	return lr.seq
}

func (n *Network) appendIndex(idx *opIndex, op *opRecord) {
	if k := len(idx.ops); k > 0 && idx.ops[k-1] == op {
		return
	}
	if !idx.queued {
		idx.queued = true
		n.toWake = append(n.toWake, idx)
	}
	idx.ops = append(idx.ops, op)
}

// Fund creates and funds an account like friendbot, with a create_account
// operation from the root account that shows up in payment history.
func (n *Network) Fund(ctx context.Context, address string) error {
	if _, err := n.fund(ctx, address); err != nil {
		return fmt.Errorf("fund %s: %w", address, err)
	}
	return nil
}

func (n *Network) fund(ctx context.Context, address string) (hProtocol.Transaction, error) {
	if _, ok := keyOfAddress(address); !ok {
		return hProtocol.Transaction{}, &ProblemError{P: badRequest("addr", "addr is not a valid account id")}
	}
	envelope, rec, closed, err := n.applyFunding(address)
	if err != nil {
		return hProtocol.Transaction{}, err
	}
	// Wait for the close without the friendbot lock, so that requests
	// made together are funded in one ledger, as testnet's friendbot does.
	rec, p := n.awaitClose(ctx, envelope, rec, closed)
	if p != nil {
		return hProtocol.Transaction{}, &ProblemError{P: *p}
	}
	return rec.resp, nil
}

// applyFunding applies friendbot's create_account from the root account.
// The friendbot lock is held from reading the root's sequence until the
// transaction using it is applied.
func (n *Network) applyFunding(address string) (string, *txRecord, chan struct{}, error) {
	n.friendbotMu.Lock()
	defer n.friendbotMu.Unlock()
	rootKey, _ := keyOfAddress(n.root.Address())
	n.mu.RLock()
	seq := n.accounts[rootKey].seq
	n.mu.RUnlock()
	src := txnbuild.SimpleAccount{AccountID: n.root.Address(), Sequence: seq}
	tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
		SourceAccount:        &src,
		IncrementSequenceNum: true,
		BaseFee:              txnbuild.MinBaseFee,
		Preconditions:        txnbuild.Preconditions{TimeBounds: txnbuild.NewInfiniteTimeout()},
		Operations: []txnbuild.Operation{&txnbuild.CreateAccount{
			Destination: address,
			Amount:      amountString(n.cfg.FriendbotAmount),
		}},
	})
	if err != nil {
		return "", nil, nil, fmt.Errorf("build friendbot transaction: %w", err)
	}
	envelope, err := n.envelope(tx, n.root)
	if err != nil {
		return "", nil, nil, fmt.Errorf("friendbot: %w", err)
	}
	rec, closed, p := n.apply(envelope)
	if p != nil {
		return "", nil, nil, &ProblemError{P: *p}
	}
	return envelope, rec, closed, nil
}

// Issuer is a funded sandbox account that issues one credit asset.
type Issuer struct {
	// Keypair signs the issuer's transactions; a payment from it mints the asset.
	Keypair *keypair.Full
	// Asset is the issued asset, ready for txnbuild operations.
	Asset txnbuild.CreditAsset
}

// IssueAsset creates and funds a fresh issuer account for the asset code
// (1 to 12 letters or digits). Holders still need a change_trust operation.
func (n *Network) IssueAsset(ctx context.Context, code string) (*Issuer, error) {
	kp, err := keypair.Random()
	if err != nil {
		return nil, fmt.Errorf("issue %s: %w", code, err)
	}
	asset := txnbuild.CreditAsset{Code: code, Issuer: kp.Address()}
	if _, err := asset.ToXDR(); err != nil {
		return nil, fmt.Errorf("issue %s: %w", code, err)
	}
	if err := n.Fund(ctx, kp.Address()); err != nil {
		return nil, fmt.Errorf("issue %s: %w", code, err)
	}
	return &Issuer{Keypair: kp, Asset: asset}, nil
}

// SubmitTransaction signs tx with signers (if any) and submits it without
// HTTP, waiting for its ledger to close like POST /transactions. A rejected
// or failed transaction returns a *ProblemError with result codes.
func (n *Network) SubmitTransaction(ctx context.Context, tx *txnbuild.Transaction, signers ...*keypair.Full) (hProtocol.Transaction, error) {
	b64, err := n.envelope(tx, signers...)
	if err != nil {
		return hProtocol.Transaction{}, err
	}
	return n.SubmitXDR(ctx, b64)
}

// envelope signs tx with signers (if any) and encodes it as base64 XDR.
func (n *Network) envelope(tx *txnbuild.Transaction, signers ...*keypair.Full) (string, error) {
	if len(signers) > 0 {
		var err error
		if tx, err = tx.Sign(n.cfg.NetworkPassphrase, signers...); err != nil {
			return "", fmt.Errorf("sign transaction: %w", err)
		}
	}
	b64, err := tx.Base64()
	if err != nil {
		return "", fmt.Errorf("encode transaction: %w", err)
	}
	return b64, nil
}

// SubmitXDR submits a base64 transaction envelope without HTTP, waiting
// for its ledger to close. A rejected or failed transaction returns a
// *ProblemError carrying Horizon's problem with result codes.
func (n *Network) SubmitXDR(ctx context.Context, envelope string) (hProtocol.Transaction, error) {
	rec, p := n.submit(ctx, envelope)
	if p != nil {
		return hProtocol.Transaction{}, &ProblemError{P: *p}
	}
	return rec.resp, nil
}

// Account returns the account in Horizon's shape, or a *ProblemError with
// status 404 if it does not exist.
func (n *Network) Account(address string) (hProtocol.Account, error) {
	k, ok := keyOfAddress(address)
	if !ok {
		return hProtocol.Account{}, &ProblemError{P: badRequest("account_id", "invalid account id")}
	}
	n.mu.RLock()
	a := n.accounts[k]
	var acc hProtocol.Account
	if a != nil {
		acc = accountResource(a)
	}
	n.mu.RUnlock()
	if a == nil {
		return hProtocol.Account{}, &ProblemError{P: problemNotFound}
	}
	return acc, nil
}
