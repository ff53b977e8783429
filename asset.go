package checkout

import (
	"fmt"
	"strings"

	"github.com/stellar/go-stellar-sdk/strkey"
)

// Asset is the native asset (lumens) or a credit asset, which is a code and
// its issuer. Two assets with the same code and different issuers are
// different assets.
type Asset struct {
	Code   string `json:"code"`
	Issuer string `json:"issuer,omitempty"`
}

// NativeAsset is the lumen, XLM.
var NativeAsset = Asset{Code: "XLM"}

// IsNative reports whether a is the lumen.
func (a Asset) IsNative() bool { return a.Issuer == "" && a.Code == "XLM" }

// String is the canonical text form: "XLM" or "CODE:ISSUER".
func (a Asset) String() string {
	if a.Issuer == "" {
		return a.Code
	}
	return a.Code + ":" + a.Issuer
}

// ParseAsset parses the canonical text form of an asset.
func ParseAsset(s string) (Asset, error) {
	if s == "XLM" || s == "native" {
		return NativeAsset, nil
	}
	code, issuer, ok := strings.Cut(s, ":")
	if !ok || issuer == "" {
		return Asset{}, fmt.Errorf("asset %q: want XLM or CODE:ISSUER", s)
	}
	a := Asset{Code: code, Issuer: issuer}
	if err := a.Validate(); err != nil {
		return Asset{}, err
	}
	return a, nil
}

// Validate checks the code and the issuer's strkey.
func (a Asset) Validate() error {
	if a.IsNative() {
		return nil
	}
	if len(a.Code) < 1 || len(a.Code) > 12 {
		return fmt.Errorf("asset code %q: must be 1 to 12 characters", a.Code)
	}
	for i := 0; i < len(a.Code); i++ {
		c := a.Code[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return fmt.Errorf("asset code %q: only letters and digits are allowed", a.Code)
		}
	}
	if a.Code == "XLM" {
		return fmt.Errorf("asset code XLM is the native asset and takes no issuer")
	}
	if !strkey.IsValidEd25519PublicKey(a.Issuer) {
		return fmt.Errorf("asset issuer %q: not a valid G... account", a.Issuer)
	}
	return nil
}
