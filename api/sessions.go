package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/mux"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

// Session creation defaults and limits.
const (
	// DefaultExpiresIn is a session's lifetime when the request names none.
	DefaultExpiresIn = time.Hour
	// maxURLLen bounds success_url and cancel_url.
	maxURLLen = 2048
	// memoAttempts bounds the draws of a fresh memo when one is taken.
	memoAttempts = 5
)

// sessionCreateRequest is the body of POST /v1/checkout/sessions. Pointers
// tell a missing field from a zero one.
type sessionCreateRequest struct {
	Amount     *string           `json:"amount"`
	Asset      *string           `json:"asset"`
	ExpiresIn  *int64            `json:"expires_in"`
	MemoType   *string           `json:"memo_type"`
	Metadata   map[string]string `json:"metadata"`
	SuccessURL *string           `json:"success_url"`
	CancelURL  *string           `json:"cancel_url"`
}

// params validates the request, field by field, naming the first bad one.
func (req sessionCreateRequest) params(merchant checkout.Merchant) (checkout.SessionParams, error) {
	p := checkout.SessionParams{
		MerchantID:       merchant.ID,
		ReceivingAccount: merchant.Account,
		ExpiresIn:        DefaultExpiresIn,
		MemoType:         checkout.MemoText,
		Metadata:         req.Metadata,
	}
	if req.Amount == nil {
		return p, checkout.InvalidParam("amount", "parameter_missing", "amount is required, as a decimal string such as \"12.50\"")
	}
	a, err := checkout.ParseAmount(*req.Amount)
	if err != nil {
		return p, checkout.InvalidParam("amount", "amount_invalid", "%s", err)
	}
	if a <= 0 {
		return p, checkout.InvalidParam("amount", "amount_invalid", "amount must be greater than zero")
	}
	p.Amount = a
	if req.Asset == nil {
		return p, checkout.InvalidParam("asset", "parameter_missing", "asset is required: XLM or CODE:ISSUER")
	}
	asset, err := checkout.ParseAsset(*req.Asset)
	if err != nil {
		return p, checkout.InvalidParam("asset", "asset_invalid", "%s", err)
	}
	if asset.String() != *req.Asset {
		return p, checkout.InvalidParam("asset", "asset_invalid", "asset %q: write it as %q", *req.Asset, asset.String())
	}
	p.Asset = asset
	if req.ExpiresIn != nil {
		secs := *req.ExpiresIn
		if secs < int64(checkout.MinExpiresIn/time.Second) || secs > int64(checkout.MaxExpiresIn/time.Second) {
			return p, checkout.InvalidParam("expires_in", "expires_in_invalid", "expires_in must be between %d and %d seconds",
				int64(checkout.MinExpiresIn/time.Second), int64(checkout.MaxExpiresIn/time.Second))
		}
		p.ExpiresIn = time.Duration(secs) * time.Second
	}
	if req.MemoType != nil {
		switch t := checkout.MemoType(*req.MemoType); t {
		case checkout.MemoText, checkout.MemoID, checkout.MemoMuxed:
			p.MemoType = t
		default:
			return p, checkout.InvalidParam("memo_type", "memo_type_invalid", "memo_type must be text, id or muxed")
		}
	}
	if err := checkout.ValidateMetadata(req.Metadata); err != nil {
		return p, err
	}
	for _, u := range []struct {
		param string
		value *string
		dst   *string
	}{{"success_url", req.SuccessURL, &p.SuccessURL}, {"cancel_url", req.CancelURL, &p.CancelURL}} {
		if u.value == nil {
			continue
		}
		if err := validateURL(u.param, *u.value); err != nil {
			return p, err
		}
		*u.dst = *u.value
	}
	return p, nil
}

func validateURL(param, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || len(raw) > maxURLLen || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return checkout.InvalidParam(param, "url_invalid", "%s must be an absolute http(s) URL of at most %d bytes", param, maxURLLen)
	}
	return nil
}

