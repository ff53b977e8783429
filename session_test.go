package checkout_test

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/stellar/go-stellar-sdk/keypair"
)

// wantInvalidParam fails t unless err is a *checkout.Error for a bad request
// parameter named param with the given reason.
func wantInvalidParam(t *testing.T, err error, param, reason string) {
	t.Helper()
	var e *checkout.Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want a *checkout.Error for %s", err, err, param)
	}
	if e.Code != checkout.EINVALID || e.Param != param || e.Reason != reason {
		t.Fatalf("error = {Code: %q, Param: %q, Reason: %q}, want {Code: %q, Param: %q, Reason: %q}",
			e.Code, e.Param, e.Reason, checkout.EINVALID, param, reason)
	}
}

// metadataOfSize returns a map with n distinct keys.
func metadataOfSize(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("key%d", i)] = "v"
	}
	return m
}

func TestNewMemo(t *testing.T) {
	tests := []struct {
		name      string
		memoType  checkout.MemoType
		wantParam string // non-empty when NewMemo must fail
	}{
		{name: "text", memoType: checkout.MemoText},
		{name: "id", memoType: checkout.MemoID},
		{name: "muxed", memoType: checkout.MemoMuxed},
		{name: "empty type", memoType: "", wantParam: "memo_type"},
		{name: "hash type", memoType: "hash", wantParam: "memo_type"},
		{name: "upper-case type", memoType: "TEXT", wantParam: "memo_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantParam != "" {
				memo, err := checkout.NewMemo(tt.memoType)
				if err == nil {
					t.Fatalf("NewMemo(%q) = %q, want an error", tt.memoType, memo)
				}
				wantInvalidParam(t, err, tt.wantParam, "memo_type_invalid")
				return
			}
			// Enough draws that a text memo's first character comes out as
			// a digit many times over (6 of 32 base32 characters are).
			seen := make(map[string]bool)
			for range 2000 {
				memo, err := checkout.NewMemo(tt.memoType)
				if err != nil {
					t.Fatalf("NewMemo(%q) error = %v", tt.memoType, err)
				}
				if seen[memo] {
					t.Fatalf("NewMemo(%q) repeated %q", tt.memoType, memo)
				}
				seen[memo] = true
				if err := checkout.ValidateMemo(tt.memoType, memo); err != nil {
					t.Fatalf("ValidateMemo(%q, NewMemo() = %q) = %v", tt.memoType, memo, err)
				}
				n, parseErr := strconv.ParseUint(memo, 10, 64)
				switch tt.memoType {
				case checkout.MemoText:
					if len(memo) == 0 || len(memo) > 28 {
						t.Fatalf("text memo %q is %d bytes, want 1 to 28", memo, len(memo))
					}
					if memo[0] < 'A' || memo[0] > 'Z' {
						t.Fatalf("text memo %q does not start with a letter", memo)
					}
					if strings.Trim(memo, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
						t.Fatalf("text memo %q is not upper-case base32", memo)
					}
					if parseErr == nil {
						t.Fatalf("text memo %q parses as the id memo %d", memo, n)
					}
				default:
					if parseErr != nil {
						t.Fatalf("%s memo %q: %v", tt.memoType, memo, parseErr)
					}
					if n == 0 {
						t.Fatalf("%s memo is zero", tt.memoType)
					}
					if n > math.MaxInt64 {
						t.Fatalf("%s memo %d does not fit in 63 bits", tt.memoType, n)
					}
					if strconv.FormatUint(n, 10) != memo {
						t.Fatalf("%s memo %q is not in canonical decimal form", tt.memoType, memo)
					}
				}
			}
		})
	}
}

