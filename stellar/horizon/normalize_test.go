package horizon

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stellar/go-stellar-sdk/protocols/horizon/effects"

	checkout "github.com/checkoutd/checkoutd"
)

const (
	merchant = "GAKQB5MWYB7PZI3YQH5PT4GHZJKJ43IMRUBUJOBPCOKNDJ5WB6TVRRZM"
	customer = "GCCRSZI5VO2HRVJ2NWATW7RCOASB5MYY4YMOCHSRZLDTBL4PYC2PMY4N"
	issuer   = "GAM6G54QCQDCSTBRM6I4FA7CCKYD7FUK27FJN6CB2YHOEVHBIUKM2OSX"
	other    = "GD2WY7FUFZVNROG2Q3DLR2E2CZBSXDL2KFZBBG334VQCSYFMHTGXBMSA"
	// merchantMuxed is merchant with muxed id 1234567890123.
	merchantMuxed = "MAKQB5MWYB7PZI3YQH5PT4GHZJKJ43IMRUBUJOBPCOKNDJ5WB6TVQAAAAEPXD6YEZNORI"
	txHash        = "3389e9f0f1a65f19736cacf544c2e825313e8447f569233bb8db39aa607c8889"
	closedAt      = "2026-03-01T12:00:05Z"
)

// fixture builds an operation record the way Horizon serves it on
// /accounts/{id}/payments?join=transactions: the base fields, the
// operation's own fields, and the joined transaction with its memo.
func fixture(typ string, typeI int, successful bool, memoType, memo string, fields string) string {
	tx := `{"id":"` + txHash + `","hash":"` + txHash + `","ledger":123,"created_at":"` + closedAt +
		`","successful":` + boolJSON(successful) + `,"memo_type":"` + memoType + `"`
	if memoType != "none" {
		tx += `,"memo":` + jsonString(memo)
	}
	tx += `}`
	return `{"_links":{},"id":"528280981505","paging_token":"528280981505","transaction_successful":` +
		boolJSON(successful) + `,"source_account":"` + customer + `","type":"` + typ + `","type_i":` +
		itoa(typeI) + `,"created_at":"` + closedAt + `","transaction_hash":"` + txHash + `","transaction":` + tx +
		`,` + fields + `}`
}

