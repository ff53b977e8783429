package checkout_test

import (
	"math"
	"math/big"
	"regexp"
	"strings"
	"testing"

	checkout "github.com/checkoutd/checkoutd"
)

// unit is one whole unit of an asset in stroops, written out here rather than
// taken from the package so that the expectations below are independent of it.
const unit checkout.Amount = 10_000_000

// parseAmountTests is the one table of ParseAmount cases. It also seeds
// FuzzParseAmount. wantErr is a substring of the expected error; empty means
// the input is accepted and parses to want.
var parseAmountTests = []struct {
	name    string
	in      string
	want    checkout.Amount
	wantErr string
}{
	{name: "zero", in: "0", want: 0},
	{name: "zero with seven decimals", in: "0.0000000", want: 0},
	{name: "one stroop", in: "0.0000001", want: 1},
	{name: "one unit", in: "1", want: unit},
	{name: "horizon form", in: "12.5000000", want: 12*unit + 5_000_000},
	{name: "merchant form", in: "12.50", want: 12*unit + 5_000_000},
	{name: "one decimal", in: "0.5", want: 5_000_000},
	{name: "seven decimals", in: "1.2345678", want: 12_345_678},
	{name: "leading zeros", in: "0001.5", want: unit + 5_000_000},
	{name: "leading zeros past twelve digits", in: "0000000000000000000001", want: unit},
	{name: "leading zeros on max", in: "000922337203685.4775807", want: math.MaxInt64},
	{name: "trailing zeros in fraction", in: "1.1000000", want: unit + 1_000_000},
	{name: "max int64 stroops", in: "922337203685.4775807", want: math.MaxInt64},
	{name: "max whole units", in: "922337203685", want: 922337203685 * unit},
	{name: "max whole units, max fraction below limit", in: "922337203684.9999999", want: 922337203684*unit + 9_999_999},

	{name: "one stroop over max", in: "922337203685.4775808", wantErr: "too large"},
	{name: "max fraction on max units", in: "922337203685.9999999", wantErr: "too large"},
	{name: "one unit over max units", in: "922337203686", wantErr: "too large"},
	{name: "thirteen digits", in: "1000000000000", wantErr: "too large"},
	{name: "beyond uint64", in: "99999999999999999999999", wantErr: "too large"},
	{name: "eight decimals", in: "1.00000001", wantErr: "more than 7 decimal places"},
	{name: "eight zero decimals", in: "1.00000000", wantErr: "more than 7 decimal places"},
	{name: "eight decimals below one stroop", in: "0.00000001", wantErr: "more than 7 decimal places"},
	{name: "empty", in: "", wantErr: "empty"},
	{name: "trailing point", in: "1.", wantErr: "after the decimal point"},
	{name: "leading point", in: ".5", wantErr: "before the decimal point"},
	{name: "point only", in: ".", wantErr: "before the decimal point"},
	{name: "plus sign", in: "+1", wantErr: "only digits"},
	{name: "negative", in: "-1", wantErr: "only digits"},
	{name: "negative zero", in: "-0", wantErr: "only digits"},
	{name: "negative fraction", in: "-0.0000001", wantErr: "only digits"},
	{name: "sign after point", in: "1.-5", wantErr: "only digits"},
	{name: "exponent", in: "1e7", wantErr: "only digits"},
	{name: "upper-case exponent", in: "1E7", wantErr: "only digits"},
	{name: "exponent in fraction", in: "1.5e1", wantErr: "only digits"},
	{name: "leading space", in: " 1", wantErr: "only digits"},
	{name: "trailing space", in: "1 ", wantErr: "only digits"},
	{name: "trailing newline", in: "1\n", wantErr: "only digits"},
	{name: "decimal comma", in: "1,5", wantErr: "only digits"},
	{name: "thousands separator", in: "1,000", wantErr: "only digits"},
	{name: "underscore separator", in: "1_000", wantErr: "only digits"},
	{name: "two points", in: "1.2.3", wantErr: "only digits"},
	{name: "hex", in: "0x10", wantErr: "only digits"},
	{name: "infinity", in: "Inf", wantErr: "only digits"},
	{name: "not a number", in: "NaN", wantErr: "only digits"},
	{name: "arabic-indic digit", in: "\u0661", wantErr: "only digits"},
	{name: "fullwidth digit", in: "\uff11", wantErr: "only digits"},
	{name: "unicode digit in fraction", in: "1.\u0665", wantErr: "only digits"},
	{name: "nul byte", in: "1\x00", wantErr: "only digits"},
}

