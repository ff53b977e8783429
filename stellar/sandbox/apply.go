package sandbox

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math"
	"math/bits"
	"net/http"
	"strconv"
	"time"

	"github.com/stellar/go-stellar-sdk/network"
	hProtocol "github.com/stellar/go-stellar-sdk/protocols/horizon"
	"github.com/stellar/go-stellar-sdk/support/render/problem"
	"github.com/stellar/go-stellar-sdk/toid"
	"github.com/stellar/go-stellar-sdk/xdr"
)

const maxOpsPerTx = 100

// submission is a decoded envelope whose signatures have been checked.
type submission struct {
	env         xdr.TransactionEnvelope
	envelope    string
	hash        string
	source      accountKey
	sourceMuxed xdr.MuxedAccount
	ops         []xdr.Operation
}

// submit decodes, verifies and applies a transaction, then waits for its
// ledger to close. It returns the record, or the problem to answer.
func (n *Network) submit(ctx context.Context, envelope string) (*txRecord, *problem.P) {
	rec, closed, p := n.apply(envelope)
	if p != nil {
		return nil, p
	}
	return n.awaitClose(ctx, envelope, rec, closed)
}

// apply decodes, verifies and applies a transaction. closed is closed
// when the ledger holding it closes.
func (n *Network) apply(envelope string) (rec *txRecord, closed chan struct{}, p *problem.P) {
	sub, p := n.check(envelope)
	if p != nil {
		return nil, nil, p
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	rec, p = n.applyLocked(sub)
	if p != nil {
		return nil, nil, p
	}
	closed = n.pending.done
	if n.cfg.CloseEachTransaction {
		n.closeLedgerLocked()
	}
	return rec, closed, nil
}

// awaitClose waits for an applied transaction's ledger to close, and
// answers as Horizon does once it has.
func (n *Network) awaitClose(ctx context.Context, envelope string, rec *txRecord, closed chan struct{}) (*txRecord, *problem.P) {
	select {
	case <-closed:
	default:
		t := time.NewTimer(n.cfg.SubmitTimeout)
		defer t.Stop()
		select {
		case <-closed:
		case <-ctx.Done():
			return nil, &problemTimeout
		case <-t.C:
			return nil, &problemTimeout
		case <-n.done:
			return nil, &problemUnavailable
		}
	}
	if !rec.successful {
		return rec, &problem.P{
			Type: problemBase + "transaction_failed", Title: "Transaction Failed", Status: http.StatusBadRequest,
			Detail: txFailedDetail,
			Extras: map[string]any{"envelope_xdr": envelope, "result_codes": rec.codes, "result_xdr": rec.resp.ResultXdr},
		}
	}
	return rec, nil
}

// check does everything that needs no ledger state: decoding, structure,
// time bounds, fee, operation validity and signatures.
func (n *Network) check(envelope string) (*submission, *problem.P) {
	sub := &submission{envelope: envelope}
	hash, err := n.decodeEnvelope(envelope, &sub.env)
	if err != nil {
		return nil, malformedTx(envelope, "cannot decode envelope: "+err.Error())
	}
	env := &sub.env
	switch env.Type {
	case xdr.EnvelopeTypeEnvelopeTypeTx, xdr.EnvelopeTypeEnvelopeTypeTxV0:
	default:
		return nil, txFailed(envelope, xdr.TransactionResultCodeTxNotSupported, nil, 0)
	}
	sub.sourceMuxed = env.SourceAccount()
	sub.source = muxedKey(sub.sourceMuxed)
	sub.ops = env.Operations()
	if len(sub.ops) == 0 {
		return nil, txFailed(envelope, xdr.TransactionResultCodeTxMissingOperation, nil, 0)
	}
	if len(sub.ops) > maxOpsPerTx {
		return nil, txFailed(envelope, xdr.TransactionResultCodeTxMalformed, nil, 0)
	}
	if tb := env.TimeBounds(); tb != nil {
		now := n.cfg.Clock().Unix()
		if tb.MinTime > 0 && now < int64(tb.MinTime) {
			return nil, txFailed(envelope, xdr.TransactionResultCodeTxTooEarly, nil, 0)
		}
		if tb.MaxTime > 0 && now > int64(tb.MaxTime) {
			return nil, txFailed(envelope, xdr.TransactionResultCodeTxTooLate, nil, 0)
		}
	}
	if env.SeqNum() <= 0 {
		return nil, txFailed(envelope, xdr.TransactionResultCodeTxBadSeq, nil, 0)
	}
	if int64(env.Fee()) < baseFee*int64(len(sub.ops)) {
		return nil, txFailed(envelope, xdr.TransactionResultCodeTxInsufficientFee, nil, 0)
	}
	if results, ok := validateOps(sub.ops); !ok {
		return nil, txFailed(envelope, xdr.TransactionResultCodeTxFailed, results, 0)
	}
	if hash == nil {
		h, err := network.HashTransactionInEnvelope(*env, n.cfg.NetworkPassphrase)
		if err != nil {
			return nil, malformedTx(envelope, "cannot hash transaction: "+err.Error())
		}
		hash = &h
	}
	sub.hash = hex.EncodeToString(hash[:])
	sigs := env.Signatures()
	used := make([]bool, len(sigs))
	signedBy := func(k accountKey) bool {
		for i, s := range sigs {
			if [4]byte(s.Hint) == [4]byte(k[28:32]) && ed25519.Verify(k[:], hash[:], s.Signature) {
				used[i] = true
				return true
			}
		}
		return false
	}
	if !signedBy(sub.source) {
		return nil, txFailed(envelope, xdr.TransactionResultCodeTxBadAuth, nil, 0)
	}
	var results []xdr.OperationResult // built only when an operation lacks its signature
	for i, op := range sub.ops {
		if op.SourceAccount == nil {
			continue
		}
		if k := muxedKey(*op.SourceAccount); k != sub.source && !signedBy(k) {
			if results == nil {
				results = make([]xdr.OperationResult, len(sub.ops))
				for j, op := range sub.ops {
					results[j] = innerResult(successTr(op.Body.Type))
				}
			}
			results[i] = outerResult(xdr.OperationResultCodeOpBadAuth)
		}
	}
	if results != nil {
		return nil, txFailed(envelope, xdr.TransactionResultCodeTxFailed, results, 0)
	}
	for _, u := range used {
		if !u {
			return nil, txFailed(envelope, xdr.TransactionResultCodeTxBadAuthExtra, nil, 0)
		}
	}
	return sub, nil
}

// decodeEnvelope decodes the base64 envelope into env. For a v1 envelope it
// also returns the transaction hash, taken from the decoded bytes: they
// already hold the envelope type and the transaction's XDR, which
// network.HashTransactionInEnvelope would encode again. Otherwise the hash
// is nil. Anything the fast path does not decode goes through
// xdr.SafeUnmarshalBase64, so errors read exactly as before.
func (n *Network) decodeEnvelope(envelope string, env *xdr.TransactionEnvelope) (*[32]byte, error) {
	bp := n.rawPool.Get().(*[]byte)
	defer n.rawPool.Put(bp)
	raw := (*bp)[:0]
	raw, err := base64.StdEncoding.AppendDecode(raw, []byte(envelope))
	*bp = raw
	if err == nil {
		opts := xdr.DecodeOptions{MaxInputLen: len(raw), MaxDepth: xdrMaxDepth}
		var read int
		read, err = xdr.UnmarshalWithOptions(bytes.NewReader(raw), env, opts)
		if err == nil && read != len(raw) {
			err = errNotConsumed
		}
	}
	if err != nil {
		*env = xdr.TransactionEnvelope{}
		return nil, xdr.SafeUnmarshalBase64(envelope, env)
	}
	if env.Type != xdr.EnvelopeTypeEnvelopeTypeTx {
		return nil, nil
	}
	// The envelope is the type, the transaction, then the signatures: a
	// count and, for each, a 4-byte hint and a padded opaque signature.
	sigs := 4
	for _, s := range env.V1.Signatures {
		sigs += 4 + 4 + (len(s.Signature)+3)&^3
	}
	if len(raw)-sigs < 4 {
		return nil, nil // unreachable for a decoded envelope; let the SDK hash it
	}
	h := sha256.New()
	h.Write(n.networkID[:])
	h.Write(raw[:len(raw)-sigs])
	var sum [32]byte
	h.Sum(sum[:0])
	return &sum, nil
}

// xdrMaxDepth is xdr.SafeUnmarshalBase64's default decoding depth.
const xdrMaxDepth = 1500

var errNotConsumed = errors.New("input not fully consumed")

// successTr is a placeholder success result used when reporting another
// operation's validation failure.
func successTr(t xdr.OperationType) xdr.OperationResultTr {
	switch t {
	case xdr.OperationTypeCreateAccount:
		return *createAccountResult(0).Tr
	case xdr.OperationTypeChangeTrust:
		return *changeTrustResult(0).Tr
	case xdr.OperationTypeAccountMerge:
		return *accountMergeResult(0, 0).Tr
	case xdr.OperationTypePathPaymentStrictReceive, xdr.OperationTypePathPaymentStrictSend:
		return *paymentLikeResult(t, payOK, xdr.SimplePaymentResult{Destination: xdr.MustAddress(addressOf(accountKey{})), Asset: xdr.MustNewNativeAsset()}).Tr
	}
	return *paymentLikeResult(xdr.OperationTypePayment, payOK, xdr.SimplePaymentResult{}).Tr
}

func validAsset(a xdr.Asset) bool {
	_, ok := assetKeyOf(a)
	return ok
}

// validateOps checks each operation on its own, as stellar-core's
// doCheckValid does; malformed operations reject the transaction without
// charging a fee.
func validateOps(ops []xdr.Operation) ([]xdr.OperationResult, bool) {
	var results []xdr.OperationResult // built only when an operation is invalid
	for i, op := range ops {
		bad, ok := validateOp(op)
		if ok {
			continue
		}
		if results == nil {
			results = make([]xdr.OperationResult, len(ops))
			for j, op := range ops {
				results[j] = innerResult(successTr(op.Body.Type))
			}
		}
		results[i] = bad
	}
	return results, results == nil
}

// validateOp checks one operation, returning its failure result if it is
// invalid.
func validateOp(op xdr.Operation) (xdr.OperationResult, bool) {
	b := op.Body
	switch b.Type {
	case xdr.OperationTypePayment:
		p := b.MustPaymentOp()
		if p.Amount <= 0 || !validAsset(p.Asset) {
			return paymentLikeResult(b.Type, payMalformed, xdr.SimplePaymentResult{}), false
		}
	case xdr.OperationTypePathPaymentStrictReceive:
		p := b.MustPathPaymentStrictReceiveOp()
		if p.SendMax <= 0 || p.DestAmount <= 0 || !validAsset(p.SendAsset) || !validAsset(p.DestAsset) || !validPath(p.Path) {
			return paymentLikeResult(b.Type, payMalformed, xdr.SimplePaymentResult{}), false
		}
	case xdr.OperationTypePathPaymentStrictSend:
		p := b.MustPathPaymentStrictSendOp()
		if p.SendAmount <= 0 || p.DestMin <= 0 || !validAsset(p.SendAsset) || !validAsset(p.DestAsset) || !validPath(p.Path) {
			return paymentLikeResult(b.Type, payMalformed, xdr.SimplePaymentResult{}), false
		}
	case xdr.OperationTypeCreateAccount:
		if b.MustCreateAccountOp().StartingBalance < 0 {
			return createAccountResult(xdr.CreateAccountResultCodeCreateAccountMalformed), false
		}
	case xdr.OperationTypeChangeTrust:
		ct := b.MustChangeTrustOp()
		if ct.Line.Type == xdr.AssetTypeAssetTypePoolShare {
			return outerResult(xdr.OperationResultCodeOpNotSupported), false
		}
		if _, ok := changeTrustAsset(ct.Line); !ok || ct.Limit < 0 {
			return changeTrustResult(xdr.ChangeTrustResultCodeChangeTrustMalformed), false
		}
	case xdr.OperationTypeAccountMerge:
	default:
		return outerResult(xdr.OperationResultCodeOpNotSupported), false
	}
	return xdr.OperationResult{}, true
}

func validPath(path []xdr.Asset) bool {
	for _, a := range path {
		if !validAsset(a) {
			return false
		}
	}
	return len(path) <= 5
}

func changeTrustAsset(line xdr.ChangeTrustAsset) (assetKey, bool) {
	if line.Type == xdr.AssetTypeAssetTypeNative {
		return assetKey{}, false
	}
	return assetKeyOf(xdr.Asset{Type: line.Type, AlphaNum4: line.AlphaNum4, AlphaNum12: line.AlphaNum12})
}

// applyLocked checks the transaction against the ledger, charges the fee,
// bumps the sequence and applies the operations atomically. Transactions
// whose operations fail are recorded as failed, as Horizon records them.
func (n *Network) applyLocked(sub *submission) (*txRecord, *problem.P) {
	src := n.accounts[sub.source]
	if src == nil {
		return nil, txFailed(sub.envelope, xdr.TransactionResultCodeTxNoAccount, nil, 0)
	}
	if sub.env.SeqNum() != src.seq+1 {
		return nil, txFailed(sub.envelope, xdr.TransactionResultCodeTxBadSeq, nil, 0)
	}
	fee := baseFee * int64(len(sub.ops))
	if src.native < fee {
		return nil, txFailed(sub.envelope, xdr.TransactionResultCodeTxInsufficientBalance, nil, 0)
	}
	ledger := n.pending.seq
	src.native -= fee
	src.seq = sub.env.SeqNum()
	src.lastModified = ledger
	src.lastTime = n.now()

	txIndex := int32(len(n.pending.txs) + 1)
	rec := &txRecord{hash: sub.hash, ledger: ledger, index: txIndex}
	v := view{n: n, ledger: ledger}
	results := make([]xdr.OperationResult, len(sub.ops))
	rec.ops = make([]*opRecord, len(sub.ops))
	ok := true
	for i, op := range sub.ops {
		opSrc := sub.sourceMuxed
		if op.SourceAccount != nil {
			opSrc = *op.SourceAccount
		}
		o := &opRecord{id: toid.New(int32(ledger), txIndex, int32(i+1)).ToInt64(), tx: rec}
		results[i] = v.applyOp(o, opSrc, op.Body)
		if !opSucceeded(results[i]) {
			ok = false
		}
		rec.ops[i] = o
	}
	code := xdr.TransactionResultCodeTxFailed
	if ok {
		v.commit()
		code = xdr.TransactionResultCodeTxSuccess
	}
	rec.successful = ok
	rec.codes = hProtocol.TransactionResultCodes{TransactionCode: txCodeNames[code]}
	if !ok {
		for _, r := range results {
			rec.codes.OperationCodes = append(rec.codes.OperationCodes, opCodeName(r))
		}
	}
	for _, o := range rec.ops {
		o.base.TransactionSuccessful = ok
		if !ok {
			o.effects = nil
		}
	}
	rec.resp = n.txResource(sub, rec, fee, txResultXDR(code, fee, results))
	n.pending.txs = append(n.pending.txs, rec)
	return rec, nil
}

// view stages one transaction's account changes so that a failed
// operation discards all of them.
type view struct {
	n       *Network
	ledger  uint32
	entries []viewEntry
}

type viewEntry struct {
	key accountKey
	acc *account // nil: removed
}

// load returns a private, mutable copy of the account, or nil.
func (v *view) load(k accountKey) *account {
	for i := range v.entries {
		if v.entries[i].key == k {
			return v.entries[i].acc
		}
	}
	a := v.n.accounts[k]
	if a == nil {
		return nil
	}
	c := a.clone()
	v.entries = append(v.entries, viewEntry{key: k, acc: c})
	return c
}

func (v *view) set(k accountKey, a *account) {
	for i := range v.entries {
		if v.entries[i].key == k {
			v.entries[i].acc = a
			return
		}
	}
	v.entries = append(v.entries, viewEntry{key: k, acc: a})
}

func (v *view) commit() {
	now := v.n.now()
	for _, e := range v.entries {
		if e.acc == nil {
			delete(v.n.accounts, e.key)
			continue
		}
		e.acc.lastModified = v.ledger
		e.acc.lastTime = now
		v.n.accounts[e.key] = e.acc
	}
}

// debit takes amt of asset from a, returning a payment-like code.
func (v *view) debit(a *account, asset assetKey, amt int64) int32 {
	if asset.native() {
		if a.native-amt < a.minBalance() {
			return payUnderfunded
		}
		a.native -= amt
		return payOK
	}
	if a.key == asset.issuer {
		return payOK // issuing mints
	}
	l := a.line(asset)
	if l == nil {
		return paySrcNoTrust
	}
	if l.balance < amt {
		return payUnderfunded
	}
	l.balance -= amt
	l.lastModified = v.ledger
	return payOK
}

// credit gives amt of asset to a, returning a payment-like code.
func (v *view) credit(a *account, asset assetKey, amt int64) int32 {
	if asset.native() {
		if a.native > math.MaxInt64-amt {
			return payLineFull
		}
		a.native += amt
		return payOK
	}
	if a.key == asset.issuer {
		return payOK // paying the issuer burns
	}
	l := a.line(asset)
	if l == nil {
		return payNoTrust
	}
	if l.balance > l.limit-amt {
		return payLineFull
	}
	l.balance += amt
	l.lastModified = v.ledger
	return payOK
}

// transfer moves value between accounts for the payment-like operations.
func (v *view) transfer(from, to accountKey, sendAsset assetKey, sendAmt int64, destAsset assetKey, destAmt int64) int32 {
	src := v.load(from)
	dst := v.load(to)
	if dst == nil {
		return payNoDestination
	}
	if c := v.debit(src, sendAsset, sendAmt); c != payOK {
		return c
	}
	return v.credit(dst, destAsset, destAmt)
}

// mulDiv computes a*b/c rounding up or down, reporting overflow.
func mulDiv(a, b, c int64, up bool) (int64, bool) {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi >= uint64(c) {
		return 0, false
	}
	q, r := bits.Div64(hi, lo, uint64(c))
	if up && r != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return 0, false
	}
	return int64(q), true
}

