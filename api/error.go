package api

import (
	"encoding/json"
	"errors"
	"net/http"

	checkout "github.com/checkoutd/checkoutd"
)

// Error types, the "type" of every error object.
const (
	typeInvalidRequest = "invalid_request_error"
	typeAuthentication = "authentication_error"
	typeNotFound       = "not_found"
	typeConflict       = "conflict"
	typeRateLimited    = "rate_limited"
	typeAPI            = "api_error"
)

// Reasons that change the HTTP status of their code. They are not domain
// errors, only HTTP ones.
const (
	reasonBodyTooLarge       = "body_too_large"
	reasonUnsupportedMedia   = "unsupported_media_type"
	reasonMethodNotAllowed   = "method_not_allowed"
	reasonServiceUnavailable = "service_unavailable"
)

// errorObject is the one shape of every error the API sends.
type errorObject struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
}

type errorBody struct {
	Error errorObject `json:"error"`
}

// errorResponse turns any error into the HTTP status and error object sent
// for it. It is the only place where domain errors meet HTTP. An error that
// is not a *checkout.Error is internal: its text stays in the logs, and the
// client reads a generic message with the request id.
func errorResponse(err error, requestID string) (int, errorObject) {
	var e *checkout.Error
	if !errors.As(err, &e) || e.Code == checkout.EINTERNAL && e.Reason != reasonServiceUnavailable {
		return http.StatusInternalServerError, errorObject{Type: typeAPI, Code: "internal_error",
			Message: "an internal error occurred; quote request id " + requestID + " when reporting it"}
	}
	o := errorObject{Code: e.Reason, Message: e.Message, Param: e.Param}
	var status int
	switch e.Code {
	case checkout.EINVALID:
		status, o.Type = http.StatusBadRequest, typeInvalidRequest
		switch e.Reason {
		case reasonBodyTooLarge:
			status = http.StatusRequestEntityTooLarge
		case reasonUnsupportedMedia:
			status = http.StatusUnsupportedMediaType
		case reasonMethodNotAllowed:
			status = http.StatusMethodNotAllowed
		}
	case checkout.EUNAUTHORIZED:
		status, o.Type = http.StatusUnauthorized, typeAuthentication
	case checkout.ENOTFOUND:
		status, o.Type = http.StatusNotFound, typeNotFound
	case checkout.ECONFLICT:
		status, o.Type = http.StatusConflict, typeConflict
	case checkout.ERATELIMITED:
		status, o.Type = http.StatusTooManyRequests, typeRateLimited
	case checkout.ENOTIMPLEMENTED:
		status, o.Type = http.StatusNotImplemented, typeAPI
	default: // EINTERNAL with reasonServiceUnavailable
		status, o.Type = http.StatusServiceUnavailable, typeAPI
	}
	if o.Code == "" {
		o.Code = e.Code
	}
	return status, o
}

// Error writes err as the API's error object, and logs internal causes.
func (s *Server) Error(w http.ResponseWriter, r *http.Request, err error) {
	s.errorWith(w, r, err, nil)
}

// errorWith writes err's error object with extra top-level fields beside
// "error", such as the session a refused cancel left as it was.
func (s *Server) errorWith(w http.ResponseWriter, r *http.Request, err error, extra map[string]any) {
	info := requestInfoFrom(r.Context())
	status, o := errorResponse(err, info.id)
	if status >= 500 {
		info.logger.Error("request failed", "err", err, "status", status)
	} else {
		info.logger.Debug("request refused", "err", err, "status", status)
	}
	body := map[string]any{"error": o}
	for k, v := range extra {
		body[k] = v
	}
	s.writeJSON(w, r, status, body)
}

// writeJSON writes v as the JSON response with the given status.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		requestInfoFrom(r.Context()).logger.Error("encode response", "err", err)
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errorBody{Error: errorObject{Type: typeAPI, Code: "internal_error", Message: "an internal error occurred"}})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
