package sandbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/checkoutd/checkoutd/stellar/sandbox"
	"github.com/stellar/go-stellar-sdk/clients/horizonclient"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/effects"
	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
	"github.com/stellar/go-stellar-sdk/txnbuild"
	"github.com/stellar/go-stellar-sdk/xdr"
)

func TestNativePaymentsStreamWithMemo(t *testing.T) {
	e := newEnv(t, sandbox.Config{LedgerClose: 20 * time.Millisecond})
	ctx := context.Background()
	alice, bob := e.funded(t), e.funded(t)
	memos := []string{"order-1", "order-2", "order-3"}
	for _, m := range memos {
		if _, err := e.wallet.Pay(ctx, alice, bob.Address(), txnbuild.NativeAsset{}, "12.5", txnbuild.MemoText(m)); err != nil {
			t.Fatalf("pay: %v", err)
		}
	}
	if got := balance(t, e.client, bob.Address(), ""); got != "10037.5000000" {
		t.Errorf("bob balance %s, want 10037.5000000", got)
	}
	// 1 create_account from friendbot + 3 payments.
	got := e.stream(t, bob.Address(), "0", 4)
	if _, ok := got[0].(operations.CreateAccount); !ok {
		t.Fatalf("first record %T, want CreateAccount", got[0])
	}
	for i, op := range got[1:] {
		p, ok := op.(operations.Payment)
		if !ok {
			t.Fatalf("record %d is %T", i, op)
		}
		if p.Transaction == nil || p.Transaction.Memo != memos[i] || p.Transaction.MemoType != "text" {
			t.Errorf("payment %d transaction %+v, want memo %q", i, p.Transaction, memos[i])
		}
		if p.Amount != "12.5000000" || p.From != alice.Address() || p.To != bob.Address() || p.Base.Type != "payment" || !p.TransactionSuccessful {
			t.Errorf("payment %d: %+v", i, p)
		}
		if p.LedgerCloseTime.IsZero() || p.Transaction.LedgerCloseTime != p.LedgerCloseTime {
			t.Errorf("created_at %v vs tx %v", p.LedgerCloseTime, p.Transaction.LedgerCloseTime)
		}
		tx, err := e.client.TransactionDetail(p.TransactionHash)
		if err != nil || !tx.Successful || tx.Memo != memos[i] || tx.ResultXdr == "" {
			t.Errorf("transaction detail %+v: %v", tx, err)
		}
		one, err := e.client.OperationDetail(p.ID)
		if err != nil || one.GetID() != p.ID {
			t.Errorf("operation detail %v: %v", one, err)
		}
	}
}

func TestCreditAssetAndPathPayments(t *testing.T) {
	e := newEnv(t, sandbox.Config{CloseEachTransaction: true, PathRate: sandbox.Rate{Num: 2, Den: 1}})
	ctx := context.Background()
	usdc, err := e.net.IssueAsset(ctx, "USDC")
	if err != nil {
		t.Fatal(err)
	}
	buyer, merchant := e.funded(t), e.funded(t)
	for _, kp := range []*keypair.Full{buyer, merchant} {
		if _, err := e.wallet.Trust(ctx, kp, usdc.Asset); err != nil {
			t.Fatalf("trust: %v", err)
		}
	}
	if _, err := e.wallet.Pay(ctx, usdc.Keypair, buyer.Address(), usdc.Asset, "100", nil); err != nil {
		t.Fatalf("mint: %v", err)
	}
	if _, err := e.wallet.Pay(ctx, buyer, merchant.Address(), usdc.Asset, "10", txnbuild.MemoID(42)); err != nil {
		t.Fatalf("usdc payment: %v", err)
	}
	// Strict send 5 XLM at 2 USDC per XLM: merchant gets 10 USDC.
	if _, err := e.wallet.Submit(ctx, buyer, nil, &txnbuild.PathPaymentStrictSend{
		SendAsset: txnbuild.NativeAsset{}, SendAmount: "5", Destination: merchant.Address(),
		DestAsset: usdc.Asset, DestMin: "9",
	}); err != nil {
		t.Fatalf("strict send: %v", err)
	}
	// Strict receive 3 USDC costs 1.5 XLM.
	if _, err := e.wallet.Submit(ctx, buyer, nil, &txnbuild.PathPaymentStrictReceive{
		SendAsset: txnbuild.NativeAsset{}, SendMax: "2", Destination: merchant.Address(),
		DestAsset: usdc.Asset, DestAmount: "3",
	}); err != nil {
		t.Fatalf("strict receive: %v", err)
	}
	if got := balance(t, e.client, merchant.Address(), "USDC"); got != "23.0000000" {
		t.Errorf("merchant USDC %s, want 23", got)
	}
	if got := balance(t, e.client, buyer.Address(), "USDC"); got != "90.0000000" {
		t.Errorf("buyer USDC %s, want 90", got)
	}
	// Strict receive over the send max fails with op_over_source_max.
	_, err = e.wallet.Submit(ctx, buyer, nil, &txnbuild.PathPaymentStrictReceive{
		SendAsset: txnbuild.NativeAsset{}, SendMax: "1", Destination: merchant.Address(), DestAsset: usdc.Asset, DestAmount: "3",
	})
	if rc := resultCodes(t, err); rc.OperationCodes[0] != "op_over_source_max" {
		t.Errorf("codes %+v", rc)
	}
	got := e.stream(t, merchant.Address(), "0", 4)
	p, ok := got[1].(operations.Payment)
	if !ok || p.Code != "USDC" || p.Issuer != usdc.Keypair.Address() || p.Transaction.MemoType != "id" || p.Transaction.Memo != "42" {
		t.Errorf("usdc payment %+v", got[1])
	}
	ss, ok := got[2].(operations.PathPaymentStrictSend)
	if !ok || ss.Amount != "10.0000000" || ss.SourceAmount != "5.0000000" || ss.SourceAssetType != "native" || ss.Code != "USDC" {
		t.Errorf("strict send %+v", got[2])
	}
	sr, ok := got[3].(operations.PathPayment)
	if !ok || sr.Amount != "3.0000000" || sr.SourceAmount != "1.5000000" || sr.SourceMax != "2.0000000" {
		t.Errorf("strict receive %+v", got[3])
	}
}

