package checkout_test

import (
	"strings"
	"testing"

	checkout "github.com/checkoutd/checkoutd"
)

// idAlphabet is the lower-case base32 alphabet ids are drawn from.
const idAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

func TestNewID(t *testing.T) {
	prefixes := []string{
		checkout.PrefixSession, checkout.PrefixPayment, checkout.PrefixEvent,
		checkout.PrefixMerchant, checkout.PrefixAPIKey,
	}
	for _, prefix := range prefixes {
		t.Run(prefix, func(t *testing.T) {
			seen := make(map[string]bool)
			for range 1000 {
				id := checkout.NewID(prefix)
				rest, ok := strings.CutPrefix(id, prefix+"_")
				if !ok {
					t.Fatalf("NewID(%q) = %q, want prefix %q", prefix, id, prefix+"_")
				}
				if len(rest) != 24 {
					t.Fatalf("NewID(%q) = %q, want 24 characters after the prefix, got %d", prefix, id, len(rest))
				}
				if i := strings.IndexFunc(rest, func(r rune) bool { return !strings.ContainsRune(idAlphabet, r) }); i >= 0 {
					t.Fatalf("NewID(%q) = %q: character %q is not lower-case base32", prefix, id, rest[i])
				}
				if !checkout.HasPrefix(id, prefix) {
					t.Fatalf("HasPrefix(%q, %q) = false for a fresh id", id, prefix)
				}
				for _, other := range prefixes {
					if other != prefix && checkout.HasPrefix(id, other) {
						t.Fatalf("HasPrefix(%q, %q) = true for an id of another kind", id, other)
					}
				}
				if seen[id] {
					t.Fatalf("NewID(%q) repeated %q", prefix, id)
				}
				seen[id] = true
			}
		})
	}
}

func TestHasPrefix(t *testing.T) {
	const body = "abcdefghijklmnopqrstuvwx" // 24 characters of the alphabet
	tests := []struct {
		name   string
		id     string
		prefix string
		want   bool
	}{
		{name: "valid", id: "cs_" + body, prefix: "cs", want: true},
		{name: "valid with digits", id: "pay_234567234567234567234567", prefix: "pay", want: true},
		{name: "other prefix", id: "cs_" + body, prefix: "pay"},
		{name: "prefix is a prefix of the prefix", id: "csx_" + body, prefix: "cs"},
		{name: "no underscore", id: "cs" + body, prefix: "cs"},
		{name: "dash for underscore", id: "cs-" + body, prefix: "cs"},
		{name: "23 characters", id: "cs_" + body[:23], prefix: "cs"},
		{name: "25 characters", id: "cs_" + body + "a", prefix: "cs"},
		{name: "empty body", id: "cs_", prefix: "cs"},
		{name: "empty", id: "", prefix: "cs"},
		{name: "upper case", id: "cs_" + strings.ToUpper(body), prefix: "cs"},
		{name: "upper-case prefix", id: "CS_" + body, prefix: "cs"},
		{name: "digit 1 is not base32", id: "cs_" + body[:23] + "1", prefix: "cs"},
		{name: "digit 0 is not base32", id: "cs_0" + body[1:], prefix: "cs"},
		{name: "padding", id: "cs_" + body[:23] + "=", prefix: "cs"},
		{name: "trailing newline", id: "cs_" + body[:23] + "\n", prefix: "cs"},
		{name: "embedded carriage return", id: "cs_" + body[:10] + "\r" + body[11:], prefix: "cs"},
		{name: "trailing CRLF", id: "cs_" + body[:22] + "\r\n", prefix: "cs"},
		{name: "space", id: "cs_" + body[:23] + " ", prefix: "cs"},
		{name: "non-ascii", id: "cs_" + body[:22] + "é", prefix: "cs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := checkout.HasPrefix(tt.id, tt.prefix); got != tt.want {
				t.Fatalf("HasPrefix(%q, %q) = %v, want %v", tt.id, tt.prefix, got, tt.want)
			}
		})
	}
}
