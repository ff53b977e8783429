// Package checkout is checkoutd's domain: checkout sessions, the payments
// that settle them, the events they emit and the one pure function that
// decides every transition. It does no I/O and imports no adapter.
package checkout

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Status is where a session is in its life.
type Status string

// Session statuses. Every status but open is terminal.
const (
	StatusOpen     Status = "open"
	StatusComplete Status = "complete"
	StatusExpired  Status = "expired"
	StatusCanceled Status = "canceled"
)

// PaymentStatus says how much of a session has been paid.
type PaymentStatus string

// Payment statuses.
const (
	PaymentUnpaid        PaymentStatus = "unpaid"
	PaymentPartiallyPaid PaymentStatus = "partially_paid"
	PaymentPaid          PaymentStatus = "paid"
	PaymentOverpaid      PaymentStatus = "overpaid"
)

// MemoType says how a customer's payment names its session.
type MemoType string

// Memo types. A muxed session is paid to an M-address (SEP-23) whose id is
// the memo; the customer's wallet sends no memo at all.
const (
	MemoText  MemoType = "text"
	MemoID    MemoType = "id"
	MemoMuxed MemoType = "muxed"
)

// Session is one checkout: an amount of one asset that a customer pays into
// the merchant's own account, naming the session by its memo.
type Session struct {
	ID               string            `json:"id"`
	MerchantID       string            `json:"merchant_id"`
	Amount           Amount            `json:"amount"`
	Asset            Asset             `json:"asset"`
	ReceivingAccount string            `json:"receiving_account"`
	MemoType         MemoType          `json:"memo_type"`
	Memo             string            `json:"memo"`
	Status           Status            `json:"status"`
	PaymentStatus    PaymentStatus     `json:"payment_status"`
	AmountReceived   Amount            `json:"amount_received"`
	ExpiresAt        time.Time         `json:"expires_at"`
	Metadata         map[string]string `json:"metadata"`
	SuccessURL       string            `json:"success_url"`
	CancelURL        string            `json:"cancel_url"`
	CreatedAt        time.Time         `json:"created_at"`
	UpdatedAt        time.Time         `json:"updated_at"`
	// ClosedAt is when the session left open; zero while open.
	ClosedAt time.Time `json:"closed_at,omitzero"`
	// Version increases by one with every committed change. A write names
	// the version it read, and Postgres refuses a stale one.
	Version int64 `json:"version"`
}

// IsOpen reports whether the session still takes payments toward its amount.
func (s Session) IsOpen() bool { return s.Status == StatusOpen }

// Limits on a session's free-form fields.
const (
	MaxMetadataKeys     = 50
	MaxMetadataKeyLen   = 40
	MaxMetadataValueLen = 500
	MaxTextMemoLen      = 28
	MinExpiresIn        = 60 * time.Second
	MaxExpiresIn        = 7 * 24 * time.Hour
)

// ValidateMetadata checks the size limits on a metadata map.
func ValidateMetadata(m map[string]string) error {
	if len(m) > MaxMetadataKeys {
		return InvalidParam("metadata", "metadata_too_large", "metadata has %d keys; at most %d are allowed", len(m), MaxMetadataKeys)
	}
	for k, v := range m {
		// Postgres text and jsonb cannot hold a NUL character.
		if k == "" || len(k) > MaxMetadataKeyLen || !utf8.ValidString(k) || strings.IndexByte(k, 0) >= 0 {
			return InvalidParam("metadata", "metadata_key_invalid", "metadata keys must be 1 to %d bytes of UTF-8, without NUL", MaxMetadataKeyLen)
		}
		if len(v) > MaxMetadataValueLen || !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
			return InvalidParam("metadata["+k+"]", "metadata_value_invalid", "metadata values must be at most %d bytes of UTF-8, without NUL", MaxMetadataValueLen)
		}
	}
	return nil
}

