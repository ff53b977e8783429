package hosted

import (
	"encoding/json"
	"net/http"
	"time"

	checkout "github.com/checkoutd/checkoutd"
)

// statusObject is all the public status endpoint tells anyone who knows a
// session id: no metadata, no merchant, no account, no memo, and no URL but
// success_url, which is empty until the session is complete.
type statusObject struct {
	Status         checkout.Status `json:"status"`
	PaymentStatus  string          `json:"payment_status"`
	Amount         string          `json:"amount"`
	AmountReceived string          `json:"amount_received"`
	Asset          string          `json:"asset"`
	ExpiresAt      string          `json:"expires_at"`
	SuccessURL     string          `json:"success_url"`
}

func statusObjectOf(s checkout.Session) statusObject {
	o := statusObject{
		Status:         s.Status,
		PaymentStatus:  string(s.PaymentStatus),
		Amount:         s.Amount.String(),
		AmountReceived: s.AmountReceived.String(),
		Asset:          s.Asset.String(),
		ExpiresAt:      s.ExpiresAt.UTC().Format(time.RFC3339),
	}
	if s.Status == checkout.StatusComplete {
		o.SuccessURL = s.SuccessURL
	}
	return o
}

func (h *Handler) handleStatusShow(w http.ResponseWriter, r *http.Request) {
	s, err := h.loadSession(r)
	switch {
	case isNotFound(err):
		writeError(w, http.StatusNotFound, "not_found", "no such checkout session")
		return
	case err != nil:
		h.cfg.Logger.Error("public session status", "session_id", r.PathValue("id"), "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
		return
	}
	writeJSON(w, http.StatusOK, statusObjectOf(s))
}

// errorObject is the error body of the JSON endpoints, shaped like the
// merchant API's.
type errorObject struct {
	Error struct {
		Type    string `json:"type"`
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var e errorObject
	e.Error.Type, e.Error.Code, e.Error.Message = errorType(status), code, msg
	writeJSON(w, status, e)
}

// errorType is the merchant API's error type for an HTTP status.
func errorType(status int) string {
	switch {
	case status == http.StatusNotFound:
		return "not_found"
	case status == http.StatusConflict:
		return "conflict"
	case status >= 500:
		return "api_error"
	default:
		return "invalid_request_error"
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