func TestValidateMemo(t *testing.T) {
	tests := []struct {
		name     string
		memoType checkout.MemoType
		memo     string
		wantErr  bool
	}{
		{name: "text one byte", memoType: checkout.MemoText, memo: "A"},
		{name: "text 28 bytes", memoType: checkout.MemoText, memo: strings.Repeat("A", 28)},
		{name: "text 28 bytes of multibyte runes", memoType: checkout.MemoText, memo: strings.Repeat("é", 14)},
		{name: "text of digits", memoType: checkout.MemoText, memo: "12345"},
		{name: "text empty", memoType: checkout.MemoText, memo: "", wantErr: true},
		{name: "text 29 bytes", memoType: checkout.MemoText, memo: strings.Repeat("A", 29), wantErr: true},
		{name: "text 30 bytes of multibyte runes", memoType: checkout.MemoText, memo: strings.Repeat("é", 15), wantErr: true},

		{name: "id one", memoType: checkout.MemoID, memo: "1"},
		{name: "id zero", memoType: checkout.MemoID, memo: "0"},
		{name: "id max uint64", memoType: checkout.MemoID, memo: "18446744073709551615"},
		{name: "id over uint64", memoType: checkout.MemoID, memo: "18446744073709551616", wantErr: true},
		{name: "id empty", memoType: checkout.MemoID, memo: "", wantErr: true},
		{name: "id negative", memoType: checkout.MemoID, memo: "-1", wantErr: true},
		{name: "id plus sign", memoType: checkout.MemoID, memo: "+1", wantErr: true},
		{name: "id leading zero", memoType: checkout.MemoID, memo: "007", wantErr: true},
		{name: "id decimal", memoType: checkout.MemoID, memo: "1.0", wantErr: true},
		{name: "id hex", memoType: checkout.MemoID, memo: "0x1", wantErr: true},
		{name: "id underscore", memoType: checkout.MemoID, memo: "1_000", wantErr: true},
		{name: "id space", memoType: checkout.MemoID, memo: " 1", wantErr: true},
		{name: "id text", memoType: checkout.MemoID, memo: "ABC", wantErr: true},

		{name: "muxed one", memoType: checkout.MemoMuxed, memo: "1"},
		{name: "muxed max uint64", memoType: checkout.MemoMuxed, memo: "18446744073709551615"},
		{name: "muxed over uint64", memoType: checkout.MemoMuxed, memo: "18446744073709551616", wantErr: true},
		{name: "muxed leading zero", memoType: checkout.MemoMuxed, memo: "01", wantErr: true},
		{name: "muxed text", memoType: checkout.MemoMuxed, memo: "ABC", wantErr: true},

		{name: "unknown type", memoType: "hash", memo: "1", wantErr: true},
		{name: "empty type", memoType: "", memo: "1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkout.ValidateMemo(tt.memoType, tt.memo)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("ValidateMemo(%q, %q) = %v, want error: %v", tt.memoType, tt.memo, err, tt.wantErr)
			}
		})
	}
}

func TestValidateMetadata(t *testing.T) {
	tests := []struct {
		name       string
		in         map[string]string
		wantParam  string // empty when the map is valid
		wantReason string
	}{
		{name: "nil", in: nil},
		{name: "empty", in: map[string]string{}},
		{name: "empty value", in: map[string]string{"k": ""}},
		{name: "50 keys", in: metadataOfSize(50)},
		{name: "key of 40 bytes", in: map[string]string{strings.Repeat("k", 40): "v"}},
		{name: "value of 500 bytes", in: map[string]string{"k": strings.Repeat("v", 500)}},
		{name: "value of 500 bytes of multibyte runes", in: map[string]string{"k": strings.Repeat("é", 250)}},

		{name: "51 keys", in: metadataOfSize(51), wantParam: "metadata", wantReason: "metadata_too_large"},
		{name: "empty key", in: map[string]string{"": "v"}, wantParam: "metadata", wantReason: "metadata_key_invalid"},
		{name: "key of 41 bytes", in: map[string]string{strings.Repeat("k", 41): "v"}, wantParam: "metadata", wantReason: "metadata_key_invalid"},
		{name: "key of 42 bytes of multibyte runes", in: map[string]string{strings.Repeat("é", 21): "v"}, wantParam: "metadata", wantReason: "metadata_key_invalid"},
		{name: "key not UTF-8", in: map[string]string{"k\xff": "v"}, wantParam: "metadata", wantReason: "metadata_key_invalid"},
		{name: "value of 501 bytes", in: map[string]string{"k": strings.Repeat("v", 501)}, wantParam: "metadata[k]", wantReason: "metadata_value_invalid"},
		{name: "value of 502 bytes of multibyte runes", in: map[string]string{"k": strings.Repeat("é", 251)}, wantParam: "metadata[k]", wantReason: "metadata_value_invalid"},
		{name: "value not UTF-8", in: map[string]string{"k": "v\xff"}, wantParam: "metadata[k]", wantReason: "metadata_value_invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkout.ValidateMetadata(tt.in)
			if tt.wantParam == "" {
				if err != nil {
					t.Fatalf("ValidateMetadata() = %v, want nil", err)
				}
				return
			}
			wantInvalidParam(t, err, tt.wantParam, tt.wantReason)
		})
	}
}