// NewMemo returns a fresh random memo of the given type. Text memos are 16
// upper-case base32 characters that always start with a letter, so they never
// read as an id memo; id and muxed memos are random 63-bit integers.
func NewMemo(t MemoType) (string, error) {
	switch t {
	case MemoText:
		var b [10]byte
		_, _ = rand.Read(b[:])
		s := []byte(lowerBase32.EncodeToString(b[:]))
		for i, c := range s {
			if c >= 'a' && c <= 'z' {
				s[i] = c - 'a' + 'A'
			}
		}
		if s[0] < 'A' {
			s[0] = 'A' + s[0]%26
		}
		return string(s), nil
	case MemoID, MemoMuxed:
		var b [8]byte
		_, _ = rand.Read(b[:])
		n := binary.BigEndian.Uint64(b[:])>>1 | 1
		return strconv.FormatUint(n, 10), nil
	default:
		return "", InvalidParam("memo_type", "memo_type_invalid", "memo_type must be text, id or muxed")
	}
}

// ValidateMemo checks a memo against its type.
func ValidateMemo(t MemoType, memo string) error {
	switch t {
	case MemoText:
		if memo == "" || len(memo) > MaxTextMemoLen {
			return fmt.Errorf("text memo must be 1 to %d bytes", MaxTextMemoLen)
		}
	case MemoID, MemoMuxed:
		// Horizon writes id memos without leading zeros, and memos are
		// matched as strings, so "007" could never match a payment.
		n, err := strconv.ParseUint(memo, 10, 64)
		if err != nil || strconv.FormatUint(n, 10) != memo {
			return fmt.Errorf("%s memo %q: not an unsigned 64-bit integer in canonical form", t, memo)
		}
	default:
		return fmt.Errorf("memo type %q: want text, id or muxed", t)
	}
	return nil
}

// SessionParams is what a merchant asks for when creating a session.
type SessionParams struct {
	MerchantID       string
	ReceivingAccount string
	Amount           Amount
	Asset            Asset
	ExpiresIn        time.Duration
	MemoType         MemoType
	Metadata         map[string]string
	SuccessURL       string
	CancelURL        string
}

// NewSession validates p and returns an open, unpaid session with a fresh id
// and memo, created at now.
func NewSession(p SessionParams, now time.Time) (Session, error) {
	if p.Amount <= 0 {
		return Session{}, InvalidParam("amount", "amount_invalid", "amount must be greater than zero")
	}
	if err := p.Asset.Validate(); err != nil {
		return Session{}, InvalidParam("asset", "asset_invalid", "%s", err)
	}
	if p.ExpiresIn < MinExpiresIn || p.ExpiresIn > MaxExpiresIn {
		return Session{}, InvalidParam("expires_in", "expires_in_invalid", "expires_in must be between %d and %d seconds", int(MinExpiresIn.Seconds()), int(MaxExpiresIn.Seconds()))
	}
	if p.MemoType == "" {
		p.MemoType = MemoText
	}
	memo, err := NewMemo(p.MemoType)
	if err != nil {
		return Session{}, err
	}
	if err := ValidateMetadata(p.Metadata); err != nil {
		return Session{}, err
	}
	if p.Metadata == nil {
		p.Metadata = map[string]string{}
	}
	now = now.UTC()
	return Session{
		ID:               NewID(PrefixSession),
		MerchantID:       p.MerchantID,
		Amount:           p.Amount,
		Asset:            p.Asset,
		ReceivingAccount: p.ReceivingAccount,
		MemoType:         p.MemoType,
		Memo:             memo,
		Status:           StatusOpen,
		PaymentStatus:    PaymentUnpaid,
		ExpiresAt:        ceilSecond(now.Add(p.ExpiresIn)),
		Metadata:         p.Metadata,
		SuccessURL:       p.SuccessURL,
		CancelURL:        p.CancelURL,
		CreatedAt:        now.Truncate(time.Microsecond),
		UpdatedAt:        now.Truncate(time.Microsecond),
		Version:          1,
	}, nil
}

// ceilSecond rounds t up to a whole second, so a session never lasts less
// than it was asked to.
func ceilSecond(t time.Time) time.Time {
	if r := t.Truncate(time.Second); !r.Equal(t) {
		return r.Add(time.Second)
	}
	return t
}