func participants(a, b accountKey) []accountKey {
	if a == b {
		return []accountKey{a}
	}
	return []accountKey{a, b}
}

// applyOp applies one operation inside the view and fills o with its
// Horizon representation and effects.
func (v *view) applyOp(o *opRecord, srcMuxed xdr.MuxedAccount, body xdr.OperationBody) xdr.OperationResult {
	srcKey := muxedKey(srcMuxed)
	src := v.n.partyOf(srcMuxed)
	b := v.n.opBase(o, src, body.Type)
	srcExists := v.load(srcKey) != nil
	switch body.Type {
	case xdr.OperationTypePayment:
		p := body.MustPaymentOp()
		asset, _ := assetKeyOf(p.Asset)
		dstKey := muxedKey(p.Destination)
		view := paymentView(b, src, v.n.partyOf(p.Destination), asset, int64(p.Amount))
		o.view, o.base, o.payment, o.participants = view, &view.Base, true, participants(srcKey, dstKey)
		if !srcExists {
			return outerResult(xdr.OperationResultCodeOpNoAccount)
		}
		code := v.transfer(srcKey, dstKey, asset, int64(p.Amount), asset, int64(p.Amount))
		if code == payOK {
			o.effects = []effectSpec{
				{typ: "account_credited", account: dstKey, asset: asset, amount: int64(p.Amount)},
				{typ: "account_debited", account: srcKey, asset: asset, amount: int64(p.Amount)},
			}
		}
		return paymentLikeResult(body.Type, code, xdr.SimplePaymentResult{})

	case xdr.OperationTypePathPaymentStrictReceive, xdr.OperationTypePathPaymentStrictSend:
		var sendX, destX xdr.Asset
		var dest xdr.MuxedAccount
		var path []xdr.Asset
		var sendAmt, destAmt int64
		code := payOK
		rate := v.n.cfg.PathRate
		if body.Type == xdr.OperationTypePathPaymentStrictReceive {
			p := body.MustPathPaymentStrictReceiveOp()
			sendX, destX, dest, path, destAmt = p.SendAsset, p.DestAsset, p.Destination, p.Path, int64(p.DestAmount)
			sendAmt = destAmt
			if !sendX.Equals(destX) {
				var ok bool
				if sendAmt, ok = mulDiv(destAmt, rate.Den, rate.Num, true); !ok {
					code = payTooFewOffers
				}
			}
			if code == payOK && sendAmt > int64(p.SendMax) {
				code = payOverOrUnderMin
			}
		} else {
			p := body.MustPathPaymentStrictSendOp()
			sendX, destX, dest, path, sendAmt = p.SendAsset, p.DestAsset, p.Destination, p.Path, int64(p.SendAmount)
			destAmt = sendAmt
			if !sendX.Equals(destX) {
				var ok bool
				if destAmt, ok = mulDiv(sendAmt, rate.Num, rate.Den, false); !ok {
					code = payTooFewOffers
				}
			}
			if code == payOK && destAmt < int64(p.DestMin) {
				code = payOverOrUnderMin
			}
		}
		sendAsset, _ := assetKeyOf(sendX)
		destAsset, _ := assetKeyOf(destX)
		dstKey := muxedKey(dest)
		view, base := pathPaymentView(b, body, src, v.n.partyOf(dest), sendAsset, destAsset, path, sendAmt, destAmt)
		o.view, o.base, o.payment, o.participants = view, base, true, participants(srcKey, dstKey)
		if !srcExists {
			return outerResult(xdr.OperationResultCodeOpNoAccount)
		}
		if code == payOK {
			code = v.transfer(srcKey, dstKey, sendAsset, sendAmt, destAsset, destAmt)
		}
		if code == payOK {
			o.effects = []effectSpec{
				{typ: "account_credited", account: dstKey, asset: destAsset, amount: destAmt},
				{typ: "account_debited", account: srcKey, asset: sendAsset, amount: sendAmt},
			}
		}
		last := xdr.SimplePaymentResult{Destination: dest.ToAccountId(), Asset: destX, Amount: xdr.Int64(destAmt)}
		return paymentLikeResult(body.Type, code, last)

	case xdr.OperationTypeCreateAccount:
		ca := body.MustCreateAccountOp()
		dstKey := *ca.Destination.Ed25519
		amt := int64(ca.StartingBalance)
		dstAddress := addressOf(dstKey)
		view := createAccountView(b, src, dstAddress, amt)
		o.view, o.base, o.payment, o.participants = view, &view.Base, true, participants(srcKey, dstKey)
		if !srcExists {
			return outerResult(xdr.OperationResultCodeOpNoAccount)
		}
		switch {
		case dstKey == srcKey:
			return createAccountResult(xdr.CreateAccountResultCodeCreateAccountMalformed)
		case v.load(dstKey) != nil:
			return createAccountResult(xdr.CreateAccountResultCodeCreateAccountAlreadyExist)
		case amt < 2*baseReserve:
			return createAccountResult(xdr.CreateAccountResultCodeCreateAccountLowReserve)
		}
		if v.debit(v.load(srcKey), assetKey{}, amt) != payOK {
			return createAccountResult(xdr.CreateAccountResultCodeCreateAccountUnderfunded)
		}
		v.set(dstKey, &account{key: dstKey, address: dstAddress, seq: int64(v.ledger) << 32, native: amt})
		o.effects = []effectSpec{
			{typ: "account_created", account: dstKey, amount: amt},
			{typ: "account_debited", account: srcKey, amount: amt},
		}
		return createAccountResult(xdr.CreateAccountResultCodeCreateAccountSuccess)

	case xdr.OperationTypeChangeTrust:
		ct := body.MustChangeTrustOp()
		asset, _ := changeTrustAsset(ct.Line)
		view := changeTrustView(b, src, asset, int64(ct.Limit))
		o.view, o.base = view, &view.Base
		if !srcExists {
			return outerResult(xdr.OperationResultCodeOpNoAccount)
		}
		return changeTrustResult(v.changeTrust(v.load(srcKey), asset, int64(ct.Limit)))

	case xdr.OperationTypeAccountMerge:
		dest := body.MustDestination()
		dstKey := muxedKey(dest)
		view := accountMergeView(b, src, v.n.partyOf(dest))
		o.view, o.base, o.payment, o.participants = view, &view.Base, true, participants(srcKey, dstKey)
		if !srcExists {
			return outerResult(xdr.OperationResultCodeOpNoAccount)
		}
		src := v.load(srcKey)
		switch {
		case dstKey == srcKey:
			return accountMergeResult(xdr.AccountMergeResultCodeAccountMergeMalformed, 0)
		case v.load(dstKey) == nil:
			return accountMergeResult(xdr.AccountMergeResultCodeAccountMergeNoAccount, 0)
		case src.subentries > 0:
			return accountMergeResult(xdr.AccountMergeResultCodeAccountMergeHasSubEntries, 0)
		}
		amt := src.native
		if v.credit(v.load(dstKey), assetKey{}, amt) != payOK {
			return accountMergeResult(xdr.AccountMergeResultCodeAccountMergeDestFull, 0)
		}
		v.set(srcKey, nil)
		o.effects = []effectSpec{
			{typ: "account_debited", account: srcKey, amount: amt},
			{typ: "account_credited", account: dstKey, amount: amt},
			{typ: "account_removed", account: srcKey},
		}
		return accountMergeResult(xdr.AccountMergeResultCodeAccountMergeSuccess, amt)
	}
	// Unreachable: validateOp rejects other types.
	o.view, o.base = &b, &b
	return outerResult(xdr.OperationResultCodeOpNotSupported)
}