func TestParseAmount(t *testing.T) {
	for _, tt := range parseAmountTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkout.ParseAmount(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseAmount(%q) = %d, want an error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseAmount(%q) error = %q, want it to contain %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAmount(%q) error = %v, want %d", tt.in, err, tt.want)
			}
			if got != tt.want {
				t.Fatalf("ParseAmount(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestAmountString(t *testing.T) {
	tests := []struct {
		name string
		in   checkout.Amount
		want string
	}{
		{name: "zero", in: 0, want: "0.0000000"},
		{name: "one stroop", in: 1, want: "0.0000001"},
		{name: "one unit", in: unit, want: "1.0000000"},
		{name: "twelve and a half", in: 12*unit + 5_000_000, want: "12.5000000"},
		{name: "max int64", in: math.MaxInt64, want: "922337203685.4775807"},
		{name: "minus one stroop", in: -1, want: "-0.0000001"},
		{name: "min int64", in: math.MinInt64, want: "-922337203685.4775808"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.String(); got != tt.want {
				t.Fatalf("Amount(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
			}
		})
	}
}

func TestAmountAdd(t *testing.T) {
	tests := []struct {
		name   string
		a, b   checkout.Amount
		want   checkout.Amount
		wantOK bool
	}{
		{name: "small", a: 1, b: 2, want: 3, wantOK: true},
		{name: "zero", a: 0, b: 0, want: 0, wantOK: true},
		{name: "reaches max", a: math.MaxInt64 - 1, b: 1, want: math.MaxInt64, wantOK: true},
		{name: "zero plus max", a: 0, b: math.MaxInt64, want: math.MaxInt64, wantOK: true},
		{name: "one past max", a: math.MaxInt64, b: 1, wantOK: false},
		{name: "one past max, operands swapped", a: 1, b: math.MaxInt64, wantOK: false},
		{name: "max plus max", a: math.MaxInt64, b: math.MaxInt64, wantOK: false},
		{name: "negative operand", a: 5, b: -3, want: 2, wantOK: true},
		{name: "reaches min", a: math.MinInt64 + 1, b: -1, want: math.MinInt64, wantOK: true},
		{name: "one past min", a: math.MinInt64, b: -1, wantOK: false},
		{name: "one past min, operands swapped", a: -1, b: math.MinInt64, wantOK: false},
		{name: "min plus min", a: math.MinInt64, b: math.MinInt64, wantOK: false},
		{name: "min plus max", a: math.MinInt64, b: math.MaxInt64, want: -1, wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.a.Add(tt.b)
			if ok != tt.wantOK {
				t.Fatalf("Amount(%d).Add(%d) ok = %v, want %v (sum %d)", int64(tt.a), int64(tt.b), ok, tt.wantOK, int64(got))
			}
			if ok && got != tt.want {
				t.Fatalf("Amount(%d).Add(%d) = %d, want %d", int64(tt.a), int64(tt.b), int64(got), int64(tt.want))
			}
		})
	}
}

// decimalRE is the grammar ParseAmount accepts, before the range check.
var decimalRE = regexp.MustCompile(`^([0-9]+)(?:\.([0-9]{1,7}))?$`)

// horizonRE is the form String writes: no leading zeros, exactly 7 decimals.
var horizonRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)\.[0-9]{7}$`)

// referenceParse is an independent model of ParseAmount built on math/big:
// it reports the stroops s denotes, and whether ParseAmount should accept s.
func referenceParse(s string) (checkout.Amount, bool) {
	m := decimalRE.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	frac := m[2] + strings.Repeat("0", 7-len(m[2]))
	n, ok := new(big.Int).SetString(m[1]+frac, 10)
	if !ok || !n.IsInt64() {
		return 0, false
	}
	return checkout.Amount(n.Int64()), true
}

// FuzzParseAmount checks ParseAmount against referenceParse and checks that
// whatever it accepts survives a round trip through String.
func FuzzParseAmount(f *testing.F) {
	for _, tt := range parseAmountTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := checkout.ParseAmount(s)
		want, wantOK := referenceParse(s)
		if wantOK != (err == nil) {
			t.Fatalf("ParseAmount(%q) = %d, %v; reference accepts = %v", s, a, err, wantOK)
		}
		if err != nil {
			return
		}
		if a != want {
			t.Fatalf("ParseAmount(%q) = %d, reference = %d", s, a, want)
		}
		if a < 0 {
			t.Fatalf("ParseAmount(%q) = %d, a negative amount", s, a)
		}
		out := a.String()
		if !horizonRE.MatchString(out) {
			t.Fatalf("ParseAmount(%q).String() = %q, want 7 decimals and no leading zeros", s, out)
		}
		back, err := checkout.ParseAmount(out)
		if err != nil {
			t.Fatalf("ParseAmount(%q) = %d, but ParseAmount(%q) error = %v", s, a, out, err)
		}
		if back != a {
			t.Fatalf("ParseAmount(%q) = %d, but ParseAmount(%q) = %d", s, a, out, back)
		}
	})
}

// FuzzAmountString checks that every non-negative amount survives String
// then ParseAmount, and that a negative amount's String is refused.
func FuzzAmountString(f *testing.F) {
	for _, a := range []int64{0, 1, 9_999_999, 10_000_000, 10_000_001, math.MaxInt64, -1, math.MinInt64} {
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, n int64) {
		if n < 0 {
			if got, err := checkout.ParseAmount(checkout.Amount(n).String()); err == nil {
				t.Fatalf("ParseAmount(%q) = %d, want an error for a negative amount", checkout.Amount(n).String(), got)
			}
			n = ^n // -n-1: every negative maps onto a distinct non-negative
		}
		a := checkout.Amount(n)
		s := a.String()

		// Independent formatting: pad the stroops to at least 8 digits and
		// put the point before the last 7.
		digits := strings.Repeat("0", max(0, 8-len(big.NewInt(n).String()))) + big.NewInt(n).String()
		if want := digits[:len(digits)-7] + "." + digits[len(digits)-7:]; s != want {
			t.Fatalf("Amount(%d).String() = %q, want %q", n, s, want)
		}
		back, err := checkout.ParseAmount(s)
		if err != nil {
			t.Fatalf("ParseAmount(Amount(%d).String() = %q) error = %v", n, s, err)
		}
		if back != a {
			t.Fatalf("ParseAmount(Amount(%d).String() = %q) = %d", n, s, back)
		}
	})
}
