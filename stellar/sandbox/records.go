package sandbox

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	hProtocol "github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/base"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/effects"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// amountString renders stroops as Horizon does (amount.StringFromInt64):
// seven decimals. That goes through big.Rat; this does not.
func amountString(stroops int64) string {
	var buf [32]byte
	b := buf[:0]
	u := uint64(stroops)
	if stroops < 0 {
		b = append(b, '-')
		u = -u
	}
	b = strconv.AppendUint(b, u/uint64(stroopsPerLumen), 10)
	b = append(b, ".0000000"...)
	for i, frac := len(b)-1, u%uint64(stroopsPerLumen); frac > 0; i, frac = i-1, frac/10 {
		b[i] = byte('0' + frac%10)
	}
	return string(b)
}

// party is an account as Horizon renders it: the G address and, for an M
// address, the M address and its id.
type party struct {
	g, muxed string
	id       uint64
}

// partyOf renders m, taking the G address of an existing account from the
// ledger instead of encoding it again. The caller holds n.mu.
func (n *Network) partyOf(m xdr.MuxedAccount) party {
	k := muxedKey(m)
	var p party
	if a := n.accounts[k]; a != nil {
		p.g = a.address
	} else {
		p.g = addressOf(k)
	}
	if m.Type == xdr.CryptoKeyTypeKeyTypeMuxedEd25519 {
		p.muxed = m.Address()
		p.id = uint64(m.Med25519.Id)
	}
	return p
}

func (n *Network) opBase(o *opRecord, src party, t xdr.OperationType) operations.Base {
	id := strconv.FormatInt(o.id, 10)
	b := operations.Base{ID: id, PT: id, Type: operations.TypeNames[t], TypeI: int32(t), TransactionHash: o.tx.hash}
	b.SourceAccount, b.SourceAccountMuxed, b.SourceAccountMuxedID = src.g, src.muxed, src.id
	b.Links.Self.Href = "/operations/" + id
	b.Links.Transaction.Href = "/transactions/" + o.tx.hash
	b.Links.Effects.Href = "/operations/" + id + "/effects"
	b.Links.Succeeds.Href = "/effects?order=desc&cursor=" + id
	b.Links.Precedes.Href = "/effects?order=asc&cursor=" + id
	return b
}

func paymentView(b operations.Base, from, to party, asset assetKey, amt int64) *operations.Payment {
	p := &operations.Payment{Base: b, Asset: asset.horizon(), Amount: amountString(amt)}
	p.From, p.FromMuxed, p.FromMuxedID = from.g, from.muxed, from.id
	p.To, p.ToMuxed, p.ToMuxedID = to.g, to.muxed, to.id
	return p
}

func pathPaymentView(b operations.Base, body xdr.OperationBody, from, to party, send, dest assetKey,
	path []xdr.Asset, sendAmt, destAmt int64) (any, *operations.Base) {
	pay := *paymentView(b, from, to, dest, destAmt)
	hpath := make([]base.Asset, 0, len(path))
	for _, a := range path {
		k, _ := assetKeyOf(a)
		hpath = append(hpath, k.horizon())
	}
	sa := send.horizon()
	if body.Type == xdr.OperationTypePathPaymentStrictReceive {
		v := &operations.PathPayment{Payment: pay, Path: hpath, SourceAmount: amountString(sendAmt),
			SourceMax:       amountString(int64(body.MustPathPaymentStrictReceiveOp().SendMax)),
			SourceAssetType: sa.Type, SourceAssetCode: sa.Code, SourceAssetIssuer: sa.Issuer}
		return v, &v.Base
	}
	v := &operations.PathPaymentStrictSend{Payment: pay, Path: hpath, SourceAmount: amountString(sendAmt),
		DestinationMin:  amountString(int64(body.MustPathPaymentStrictSendOp().DestMin)),
		SourceAssetType: sa.Type, SourceAssetCode: sa.Code, SourceAssetIssuer: sa.Issuer}
	return v, &v.Base
}

func createAccountView(b operations.Base, funder party, dest string, amt int64) *operations.CreateAccount {
	v := &operations.CreateAccount{Base: b, StartingBalance: amountString(amt), Account: dest}
	v.Funder, v.FunderMuxed, v.FunderMuxedID = funder.g, funder.muxed, funder.id
	return v
}

func changeTrustView(b operations.Base, trustor party, asset assetKey, limit int64) *operations.ChangeTrust {
	v := &operations.ChangeTrust{Base: b, Limit: amountString(limit)}
	v.Asset = asset.horizon()
	v.Trustee = v.Asset.Issuer
	v.Trustor, v.TrustorMuxed, v.TrustorMuxedID = trustor.g, trustor.muxed, trustor.id
	return v
}

func accountMergeView(b operations.Base, src, into party) *operations.AccountMerge {
	v := &operations.AccountMerge{Base: b}
	v.Account, v.AccountMuxed, v.AccountMuxedID = src.g, src.muxed, src.id
	v.Into, v.IntoMuxed, v.IntoMuxedID = into.g, into.muxed, into.id
	return v
}