func (v *view) changeTrust(a *account, asset assetKey, limit int64) xdr.ChangeTrustResultCode {
	if a.key == asset.issuer {
		return xdr.ChangeTrustResultCodeChangeTrustSelfNotAllowed
	}
	l := a.line(asset)
	switch {
	case limit == 0 && l == nil:
		return xdr.ChangeTrustResultCodeChangeTrustTrustLineMissing
	case limit == 0:
		if l.balance > 0 {
			return xdr.ChangeTrustResultCodeChangeTrustInvalidLimit
		}
		for i := range a.lines {
			if a.lines[i].asset == asset {
				a.lines = append(a.lines[:i], a.lines[i+1:]...)
				break
			}
		}
		a.subentries--
	case l != nil:
		if limit < l.balance {
			return xdr.ChangeTrustResultCodeChangeTrustInvalidLimit
		}
		l.limit = limit
		l.lastModified = v.ledger
	default:
		if v.load(asset.issuer) == nil {
			return xdr.ChangeTrustResultCodeChangeTrustNoIssuer
		}
		if a.native < a.minBalance()+baseReserve {
			return xdr.ChangeTrustResultCodeChangeTrustLowReserve
		}
		a.lines = append(a.lines, trustline{asset: asset, limit: limit, lastModified: v.ledger})
		a.subentries++
	}
	return xdr.ChangeTrustResultCodeChangeTrustSuccess
}

