package horizon

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPaymentsPage(t *testing.T) {
	var gotPath string
	var gotQuery map[string][]string
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotQuery = r.URL.Path, r.URL.Query()
		w.Header().Set("Content-Type", "application/hal+json")
		if r.URL.Query().Get("cursor") == "999" {
			fmt.Fprint(w, `{"_links":{},"_embedded":{"records":[]}}`)
			return
		}
		unknown := strings.Replace(paymentJSON("103"), `"type_i":1`, `"type_i":99`, 1)
		fmt.Fprintf(w, `{"_links":{"next":{"href":"x"}},"_embedded":{"records":[%s,%s,%s]}}`,
			paymentJSON("101"), paymentJSON("102"), unknown)
	}))
	ops, err := c.PaymentsPage(context.Background(), merchant, "100", MaxPageLimit)
	if err != nil {
		t.Fatal(err)
	}
	if gotPath != "/accounts/"+merchant+"/payments" {
		t.Errorf("path = %s", gotPath)
	}
	for k, want := range map[string]string{"cursor": "100", "limit": "200", "order": "asc", "join": "transactions"} {
		if got := gotQuery[k]; len(got) != 1 || got[0] != want {
			t.Errorf("query %s = %v, want %s", k, got, want)
		}
	}
	if len(ops) != 3 {
		t.Fatalf("%d operations, want 3", len(ops))
	}
	for i, want := range []string{"M101", "M102"} {
		p, kind, err := Normalize(ops[i], merchant)
		if err != nil || kind != KindCredit || p.Memo != want || p.OperationID != ops[i].PagingToken() {
			t.Errorf("operation %d: %+v, %v, %v", i, p, kind, err)
		}
	}
	if _, _, err := Normalize(ops[2], merchant); err == nil {
		t.Errorf("an unknown operation type normalized")
	}

	if ops, err := c.PaymentsPage(context.Background(), merchant, "999", 10); err != nil || len(ops) != 0 {
		t.Errorf("past the end: %v, %v", ops, err)
	}
	for _, limit := range []int{0, MaxPageLimit + 1} {
		if _, err := c.PaymentsPage(context.Background(), merchant, "100", limit); err == nil {
			t.Errorf("limit %d accepted", limit)
		}
	}
	if _, err := c.PaymentsPage(context.Background(), merchant, "", 10); err == nil {
		t.Error("an empty cursor accepted")
	}
}

func TestPaymentsPageErrors(t *testing.T) {
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("cursor") {
		case "1":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case "2":
			fmt.Fprint(w, `{"_embedded":{"records":[{"id":"1"}]}}`) // no paging token
		case "3":
			<-r.Context().Done()
		}
	}))
	ctx := context.Background()
	if _, err := c.PaymentsPage(ctx, merchant, "1", 10); StatusCode(err) != 429 || RetryAfter(err) != 7*time.Second {
		t.Errorf("429: %v", err)
	}
	if _, err := c.PaymentsPage(ctx, merchant, "2", 10); err == nil {
		t.Error("a record without a paging token decoded")
	}
	ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := c.PaymentsPage(ctx, merchant, "3", 10); err == nil || time.Since(start) > 2*time.Second {
		t.Errorf("a hung page: %v after %s", err, time.Since(start))
	}
}

// TestDecodeRecordMatchesDecodeOperation checks the one-pass decoding of
// page records against DecodeOperation.
func TestDecodeRecordMatchesDecodeOperation(t *testing.T) {
	records := []string{
		paymentJSON("101"),
		fixture("create_account", 0, true, "none", "", `"funder":"`+customer+`","account":"`+merchant+`","starting_balance":"5.0000000"`),
		fixture("path_payment_strict_send", 13, true, "id", "42", `"asset_type":"native","from":"`+customer+`","to":"`+merchant+`","amount":"1.0000000","source_amount":"1.0000000","source_asset_type":"native","destination_min":"1.0000000"`),
		strings.Replace(paymentJSON("102"), `"type_i":1`, `"type_i":99`, 1),
	}
	for i, rec := range records {
		want, werr := DecodeOperation([]byte(rec))
		got, gerr := decodeRecord([]byte(rec))
		if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(got, want) {
			t.Errorf("record %d: decodeRecord = %#v, %v; DecodeOperation = %#v, %v", i, got, gerr, want, werr)
		}
	}
	if _, ok := peekTypeI([]byte(`{"type_i":1,"x":{"type_i":2}}`)); ok {
		t.Error("peekTypeI read an ambiguous record")
	}
}

