package checkout_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stellar/go-stellar-sdk/strkey"

	checkout "github.com/checkoutd/checkoutd"
)

// fuzzIssuer is a valid G... address for the seeds.
const fuzzIssuer = "GAM6G54QCQDCSTBRM6I4FA7CCKYD7FUK27FJN6CB2YHOEVHBIUKM2OSX"

// FuzzParseAsset checks that whatever ParseAsset accepts is a valid asset
// whose canonical form parses back to itself, and that it never accepts a
// credit asset with a bad code or an issuer that is not a G... account.
func FuzzParseAsset(f *testing.F) {
	for _, s := range []string{
		"XLM", "native", "USDC:" + fuzzIssuer, "ABCDEFGHIJKL:" + fuzzIssuer, "ABCDEFGHIJKLM:" + fuzzIssuer,
		"XLM:" + fuzzIssuer, ":" + fuzzIssuer, "USD:", "USD", "US D:" + fuzzIssuer, "USD:" + fuzzIssuer + ":x",
		"USD:" + strings.ToLower(fuzzIssuer), "é:" + fuzzIssuer, "USD:M" + fuzzIssuer[1:], "xlm", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := checkout.ParseAsset(s)
		if err != nil {
			if a != (checkout.Asset{}) {
				t.Fatalf("ParseAsset(%q) failed with a non-zero asset %+v", s, a)
			}
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("ParseAsset(%q) = %+v, which does not validate: %v", s, a, err)
		}
		back, err := checkout.ParseAsset(a.String())
		if err != nil || back != a {
			t.Fatalf("ParseAsset(%q) = %+v; its String %q parses to %+v, %v", s, a, a.String(), back, err)
		}
		if a.IsNative() {
			if s != "XLM" && s != "native" {
				t.Fatalf("ParseAsset(%q) is native", s)
			}
			return
		}
		if s != a.String() {
			t.Fatalf("ParseAsset(%q) accepted a non-canonical form of %q", s, a.String())
		}
		if len(a.Code) < 1 || len(a.Code) > 12 || a.Code == "XLM" || strings.Trim(a.Code, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
			t.Fatalf("ParseAsset(%q) accepted code %q", s, a.Code)
		}
		if _, err := strkey.Decode(strkey.VersionByteAccountID, a.Issuer); err != nil {
			t.Fatalf("ParseAsset(%q) accepted issuer %q: %v", s, a.Issuer, err)
		}
	})
}

// FuzzValidateMemo checks ValidateMemo against the rules written out here:
// a text memo is 1 to 28 bytes; an id or muxed memo is a uint64 in the one
// form Horizon writes it (so that matching memos as strings is sound); no
// other type is accepted.
func FuzzValidateMemo(f *testing.F) {
	for _, s := range []struct{ typ, memo string }{
		{"text", "A"}, {"text", strings.Repeat("A", 28)}, {"text", strings.Repeat("A", 29)}, {"text", ""},
		{"text", strings.Repeat("é", 14)}, {"text", "\x00\xff"},
		{"id", "0"}, {"id", "18446744073709551615"}, {"id", "18446744073709551616"}, {"id", "007"}, {"id", "+1"},
		{"id", "-0"}, {"id", " 1"}, {"id", "1e3"}, {"id", "0x10"},
		{"muxed", "1"}, {"muxed", ""}, {"hash", "1"}, {"", ""}, {"TEXT", "A"},
	} {
		f.Add(s.typ, s.memo)
	}
	f.Fuzz(func(t *testing.T, typ, memo string) {
		err := checkout.ValidateMemo(checkout.MemoType(typ), memo)
		var want bool
		switch checkout.MemoType(typ) {
		case checkout.MemoText:
			want = len(memo) >= 1 && len(memo) <= checkout.MaxTextMemoLen
		case checkout.MemoID, checkout.MemoMuxed:
			n, perr := strconv.ParseUint(memo, 10, 64)
			want = perr == nil && strconv.FormatUint(n, 10) == memo
			if want && (memo == "" || memo[0] == '+' || len(memo) > 1 && memo[0] == '0') {
				t.Fatalf("reference accepted %q", memo)
			}
		}
		if got := err == nil; got != want {
			t.Fatalf("ValidateMemo(%q, %q) = %v, want accepted %v", typ, memo, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Fatalf("ValidateMemo error has a newline: %q", err)
		}
	})
}

// FuzzNewSessionMemo checks that every memo NewMemo draws is one that
// ValidateMemo accepts, for the seeds' types and any other.
func FuzzNewSessionMemo(f *testing.F) {
	for _, typ := range []string{"text", "id", "muxed", "hash", ""} {
		f.Add(typ)
	}
	f.Fuzz(func(t *testing.T, typ string) {
		memo, err := checkout.NewMemo(checkout.MemoType(typ))
		if err != nil {
			return
		}
		if err := checkout.ValidateMemo(checkout.MemoType(typ), memo); err != nil {
			t.Fatalf("NewMemo(%q) = %q, which ValidateMemo refuses: %v", typ, memo, err)
		}
	})
}
