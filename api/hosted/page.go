package hosted

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"
	"github.com/stellar/go-stellar-sdk/network"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/stellar/sep7"
)

//go:embed assets
var assets embed.FS

// The inline script and style, pinned by hash in the CSP. They are read
// once; the embedded files never change at run time.
var (
	pageJS  = mustAsset("assets/page.js")
	pageCSS = mustAsset("assets/page.css")
)

func mustAsset(name string) string {
	b, err := assets.ReadFile(name)
	if err != nil {
		panic(fmt.Sprintf("hosted: embedded %s: %v", name, err)) // a build error, not a runtime one
	}
	return string(b)
}

type templates struct {
	page     *template.Template
	notFound *template.Template
	failure  *template.Template
}

func parseTemplates() (*templates, error) {
	var t templates
	for _, p := range []struct {
		dst  **template.Template
		name string
	}{{&t.page, "page.html"}, {&t.notFound, "notfound.html"}, {&t.failure, "error.html"}} {
		tt, err := template.New("layout.html").ParseFS(assets, "assets/layout.html", "assets/"+p.name)
		if err != nil {
			return nil, fmt.Errorf("hosted templates: %w", err)
		}
		*p.dst = tt
	}
	return &t, nil
}

// layoutView is what every page's layout needs.
type layoutView struct {
	Title  string
	Style  template.CSS
	Script template.JS // empty on pages without behaviour
}

// pageView is the checkout page.
type pageView struct {
	layoutView
	ID            string
	MerchantName  string
	Amount        string // for display: "12.50"
	AssetCode     string
	AssetIssuer   string // empty for lumens
	Destination   string
	Memo          string
	MemoTypeLabel string // "text" or "ID"
	Muxed         bool
	QR            template.HTML
	PayURI        template.URL
	Status        string // open, complete, expired, canceled
	PaymentStatus string
	Received      string // for display
	Remaining     string // for display
	ProgressValue int64
	ProgressMax   int64
	ExpiresAt     string // RFC 3339
	ServerNow     string // RFC 3339, so the countdown survives a wrong client clock
	StatusURL     string
	SandboxPayURL string // empty unless the dev sandbox wallet is on
	SuccessURL    string // only once complete
	PollMillis    int64
	Network       string // "", "testnet" or a passphrase, for the badge
}

func (h *Handler) handlePageShow(w http.ResponseWriter, r *http.Request) {
	s, err := h.loadSession(r)
	if isNotFound(err) {
		h.renderNotFound(w)
		return
	}
	if err != nil {
		h.renderFailure(w, r, err)
		return
	}
	m, err := h.cfg.Store.GetMerchant(r.Context(), s.MerchantID)
	if err != nil {
		h.renderFailure(w, r, err)
		return
	}
	v, err := h.pageView(s, m)
	if err != nil {
		h.renderFailure(w, r, err)
		return
	}
	h.render(w, r, http.StatusOK, h.tmpl.page, v)
}

