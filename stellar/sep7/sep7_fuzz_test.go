package sep7

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/stellar/go-stellar-sdk/network"
	"github.com/stellar/go-stellar-sdk/xdr"

	checkout "github.com/checkoutd/checkoutd"
)

// parsePay is a strict reader of the pay URIs String writes, as a wallet
// reads them: the scheme, then key=value pairs split on '&', each key at
// most once, each value percent-decoded. A literal '+' or space is refused
// (String never writes one, and wallets disagree on what '+' means), and so
// is any key String does not write.
func parsePay(uri string) (Pay, error) {
	query, ok := strings.CutPrefix(uri, Scheme)
	if !ok {
		return Pay{}, errors.New("not a web+stellar:pay URI")
	}
	p := Pay{NetworkPassphrase: network.PublicNetworkPassphrase}
	if query == "" {
		return p, nil
	}
	seen := map[string]bool{}
	for _, pair := range strings.Split(query, "&") {
		k, raw, ok := strings.Cut(pair, "=")
		if !ok || k == "" {
			return Pay{}, fmt.Errorf("parameter %q has no value", pair)
		}
		if strings.ContainsAny(raw, "+ #?=") {
			return Pay{}, fmt.Errorf("parameter %s: unescaped character in %q", k, raw)
		}
		if seen[k] {
			return Pay{}, fmt.Errorf("parameter %s given twice", k)
		}
		seen[k] = true
		v, err := url.PathUnescape(raw)
		if err != nil {
			return Pay{}, fmt.Errorf("parameter %s: %w", k, err)
		}
		switch k {
		case "destination":
			p.Destination = v
		case "amount":
			a, err := checkout.ParseAmount(v)
			if err != nil {
				return Pay{}, err
			}
			p.Amount = a
		case "asset_code":
			p.Asset.Code = v
		case "asset_issuer":
			p.Asset.Issuer = v
		case "memo":
			p.Memo = v
		case "memo_type":
			p.MemoType = v
		case "network_passphrase":
			p.NetworkPassphrase = v
		case "msg":
			p.Message = v
		default:
			return Pay{}, fmt.Errorf("unknown parameter %q", k)
		}
	}
	return p, nil
}

// canonical is what p means once written: what String leaves out reads
// back as its default.
func canonical(p Pay) Pay {
	if p.Amount <= 0 {
		p.Amount = 0
	}
	if p.Asset.Code == "" || p.Asset.IsNative() {
		p.Asset = checkout.Asset{}
	}
	if p.Memo == "" {
		p.MemoType = ""
	}
	if p.NetworkPassphrase == "" {
		p.NetworkPassphrase = network.PublicNetworkPassphrase
	}
	return p
}

func TestParsePay(t *testing.T) {
	for _, bad := range []string{
		"web+stellar:tx?xdr=AAAA",
		Scheme + "destination=a&destination=b",
		Scheme + "destination=a+b",
		Scheme + "memo=%zz",
		Scheme + "callback=url%3Ahttps%3A%2F%2Fevil.example",
		Scheme + "amount=-1",
		Scheme + "destination",
	} {
		if p, err := parsePay(bad); err == nil {
			t.Errorf("parsePay(%q) = %+v, want an error", bad, p)
		}
	}
	p := Pay{Destination: account, Amount: 125_000_000, Asset: checkout.Asset{Code: "USDC", Issuer: issuer},
		Memo: "a&memo=evil", MemoType: MemoTypeText, Message: "100% & more=less #1 +tax",
		NetworkPassphrase: network.TestNetworkPassphrase}
	got, err := parsePay(p.String())
	if err != nil || got != p {
		t.Fatalf("round trip of %s: %+v, %v", p, got, err)
	}
}

