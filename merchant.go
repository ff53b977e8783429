package checkout

import (
	"time"

	"github.com/stellar/go-stellar-sdk/strkey"
)

// Merchant is a business that takes payments into its own Stellar account.
type Merchant struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Account is the merchant's receiving account (G...). Funds go straight
	// there; checkoutd never holds them.
	Account   string    `json:"account"`
	CreatedAt time.Time `json:"created_at"`
}

// NewMerchant validates the name and account and returns a merchant with a
// fresh id.
func NewMerchant(name, account string, now time.Time) (Merchant, error) {
	if name == "" || len(name) > 200 {
		return Merchant{}, InvalidParam("name", "name_invalid", "name must be 1 to 200 bytes")
	}
	if !strkey.IsValidEd25519PublicKey(account) {
		return Merchant{}, InvalidParam("account", "account_invalid", "account must be a valid G... Stellar account")
	}
	return Merchant{ID: NewID(PrefixMerchant), Name: name, Account: account, CreatedAt: now.UTC().Truncate(time.Microsecond)}, nil
}
