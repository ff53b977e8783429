package horizon

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/stellar/go-stellar-sdk/protocols/horizon/base"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/effects"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"

	checkout "github.com/checkoutd/checkoutd"
)

// Kind says what an operation on a watched account's payments stream means
// for that account.
type Kind int

// Kinds. Only a credit is a payment to match; the rest are acknowledged
// and skipped.
const (
	// KindCredit moved funds into the account.
	KindCredit Kind = iota + 1
	// KindOutgoing moved funds out of the account to someone else.
	KindOutgoing
	// KindFailed belongs to a failed transaction and moved nothing.
	KindFailed
	// KindNotPayment involves the account but credits it nothing: a payment
	// between two other accounts in a transaction the account sourced, or a
	// Soroban invoke_host_function (contract transfers are not supported).
	KindNotPayment
)

// String names the kind, for logs and counters.
func (k Kind) String() string {
	switch k {
	case KindCredit:
		return "credit"
	case KindOutgoing:
		return "outgoing"
	case KindFailed:
		return "failed"
	case KindNotPayment:
		return "not_payment"
	}
	return "unknown"
}

// ErrUnknownOperation is returned by Normalize for an operation type it does
// not handle.
var ErrUnknownOperation = errors.New("unknown operation type")

// Operation type names, as Horizon writes them in "type".
const (
	TypePayment                  = "payment"
	TypePathPaymentStrictReceive = "path_payment_strict_receive"
	TypePathPaymentStrictSend    = "path_payment_strict_send"
	TypeCreateAccount            = "create_account"
	TypeAccountMerge             = "account_merge"
)

// Normalize turns an operation from account's payments stream (joined with
// its transaction) into a checkout.Payment, and says whether it is a credit
// to account. It is pure.
//
// For an account_merge credit the amount is not on the operation: Amount is
// zero and the caller fills it with MergeAmount of the operation's effects.
//
// An operation type Normalize does not know (including a bare
// operations.Base, which is how PaymentsPage passes undecodable types)
// returns an error wrapping ErrUnknownOperation.
func Normalize(op operations.Operation, account string) (checkout.Payment, Kind, error) {
	switch o := op.(type) {
	case operations.Payment:
		return normalizePayment(o, account)
	case operations.PathPayment:
		return normalizePayment(o.Payment, account)
	case operations.PathPaymentStrictSend:
		return normalizePayment(o.Payment, account)
	case operations.CreateAccount:
		return normalizeCredit(o.Base, account, o.Funder, o.Account, "", o.StartingBalance, base.Asset{Type: "native"})
	case operations.AccountMerge:
		return normalizeCredit(o.Base, account, o.Account, o.Into, o.IntoMuxed, "", base.Asset{Type: "native"})
	case operations.InvokeHostFunction:
		b := o.Base
		return checkout.Payment{OperationID: b.ID, TransactionHash: b.TransactionHash, OperationType: b.Type}, KindNotPayment, nil
	case nil:
		return checkout.Payment{}, 0, fmt.Errorf("normalize: nil operation: %w", ErrUnknownOperation)
	default:
		b := op.GetBase()
		return checkout.Payment{}, 0, fmt.Errorf("normalize operation %s: type %q (%d): %w", b.ID, b.Type, b.TypeI, ErrUnknownOperation)
	}
}

func normalizePayment(p operations.Payment, account string) (checkout.Payment, Kind, error) {
	muxed := ""
	if p.ToMuxed != "" {
		muxed = strconv.FormatUint(p.ToMuxedID, 10)
	}
	return normalizeCredit(p.Base, account, p.From, p.To, muxed, p.Amount, p.Asset)
}

// normalizeCredit classifies and builds the payment. toMuxed is the
// destination's muxed id in decimal, or empty; amount is empty for a merge.
func normalizeCredit(b operations.Base, account, from, to, toMuxed, amount string, asset base.Asset) (checkout.Payment, Kind, error) {
	p := checkout.Payment{
		OperationID:     b.ID,
		TransactionHash: b.TransactionHash,
		OperationType:   b.Type,
		From:            from,
		To:              to,
		ToMuxedID:       toMuxed,
		LedgerClosedAt:  b.LedgerCloseTime.UTC(),
	}
	switch {
	case !b.TransactionSuccessful:
		return p, KindFailed, nil
	case to != account && from == account:
		return p, KindOutgoing, nil
	case to != account:
		return p, KindNotPayment, nil
	}
	if b.ID == "" {
		return p, 0, fmt.Errorf("normalize %s: no operation id", b.Type)
	}
	if b.Type == TypeAccountMerge && amount != "" || b.Type != TypeAccountMerge && amount == "" {
		return p, 0, fmt.Errorf("normalize %s operation %s: amount %q", b.Type, b.ID, amount)
	}
	if amount != "" {
		a, err := checkout.ParseAmount(amount)
		if err != nil {
			return p, 0, fmt.Errorf("normalize %s operation %s: %w", b.Type, b.ID, err)
		}
		p.Amount = a
	}
	a, err := convertAsset(asset)
	if err != nil {
		return p, 0, fmt.Errorf("normalize %s operation %s: %w", b.Type, b.ID, err)
	}
	p.Asset = a
	if b.Transaction == nil {
		return p, 0, fmt.Errorf("normalize %s operation %s: no joined transaction (want join=transactions)", b.Type, b.ID)
	}
	if t := b.Transaction.MemoType; t != "" && t != "none" {
		p.MemoType, p.Memo = t, b.Transaction.Memo
	}
	if b.TransactionHash == "" {
		p.TransactionHash = b.Transaction.Hash
	}
	return p, KindCredit, nil
}

func convertAsset(a base.Asset) (checkout.Asset, error) {
	if a.Type == "native" {
		return checkout.NativeAsset, nil
	}
	if a.Code == "" || a.Issuer == "" {
		return checkout.Asset{}, fmt.Errorf("asset of type %q has no code or issuer", a.Type)
	}
	return checkout.Asset{Code: a.Code, Issuer: a.Issuer}, nil
}

// MergeAmount returns what an account_merge credited account: the amount of
// its account_credited effect for account.
func MergeAmount(effs []effects.Effect, account string) (checkout.Amount, error) {
	for _, e := range effs {
		c, ok := e.(effects.AccountCredited)
		if !ok || c.Account != account {
			continue
		}
		if c.Asset.Type != "native" {
			return 0, fmt.Errorf("merge credited %s in %s, want native", account, c.Asset.Type)
		}
		a, err := checkout.ParseAmount(c.Amount)
		if err != nil {
			return 0, fmt.Errorf("merge credited %s: %w", account, err)
		}
		return a, nil
	}
	return 0, fmt.Errorf("merge effects: no account_credited effect for %s", account)
}