// FuzzPayRoundTrip builds a pay URI from arbitrary fields and reads it back
// with parsePay and with url.ParseQuery: every field survives, no value can
// smuggle in another parameter, and the URI holds no character a wallet or
// a QR code reader could take two ways.
func FuzzPayRoundTrip(f *testing.F) {
	f.Add(account, int64(125_000_000), "USDC", issuer, "ABCDEFGH", MemoTypeText, network.TestNetworkPassphrase, "")
	f.Add(account, int64(1), "", "", "42", MemoTypeID, network.PublicNetworkPassphrase, "thanks")
	f.Add(account, int64(0), "XLM", "", "", "", "", "")
	f.Add("G&amount=1", int64(-5), "US D", "x=y", "a&memo=b", "MEMO_TEXT&x=1", "Test ; net", "100% + #frag ?q é \x00\xff")
	f.Add("", int64(9223372036854775807), "ABCDEFGHIJKL", "", "\r\n", "MEMO_HASH", "", "%20%2B")
	f.Fuzz(func(t *testing.T, dest string, amount int64, code, iss, memo, memoType, passphrase, msg string) {
		p := Pay{Destination: dest, Amount: checkout.Amount(amount), Asset: checkout.Asset{Code: code, Issuer: iss},
			Memo: memo, MemoType: memoType, NetworkPassphrase: passphrase, Message: msg}
		uri := p.String()
		for i := len("web+stellar:"); i < len(uri); i++ {
			c := uri[i]
			if c <= ' ' || c >= 0x7f || strings.IndexByte("+#\"<>\\^`{|}", c) >= 0 {
				t.Fatalf("URI %q has %q at %d", uri, c, i)
			}
		}
		got, err := parsePay(uri)
		if err != nil {
			t.Fatalf("parsePay(%q): %v", uri, err)
		}
		if want := canonical(p); got != want {
			t.Fatalf("round trip of %q:\n got %+v\nwant %+v", uri, got, want)
		}
		q, err := url.ParseQuery(strings.TrimPrefix(uri, Scheme))
		if err != nil {
			t.Fatalf("url.ParseQuery(%q): %v", uri, err)
		}
		for k, vs := range q {
			if len(vs) != 1 {
				t.Fatalf("url.ParseQuery reads %s %d times in %q", k, len(vs), uri)
			}
		}
		if q.Get("destination") != got.Destination || q.Get("memo") != got.Memo || q.Get("msg") != got.Message {
			t.Fatalf("url.ParseQuery reads %q differently: %v vs %+v", uri, q, got)
		}
	})
}

// FuzzForSessionDestination checks the address a muxed session is paid at:
// an M-address of the session's account whose id is the memo, or an error
// for a memo that is not a canonical uint64. Text and id sessions are paid
// at the account with the memo in the URI.
func FuzzForSessionDestination(f *testing.F) {
	for _, s := range []struct{ typ, memo string }{
		{"muxed", "1"}, {"muxed", "18446744073709551615"}, {"muxed", "18446744073709551616"}, {"muxed", "01"},
		{"muxed", ""}, {"text", "ABC&x=1"}, {"id", "42"}, {"hash", "x"},
	} {
		f.Add(s.typ, s.memo, int64(10_000_000))
	}
	f.Fuzz(func(t *testing.T, typ, memo string, amount int64) {
		s := checkout.Session{ID: "cs_1", ReceivingAccount: account, Asset: checkout.NativeAsset,
			MemoType: checkout.MemoType(typ), Memo: memo}
		p, err := ForSession(s, checkout.Amount(amount), network.TestNetworkPassphrase)
		if s.MemoType == checkout.MemoMuxed {
			verr := checkout.ValidateMemo(s.MemoType, memo)
			if (err == nil) != (verr == nil) {
				t.Fatalf("ForSession(muxed %q) = %v; ValidateMemo says %v", memo, err, verr)
			}
			if err != nil {
				return
			}
			var m xdr.MuxedAccount
			if err := m.SetAddress(p.Destination); err != nil {
				t.Fatalf("destination %q: %v", p.Destination, err)
			}
			id, err := m.GetId()
			if err != nil || strconv.FormatUint(id, 10) != memo || m.ToAccountId().Address() != account {
				t.Fatalf("destination %q is id %d of %s, want %s of %s (%v)", p.Destination, id, m.ToAccountId().Address(), memo, account, err)
			}
			if p.Memo != "" {
				t.Fatalf("muxed session carries memo %q", p.Memo)
			}
			return
		}
		if err != nil {
			t.Fatalf("ForSession(%s %q): %v", typ, memo, err)
		}
		got, err := parsePay(p.String())
		if err != nil || got.Destination != account {
			t.Fatalf("%s: %+v, %v", p, got, err)
		}
		if (typ == "text" || typ == "id") && got.Memo != memo {
			t.Fatalf("%s: memo %q, want %q", p, got.Memo, memo)
		}
	})
}