func TestCreateAccountAndMerge(t *testing.T) {
	e := newEnv(t, sandbox.Config{CloseEachTransaction: true})
	ctx := context.Background()
	alice, bob := e.funded(t), e.funded(t)
	carol := keypair.MustRandom()
	if _, err := e.wallet.Submit(ctx, alice, nil, &txnbuild.CreateAccount{Destination: carol.Address(), Amount: "50"}); err != nil {
		t.Fatalf("create account: %v", err)
	}
	if _, err := e.wallet.Submit(ctx, carol, txnbuild.MemoText("bye"), &txnbuild.AccountMerge{Destination: bob.Address()}); err != nil {
		t.Fatalf("merge: %v", err)
	}
	if _, err := e.client.AccountDetail(horizonclient.AccountRequest{AccountID: carol.Address()}); !horizonclient.IsNotFoundError(err) {
		t.Errorf("merged account still readable: %v", err)
	}
	got := e.stream(t, bob.Address(), "0", 2)
	m, ok := got[1].(operations.AccountMerge)
	if !ok || m.Account != carol.Address() || m.Into != bob.Address() || m.Transaction.Memo != "bye" {
		t.Fatalf("merge op %+v", got[1])
	}
	effs, err := e.client.Effects(horizonclient.EffectRequest{ForOperation: m.ID})
	if err != nil {
		t.Fatalf("effects: %v", err)
	}
	var credited string
	for _, r := range effs.Embedded.Records {
		if c, ok := r.(effects.AccountCredited); ok && c.Account == bob.Address() {
			credited = c.Amount
		}
	}
	if credited != "49.9999900" { // 50 XLM minus the merge fee
		t.Errorf("credited %q, effects %+v", credited, effs.Embedded.Records)
	}
	carolOps := e.stream(t, carol.Address(), "0", 2)
	if c, ok := carolOps[0].(operations.CreateAccount); !ok || c.StartingBalance != "50.0000000" || c.Funder != alice.Address() {
		t.Errorf("create_account %+v", carolOps[0])
	}
}

func TestMuxedDestination(t *testing.T) {
	e := newEnv(t, sandbox.Config{CloseEachTransaction: true})
	ctx := context.Background()
	alice, bob := e.funded(t), e.funded(t)
	muxed, err := xdr.MuxedAccountFromAccountId(bob.Address(), 123456789)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.wallet.Pay(ctx, alice, muxed.Address(), txnbuild.NativeAsset{}, "1", nil); err != nil {
		t.Fatalf("pay muxed: %v", err)
	}
	if got := balance(t, e.client, bob.Address(), ""); got != "10001.0000000" {
		t.Errorf("bob %s", got)
	}
	got := e.stream(t, bob.Address(), "0", 2)
	p := got[1].(operations.Payment)
	if p.To != bob.Address() || p.ToMuxed != muxed.Address() || p.ToMuxedID != 123456789 {
		t.Errorf("muxed fields to=%s to_muxed=%s id=%d", p.To, p.ToMuxed, p.ToMuxedID)
	}
	page, err := e.client.Payments(horizonclient.OperationRequest{ForAccount: bob.Address(), Order: horizonclient.OrderDesc, Limit: 1})
	if err != nil || len(page.Embedded.Records) != 1 || page.Embedded.Records[0].(operations.Payment).ToMuxed != muxed.Address() {
		t.Errorf("page %+v: %v", page, err)
	}
}

