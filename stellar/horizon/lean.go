package horizon

import (
	"encoding/json"
	"time"

	"github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/base"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// leanRecord is an operation record of the payments endpoint, joined with
// its transaction, holding only what Normalize and the watcher read. One
// json.Unmarshal of a whole page into leanPage decodes every record in one
// pass, where the SDK's types decode a record twice (its Base, then its
// type) and its transaction twice more (Transaction.UnmarshalJSON), and
// fill dozens of fields nothing here reads. The fields that are read have
// the SDK's own names and tags, so they decode exactly as the SDK decodes
// them; fields that are not read are not validated either.
type leanRecord struct {
	ID                    string    `json:"id"`
	PT                    string    `json:"paging_token"`
	TransactionSuccessful bool      `json:"transaction_successful"`
	Type                  string    `json:"type"`
	TypeI                 int32     `json:"type_i"`
	LedgerCloseTime       time.Time `json:"created_at"`
	TransactionHash       string    `json:"transaction_hash"`
	Transaction           *leanTx   `json:"transaction"`

	// payment and path payments
	AssetType   string `json:"asset_type"`
	AssetCode   string `json:"asset_code"`
	AssetIssuer string `json:"asset_issuer"`
	From        string `json:"from"`
	To          string `json:"to"`
	ToMuxed     string `json:"to_muxed"`
	ToMuxedID   uint64 `json:"to_muxed_id,omitempty,string"`
	Amount      string `json:"amount"`
	// create_account
	StartingBalance string `json:"starting_balance"`
	Funder          string `json:"funder"`
	// create_account (the new account) and account_merge (the merged one)
	Account string `json:"account"`
	// account_merge
	Into      string `json:"into"`
	IntoMuxed string `json:"into_muxed"`
}

// leanTx is the part of a joined transaction that Normalize reads.
type leanTx struct {
	ID       string `json:"id"`
	PT       string `json:"paging_token"`
	Hash     string `json:"hash"`
	MemoType string `json:"memo_type"`
	Memo     string `json:"memo"`
}

type leanPage struct {
	Embedded struct {
		Records []leanRecord `json:"records"`
	} `json:"_embedded"`
}

// decodeLeanPage decodes a page's records in one pass. It reports false
// when the page holds anything it does not handle — invalid JSON, a record
// without a paging token, an operation type outside the payments
// endpoint's — and the caller then decodes the page with the SDK, which
// decodes or words the error exactly as before.
func decodeLeanPage(body []byte) ([]operations.Operation, bool) {
	var page leanPage
	if err := json.Unmarshal(body, &page); err != nil {
		return nil, false
	}
	ops := make([]operations.Operation, len(page.Embedded.Records))
	for i := range page.Embedded.Records {
		op, ok := page.Embedded.Records[i].operation()
		if !ok {
			return nil, false
		}
		ops[i] = op
	}
	return ops, true
}

// operation builds the SDK value the SDK would decode the record to, with
// the fields Normalize reads.
func (r *leanRecord) operation() (operations.Operation, bool) {
	if r.PT == "" {
		return nil, false
	}
	b := operations.Base{
		ID: r.ID, PT: r.PT, TransactionSuccessful: r.TransactionSuccessful, Type: r.Type, TypeI: r.TypeI,
		LedgerCloseTime: r.LedgerCloseTime, TransactionHash: r.TransactionHash,
	}
	if t := r.Transaction; t != nil {
		b.Transaction = &horizon.Transaction{ID: t.ID, PT: t.PT, Hash: t.Hash, MemoType: t.MemoType, Memo: t.Memo}
	}
	payment := func() operations.Payment {
		return operations.Payment{
			Base:  b,
			Asset: base.Asset{Type: r.AssetType, Code: r.AssetCode, Issuer: r.AssetIssuer},
			From:  r.From, To: r.To, ToMuxed: r.ToMuxed, ToMuxedID: r.ToMuxedID, Amount: r.Amount,
		}
	}
	switch xdr.OperationType(r.TypeI) {
	case xdr.OperationTypePayment:
		return payment(), true
	case xdr.OperationTypePathPaymentStrictReceive:
		return operations.PathPayment{Payment: payment()}, true
	case xdr.OperationTypePathPaymentStrictSend:
		return operations.PathPaymentStrictSend{Payment: payment()}, true
	case xdr.OperationTypeCreateAccount:
		return operations.CreateAccount{Base: b, StartingBalance: r.StartingBalance, Funder: r.Funder, Account: r.Account}, true
	case xdr.OperationTypeAccountMerge:
		return operations.AccountMerge{Base: b, Account: r.Account, Into: r.Into, IntoMuxed: r.IntoMuxed}, true
	case xdr.OperationTypeInvokeHostFunction:
		return operations.InvokeHostFunction{Base: b}, true
	}
	return nil, false
}
