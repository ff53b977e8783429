package horizon

import (
	"errors"
	"testing"

	"github.com/stellar/go-stellar-sdk/protocols/horizon/operations"
)

// FuzzDecodeNormalize feeds operation records, as the payments stream and
// the backlog pages deliver them, through both decoders and the watcher's
// normalizer. Neither may panic; a record of a type nobody knows decodes to
// its operations.Base and normalizes to ErrUnknownOperation, which the
// watcher records (logged, counted as "unknown") and steps past; and what
// Normalize calls a credit to the account is one the watcher can settle.
func FuzzDecodeNormalize(f *testing.F) {
	pay := `"asset_type":"native","from":"` + customer + `","to":"` + merchant + `","amount":"12.5000000"`
	for _, s := range []string{
		fixture("payment", 1, true, "text", "ABCDEFGHIJKLMNOP", pay),
		fixture("payment", 1, false, "text", "ABC", pay),
		fixture("payment", 1, true, "id", "9223372036854775807",
			`"asset_type":"credit_alphanum4","asset_code":"USDC","asset_issuer":"`+issuer+`","from":"`+customer+`","to":"`+merchant+`","amount":"0.0000001"`),
		fixture("payment", 1, true, "none", "",
			`"asset_type":"native","from":"`+customer+`","to":"`+merchant+`","to_muxed":"`+merchantMuxed+`","to_muxed_id":"1234567890123","amount":"1.0000000"`),
		fixture("payment", 1, true, "hash", "3389e9f0f1a65f19736cacf544c2e825313e8447f569233bb8db39aa607c8889", `"asset_type":"native","from":"`+merchant+`","to":"`+other+`","amount":"1"`),
		fixture("path_payment_strict_receive", 2, true, "text", "M",
			`"asset_type":"native","from":"`+customer+`","to":"`+merchant+`","amount":"10.0000000","path":[],"source_amount":"1","source_max":"2","source_asset_type":"native"`),
		fixture("path_payment_strict_send", 13, true, "text", "M",
			`"asset_type":"native","from":"`+customer+`","to":"`+merchant+`","amount":"10.0000003","path":[],"source_amount":"1","destination_min":"9","source_asset_type":"native"`),
		fixture("create_account", 0, true, "none", "", `"funder":"`+customer+`","account":"`+merchant+`","starting_balance":"5.0000000"`),
		fixture("account_merge", 8, true, "none", "", `"account":"`+customer+`","into":"`+merchant+`"`),
		fixture("invoke_host_function", 24, true, "none", "", `"function":"HostFunctionTypeHostFunctionTypeInvokeContract","parameters":[]`),
		fixture("manage_data", 10, true, "none", "", `"name":"k","value":"dg=="`),
		fixture("some_future_operation", 99, true, "none", "", `"x":1`),
		fixture("payment", 1, true, "text", "M", `"asset_type":"native","from":"`+customer+`","to":"`+merchant+`","amount":"-1"`),
		fixture("payment", 1, true, "text", "M", `"asset_type":"credit_alphanum4","from":"`+customer+`","to":"`+merchant+`","amount":"1"`),
		`{"paging_token":"1","type_i":1}`,
		`{"paging_token":"1","type_i":-1}`,
		`{"paging_token":"1","type_i":2147483648}`,
		`{"id":"1","type_i":1}`,
		`{"paging_token":"1","type_i":1,"x":{"type_i":2}}`,
		`{"paging_token":"1","type_i":1,"amount":{}}`,
		`"hello"`, `{`, ``, `null`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		op, err := DecodeOperation(data)
		fast, ferr := decodeRecord(data)
		if ferr == nil && fast == nil {
			t.Fatalf("decodeRecord returned neither an operation nor an error")
		}
		if err != nil {
			return
		}
		if op == nil || op.PagingToken() == "" {
			t.Fatalf("DecodeOperation = %#v with no error and no paging token", op)
		}
		if ferr != nil {
			t.Fatalf("DecodeOperation reads the record, decodeRecord does not: %v", ferr)
		}
		// The stream's path: dispatch decodes and hands over the same.
		var streamed operations.Operation
		if derr := dispatch(data, func(o operations.Operation) error { streamed = o; return nil }); derr != nil || streamed == nil {
			if len(data) > 0 && data[0] == '{' {
				t.Fatalf("dispatch: %v, operation %#v", derr, streamed)
			}
		}
		for _, o := range []operations.Operation{op, fast} {
			p, kind, nerr := Normalize(o, merchant)
			if _, unknown := o.(operations.Base); unknown && !errors.Is(nerr, ErrUnknownOperation) {
				t.Fatalf("Normalize of an undecodable type %q = %v, %v, want ErrUnknownOperation", o.GetType(), kind, nerr)
			}
			if nerr != nil {
				if kind != 0 && kind != KindCredit && kind != KindOutgoing && kind != KindFailed && kind != KindNotPayment {
					t.Fatalf("Normalize error %v with kind %d", nerr, kind)
				}
				continue
			}
			switch kind {
			case KindCredit:
				if p.OperationID == "" || p.To != merchant || p.Amount < 0 {
					t.Fatalf("credit %+v: no operation id, not to the account, or negative", p)
				}
				if p.OperationType != TypeAccountMerge && p.Amount == 0 && p.OperationType != TypeCreateAccount {
					// A zero payment cannot happen on the ledger, but
					// settling one is harmless: it pays nothing.
					t.Logf("zero credit %+v", p)
				}
				if err := p.Asset.Validate(); err != nil && p.Asset.Issuer == "" {
					t.Fatalf("credit %+v has an asset with no issuer: %v", p, err)
				}
			case KindOutgoing, KindFailed, KindNotPayment:
			default:
				t.Fatalf("Normalize = kind %d with no error", kind)
			}
		}
	})
}