func (h *Handler) pageView(s checkout.Session, m checkout.Merchant) (pageView, error) {
	remaining := max(s.Amount-s.AmountReceived, 0)
	// The QR asks for what is still owed, which before any payment is the
	// session's amount: the same URI as the session's payment_uri.
	ask := remaining
	if ask == 0 {
		ask = s.Amount
	}
	pay, err := sep7.ForSession(s, ask, h.cfg.NetworkPassphrase)
	if err != nil {
		return pageView{}, err
	}
	uri := pay.String()
	qr, err := qrSVG(uri)
	if err != nil {
		return pageView{}, fmt.Errorf("session %s qr: %w", s.ID, err)
	}
	v := pageView{
		// #nosec G203 -- pageCSS and pageJS are constants embedded in the binary, not input.
		layoutView:    layoutView{Title: "Pay " + m.Name, Style: template.CSS(pageCSS), Script: template.JS(pageJS)},
		ID:            s.ID,
		MerchantName:  m.Name,
		Amount:        displayAmount(s.Amount),
		AssetCode:     s.Asset.Code,
		Destination:   pay.Destination,
		Memo:          s.Memo,
		Muxed:         s.MemoType == checkout.MemoMuxed,
		QR:            qr,
		PayURI:        template.URL(uri), // #nosec G203 -- a web+stellar: URI built by sep7 from validated fields, which html/template would otherwise refuse
		Status:        string(s.Status),
		PaymentStatus: string(s.PaymentStatus),
		Received:      displayAmount(s.AmountReceived),
		Remaining:     displayAmount(remaining),
		ProgressValue: min(int64(s.AmountReceived), int64(s.Amount)),
		ProgressMax:   int64(s.Amount),
		ExpiresAt:     s.ExpiresAt.UTC().Format(time.RFC3339),
		ServerNow:     h.cfg.Clock().UTC().Format(time.RFC3339),
		StatusURL:     "/v1/public/sessions/" + s.ID + "/status",
		PollMillis:    h.cfg.PollInterval.Milliseconds(),
	}
	if !s.Asset.IsNative() {
		v.AssetIssuer = s.Asset.Issuer
	}
	switch s.MemoType {
	case checkout.MemoText:
		v.MemoTypeLabel = "text"
	case checkout.MemoID:
		v.MemoTypeLabel = "ID"
	}
	if s.Status == checkout.StatusComplete {
		v.SuccessURL = s.SuccessURL
	}
	if h.cfg.SandboxPayer != nil && s.IsOpen() {
		v.SandboxPayURL = "/c/" + s.ID + "/sandbox-pay"
	}
	switch h.cfg.NetworkPassphrase {
	case network.PublicNetworkPassphrase:
	case network.TestNetworkPassphrase:
		v.Network = "Stellar testnet"
	default:
		v.Network = "Stellar test network"
	}
	if h.cfg.SandboxPayer != nil {
		v.Network = "Sandbox network: no real funds"
	}
	return v, nil
}

func (h *Handler) handleNotFound(w http.ResponseWriter, r *http.Request) {
	h.renderNotFound(w)
}

func (h *Handler) renderNotFound(w http.ResponseWriter) {
	v := layoutView{Title: "Checkout not found", Style: template.CSS(pageCSS)} // #nosec G203 -- a constant embedded in the binary
	h.render(w, nil, http.StatusNotFound, h.tmpl.notFound, v)
}

// renderFailure logs an internal error and shows a page that reveals none
// of it.
func (h *Handler) renderFailure(w http.ResponseWriter, r *http.Request, err error) {
	h.cfg.Logger.Error("hosted page", "session_id", r.PathValue("id"), "path", r.URL.Path, "err", err)
	v := layoutView{Title: "Something went wrong", Style: template.CSS(pageCSS)} // #nosec G203 -- a constant embedded in the binary
	h.render(w, nil, http.StatusInternalServerError, h.tmpl.failure, v)
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, t *template.Template, v any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		h.cfg.Logger.Error("hosted page: render", "template", t.Name(), "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// displayAmount writes an amount for people: at least two decimals, no
// trailing zeros beyond them ("12.50", "0.0000001").
func displayAmount(a checkout.Amount) string {
	s := strings.TrimRight(a.String(), "0")
	whole, frac, _ := strings.Cut(s, ".")
	for len(frac) < 2 {
		frac += "0"
	}
	return whole + "." + frac
}

// qrSVG draws the QR code of text as an inline SVG, one path of dark
// modules over a white square, with the standard four-module quiet zone.
func qrSVG(text string) (template.HTML, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return "", err
	}
	bits := q.Bitmap()
	n := len(bits)
	var path strings.Builder
	for y, row := range bits {
		for x := 0; x < n; {
			if !row[x] {
				x++
				continue
			}
			run := 1
			for x+run < n && row[x+run] {
				run++
			}
			fmt.Fprintf(&path, "M%d %dh%dv1h-%dz", x, y, run, run)
			x += run
		}
	}
	svg := fmt.Sprintf(`<svg class="qr-code" id="qr" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" `+
		`shape-rendering="crispEdges" role="img" aria-label="QR code of the payment request">`+
		`<rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="%s"/></svg>`, n, n, n, n, path.String())
	return template.HTML(svg), nil // #nosec G203 -- numbers and a path of M/h/v commands formatted here, no input
}