func TestResultCodes(t *testing.T) {
	e := newEnv(t, sandbox.Config{CloseEachTransaction: true})
	ctx := context.Background()
	alice, bob := e.funded(t), e.funded(t)
	usdc, err := e.net.IssueAsset(ctx, "USDC")
	if err != nil {
		t.Fatal(err)
	}
	build := func(src *keypair.Full, seqDelta int64, op txnbuild.Operation) *txnbuild.Transaction {
		acc, err := e.client.AccountDetail(horizonclient.AccountRequest{AccountID: src.Address()})
		if err != nil {
			t.Fatal(err)
		}
		acct := txnbuild.SimpleAccount{AccountID: src.Address(), Sequence: acc.Sequence + seqDelta}
		tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
			SourceAccount: &acct, IncrementSequenceNum: true, BaseFee: txnbuild.MinBaseFee,
			Preconditions: txnbuild.Preconditions{TimeBounds: txnbuild.NewTimeout(60)}, Operations: []txnbuild.Operation{op},
		})
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	pay := func(amount string, asset txnbuild.Asset) txnbuild.Operation {
		return &txnbuild.Payment{Destination: bob.Address(), Amount: amount, Asset: asset}
	}
	cases := []struct {
		name   string
		tx     func() *txnbuild.Transaction
		signer *keypair.Full
		txCode string
		opCode string
	}{
		{"bad signature", func() *txnbuild.Transaction { return build(alice, 0, pay("1", txnbuild.NativeAsset{})) }, bob, "tx_bad_auth", ""},
		{"bad sequence", func() *txnbuild.Transaction { return build(alice, 5, pay("1", txnbuild.NativeAsset{})) }, alice, "tx_bad_seq", ""},
		{"insufficient funds", func() *txnbuild.Transaction { return build(alice, 0, pay("20000", txnbuild.NativeAsset{})) }, alice, "tx_failed", "op_underfunded"},
		{"missing trustline", func() *txnbuild.Transaction { return build(usdc.Keypair, 0, pay("1", usdc.Asset)) }, usdc.Keypair, "tx_failed", "op_no_trust"},
		{"no destination", func() *txnbuild.Transaction {
			return build(alice, 0, &txnbuild.Payment{Destination: keypair.MustRandom().Address(), Amount: "1", Asset: txnbuild.NativeAsset{}})
		}, alice, "tx_failed", "op_no_destination"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			signed, err := tc.tx().Sign(e.net.Passphrase(), tc.signer)
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.client.SubmitTransactionWithOptions(signed, horizonclient.SubmitTxOpts{SkipMemoRequiredCheck: true})
			rc := resultCodes(t, err)
			if rc.TransactionCode != tc.txCode || tc.opCode != "" && (len(rc.OperationCodes) != 1 || rc.OperationCodes[0] != tc.opCode) {
				t.Errorf("codes %+v, want %s %s", rc, tc.txCode, tc.opCode)
			}
		})
	}
	// Failed transactions are recorded: visible only with include_failed.
	page, err := e.client.Payments(horizonclient.OperationRequest{ForAccount: bob.Address(), IncludeFailed: true, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, r := range page.Embedded.Records {
		if !r.IsTransactionSuccessful() {
			failed++
			if tx, err := e.client.TransactionDetail(r.GetTransactionHash()); err != nil || tx.Successful {
				t.Errorf("failed tx detail %+v: %v", tx, err)
			}
		}
	}
	if failed != 2 { // underfunded and missing trustline; the others never reached the ledger
		t.Errorf("failed payments with include_failed %d, want 2", failed)
	}
	page, err = e.client.Payments(horizonclient.OperationRequest{ForAccount: bob.Address(), Limit: 200})
	if err != nil || len(page.Embedded.Records) != 1 {
		t.Errorf("without include_failed got %d records: %v", len(page.Embedded.Records), err)
	}
}
