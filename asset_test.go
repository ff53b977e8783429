package checkout_test

import (
	"strings"
	"testing"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/strkey"
)

func TestParseAsset(t *testing.T) {
	issuer := keypair.MustRandom().Address()
	seed := keypair.MustRandom().Seed()
	muxed := strkey.MustEncode(strkey.VersionByteMuxedAccount, make([]byte, 40))
	contract := strkey.MustEncode(strkey.VersionByteContract, make([]byte, 32))
	// Changing the last character breaks the strkey's CRC16 checksum.
	last := "A"
	if strings.HasSuffix(issuer, "A") {
		last = "B"
	}
	badChecksum := issuer[:len(issuer)-1] + last

	tests := []struct {
		name    string
		in      string
		want    checkout.Asset
		wantErr bool
	}{
		{name: "native", in: "XLM", want: checkout.Asset{Code: "XLM"}},
		{name: "horizon native", in: "native", want: checkout.Asset{Code: "XLM"}},
		{name: "alphanum4", in: "USDC:" + issuer, want: checkout.Asset{Code: "USDC", Issuer: issuer}},
		{name: "one character code", in: "A:" + issuer, want: checkout.Asset{Code: "A", Issuer: issuer}},
		{name: "alphanum12", in: "ABCDEFGHIJKL:" + issuer, want: checkout.Asset{Code: "ABCDEFGHIJKL", Issuer: issuer}},
		{name: "lower-case and digits", in: "yUSD9:" + issuer, want: checkout.Asset{Code: "yUSD9", Issuer: issuer}},

		{name: "empty", in: "", wantErr: true},
		{name: "lower-case native", in: "xlm", wantErr: true},
		{name: "code without issuer", in: "USDC", wantErr: true},
		{name: "missing issuer", in: "USDC:", wantErr: true},
		{name: "native with empty issuer", in: "XLM:", wantErr: true},
		{name: "native with issuer", in: "XLM:" + issuer, wantErr: true},
		{name: "missing code", in: ":" + issuer, wantErr: true},
		{name: "code of thirteen", in: "ABCDEFGHIJKLM:" + issuer, wantErr: true},
		{name: "code with dash", in: "US-D:" + issuer, wantErr: true},
		{name: "code with space", in: "US D:" + issuer, wantErr: true},
		{name: "code with non-ascii letter", in: "USDÇ:" + issuer, wantErr: true},
		{name: "lower-case issuer", in: "USDC:" + strings.ToLower(issuer), wantErr: true},
		{name: "issuer with bad checksum", in: "USDC:" + badChecksum, wantErr: true},
		{name: "issuer truncated", in: "USDC:" + issuer[:len(issuer)-1], wantErr: true},
		{name: "issuer is a secret seed", in: "USDC:" + seed, wantErr: true},
		{name: "issuer is a muxed account", in: "USDC:" + muxed, wantErr: true},
		{name: "issuer is a contract", in: "USDC:" + contract, wantErr: true},
		{name: "issuer with trailing text", in: "USDC:" + issuer + ":x", wantErr: true},
		{name: "issuer with surrounding space", in: "USDC: " + issuer, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkout.ParseAsset(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseAsset(%q) = %+v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseAsset(%q) error = %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseAsset(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("ParseAsset(%q).Validate() = %v", tt.in, err)
			}
		})
	}
}

