package checkout

import (
	"crypto/rand"
	"encoding/base32"
	"strings"
)

var lowerBase32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewID returns prefix, an underscore and 24 random base32 characters (120
// bits), such as "cs_4xq…". Ids are opaque to clients.
func NewID(prefix string) string {
	var b [15]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	return prefix + "_" + lowerBase32.EncodeToString(b[:])
}

// Id prefixes.
const (
	PrefixSession  = "cs"
	PrefixPayment  = "pay"
	PrefixEvent    = "evt"
	PrefixMerchant = "mer"
	PrefixAPIKey   = "key"
)

// HasPrefix reports whether id looks like an id made by NewID(prefix).
func HasPrefix(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix+"_")
	// The base32 decoder skips '\r' and '\n', so without this check an id
	// with a line break in place of a character would pass.
	if !ok || len(rest) != 24 || strings.ContainsAny(rest, "\r\n") {
		return false
	}
	_, err := lowerBase32.DecodeString(rest)
	return err == nil
}
