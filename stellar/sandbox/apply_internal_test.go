package sandbox

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stellar/go-stellar-sdk/amount"
	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/network"
	"github.com/stellar/go-stellar-sdk/txnbuild"
	"github.com/stellar/go-stellar-sdk/xdr"
)

// TestDecodeEnvelopeHash checks that hashing the decoded bytes gives the
// SDK's hash, whatever the signatures and memo.
func TestDecodeEnvelopeHash(t *testing.T) {
	n, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	src, other := keypair.MustRandom(), keypair.MustRandom()
	muxed, err := xdr.MuxedAccountFromAccountId(src.Address(), 42)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		source  string
		memo    txnbuild.Memo
		signers []*keypair.Full
	}{
		{"unsigned", src.Address(), nil, nil},
		{"one signature", src.Address(), txnbuild.MemoText("bench"), []*keypair.Full{src}},
		{"two signatures", src.Address(), txnbuild.MemoID(7), []*keypair.Full{src, other}},
		{"muxed source", muxed.Address(), txnbuild.MemoHash{1, 2, 3}, []*keypair.Full{src}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
				SourceAccount: &txnbuild.SimpleAccount{AccountID: tc.source, Sequence: 5}, IncrementSequenceNum: true,
				BaseFee: txnbuild.MinBaseFee, Memo: tc.memo, Preconditions: txnbuild.Preconditions{TimeBounds: txnbuild.NewTimeout(60)},
				Operations: []txnbuild.Operation{&txnbuild.Payment{Destination: other.Address(), Amount: "1", Asset: txnbuild.NativeAsset{}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.signers) > 0 {
				if tx, err = tx.Sign(n.Passphrase(), tc.signers...); err != nil {
					t.Fatal(err)
				}
			}
			b64, err := tx.Base64()
			if err != nil {
				t.Fatal(err)
			}
			var env xdr.TransactionEnvelope
			got, err := n.decodeEnvelope(b64, &env)
			if err != nil || got == nil {
				t.Fatalf("decode: hash %v, err %v", got, err)
			}
			want, err := network.HashTransactionInEnvelope(env, n.Passphrase())
			if err != nil {
				t.Fatal(err)
			}
			if *got != want {
				t.Fatalf("hash %s, want %s", hex.EncodeToString(got[:]), hex.EncodeToString(want[:]))
			}
			if again, _ := xdr.MarshalBase64(env); again != b64 {
				t.Fatalf("decoded envelope re-encodes differently")
			}
		})
	}
}

// TestDecodeEnvelopeErrors checks that undecodable envelopes give the
// SDK's errors.
func TestDecodeEnvelopeErrors(t *testing.T) {
	n, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []string{"not-base64-xdr!!", "AAAAAgAAAAA", "AAAAAgAAAAB=", "", "AAAAAAAAAAAAAAAA"} {
		var env, ref xdr.TransactionEnvelope
		_, err := n.decodeEnvelope(in, &env)
		want := xdr.SafeUnmarshalBase64(in, &ref)
		if (err == nil) != (want == nil) || err != nil && err.Error() != want.Error() {
			t.Errorf("%q: err %v, want %v", in, err, want)
		}
	}
}

// TestFormTxMatchesParseForm checks the fast form path against
// http.Request.ParseForm.
func TestFormTxMatchesParseForm(t *testing.T) {
	n, err := New(Config{MaxBodyBytes: 64})
	if err != nil {
		t.Fatal(err)
	}
	const form = "application/x-www-form-urlencoded"
	for _, tc := range []struct{ query, contentType, body string }{
		{"", form, "tx=AAAA%2B%2F%3D"},
		{"", form, "tx=AAAA+/="},
		{"", form, "tx=%zz"},
		{"", form, "tx="},
		{"", form, ""},
		{"", form, "a=1&tx=2"},
		{"", form, "tx=1&tx=2"},
		{"", form, "tx=1;x=2"},
		{"", form, "tx=" + strings.Repeat("A", 100)},
		{"", form + "; charset=utf-8", "tx=AAAA"},
		{"", "text/plain", "tx=AAAA"},
		{"tx=query", form, "tx=body"},
		{"a=%zz", form, "tx=body"},
	} {
		req := func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/transactions?"+tc.query, strings.NewReader(tc.body))
			if tc.query == "" {
				r.URL.RawQuery = ""
			}
			r.Header.Set("Content-Type", tc.contentType)
			r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, n.cfg.MaxBodyBytes)
			return r
		}
		got, gotErr := n.formTx(req())
		r := req()
		wantErr := r.ParseForm()
		want := r.PostForm.Get("tx")
		if wantErr != nil {
			got, want = "", "" // the handler answers the error alone
		}
		if got != want || fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Errorf("%+v: got %q, %v; want %q, %v", tc, got, gotErr, want, wantErr)
		}
	}
}

// TestTxJSONMatchesMarshal checks that the transaction JSON, written with
// the SDK's MarshalJSON directly, is what json.Marshal gives.
func TestTxJSONMatchesMarshal(t *testing.T) {
	n, err := New(Config{CloseEachTransaction: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	alice, bob := keypair.MustRandom(), keypair.MustRandom()
	for _, kp := range []*keypair.Full{alice, bob} {
		if err := n.Fund(ctx, kp.Address()); err != nil {
			t.Fatal(err)
		}
	}
	acc, err := n.Account(alice.Address())
	if err != nil {
		t.Fatal(err)
	}
	for _, memo := range []txnbuild.Memo{nil, txnbuild.MemoText(`<a&b> "q"`), txnbuild.MemoID(9), txnbuild.MemoReturn{4}} {
		tx, err := txnbuild.NewTransaction(txnbuild.TransactionParams{
			SourceAccount: &acc, IncrementSequenceNum: true, BaseFee: txnbuild.MinBaseFee, Memo: memo,
			Preconditions: txnbuild.Preconditions{TimeBounds: txnbuild.NewTimeout(60)},
			Operations:    []txnbuild.Operation{&txnbuild.Payment{Destination: bob.Address(), Amount: "1", Asset: txnbuild.NativeAsset{}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.SubmitTransaction(ctx, tx, alice); err != nil {
			t.Fatal(err)
		}
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	for _, rec := range n.txByHash {
		want, err := json.Marshal(rec.resp)
		if err != nil {
			t.Fatal(err)
		}
		if got := rec.txJSON(); !bytes.Equal(got, want) {
			t.Errorf("tx %s:\n got %s\nwant %s", rec.hash, got, want)
		}
	}
}

// TestAmountString checks the stroop formatter against the SDK's.
func TestAmountString(t *testing.T) {
	values := []int64{0, 1, -1, 9, 10, 9_999_999, 10_000_000, 10_000_001, -10_000_001, 123_456_789_012,
		totalCoins, math.MaxInt64, math.MinInt64, math.MinInt64 + 1}
	for i := int64(1); i < 1e18; i *= 7 {
		values = append(values, i, -i, i+3)
	}
	for _, v := range values {
		if got, want := amountString(v), amount.StringFromInt64(v); got != want {
			t.Errorf("amountString(%d) = %q, want %q", v, got, want)
		}
	}
}
