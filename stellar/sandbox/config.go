// Package sandbox is an in-memory Stellar network that speaks the subset of
// Horizon's HTTP API that checkoutd and a wallet use. It accepts real signed
// transaction envelopes built with txnbuild, applies them to an in-memory
// ledger, and serves accounts, payments (pages and Server-Sent Events
// streams), transactions, operations, effects and ledgers in Horizon's JSON
// shapes, taken from the SDK's protocols/horizon packages.
//
// Visibility follows Horizon: a submitted transaction changes balances and
// sequence numbers at once, but it becomes readable (transactions,
// operations, payments, streams) only when its ledger closes, and POST
// /transactions answers only then. Ledgers close on a timer owned by
// Start/Close, on demand with CloseLedger, or after every transaction when
// Config.CloseEachTransaction is set.
package sandbox

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/stellar/go-stellar-sdk/network"
)

// Default values used by Config.withDefaults.
const (
	// DefaultLedgerClose is how often ledgers close when Config.LedgerClose is zero.
	DefaultLedgerClose = time.Second
	// DefaultFriendbotAmount is what friendbot sends a new account, in stroops (10,000 XLM).
	DefaultFriendbotAmount int64 = 10_000 * stroopsPerLumen
	// DefaultSubmitTimeout bounds how long POST /transactions waits for the ledger to close.
	DefaultSubmitTimeout = 30 * time.Second
	// DefaultMaxBodyBytes bounds the body of POST /transactions.
	DefaultMaxBodyBytes int64 = 256 << 10
)

const (
	stroopsPerLumen int64 = 10_000_000
	baseFee         int64 = 100
	baseReserve     int64 = stroopsPerLumen / 2
	totalCoins      int64 = 100_000_000_000 * stroopsPerLumen
	protocolVersion       = 23
)

// Rate is the fixed exchange rate used by path payments between two
// different assets: one unit of the send asset buys Num/Den units of the
// destination asset. Path payments within one asset always use 1:1.
type Rate struct {
	Num int64
	Den int64
}

// Config configures a Network. The zero value is usable: testnet
// passphrase, ledgers every second, a 1:1 path payment rate, the wall clock
// and no faults.
type Config struct {
	// NetworkPassphrase signs and verifies transactions. Default: the testnet passphrase.
	NetworkPassphrase string
	// LedgerClose is the interval of the ledger-close timer run by Start. Default 1 s.
	LedgerClose time.Duration
	// CloseEachTransaction closes a ledger right after every applied
	// transaction, so submissions never wait for the timer.
	CloseEachTransaction bool
	// Clock gives ledger close times and checks time bounds. Default time.Now.
	Clock func() time.Time
	// PathRate is the cross-asset rate for path payments. Default 1:1.
	PathRate Rate
	// FriendbotAmount is the starting balance friendbot gives, in stroops. Default 10,000 XLM.
	FriendbotAmount int64
	// SubmitTimeout bounds how long a submission waits for its ledger to close. Default 30 s.
	SubmitTimeout time.Duration
	// MaxBodyBytes bounds the POST /transactions body. Default 256 KiB.
	MaxBodyBytes int64
	// Seed seeds the fault schedule (math/rand/v2 PCG) so a run can be replayed.
	Seed uint64
	// Faults are the faults injected from the start; POST /_sandbox/faults changes them.
	Faults Faults
	// Logger receives diagnostics. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.NetworkPassphrase == "" {
		c.NetworkPassphrase = network.TestNetworkPassphrase
	}
	if c.LedgerClose == 0 {
		c.LedgerClose = DefaultLedgerClose
	}
	if c.LedgerClose < 0 {
		return c, fmt.Errorf("ledger close interval %s: %w", c.LedgerClose, errNegative)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.PathRate == (Rate{}) {
		c.PathRate = Rate{Num: 1, Den: 1}
	}
	if c.PathRate.Num <= 0 || c.PathRate.Den <= 0 {
		return c, fmt.Errorf("path rate %d/%d: %w", c.PathRate.Num, c.PathRate.Den, errNegative)
	}
	if c.FriendbotAmount == 0 {
		c.FriendbotAmount = DefaultFriendbotAmount
	}
	if c.FriendbotAmount < 0 {
		return c, fmt.Errorf("friendbot amount %d: %w", c.FriendbotAmount, errNegative)
	}
	if c.SubmitTimeout == 0 {
		c.SubmitTimeout = DefaultSubmitTimeout
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if err := c.Faults.validate(); err != nil {
		return c, fmt.Errorf("faults: %w", err)
	}
	return c, nil
}

var errNegative = errors.New("must be positive")