// txResource renders the transaction as Horizon does; created_at is set
// when the ledger closes.
func (n *Network) txResource(sub *submission, rec *txRecord, fee int64, resultXDR string) hProtocol.Transaction {
	pt := strconv.FormatInt(toid.New(int32(rec.ledger), rec.index, 0).ToInt64(), 10)
	p := n.partyOf(sub.sourceMuxed)
	src, srcM, srcID := p.g, p.muxed, p.id
	t := hProtocol.Transaction{
		ID: rec.hash, PT: pt, Successful: rec.successful, Hash: rec.hash, Ledger: int32(rec.ledger),
		Account: src, AccountMuxed: srcM, AccountMuxedID: srcID, AccountSequence: sub.env.SeqNum(),
		FeeAccount: src, FeeAccountMuxed: srcM, FeeAccountMuxedID: srcID,
		FeeCharged: fee, MaxFee: int64(sub.env.Fee()), OperationCount: int32(len(sub.ops)),
		EnvelopeXdr: sub.envelope, ResultXdr: resultXDR,
	}
	self := "/transactions/" + rec.hash
	t.Links.Self.Href = self
	t.Links.Transaction.Href = self
	t.Links.Account.Href = "/accounts/" + src
	t.Links.Ledger.Href = "/ledgers/" + strconv.FormatUint(uint64(rec.ledger), 10)
	t.Links.Operations.Href, t.Links.Operations.Templated = self+"/operations{?cursor,limit,order}", true
	t.Links.Effects.Href, t.Links.Effects.Templated = self+"/effects{?cursor,limit,order}", true
	t.Links.Precedes.Href = "/transactions?order=asc&cursor=" + pt
	t.Links.Succeeds.Href = "/transactions?order=desc&cursor=" + pt
	m := sub.env.Memo()
	switch m.Type {
	case xdr.MemoTypeMemoText:
		t.MemoType, t.Memo = "text", *m.Text
		t.MemoBytes = base64.StdEncoding.EncodeToString([]byte(*m.Text))
	case xdr.MemoTypeMemoId:
		t.MemoType, t.Memo = "id", strconv.FormatUint(uint64(*m.Id), 10)
	case xdr.MemoTypeMemoHash:
		t.MemoType, t.Memo = "hash", base64.StdEncoding.EncodeToString(m.Hash[:])
	case xdr.MemoTypeMemoReturn:
		t.MemoType, t.Memo = "return", base64.StdEncoding.EncodeToString(m.RetHash[:])
	default:
		t.MemoType = "none"
	}
	sigs := sub.env.Signatures()
	t.Signatures = make([]string, len(sigs))
	for i, s := range sigs {
		t.Signatures[i] = base64.StdEncoding.EncodeToString(s.Signature)
	}
	if tb := sub.env.TimeBounds(); tb != nil {
		pre := &hProtocol.TransactionPreconditionsTimebounds{MinTime: strconv.FormatUint(uint64(tb.MinTime), 10)}
		if tb.MaxTime > 0 {
			pre.MaxTime = strconv.FormatUint(uint64(tb.MaxTime), 10)
		}
		t.Preconditions = &hProtocol.TransactionPreconditions{TimeBounds: pre}
	}
	return t
}
