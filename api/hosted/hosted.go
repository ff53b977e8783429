// Package hosted serves the public, customer-facing side of a checkout
// session: the hosted checkout page at GET /c/{id} and the small status
// endpoint the page polls, GET /v1/public/sessions/{id}/status.
//
// The page is server-rendered html/template with its CSS and a little
// vanilla JavaScript inlined and pinned by hash in a Content-Security-Policy;
// it works without JavaScript and, with it, updates as payments arrive and
// redirects to the session's success_url on completion. The QR code of the
// session's SEP-7 URI is drawn in Go as inline SVG.
//
// In development (checkoutd dev) the handler can also pay a session from a
// sandbox wallet, POST /c/{id}/sandbox-pay, but only when Config.SandboxPayer
// is set; production leaves it nil and the route does not exist.
package hosted

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	checkout "github.com/checkoutd/checkoutd"
)

// Store is what the hosted pages read. *persistence.DB implements it.
type Store interface {
	GetSession(ctx context.Context, id string) (checkout.Session, error)
	GetMerchant(ctx context.Context, id string) (checkout.Merchant, error)
}

// SandboxPayer pays a session on the sandbox network: it builds, signs and
// submits a payment of amount to the session's destination with its memo,
// and returns the transaction hash once the ledger has closed.
type SandboxPayer interface {
	PaySession(ctx context.Context, s checkout.Session, amount checkout.Amount) (txHash string, err error)
}

// Config configures the hosted pages.
type Config struct {
	// Store loads sessions and merchants. Required.
	Store Store
	// NetworkPassphrase goes into the SEP-7 URI. Required.
	NetworkPassphrase string
	// Logger receives internal errors, which are never shown to customers.
	// Default: discard.
	Logger *slog.Logger
	// Clock is the time source. Default time.Now.
	Clock func() time.Time
	// PollInterval is how often an open page polls for its status.
	// Default 2 s.
	PollInterval time.Duration
	// SandboxPayer, when set, adds a "Pay with sandbox wallet" button and
	// POST /c/{id}/sandbox-pay. Only checkoutd dev sets it; it must stay nil
	// in production.
	SandboxPayer SandboxPayer
	// SandboxPayTimeout bounds one sandbox payment. Default 30 s.
	SandboxPayTimeout time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Store == nil {
		return c, errors.New("hosted config: a store is required")
	}
	if c.NetworkPassphrase == "" {
		return c, errors.New("hosted config: a network passphrase is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 2 * time.Second
	}
	if c.SandboxPayTimeout <= 0 {
		c.SandboxPayTimeout = 30 * time.Second
	}
	return c, nil
}

// Handler serves the hosted pages. Mount it for each of Patterns, or for
// the prefixes /c/ and /v1/public/.
type Handler struct {
	cfg  Config
	mux  *http.ServeMux
	tmpl *templates
	csp  string
}

// New validates cfg and returns the handler.
func New(cfg Config) (*Handler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tmpl, err := parseTemplates()
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, tmpl: tmpl}
	h.csp = "default-src 'none'; " +
		"script-src " + hashSource(pageJS) + "; " +
		"style-src " + hashSource(pageCSS) + "; " +
		"img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	h.mux = http.NewServeMux()
	h.mux.HandleFunc("GET /c/{id}", h.handlePageShow)
	h.mux.HandleFunc("GET /v1/public/sessions/{id}/status", h.handleStatusShow)
	if cfg.SandboxPayer != nil {
		h.mux.HandleFunc("POST /c/{id}/sandbox-pay", h.handleSandboxPayCreate)
	}
	h.mux.HandleFunc("/", h.handleNotFound)
	return h, nil
}

// Patterns returns the http.ServeMux patterns the handler serves, for
// mounting it route by route.
func (h *Handler) Patterns() []string {
	p := []string{"GET /c/{id}", "GET /v1/public/sessions/{id}/status"}
	if h.cfg.SandboxPayer != nil {
		p = append(p, "POST /c/{id}/sandbox-pay")
	}
	return p
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", h.csp)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	// The page URL names the session; don't hand it to success_url's site.
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

// loadSession returns the session named by the request's {id}, or
// checkout.ErrNotFound for an id that is not a session id at all.
func (h *Handler) loadSession(r *http.Request) (checkout.Session, error) {
	id := r.PathValue("id")
	if !checkout.HasPrefix(id, checkout.PrefixSession) {
		return checkout.Session{}, checkout.ErrNotFound
	}
	return h.cfg.Store.GetSession(r.Context(), id)
}

func isNotFound(err error) bool { return checkout.ErrorCode(err) == checkout.ENOTFOUND }

// hashSource is the CSP source expression that allows exactly one inline
// script or style.
func hashSource(body string) string {
	sum := sha256.Sum256([]byte(body))
	return fmt.Sprintf("'sha256-%s'", base64.StdEncoding.EncodeToString(sum[:]))
}
