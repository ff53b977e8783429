package sep7

import (
	"net/url"
	"strings"
	"testing"

	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/network"
	"github.com/stellar/go-stellar-sdk/strkey"

	checkout "github.com/checkoutd/checkoutd"
)

const (
	account = "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"
	issuer  = "GCEZWKCA5VLDNRLN3RPRJMRZOX3Z6G5CHCGSNFHEYVXM3XOJMDS674JZ"
)

func TestForSession(t *testing.T) {
	usdc := checkout.Asset{Code: "USDC", Issuer: issuer}
	tests := []struct {
		name       string
		s          checkout.Session
		amount     checkout.Amount
		passphrase string
		want       string
	}{
		{
			name:       "text memo, lumens, testnet",
			s:          checkout.Session{ID: "cs_1", ReceivingAccount: account, Asset: checkout.NativeAsset, MemoType: checkout.MemoText, Memo: "ABCDEFGH"},
			amount:     125_000_000,
			passphrase: network.TestNetworkPassphrase,
			want: "web+stellar:pay?destination=" + account + "&amount=12.5000000&memo=ABCDEFGH&memo_type=MEMO_TEXT" +
				"&network_passphrase=Test%20SDF%20Network%20%3B%20September%202015",
		},
		{
			name:       "id memo, credit asset, public network omits the passphrase",
			s:          checkout.Session{ID: "cs_2", ReceivingAccount: account, Asset: usdc, MemoType: checkout.MemoID, Memo: "42"},
			amount:     30_000_000,
			passphrase: network.PublicNetworkPassphrase,
			want:       "web+stellar:pay?destination=" + account + "&amount=3.0000000&asset_code=USDC&asset_issuer=" + issuer + "&memo=42&memo_type=MEMO_ID",
		},
		{
			name:       "smallest amount",
			s:          checkout.Session{ID: "cs_3", ReceivingAccount: account, Asset: checkout.NativeAsset, MemoType: checkout.MemoID, Memo: "7"},
			amount:     1,
			passphrase: network.PublicNetworkPassphrase,
			want:       "web+stellar:pay?destination=" + account + "&amount=0.0000001&memo=7&memo_type=MEMO_ID",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ForSession(tt.s, tt.amount, tt.passphrase)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.String(); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestForSessionMuxed(t *testing.T) {
	s := checkout.Session{ID: "cs_m", ReceivingAccount: account, Asset: checkout.NativeAsset, MemoType: checkout.MemoMuxed, Memo: "1234567890123"}
	p, err := ForSession(s, 10_000_000, network.PublicNetworkPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.Destination, "M") || !strkey.IsValidMuxedAccountEd25519PublicKey(p.Destination) {
		t.Fatalf("destination %q: want an M-address", p.Destination)
	}
	u := p.String()
	if strings.Contains(u, "memo") {
		t.Errorf("muxed pay request carries a memo: %s", u)
	}
	// The M-address decodes back to the account and the memo.
	raw, err := strkey.DecodeMuxedAccount(p.Destination)
	if err != nil {
		t.Fatal(err)
	}
	if raw.ID() != 1234567890123 {
		t.Errorf("muxed id %d, want 1234567890123", raw.ID())
	}
	if g, _ := raw.AccountID(); g != account {
		t.Errorf("muxed account %s, want %s", g, account)
	}

	s.Memo = "007"
	if _, err := ForSession(s, 1, network.PublicNetworkPassphrase); err == nil {
		t.Error("a non-canonical muxed id was accepted")
	}
}

func TestEscaping(t *testing.T) {
	kp := keypair.MustRandom()
	p := Pay{Destination: kp.Address(), Message: "pay a+b & c=d/é", Memo: "x y", MemoType: MemoTypeText, NetworkPassphrase: network.PublicNetworkPassphrase}
	s := p.String()
	if strings.ContainsAny(strings.TrimPrefix(s, Scheme), " +") {
		t.Errorf("unescaped space or plus in %s", s)
	}
	q, err := url.ParseQuery(strings.TrimPrefix(s, Scheme))
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("msg") != p.Message || q.Get("memo") != "x y" {
		t.Errorf("round trip: msg %q memo %q", q.Get("msg"), q.Get("memo"))
	}
}
