package sandbox

import (
	"slices"
	"sync"
	"time"

	hProtocol "github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/base"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
	"github.com/stellar/go-stellar-sdk/strkey"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// accountKey is an account's raw ed25519 public key; maps keyed by it avoid
// strkey encoding on the hot path.
type accountKey = xdr.Uint256

func addressOf(k accountKey) string {
	s, err := strkey.Encode(strkey.VersionByteAccountID, k[:])
	if err != nil {
		panic(err) // unreachable: 32 bytes always encode
	}
	return s
}

func keyOfAddress(address string) (accountKey, bool) {
	raw, err := strkey.Decode(strkey.VersionByteAccountID, address)
	if err != nil || len(raw) != 32 {
		return accountKey{}, false
	}
	var k accountKey
	copy(k[:], raw)
	return k, true
}

// muxedKey returns the underlying account of a (possibly muxed) account,
// without the allocation of m.ToAccountId.
func muxedKey(m xdr.MuxedAccount) accountKey {
	if m.Type == xdr.CryptoKeyTypeKeyTypeMuxedEd25519 {
		return m.Med25519.Ed25519
	}
	return *m.Ed25519
}

// assetKey identifies an asset; the zero value is native XLM.
type assetKey struct {
	code   string
	issuer accountKey
}

func (a assetKey) native() bool { return a.code == "" }

func assetKeyOf(x xdr.Asset) (assetKey, bool) {
	switch x.Type {
	case xdr.AssetTypeAssetTypeNative:
		return assetKey{}, true
	case xdr.AssetTypeAssetTypeCreditAlphanum4, xdr.AssetTypeAssetTypeCreditAlphanum12:
		code := x.GetCode()
		iss, err := x.GetIssuerAccountId()
		if err != nil || code == "" || !validAssetCode(code, x.Type) {
			return assetKey{}, false
		}
		return assetKey{code: code, issuer: *iss.Ed25519}, true
	}
	return assetKey{}, false
}

func validAssetCode(code string, t xdr.AssetType) bool {
	if t == xdr.AssetTypeAssetTypeCreditAlphanum4 && len(code) > 4 || t == xdr.AssetTypeAssetTypeCreditAlphanum12 && len(code) < 5 {
		return false
	}
	for _, c := range code {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// horizon renders the asset in Horizon's asset_type/code/issuer form.
func (a assetKey) horizon() base.Asset {
	if a.native() {
		return base.Asset{Type: "native"}
	}
	t := "credit_alphanum4"
	if len(a.code) > 4 {
		t = "credit_alphanum12"
	}
	return base.Asset{Type: t, Code: a.code, Issuer: addressOf(a.issuer)}
}

func (a assetKey) xdrAsset() xdr.Asset {
	if a.native() {
		return xdr.MustNewNativeAsset()
	}
	var x xdr.Asset
	id := xdr.AccountId{Type: xdr.PublicKeyTypePublicKeyTypeEd25519, Ed25519: &a.issuer}
	if err := x.SetCredit(a.code, id); err != nil {
		panic(err) // unreachable: codes are validated when the key is made
	}
	return x
}

// trustline is an account's holding of a credit asset.
type trustline struct {
	asset        assetKey
	balance      int64
	limit        int64
	lastModified uint32
}

// account is the ledger entry of one account. Values in Network.accounts
// are replaced, never mutated, by transactions (see view), except for fee
// and sequence which are charged in place under the write lock.
type account struct {
	key          accountKey
	address      string
	seq          int64
	native       int64
	lines        []trustline
	subentries   int32
	lastModified uint32
	lastTime     time.Time
}

func (a *account) clone() *account {
	c := *a
	c.lines = slices.Clone(a.lines)
	return &c
}

func (a *account) minBalance() int64 { return (2 + int64(a.subentries)) * baseReserve }

func (a *account) line(k assetKey) *trustline {
	for i := range a.lines {
		if a.lines[i].asset == k {
			return &a.lines[i]
		}
	}
	return nil
}

// ledgerRecord is a closed ledger.
type ledgerRecord struct {
	seq        uint32
	closedAt   time.Time
	hash       [32]byte
	prevHash   [32]byte
	txs        []*txRecord
	successful int32
	failed     int32
	ops        int32
}

// txRecord is an applied transaction, successful or failed. Its fields are
// written under the network's write lock and read-only once its ledger
// has closed.
type txRecord struct {
	hash       string
	ledger     uint32
	index      int32
	successful bool
	resp       hProtocol.Transaction
	codes      hProtocol.TransactionResultCodes
	ops        []*opRecord

	jsonOnce sync.Once
	json     []byte
}

// effectSpec is enough to render an effect of an operation.
type effectSpec struct {
	typ     string
	account accountKey
	asset   assetKey
	amount  int64
}

// opRecord is one operation of an applied transaction.
type opRecord struct {
	id           int64
	tx           *txRecord
	payment      bool
	participants []accountKey
	base         *operations.Base
	view         any
	effects      []effectSpec

	jsonOnce   sync.Once
	json       []byte
	joinedOnce sync.Once
	joined     []byte
}

// opIndex is an append-only list of visible operations in id order, with a
// channel closed and replaced whenever it grows, so streams wake only for
// their own account.
type opIndex struct {
	ops    []*opRecord
	wake   chan struct{}
	queued bool // already in Network.toWake
}

func newOpIndex() *opIndex { return &opIndex{wake: make(chan struct{})} }

// pendingLedger collects transactions applied since the last close.
type pendingLedger struct {
	seq  uint32
	txs  []*txRecord
	done chan struct{} // closed when the ledger closes
}