// opJSON is the operation's JSON, marshalled once on first use. It must
// only be called once the operation's ledger has closed.
func (o *opRecord) opJSON() []byte {
	o.jsonOnce.Do(func() {
		b, err := json.Marshal(o.view)
		if err != nil {
			b = []byte(`{}`) // unreachable: the views are plain structs
		}
		o.json = b
	})
	return o.json
}

// joinedJSON is the operation's JSON with its transaction embedded, as
// join=transactions gives. It splices the transaction into the operation
// object instead of marshalling the pair again.
func (o *opRecord) joinedJSON() []byte {
	o.joinedOnce.Do(func() {
		op, tx := o.opJSON(), o.tx.txJSON()
		b := make([]byte, 0, len(op)+len(tx)+16)
		b = append(b, op[:len(op)-1]...)
		b = append(b, `,"transaction":`...)
		b = append(b, tx...)
		o.joined = append(b, '}')
	})
	return o.joined
}

func (o *opRecord) render(joined bool) []byte {
	if joined {
		return o.joinedJSON()
	}
	return o.opJSON()
}

// txJSON is the transaction's JSON, marshalled once after its ledger closed.
// It calls the SDK's MarshalJSON directly: json.Marshal would only compact
// and copy the already compact result again.
func (t *txRecord) txJSON() []byte {
	t.jsonOnce.Do(func() {
		b, err := t.resp.MarshalJSON()
		if err != nil {
			b = []byte(`{}`)
		}
		t.json = b
	})
	return t.json
}

// effectsOf renders the operation's effects in Horizon's shapes.
func (o *opRecord) effectsOf() []effects.Effect {
	out := make([]effects.Effect, 0, len(o.effects))
	for i, e := range o.effects {
		id := fmt.Sprintf("%019d-%010d", o.id, i+1)
		b := effects.Base{ID: id, PT: id, Account: addressOf(e.account), Type: e.typ, LedgerCloseTime: o.base.LedgerCloseTime}
		b.Links.Operation.Href = "/operations/" + strconv.FormatInt(o.id, 10)
		b.Links.Succeeds.Href = "/effects?order=desc&cursor=" + id
		b.Links.Precedes.Href = "/effects?order=asc&cursor=" + id
		switch e.typ {
		case "account_credited":
			b.TypeI = int32(effects.EffectAccountCredited)
			out = append(out, effects.AccountCredited{Base: b, Asset: e.asset.horizon(), Amount: amountString(e.amount)})
		case "account_debited":
			b.TypeI = int32(effects.EffectAccountDebited)
			out = append(out, effects.AccountDebited{Base: b, Asset: e.asset.horizon(), Amount: amountString(e.amount)})
		case "account_created":
			b.TypeI = int32(effects.EffectAccountCreated)
			out = append(out, effects.AccountCreated{Base: b, StartingBalance: amountString(e.amount)})
		case "account_removed":
			b.TypeI = int32(effects.EffectAccountRemoved)
			out = append(out, b)
		}
	}
	return out
}

// accountResource renders an account as GET /accounts/{id} does.
func accountResource(a *account) hProtocol.Account {
	r := hProtocol.Account{
		ID: a.address, AccountID: a.address, Sequence: a.seq, SubentryCount: a.subentries,
		LastModifiedLedger: a.lastModified, PT: a.address, Data: map[string]string{},
		Signers: []hProtocol.Signer{{Weight: 1, Key: a.address, Type: "ed25519_public_key"}},
	}
	if !a.lastTime.IsZero() {
		t := a.lastTime
		r.LastModifiedTime = &t
	}
	self := "/accounts/" + a.address
	r.Links.Self.Href = self
	r.Links.Transactions.Href, r.Links.Transactions.Templated = self+"/transactions{?cursor,limit,order}", true
	r.Links.Operations.Href, r.Links.Operations.Templated = self+"/operations{?cursor,limit,order}", true
	r.Links.Payments.Href, r.Links.Payments.Templated = self+"/payments{?cursor,limit,order}", true
	r.Links.Effects.Href, r.Links.Effects.Templated = self+"/effects{?cursor,limit,order}", true
	r.Links.Offers.Href, r.Links.Offers.Templated = self+"/offers{?cursor,limit,order}", true
	r.Links.Trades.Href, r.Links.Trades.Templated = self+"/trades{?cursor,limit,order}", true
	r.Links.Data.Href, r.Links.Data.Templated = self+"/data/{key}", true
	yes := true
	lines := slices.Clone(a.lines)
	slices.SortFunc(lines, func(x, y trustline) int {
		return strings.Compare(x.asset.code+addressOf(x.asset.issuer), y.asset.code+addressOf(y.asset.issuer))
	})
	for _, l := range lines {
		r.Balances = append(r.Balances, hProtocol.Balance{
			Balance: amountString(l.balance), Limit: amountString(l.limit),
			BuyingLiabilities: amountString(0), SellingLiabilities: amountString(0),
			LastModifiedLedger: l.lastModified, IsAuthorized: &yes, IsAuthorizedToMaintainLiabilities: &yes,
			Asset: l.asset.horizon(),
		})
	}
	r.Balances = append(r.Balances, hProtocol.Balance{
		Balance: amountString(a.native), BuyingLiabilities: amountString(0), SellingLiabilities: amountString(0),
		Asset: base.Asset{Type: "native"},
	})
	return r
}