func TestAssetValidate(t *testing.T) {
	issuer := keypair.MustRandom().Address()

	tests := []struct {
		name       string
		in         checkout.Asset
		wantErr    bool
		wantNative bool
		wantString string
	}{
		{name: "native", in: checkout.NativeAsset, wantNative: true, wantString: "XLM"},
		{name: "native literal", in: checkout.Asset{Code: "XLM"}, wantNative: true, wantString: "XLM"},
		{name: "credit", in: checkout.Asset{Code: "USDC", Issuer: issuer}, wantString: "USDC:" + issuer},
		{name: "credit alphanum12", in: checkout.Asset{Code: "ABCDEFGHIJKL", Issuer: issuer}, wantString: "ABCDEFGHIJKL:" + issuer},

		{name: "zero value", in: checkout.Asset{}, wantErr: true},
		{name: "native code with issuer", in: checkout.Asset{Code: "XLM", Issuer: issuer}, wantErr: true},
		{name: "credit without issuer", in: checkout.Asset{Code: "USDC"}, wantErr: true},
		{name: "issuer without code", in: checkout.Asset{Issuer: issuer}, wantErr: true},
		{name: "code too long", in: checkout.Asset{Code: "ABCDEFGHIJKLM", Issuer: issuer}, wantErr: true},
		{name: "code with colon", in: checkout.Asset{Code: "US:D", Issuer: issuer}, wantErr: true},
		{name: "code with nul", in: checkout.Asset{Code: "USD\x00", Issuer: issuer}, wantErr: true},
		{name: "issuer not a strkey", in: checkout.Asset{Code: "USDC", Issuer: "GABC"}, wantErr: true},
		{name: "issuer is a seed", in: checkout.Asset{Code: "USDC", Issuer: keypair.MustRandom().Seed()}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.in.Validate()
			if tt.wantErr {
				if err == nil {
					t.Fatalf("%+v.Validate() = nil, want an error", tt.in)
				}
				return
			}
			if err != nil {
				t.Fatalf("%+v.Validate() = %v", tt.in, err)
			}
			if got := tt.in.IsNative(); got != tt.wantNative {
				t.Fatalf("%+v.IsNative() = %v, want %v", tt.in, got, tt.wantNative)
			}
			if got := tt.in.String(); got != tt.wantString {
				t.Fatalf("%+v.String() = %q, want %q", tt.in, got, tt.wantString)
			}
			back, err := checkout.ParseAsset(tt.in.String())
			if err != nil {
				t.Fatalf("ParseAsset(%q) error = %v", tt.in.String(), err)
			}
			if back != tt.in {
				t.Fatalf("ParseAsset(%q) = %+v, want %+v", tt.in.String(), back, tt.in)
			}
		})
	}
}

// TestAssetEquality pins down that an asset is its code and its issuer: the
// transition compares assets with ==, so the same code from another issuer
// must compare unequal.
func TestAssetEquality(t *testing.T) {
	issuerA := keypair.MustRandom().Address()
	issuerB := keypair.MustRandom().Address()

	tests := []struct {
		name      string
		a, b      checkout.Asset
		wantEqual bool
	}{
		{name: "native and native", a: checkout.NativeAsset, b: checkout.Asset{Code: "XLM"}, wantEqual: true},
		{name: "same code and issuer", a: checkout.Asset{Code: "USDC", Issuer: issuerA}, b: checkout.Asset{Code: "USDC", Issuer: issuerA}, wantEqual: true},
		{name: "same code, different issuer", a: checkout.Asset{Code: "USDC", Issuer: issuerA}, b: checkout.Asset{Code: "USDC", Issuer: issuerB}},
		{name: "different code, same issuer", a: checkout.Asset{Code: "USDC", Issuer: issuerA}, b: checkout.Asset{Code: "EURC", Issuer: issuerA}},
		{name: "codes differ only in case", a: checkout.Asset{Code: "USDC", Issuer: issuerA}, b: checkout.Asset{Code: "usdc", Issuer: issuerA}},
		{name: "native and credit", a: checkout.NativeAsset, b: checkout.Asset{Code: "USDC", Issuer: issuerA}},
		{name: "native and XLM-coded credit", a: checkout.NativeAsset, b: checkout.Asset{Code: "XLM", Issuer: issuerA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a == tt.b; got != tt.wantEqual {
				t.Fatalf("%v == %v is %v, want %v", tt.a, tt.b, got, tt.wantEqual)
			}
			if got := tt.a != tt.b; got == tt.wantEqual {
				t.Fatalf("%v != %v is %v, want %v", tt.a, tt.b, got, !tt.wantEqual)
			}
			if got := tt.a.String() == tt.b.String(); got != tt.wantEqual {
				t.Fatalf("%q == %q is %v, want %v: the canonical text must be as discriminating as ==", tt.a.String(), tt.b.String(), got, tt.wantEqual)
			}
		})
	}
}