func TestNewSession(t *testing.T) {
	issuer := keypair.MustRandom().Address()
	receiving := keypair.MustRandom().Address()
	// A zone other than UTC and a fractional second, to see both normalized.
	now := time.Date(2026, 3, 1, 11, 0, 0, 123_456_789, time.FixedZone("CET", 3600))
	base := checkout.SessionParams{
		MerchantID:       "mer_abcdefghijklmnopqrstuvwx",
		ReceivingAccount: receiving,
		Amount:           10 * unit,
		Asset:            checkout.Asset{Code: "USDC", Issuer: issuer},
		ExpiresIn:        time.Hour,
		MemoType:         checkout.MemoText,
		Metadata:         map[string]string{"order": "42"},
		SuccessURL:       "https://shop.example/success",
		CancelURL:        "https://shop.example/cancel",
	}

	tests := []struct {
		name       string
		edit       func(p *checkout.SessionParams)
		wantParam  string // empty when NewSession must succeed
		wantReason string
		wantMemo   checkout.MemoType // the memo type of the created session
	}{
		{name: "valid", edit: func(p *checkout.SessionParams) {}, wantMemo: checkout.MemoText},
		{name: "one stroop", edit: func(p *checkout.SessionParams) { p.Amount = 1 }, wantMemo: checkout.MemoText},
		{name: "max amount", edit: func(p *checkout.SessionParams) { p.Amount = math.MaxInt64 }, wantMemo: checkout.MemoText},
		{name: "native asset", edit: func(p *checkout.SessionParams) { p.Asset = checkout.NativeAsset }, wantMemo: checkout.MemoText},
		{name: "expires_in minimum", edit: func(p *checkout.SessionParams) { p.ExpiresIn = 60 * time.Second }, wantMemo: checkout.MemoText},
		{name: "expires_in maximum", edit: func(p *checkout.SessionParams) { p.ExpiresIn = 7 * 24 * time.Hour }, wantMemo: checkout.MemoText},
		{name: "memo type defaults to text", edit: func(p *checkout.SessionParams) { p.MemoType = "" }, wantMemo: checkout.MemoText},
		{name: "id memo", edit: func(p *checkout.SessionParams) { p.MemoType = checkout.MemoID }, wantMemo: checkout.MemoID},
		{name: "muxed memo", edit: func(p *checkout.SessionParams) { p.MemoType = checkout.MemoMuxed }, wantMemo: checkout.MemoMuxed},
		{name: "nil metadata", edit: func(p *checkout.SessionParams) { p.Metadata = nil }, wantMemo: checkout.MemoText},
		{name: "50 metadata keys", edit: func(p *checkout.SessionParams) { p.Metadata = metadataOfSize(50) }, wantMemo: checkout.MemoText},

		{name: "zero amount", edit: func(p *checkout.SessionParams) { p.Amount = 0 }, wantParam: "amount", wantReason: "amount_invalid"},
		{name: "negative amount", edit: func(p *checkout.SessionParams) { p.Amount = -1 }, wantParam: "amount", wantReason: "amount_invalid"},
		{name: "min amount", edit: func(p *checkout.SessionParams) { p.Amount = math.MinInt64 }, wantParam: "amount", wantReason: "amount_invalid"},
		{name: "zero asset", edit: func(p *checkout.SessionParams) { p.Asset = checkout.Asset{} }, wantParam: "asset", wantReason: "asset_invalid"},
		{name: "asset without issuer", edit: func(p *checkout.SessionParams) { p.Asset.Issuer = "" }, wantParam: "asset", wantReason: "asset_invalid"},
		{name: "asset with bad issuer", edit: func(p *checkout.SessionParams) { p.Asset.Issuer = "GABC" }, wantParam: "asset", wantReason: "asset_invalid"},
		{name: "XLM with issuer", edit: func(p *checkout.SessionParams) { p.Asset.Code = "XLM" }, wantParam: "asset", wantReason: "asset_invalid"},
		{name: "bad asset code", edit: func(p *checkout.SessionParams) { p.Asset.Code = "US-D" }, wantParam: "asset", wantReason: "asset_invalid"},
		{name: "expires_in zero", edit: func(p *checkout.SessionParams) { p.ExpiresIn = 0 }, wantParam: "expires_in", wantReason: "expires_in_invalid"},
		{name: "expires_in negative", edit: func(p *checkout.SessionParams) { p.ExpiresIn = -time.Hour }, wantParam: "expires_in", wantReason: "expires_in_invalid"},
		{name: "expires_in just under minimum", edit: func(p *checkout.SessionParams) { p.ExpiresIn = 60*time.Second - time.Nanosecond }, wantParam: "expires_in", wantReason: "expires_in_invalid"},
		{name: "expires_in 59s", edit: func(p *checkout.SessionParams) { p.ExpiresIn = 59 * time.Second }, wantParam: "expires_in", wantReason: "expires_in_invalid"},
		{name: "expires_in just over maximum", edit: func(p *checkout.SessionParams) { p.ExpiresIn = 7*24*time.Hour + time.Nanosecond }, wantParam: "expires_in", wantReason: "expires_in_invalid"},
		{name: "expires_in 7d+1s", edit: func(p *checkout.SessionParams) { p.ExpiresIn = 7*24*time.Hour + time.Second }, wantParam: "expires_in", wantReason: "expires_in_invalid"},
		{name: "bad memo type", edit: func(p *checkout.SessionParams) { p.MemoType = "hash" }, wantParam: "memo_type", wantReason: "memo_type_invalid"},
		{name: "51 metadata keys", edit: func(p *checkout.SessionParams) { p.Metadata = metadataOfSize(51) }, wantParam: "metadata", wantReason: "metadata_too_large"},
		{name: "metadata key too long", edit: func(p *checkout.SessionParams) { p.Metadata = map[string]string{strings.Repeat("k", 41): "v"} }, wantParam: "metadata", wantReason: "metadata_key_invalid"},
		{name: "metadata value too long", edit: func(p *checkout.SessionParams) { p.Metadata = map[string]string{"note": strings.Repeat("v", 501)} }, wantParam: "metadata[note]", wantReason: "metadata_value_invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base
			p.Metadata = maps.Clone(base.Metadata)
			tt.edit(&p)

			s, err := checkout.NewSession(p, now)
			if tt.wantParam != "" {
				if err == nil {
					t.Fatalf("NewSession() = %+v, want an error for %s", s, tt.wantParam)
				}
				wantInvalidParam(t, err, tt.wantParam, tt.wantReason)
				return
			}
			if err != nil {
				t.Fatalf("NewSession() error = %v", err)
			}

			if !checkout.HasPrefix(s.ID, checkout.PrefixSession) {
				t.Errorf("ID = %q, want a %s_ id", s.ID, checkout.PrefixSession)
			}
			if s.MerchantID != p.MerchantID || s.ReceivingAccount != p.ReceivingAccount ||
				s.Amount != p.Amount || s.Asset != p.Asset ||
				s.SuccessURL != p.SuccessURL || s.CancelURL != p.CancelURL {
				t.Errorf("session %+v does not carry the params %+v", s, p)
			}
			if s.Status != checkout.StatusOpen || s.PaymentStatus != checkout.PaymentUnpaid || s.AmountReceived != 0 {
				t.Errorf("status = %q/%q received %d, want open/unpaid received 0", s.Status, s.PaymentStatus, s.AmountReceived)
			}
			if s.Version != 1 {
				t.Errorf("Version = %d, want 1", s.Version)
			}
			if !s.ClosedAt.IsZero() {
				t.Errorf("ClosedAt = %v, want zero for an open session", s.ClosedAt)
			}
			if s.MemoType != tt.wantMemo {
				t.Errorf("MemoType = %q, want %q", s.MemoType, tt.wantMemo)
			}
			if err := checkout.ValidateMemo(s.MemoType, s.Memo); err != nil {
				t.Errorf("memo %q: %v", s.Memo, err)
			}
			if s.Metadata == nil {
				t.Errorf("Metadata is nil, want an empty map")
			}
			if !maps.Equal(s.Metadata, p.Metadata) {
				t.Errorf("Metadata = %v, want %v", s.Metadata, p.Metadata)
			}

			// Times are UTC; created_at keeps Postgres's microseconds and
			// expires_at whole seconds, at most a second short of the ask.
			for name, ts := range map[string]time.Time{"CreatedAt": s.CreatedAt, "UpdatedAt": s.UpdatedAt, "ExpiresAt": s.ExpiresAt} {
				if ts.Location() != time.UTC {
					t.Errorf("%s = %v, want UTC", name, ts)
				}
			}
			if d := now.Sub(s.CreatedAt); d < 0 || d >= time.Microsecond || s.CreatedAt.Nanosecond()%1000 != 0 {
				t.Errorf("CreatedAt = %v, want now (%v) to the microsecond", s.CreatedAt, now)
			}
			if !s.UpdatedAt.Equal(s.CreatedAt) {
				t.Errorf("UpdatedAt = %v, want CreatedAt %v", s.UpdatedAt, s.CreatedAt)
			}
			want := now.Add(p.ExpiresIn)
			if d := s.ExpiresAt.Sub(want); d < 0 || d >= time.Second || s.ExpiresAt.Nanosecond() != 0 {
				t.Errorf("ExpiresAt = %v, want a whole second within 1s at or after %v", s.ExpiresAt, want)
			}
		})
	}
}