// handleSessionCreate creates a checkout session: POST /v1/checkout/sessions.
func (s *Server) handleSessionCreate(w http.ResponseWriter, r *http.Request) {
	info := requestInfoFrom(r.Context())
	var req sessionCreateRequest
	if err := decodeJSON(r, &req, false); err != nil {
		s.Error(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	merchant, err := s.auth.merchant(ctx, s.cfg.Store, info.merchant)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	params, err := req.params(merchant)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	// The watcher must be listening before anyone can learn where to pay.
	if err := s.cfg.Watchers.Ensure(ctx, merchant.Account); err != nil {
		s.Error(w, r, unavailable("the Stellar network cannot be reached; retry later", err))
		return
	}
	sess, body, err := s.createSession(ctx, params, info.pending)
	if errors.Is(err, errKeyTaken) {
		return // idempotentCreate answers it as a retry
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.metrics.sessionCreated()
	info.logger = info.logger.With("session_id", sess.ID)
	info.logger.Debug("session created", "amount", sess.Amount.String(), "asset", sess.Asset.String())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(body)
}

// createSession inserts a new session through the group commit, drawing a
// new memo while the drawn one is taken on the account, and returns it with
// its response body. With pending, the body is stored under the pending
// Idempotency-Key in the same transaction; if the key turns out to be
// taken, nothing is written, pending.taken is set, and the error is
// errKeyTaken.
func (s *Server) createSession(ctx context.Context, p checkout.SessionParams, pending *pendingKey) (checkout.Session, []byte, error) {
	var err error
	for range memoAttempts {
		var sess checkout.Session
		sess, err = checkout.NewSession(p, s.cfg.Clock())
		if err != nil {
			return checkout.Session{}, nil, err
		}
		var body []byte
		if body, err = s.sessionBody(sess); err != nil {
			return checkout.Session{}, nil, err
		}
		row := persistence.SessionCreate{Session: sess}
		if pending != nil {
			row.Idempotency = &persistence.IdempotentResponse{Key: pending.key, RequestHash: pending.hash,
				Status: http.StatusCreated, Body: body, CreatedAt: pending.at}
		}
		err = s.creates.create(ctx, row)
		switch {
		case err == nil:
			if pending != nil {
				pending.stored = true
			}
			return sess, body, nil
		case errors.Is(err, persistence.ErrIdempotencyKeyTaken):
			pending.taken = true
			return checkout.Session{}, nil, errKeyTaken
		case !errors.Is(err, checkout.ErrMemoTaken):
			return checkout.Session{}, nil, err
		}
	}
	return checkout.Session{}, nil, fmt.Errorf("no free memo after %d draws: %v", memoAttempts, err)
}

// sessionBody is the JSON body of a session answer, byte for byte as
// writeJSON writes it.
func (s *Server) sessionBody(sess checkout.Session) ([]byte, error) {
	o, err := s.sessionObject(sess)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(o)
	if err != nil {
		return nil, fmt.Errorf("encode session %s: %w", sess.ID, err)
	}
	return append(b, '\n'), nil
}

// unavailable is a 503 whose cause is logged, not sent.
func unavailable(message string, cause error) error {
	return fmt.Errorf("%v: %w", cause, &checkout.Error{Code: checkout.EINTERNAL, Reason: reasonServiceUnavailable, Message: message})
}

// sessionFromPath loads the merchant's session named in the path. Any other
// merchant's session is not found, exactly as a missing one is.
func (s *Server) sessionFromPath(ctx context.Context, r *http.Request) (checkout.Session, error) {
	id := mux.Vars(r)["id"]
	if !checkout.HasPrefix(id, checkout.PrefixSession) {
		return checkout.Session{}, checkout.ErrNotFound
	}
	// Every later line about the request, the access log's too, names it.
	info := requestInfoFrom(ctx)
	info.logger = info.logger.With("session_id", id)
	return s.cfg.Store.GetMerchantSession(ctx, requestInfoFrom(ctx).merchant, id)
}

// handleSessionGet returns a session: GET /v1/checkout/sessions/{id}.
func (s *Server) handleSessionGet(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	sess, err := s.sessionFromPath(ctx, r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	o, err := s.sessionObject(sess)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, o)
}

// handleSessionList lists sessions: GET /v1/checkout/sessions.
func (s *Server) handleSessionList(w http.ResponseWriter, r *http.Request) {
	p, err := listParams(r, "status", func(v string) bool {
		switch checkout.Status(v) {
		case checkout.StatusOpen, checkout.StatusComplete, checkout.StatusExpired, checkout.StatusCanceled:
			return true
		}
		return false
	}, checkout.PrefixSession)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	sessions, more, err := s.cfg.Store.ListSessions(ctx, p)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	list := listObject[sessionObject]{Object: "list", Data: make([]sessionObject, 0, len(sessions)), HasMore: more, URL: "/v1/checkout/sessions"}
	for _, sess := range sessions {
		o, err := s.sessionObject(sess)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		list.Data = append(list.Data, o)
	}
	s.writeJSON(w, r, http.StatusOK, list)
}

// handleSessionCancel cancels an open session through its actor:
// POST /v1/checkout/sessions/{id}/cancel. Canceling a canceled session
// returns it unchanged; any other closed session is 409 session_not_open
// with the session as it is.
func (s *Server) handleSessionCancel(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if err := decodeJSON(r, &req, true); err != nil {
		s.Error(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	sess, err := s.sessionFromPath(ctx, r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	after, err := s.cfg.Sessions.Cancel(sess.ID)
	if errors.Is(err, checkout.ErrSessionNotOpen) {
		if after.ID == "" {
			after = sess
		}
		o, oerr := s.sessionObject(after)
		if oerr != nil {
			s.Error(w, r, oerr)
			return
		}
		s.errorWith(w, r, err, map[string]any{"session": o})
		return
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	o, err := s.sessionObject(after)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.writeJSON(w, r, http.StatusOK, o)
}

// handleSessionPayments lists every payment recorded for a session, with
// its disposition: GET /v1/checkout/sessions/{id}/payments.
func (s *Server) handleSessionPayments(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.CallTimeout)
	defer cancel()
	sess, err := s.sessionFromPath(ctx, r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	payments, err := s.cfg.Store.SessionPayments(ctx, sess.ID)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	list := listObject[paymentObject]{Object: "list", Data: make([]paymentObject, 0, len(payments)),
		URL: "/v1/checkout/sessions/" + sess.ID + "/payments"}
	for _, p := range payments {
		list.Data = append(list.Data, paymentObjectOf(p))
	}
	s.writeJSON(w, r, http.StatusOK, list)
}

// Page sizes.
const (
	defaultLimit = 10
	maxLimit     = 100
)

// listParams reads the query of a list: limit, starting_after,
// ending_before, and the filter named filterName, which valid checks.
func listParams(r *http.Request, filterName string, valid func(string) bool, idPrefix string) (persistence.ListParams, error) {
	q := r.URL.Query()
	p := persistence.ListParams{MerchantID: requestInfoFrom(r.Context()).merchant, Limit: defaultLimit}
	for name := range q {
		switch name {
		case "limit", "starting_after", "ending_before", filterName:
		default:
			return p, checkout.InvalidParam(name, "parameter_unknown", "unknown parameter %q", name)
		}
	}
	if v, ok := q["limit"]; ok {
		n, err := parseLimit(v[0])
		if err != nil {
			return p, err
		}
		p.Limit = n
	}
	p.Filter = q.Get(filterName)
	if _, ok := q[filterName]; ok && !valid(p.Filter) {
		return p, checkout.InvalidParam(filterName, filterName+"_invalid", "%s %q is not one of the documented values", filterName, p.Filter)
	}
	p.StartingAfter, p.EndingBefore = q.Get("starting_after"), q.Get("ending_before")
	if p.StartingAfter != "" && p.EndingBefore != "" {
		return p, checkout.InvalidParam("ending_before", "parameters_exclusive", "starting_after and ending_before cannot be used together")
	}
	for param, id := range map[string]string{"starting_after": p.StartingAfter, "ending_before": p.EndingBefore} {
		if _, ok := q[param]; ok && !checkout.HasPrefix(id, idPrefix) {
			return p, checkout.InvalidParam(param, "resource_missing", "no such object: %q", id)
		}
	}
	return p, nil
}

func parseLimit(v string) (int, error) {
	var n int
	_, err := fmt.Sscan(v, &n)
	if err != nil || fmt.Sprint(n) != v || n < 1 || n > maxLimit {
		return 0, checkout.InvalidParam("limit", "limit_invalid", "limit must be an integer from 1 to %d", maxLimit)
	}
	return n, nil
}
