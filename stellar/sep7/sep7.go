// Package sep7 builds SEP-7 payment request URIs (web+stellar:pay?...), the
// links and QR codes a Stellar wallet opens to pay a checkout session.
//
// See https://github.com/stellar/stellar-protocol/blob/master/ecosystem/sep-0007.md.
package sep7

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/stellar/go-stellar-sdk/network"
	"github.com/stellar/go-stellar-sdk/xdr"

	checkout "github.com/checkoutd/checkoutd"
)

// Scheme is the prefix of every payment request URI.
const Scheme = "web+stellar:pay?"

// Pay is a SEP-7 pay request.
type Pay struct {
	// Destination is a G... or M... address.
	Destination string
	// Amount is the amount to request; zero leaves it to the payer.
	Amount checkout.Amount
	// Asset is what to pay; the zero value and XLM mean lumens.
	Asset checkout.Asset
	// Memo and MemoType name the payment; MemoType is MEMO_TEXT or MEMO_ID.
	Memo     string
	MemoType string
	// NetworkPassphrase is omitted for the public network, as SEP-7 allows.
	NetworkPassphrase string
	// Message is shown to the payer (at most 300 characters).
	Message string
}

// SEP-7 memo types.
const (
	MemoTypeText = "MEMO_TEXT"
	MemoTypeID   = "MEMO_ID"
)

// String returns the URI. Parameters come in a fixed order and values are
// percent-encoded, spaces as %20, as SEP-7's examples do. The amount has
// seven decimals, as Horizon writes amounts ("12.5000000").
func (p Pay) String() string {
	var b strings.Builder
	b.WriteString(Scheme)
	add := func(k, v string) {
		if v == "" {
			return
		}
		if b.Len() > len(Scheme) {
			b.WriteByte('&')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(escape(v))
	}
	add("destination", p.Destination)
	if p.Amount > 0 {
		add("amount", p.Amount.String())
	}
	if p.Asset.Code != "" && !p.Asset.IsNative() {
		add("asset_code", p.Asset.Code)
		add("asset_issuer", p.Asset.Issuer)
	}
	if p.Memo != "" {
		add("memo", p.Memo)
		add("memo_type", p.MemoType)
	}
	if p.NetworkPassphrase != network.PublicNetworkPassphrase {
		add("network_passphrase", p.NetworkPassphrase)
	}
	add("msg", p.Message)
	return b.String()
}

// escape percent-encodes a query value; QueryEscape writes spaces as '+',
// which SEP-7 does not (a literal '+' is escaped as %2B, so the swap is safe).
func escape(v string) string {
	return strings.ReplaceAll(url.QueryEscape(v), "+", "%20")
}

// ForSession returns the pay request for amount of session s on the network
// with the given passphrase. A muxed session is paid to its M-address with
// no memo; a text or id session to its account with its memo.
func ForSession(s checkout.Session, amount checkout.Amount, passphrase string) (Pay, error) {
	p := Pay{Amount: amount, Asset: s.Asset, NetworkPassphrase: passphrase}
	dest, err := Destination(s)
	if err != nil {
		return Pay{}, err
	}
	p.Destination = dest
	switch s.MemoType {
	case checkout.MemoText:
		p.Memo, p.MemoType = s.Memo, MemoTypeText
	case checkout.MemoID:
		p.Memo, p.MemoType = s.Memo, MemoTypeID
	}
	return p, nil
}

// Destination returns the address a customer pays session s at: its
// receiving account, or for a muxed session the M-address whose id is the
// session's memo.
func Destination(s checkout.Session) (string, error) {
	if s.MemoType != checkout.MemoMuxed {
		return s.ReceivingAccount, nil
	}
	if err := checkout.ValidateMemo(s.MemoType, s.Memo); err != nil {
		return "", fmt.Errorf("session %s: %w", s.ID, err)
	}
	id, _ := strconv.ParseUint(s.Memo, 10, 64) // ValidateMemo checked it.
	m, err := xdr.MuxedAccountFromAccountId(s.ReceivingAccount, id)
	if err != nil {
		return "", fmt.Errorf("session %s muxed address: %w", s.ID, err)
	}
	addr, err := m.GetAddress()
	if err != nil {
		return "", fmt.Errorf("session %s muxed address: %w", s.ID, err)
	}
	return addr, nil
}