func boolJSON(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func TestNormalize(t *testing.T) {
	at, _ := time.Parse(time.RFC3339, closedAt)
	usdc := checkout.Asset{Code: "USDC", Issuer: issuer}
	credit := func(p checkout.Payment) checkout.Payment {
		p.OperationID, p.TransactionHash, p.LedgerClosedAt = "528280981505", txHash, at
		return p
	}
	tests := []struct {
		name    string
		json    string
		want    checkout.Payment
		kind    Kind
		wantErr error
	}{
		{
			name: "native payment with text memo",
			json: fixture("payment", 1, true, "text", "ABCDEFGHIJKLMNOP",
				`"asset_type":"native","from":"`+customer+`","to":"`+merchant+`","amount":"12.5000000"`),
			want: credit(checkout.Payment{OperationType: "payment", From: customer, To: merchant,
				Amount: 125_000_000, Asset: checkout.NativeAsset, MemoType: "text", Memo: "ABCDEFGHIJKLMNOP"}),
			kind: KindCredit,
		},
		{
			name: "credit asset payment with id memo",
			json: fixture("payment", 1, true, "id", "9223372036854775807",
				`"asset_type":"credit_alphanum4","asset_code":"USDC","asset_issuer":"`+issuer+
					`","from":"`+customer+`","to":"`+merchant+`","amount":"0.0000001"`),
			want: credit(checkout.Payment{OperationType: "payment", From: customer, To: merchant,
				Amount: 1, Asset: usdc, MemoType: "id", Memo: "9223372036854775807"}),
			kind: KindCredit,
		},
		{
			name: "payment to a muxed destination",
			json: fixture("payment", 1, true, "none", "",
				`"asset_type":"native","from":"`+customer+`","to":"`+merchant+`","to_muxed":"`+merchantMuxed+
					`","to_muxed_id":"1234567890123","amount":"1.0000000"`),
			want: credit(checkout.Payment{OperationType: "payment", From: customer, To: merchant,
				ToMuxedID: "1234567890123", Amount: 10_000_000, Asset: checkout.NativeAsset}),
			kind: KindCredit,
		},
		{
			name: "path payment strict receive delivers amount",
			json: fixture("path_payment_strict_receive", 2, true, "text", "MEMO",
				`"asset_type":"credit_alphanum4","asset_code":"USDC","asset_issuer":"`+issuer+
					`","from":"`+customer+`","to":"`+merchant+`","amount":"10.0000000","path":[],`+
					`"source_amount":"55.1234567","source_max":"60.0000000","source_asset_type":"native"`),
			want: credit(checkout.Payment{OperationType: "path_payment_strict_receive", From: customer, To: merchant,
				Amount: 100_000_000, Asset: usdc, MemoType: "text", Memo: "MEMO"}),
			kind: KindCredit,
		},
		{
			name: "path payment strict send delivers amount, not destination_min",
			json: fixture("path_payment_strict_send", 13, true, "text", "MEMO",
				`"asset_type":"credit_alphanum4","asset_code":"USDC","asset_issuer":"`+issuer+
					`","from":"`+customer+`","to":"`+merchant+`","amount":"10.0000003","path":[],`+
					`"source_amount":"55.0000000","destination_min":"9.0000000","source_asset_type":"native"`),
			want: credit(checkout.Payment{OperationType: "path_payment_strict_send", From: customer, To: merchant,
				Amount: 100_000_003, Asset: usdc, MemoType: "text", Memo: "MEMO"}),
			kind: KindCredit,
		},
		{
			name: "create_account credits the starting balance",
			json: fixture("create_account", 0, true, "id", "42",
				`"starting_balance":"100.0000000","funder":"`+customer+`","account":"`+merchant+`"`),
			want: credit(checkout.Payment{OperationType: "create_account", From: customer, To: merchant,
				Amount: 1_000_000_000, Asset: checkout.NativeAsset, MemoType: "id", Memo: "42"}),
			kind: KindCredit,
		},
		{
			name: "account_merge credits with the amount left to the effect",
			json: fixture("account_merge", 8, true, "text", "MERGE",
				`"account":"`+customer+`","into":"`+merchant+`"`),
			want: credit(checkout.Payment{OperationType: "account_merge", From: customer, To: merchant,
				Asset: checkout.NativeAsset, MemoType: "text", Memo: "MERGE"}),
			kind: KindCredit,
		},
		{
			name: "hash memo keeps Horizon's base64 text",
			json: fixture("payment", 1, true, "hash", "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
				`"asset_type":"native","from":"`+customer+`","to":"`+merchant+`","amount":"1"`),
			want: credit(checkout.Payment{OperationType: "payment", From: customer, To: merchant,
				Amount: 10_000_000, Asset: checkout.NativeAsset, MemoType: "hash",
				Memo: "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="}),
			kind: KindCredit,
		},
		{
			name: "outgoing payment is ignored",
			json: fixture("payment", 1, true, "none", "",
				`"asset_type":"native","from":"`+merchant+`","to":"`+customer+`","amount":"5.0000000"`),
			kind: KindOutgoing,
		},
		{
			name: "outgoing merge is ignored",
			json: fixture("account_merge", 8, true, "none", "", `"account":"`+merchant+`","into":"`+customer+`"`),
			kind: KindOutgoing,
		},
		{
			name: "payment between others in a transaction the account sourced",
			json: fixture("payment", 1, true, "none", "",
				`"asset_type":"native","from":"`+customer+`","to":"`+other+`","amount":"5.0000000"`),
			kind: KindNotPayment,
		},
		{
			name: "failed transaction is ignored",
			json: fixture("payment", 1, false, "text", "ABCDEFGHIJKLMNOP",
				`"asset_type":"native","from":"`+customer+`","to":"`+merchant+`","amount":"12.5000000"`),
			kind: KindFailed,
		},
		{
			name: "invoke_host_function is not a payment",
			json: fixture("invoke_host_function", 24, true, "none", "",
				`"function":"HostFunctionTypeHostFunctionTypeInvokeContract","parameters":[],"address":"","salt":""`),
			kind: KindNotPayment,
		},
		{
			name:    "a known type that is not on a payments stream is reported",
			json:    fixture("bump_sequence", 11, true, "none", "", `"bump_to":"100"`),
			wantErr: ErrUnknownOperation,
		},
		{
			name:    "an operation type the SDK does not know is reported",
			json:    fixture("teleport", 999, true, "none", "", `"to":"`+merchant+`"`),
			wantErr: ErrUnknownOperation,
		},
		{
			name: "a bad amount is an error",
			json: fixture("payment", 1, true, "none", "",
				`"asset_type":"native","from":"`+customer+`","to":"`+merchant+`","amount":"1.00000001"`),
			wantErr: errAny,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op, err := DecodeOperation([]byte(tt.json))
			if err != nil {
				t.Fatalf("DecodeOperation: %v", err)
			}
			got, kind, err := Normalize(op, merchant)
			switch {
			case tt.wantErr == errAny && err != nil:
				return
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Normalize error = %v, want %v", err, tt.wantErr)
				}
				return
			case err != nil:
				t.Fatalf("Normalize: %v", err)
			}
			if kind != tt.kind {
				t.Fatalf("kind = %s, want %s", kind, tt.kind)
			}
			if kind != KindCredit {
				return
			}
			if got != tt.want {
				t.Errorf("payment =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestNormalizeNil(t *testing.T) {
	if _, _, err := Normalize(nil, merchant); !errors.Is(err, ErrUnknownOperation) {
		t.Fatalf("Normalize(nil) error = %v, want ErrUnknownOperation", err)
	}
}

func TestNormalizeNeedsJoinedTransaction(t *testing.T) {
	js := fixture("payment", 1, true, "none", "", `"asset_type":"native","from":"`+customer+`","to":"`+merchant+`","amount":"1"`)
	i := strings.Index(js, `"transaction":{`)
	j := strings.Index(js[i:], "}") + i + 1
	op, err := DecodeOperation([]byte(js[:i] + `"x":0` + js[j:]))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Normalize(op, merchant); err == nil {
		t.Fatal("Normalize without the joined transaction: want an error")
	}
}

func TestMergeAmount(t *testing.T) {
	page := `{"_links":{},"_embedded":{"records":[
		{"id":"1-1","paging_token":"1-1","account":"` + customer + `","type":"account_debited","type_i":3,"asset_type":"native","amount":"99.9999900"},
		{"id":"1-2","paging_token":"1-2","account":"` + merchant + `","type":"account_credited","type_i":2,"asset_type":"native","amount":"99.9999900"},
		{"id":"1-3","paging_token":"1-3","account":"` + customer + `","type":"account_removed","type_i":1}
	]}}`
	var effs effects.EffectsPage
	if err := json.Unmarshal([]byte(page), &effs); err != nil {
		t.Fatal(err)
	}
	got, err := MergeAmount(effs.Embedded.Records, merchant)
	if err != nil || got != 999_999_900 {
		t.Fatalf("MergeAmount = %v, %v; want 999999900", got, err)
	}
	if _, err := MergeAmount(effs.Embedded.Records, other); err == nil {
		t.Fatal("MergeAmount for an account with no credit: want an error")
	}
}
