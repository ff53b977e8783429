package hosted

import (
	"context"
	"fmt"
	"net/http"

	"github.com/stellar/go-stellar-sdk/keypair"
	"github.com/stellar/go-stellar-sdk/txnbuild"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/stellar/sandbox/wallet"
	"github.com/checkoutd/checkoutd/stellar/sep7"
)

// handleSandboxPayCreate pays what is left of an open session from the dev
// sandbox wallet. It exists only when Config.SandboxPayer is set.
func (h *Handler) handleSandboxPayCreate(w http.ResponseWriter, r *http.Request) {
	// A page on another site must not make this server pay; browsers say
	// where a request comes from, and curl says nothing.
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		writeError(w, http.StatusForbidden, "forbidden", "sandbox payments come from the checkout page only")
		return
	}
	s, err := h.loadSession(r)
	switch {
	case isNotFound(err):
		writeError(w, http.StatusNotFound, "not_found", "no such checkout session")
		return
	case err != nil:
		h.cfg.Logger.Error("sandbox pay", "session_id", r.PathValue("id"), "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	remaining := s.Amount - s.AmountReceived
	if !s.IsOpen() || remaining <= 0 {
		writeError(w, http.StatusConflict, "session_not_open", "the session is "+string(s.Status)+": nothing to pay")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.SandboxPayTimeout)
	defer cancel()
	hash, err := h.cfg.SandboxPayer.PaySession(ctx, s, remaining)
	if err != nil {
		// Development only: the cause helps more than it could leak.
		h.cfg.Logger.Warn("sandbox pay", "session_id", s.ID, "err", err)
		writeError(w, http.StatusBadGateway, "sandbox_payment_failed", err.Error())
		return
	}
	h.cfg.Logger.Info("sandbox pay", "session_id", s.ID, "amount", remaining.String(), "tx", hash)
	writeJSON(w, http.StatusOK, struct {
		TransactionHash string `json:"transaction_hash"`
		Amount          string `json:"amount"`
	}{hash, remaining.String()})
}

// WalletPayer is a SandboxPayer that pays from one funded sandbox keypair
// through a wallet.Wallet, with real signed transactions.
type WalletPayer struct {
	Wallet *wallet.Wallet
	// Customer is the paying account's keypair. It holds lumens only.
	Customer *keypair.Full
}

// PaySession implements SandboxPayer: it pays amount to the session's
// destination, with its memo unless the destination is muxed.
func (p WalletPayer) PaySession(ctx context.Context, s checkout.Session, amount checkout.Amount) (string, error) {
	if !s.Asset.IsNative() {
		return "", fmt.Errorf("the sandbox wallet holds only XLM; this session wants %s", s.Asset.Code)
	}
	dest, err := sep7.Destination(s)
	if err != nil {
		return "", err
	}
	var memo txnbuild.Memo
	switch s.MemoType {
	case checkout.MemoText:
		memo = txnbuild.MemoText(s.Memo)
	case checkout.MemoID:
		var id uint64
		if _, err := fmt.Sscan(s.Memo, &id); err != nil {
			return "", fmt.Errorf("session %s id memo %q: %w", s.ID, s.Memo, err)
		}
		memo = txnbuild.MemoID(id)
	}
	tx, err := p.Wallet.Pay(ctx, p.Customer, dest, txnbuild.NativeAsset{}, amount.String(), memo)
	if err != nil {
		return "", err
	}
	return tx.Hash, nil
}
