package checkout

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// StroopsPerUnit is the number of stroops in one unit of any Stellar asset.
const StroopsPerUnit = 10_000_000

// Amount is a quantity of an asset in stroops: an exact integer, 7 decimals.
// It never passes through a float.
type Amount int64

// ParseAmount parses a non-negative decimal string with at most 7 decimals,
// as Horizon writes amounts ("12.5000000") and merchants send them ("12.50").
// Signs, exponents, spaces, empty parts and values beyond int64 stroops are
// rejected.
func ParseAmount(s string) (Amount, error) {
	if s == "" {
		return 0, fmt.Errorf("amount is empty")
	}
	whole, frac, hasPoint := strings.Cut(s, ".")
	if whole == "" {
		return 0, fmt.Errorf("amount %q: digits are required before the decimal point", s)
	}
	if hasPoint && frac == "" {
		return 0, fmt.Errorf("amount %q: digits are required after the decimal point", s)
	}
	if !allDigits(whole) || !allDigits(frac) {
		return 0, fmt.Errorf("amount %q: only digits and one decimal point are allowed", s)
	}
	if len(frac) > 7 {
		return 0, fmt.Errorf("amount %q: more than 7 decimal places", s)
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > 12 {
		return 0, fmt.Errorf("amount %q: too large", s)
	}
	var units int64
	if whole != "" {
		u, err := strconv.ParseInt(whole, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("amount %q: too large", s)
		}
		units = u
	}
	var stroops int64
	if frac != "" {
		f, err := strconv.ParseInt(frac+strings.Repeat("0", 7-len(frac)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("amount %q: bad fraction", s)
		}
		stroops = f
	}
	if units > (math.MaxInt64-stroops)/StroopsPerUnit {
		return 0, fmt.Errorf("amount %q: too large", s)
	}
	return Amount(units*StroopsPerUnit + stroops), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats the amount with exactly 7 decimals, as Horizon does.
func (a Amount) String() string {
	sign := ""
	u := uint64(a) // #nosec G115 -- reinterpreted on purpose; negative amounts are recomputed below
	if a < 0 {
		sign = "-"
		u = uint64(-(a + 1)) + 1 // #nosec G115 -- -(a+1) is in [0, MaxInt64] for any negative a, MinInt64 included
	}
	return fmt.Sprintf("%s%d.%07d", sign, u/StroopsPerUnit, u%StroopsPerUnit)
}

// Add returns a+b, or false when the sum would overflow.
func (a Amount) Add(b Amount) (Amount, bool) {
	if b > 0 && a > math.MaxInt64-b || b < 0 && a < math.MinInt64-b {
		return 0, false
	}
	return a + b, true
}
