package horizon

import (
	"encoding/json"
	"errors"
	"reflect"
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
		checkLeanAgrees(t, data)
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
		// The stream's path: dispatch hands over the same paging token.
		var streamed string
		if derr := dispatch(data, func(tok string) error { streamed = tok; return nil }); derr != nil || streamed != op.PagingToken() {
			if len(data) > 0 && data[0] == '{' {
				t.Fatalf("dispatch: %v, paging token %q, want %q", derr, streamed, op.PagingToken())
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

// checkLeanAgrees decodes data as the one record of a page with the lean
// page decoder, which backlog pages go through, and with DecodeOperation.
// Where both decode it, they must agree on what the watcher reads: the
// paging token, the ledger close time, and Normalize's answer.
func checkLeanAgrees(t *testing.T, data []byte) {
	t.Helper()
	if !json.Valid(data) {
		return
	}
	page := append(append([]byte(`{"_embedded":{"records":[`), data...), "]}}"...)
	lean, ok := decodeLeanPage(stripLinks(stripXDR(page)))
	if !ok {
		return
	}
	if len(lean) != 1 || lean[0] == nil {
		t.Fatalf("decodeLeanPage of one record = %#v", lean)
	}
	sdk, err := DecodeOperation(data)
	if err != nil {
		// The lean decoder does not validate fields nothing reads; the
		// SDK refuses the whole record for them. Normalize must still
		// not panic on what the lean decoder made of it.
		_, _, _ = Normalize(lean[0], merchant)
		return
	}
	lb, sb := lean[0].GetBase(), sdk.GetBase()
	if lb.PT != sb.PT || lb.ID != sb.ID || !lb.LedgerCloseTime.Equal(sb.LedgerCloseTime) || lb.Type != sb.Type {
		t.Fatalf("lean base %+v, SDK base %+v", lb, sb)
	}
	lp, lk, lerr := Normalize(lean[0], merchant)
	sp, sk, serr := Normalize(sdk, merchant)
	if _, unknown := sdk.(operations.Base); unknown {
		// The SDK gave up on the type's own fields; the lean decoder
		// reads only the ones it needs. Neither may call it a credit
		// the other would not.
		if lk == KindCredit && lerr == nil {
			t.Fatalf("lean decoding makes a credit %+v of a record the SDK cannot decode", lp)
		}
		return
	}
	if lk != sk || (lerr == nil) != (serr == nil) || !reflect.DeepEqual(lp, sp) {
		t.Fatalf("lean: %+v, %v, %v; SDK: %+v, %v, %v", lp, lk, lerr, sp, sk, serr)
	}
}