func BenchmarkDecodeRecord(b *testing.B) {
	rec := []byte(paymentJSON("101"))
	b.Run("DecodeOperation", func(b *testing.B) {
		for b.Loop() {
			if _, err := DecodeOperation(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decodeRecord", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeRecord(rec); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decodeLeanPage", func(b *testing.B) {
		page := []byte(`{"_embedded":{"records":[` + string(rec) + `]}}`)
		for b.Loop() {
			if _, ok := decodeLeanPage(page); !ok {
				b.Fatal("not decoded")
			}
		}
	})
}

func TestStripXDR(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"compact", `{"a":1,"envelope_xdr":"AAAA+/=","result_xdr":"BB","fee_meta_xdr":"C","result_meta_xdr":"D","z":2}`,
			`{"a":1,"envelope_xdr":"","result_xdr":"","fee_meta_xdr":"","result_meta_xdr":"","z":2}`},
		{"indented", "{\n  \"envelope_xdr\" : \"AAAA\",\n  \"memo\": \"x\"\n}", "{\n  \"envelope_xdr\" : \"\",\n  \"memo\": \"x\"\n}"},
		{"other xdr keys stay", `{"header_xdr":"AAAA","envelope_xdr":"B"}`, `{"header_xdr":"AAAA","envelope_xdr":""}`},
		{"in a string value", `{"memo":"envelope_xdr\":\"A","envelope_xdr":"B"}`, `{"memo":"envelope_xdr\":\"A","envelope_xdr":""}`},
		{"not a string", `{"envelope_xdr":null,"result_xdr":"B"}`, `{"envelope_xdr":null,"result_xdr":""}`},
		{"escape", `{"envelope_xdr":"A\"B"}`, `{"envelope_xdr":"A\"B"}`},
		{"unterminated", `{"envelope_xdr":"AAAA`, `{"envelope_xdr":"AAAA`},
		{"none", `{"a":"b"}`, `{"a":"b"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(stripXDR([]byte(tc.in))); got != tc.want {
				t.Errorf("stripXDR(%s)\n = %s\nwant %s", tc.in, got, tc.want)
			}
		})
	}
}

func TestStripLinks(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"nested", `{"_links":{"self":{"href":"h"},"x":{"href":"{}"}},"id":"1","transaction":{"_links":{"a":{}},"memo":"m"}}`,
			`{"_links":{},"id":"1","transaction":{"_links":{},"memo":"m"}}`},
		{"indented", "{\n  \"_links\" : {\n    \"self\": {\"href\": \"h\"}\n  },\n  \"id\": \"1\"\n}", "{\n  \"_links\" : {},\n  \"id\": \"1\"\n}"},
		{"braces and escapes in strings", `{"_links":{"a":"}\"{","b":"\\"},"id":"1"}`, `{"_links":{},"id":"1"}`},
		{"in a string value", `{"memo":"\"_links\":{\"a\":1}","_links":{"a":1}}`, `{"memo":"\"_links\":{\"a\":1}","_links":{}}`},
		{"not an object", `{"_links":null,"x":{"_links":[{}]},"_links":{"a":1}}`, `{"_links":null,"x":{"_links":[{}]},"_links":{}}`},
		{"unterminated", `{"_links":{"a":{"b":1}`, `{"_links":{"a":{"b":1}`},
		{"unterminated string", `{"_links":{"a":"}`, `{"_links":{"a":"}`},
		{"none", `{"a":"b"}`, `{"a":"b"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(stripLinks([]byte(tc.in))); got != tc.want {
				t.Errorf("stripLinks(%s)\n = %s\nwant %s", tc.in, got, tc.want)
			}
		})
	}
}

// TestLeanPageDecodesPaymentsPages checks that a page of the payments
// endpoint's operation types takes the one-pass path, and that anything
// else is left to the SDK's decoding.
func TestLeanPageDecodesPaymentsPages(t *testing.T) {
	page := func(records ...string) []byte {
		return []byte(`{"_links":{},"_embedded":{"records":[` + strings.Join(records, ",") + `]}}`)
	}
	known := []string{
		paymentJSON("101"),
		fixture("path_payment_strict_receive", 2, true, "text", "M", `"asset_type":"native","from":"`+customer+`","to":"`+merchant+`","amount":"10.0000000","path":[],"source_amount":"1","source_max":"2","source_asset_type":"native"`),
		fixture("path_payment_strict_send", 13, true, "id", "42", `"asset_type":"native","from":"`+customer+`","to":"`+merchant+`","amount":"1.0000000","source_amount":"1.0000000","source_asset_type":"native","destination_min":"1.0000000"`),
		fixture("create_account", 0, true, "none", "", `"funder":"`+customer+`","account":"`+merchant+`","starting_balance":"5.0000000"`),
		fixture("account_merge", 8, true, "none", "", `"account":"`+customer+`","into":"`+merchant+`"`),
		fixture("invoke_host_function", 24, true, "none", "", `"function":"HostFunctionTypeHostFunctionTypeInvokeContract","parameters":[]`),
	}
	ops, ok := decodeLeanPage(page(known...))
	if !ok || len(ops) != len(known) {
		t.Fatalf("decodeLeanPage = %d operations, %v; want %d", len(ops), ok, len(known))
	}
	for i, rec := range known {
		want, err := DecodeOperation([]byte(rec))
		if err != nil {
			t.Fatal(err)
		}
		if reflect.TypeOf(ops[i]) != reflect.TypeOf(want) {
			t.Errorf("record %d: %T, the SDK decodes %T", i, ops[i], want)
		}
		gp, gk, gerr := Normalize(ops[i], merchant)
		wp, wk, werr := Normalize(want, merchant)
		if !reflect.DeepEqual(gp, wp) || gk != wk || (gerr == nil) != (werr == nil) {
			t.Errorf("record %d: lean %+v %v %v; SDK %+v %v %v", i, gp, gk, gerr, wp, wk, werr)
		}
	}
	for name, body := range map[string][]byte{
		"unknown type":     page(paymentJSON("101"), strings.Replace(paymentJSON("102"), `"type_i":1`, `"type_i":10`, 1)),
		"no paging token":  page(`{"id":"1","type_i":1}`),
		"not a page":       []byte(`{"_embedded":{"records":{}}}`),
		"invalid JSON":     []byte(`{"_embedded":`),
		"amount not words": page(strings.Replace(paymentJSON("101"), `"amount":"1.0000000"`, `"amount":1`, 1)),
	} {
		if _, ok := decodeLeanPage(body); ok {
			t.Errorf("%s: decoded by the lean path", name)
		}
	}
}

// BenchmarkReadPage decodes a full page of payments joined with their
// transactions, shaped as Horizon sends them (links on each record and
// transaction, an envelope per transaction), the way PaymentsPage does,
// and without stripping the links first.
func BenchmarkReadPage(b *testing.B) {
	links := func(base string, rels ...string) string {
		var parts []string
		for _, r := range rels {
			parts = append(parts, `"`+r+`":{"href":"http://127.0.0.1:8000/`+base+`/`+r+`{?cursor,limit,order}","templated":true}`)
		}
		return `"_links":{` + strings.Join(parts, ",") + `}`
	}
	recLinks := links("operations/1", "self", "transaction", "effects", "succeeds", "precedes")
	txLinks := links("transactions/"+txHash, "self", "account", "ledger", "operations", "effects", "precedes", "succeeds", "transaction")
	envelope := strings.Repeat("AAAAAgAAAAB", 800)
	records := make([]string, MaxPageLimit)
	for i := range records {
		rec := strings.Replace(paymentJSON(strconv.Itoa(101+i)), `"_links":{}`, recLinks, 1)
		rec = strings.Replace(rec, `"transaction":{`, `"transaction":{`+txLinks+`,"envelope_xdr":"`+envelope+`",`, 1)
		records[i] = rec
	}
	page := []byte(`{"_links":{},"_embedded":{"records":[` + strings.Join(records, ",") + `]}}`)
	buf := make([]byte, len(page))
	for _, tc := range []struct {
		name  string
		strip func([]byte) []byte
	}{
		{"strip=xdr", stripXDR},
		{"strip=xdr+links", func(p []byte) []byte { return stripLinks(stripXDR(p)) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(page)))
			for b.Loop() {
				copy(buf, page)
				if ops, ok := decodeLeanPage(tc.strip(buf)); !ok || len(ops) != MaxPageLimit {
					b.Fatalf("decoded %d operations, %v", len(ops), ok)
				}
			}
		})
	}
}
