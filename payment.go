package checkout

import "time"

// Disposition is what became of an observed payment.
type Disposition string

// Dispositions. Only an applied payment counts toward its session.
const (
	// DispositionApplied counts toward the session's amount.
	DispositionApplied Disposition = "applied"
	// DispositionLate arrived after the session was complete, expired or
	// canceled, judged by the ledger's close time.
	DispositionLate Disposition = "late"
	// DispositionWrongAsset paid the session's account and memo in another
	// asset (a different code or a different issuer).
	DispositionWrongAsset Disposition = "wrong_asset"
	// DispositionUnmatched names no session on its account.
	DispositionUnmatched Disposition = "unmatched"
)

// Payment is one Horizon operation that credited a watched account,
// normalized from payment, path payments, create_account and account_merge.
type Payment struct {
	ID string `json:"id"`
	// OperationID is Horizon's operation id: unique on the network, so a
	// payment is recorded at most once.
	OperationID     string    `json:"operation_id"`
	TransactionHash string    `json:"transaction_hash"`
	OperationType   string    `json:"operation_type"`
	From            string    `json:"from"`
	To              string    `json:"to"`
	ToMuxedID       string    `json:"to_muxed_id,omitempty"`
	Amount          Amount    `json:"amount"`
	Asset           Asset     `json:"asset"`
	MemoType        string    `json:"memo_type,omitempty"`
	Memo            string    `json:"memo,omitempty"`
	LedgerClosedAt  time.Time `json:"ledger_closed_at"`
	// SessionID is the session the payment was matched to; empty when
	// unmatched.
	SessionID   string      `json:"session_id,omitempty"`
	Disposition Disposition `json:"disposition"`
	CreatedAt   time.Time   `json:"created_at"`
}
