package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

// memoClashStore authenticates one key and refuses the first memos drawn.
type memoClashStore struct {
	nopStore
	clashes  int
	attempts int
	created  []checkout.Session
}

func (s *memoClashStore) AuthenticateAPIKey(context.Context, string) (persistence.APIKey, error) {
	return persistence.APIKey{ID: "key_x", MerchantID: "mer_x"}, nil
}
func (s *memoClashStore) GetMerchant(context.Context, string) (checkout.Merchant, error) {
	return checkout.Merchant{ID: "mer_x", Account: "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7"}, nil
}
func (s *memoClashStore) CreateSessions(_ context.Context, rows []persistence.SessionCreate) []error {
	errs := make([]error, len(rows))
	for i, r := range rows {
		s.attempts++
		if s.attempts <= s.clashes {
			errs[i] = checkout.ErrMemoTaken
			continue
		}
		s.created = append(s.created, r.Session)
	}
	return errs
}

func TestSessionCreateRetriesTakenMemo(t *testing.T) {
	for _, tc := range []struct {
		clashes, wantStatus int
	}{{0, http.StatusCreated}, {2, http.StatusCreated}, {memoAttempts, http.StatusInternalServerError}} {
		store := &memoClashStore{clashes: tc.clashes}
		s, err := New(Config{Store: store, Sessions: nopSessions{}, Watchers: nopWatchers{}, PublicURL: "http://x"})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/v1/checkout/sessions", strings.NewReader(`{"amount":"1","asset":"XLM"}`))
		req.Header.Set("Authorization", "Bearer "+validLookingKey)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		s.Close()
		if rec.Code != tc.wantStatus {
			t.Fatalf("%d clashes: status %d, want %d: %s", tc.clashes, rec.Code, tc.wantStatus, rec.Body)
		}
		if tc.wantStatus == http.StatusCreated && (len(store.created) != 1 || store.attempts != tc.clashes+1) {
			t.Fatalf("%d clashes: %d attempts, %d created", tc.clashes, store.attempts, len(store.created))
		}
		if tc.wantStatus == http.StatusInternalServerError && strings.Contains(rec.Body.String(), "memo") {
			t.Fatalf("the internal cause leaked: %s", rec.Body)
		}
	}
}

const validLookingKey = "sk_test_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// TestErrorResponse checks the one mapping of domain errors to HTTP.
func TestErrorResponse(t *testing.T) {
	for _, tc := range []struct {
		err          error
		status       int
		typ, code    string
		leaksMessage bool
	}{
		{checkout.InvalidParam("amount", "amount_invalid", "bad"), 400, typeInvalidRequest, "amount_invalid", true},
		{errBodyTooLarge, 413, typeInvalidRequest, reasonBodyTooLarge, true},
		{&checkout.Error{Code: checkout.EINVALID, Reason: reasonUnsupportedMedia}, 415, typeInvalidRequest, reasonUnsupportedMedia, true},
		{&checkout.Error{Code: checkout.EINVALID, Reason: reasonMethodNotAllowed}, 405, typeInvalidRequest, reasonMethodNotAllowed, true},
		{persistence.ErrAPIKeyInvalid, 401, typeAuthentication, "api_key_invalid", true},
		{checkout.ErrNotFound, 404, typeNotFound, "resource_missing", true},
		{checkout.ErrSessionNotOpen, 409, typeConflict, "session_not_open", true},
		{&checkout.Error{Code: checkout.ERATELIMITED, Reason: "rate_limited"}, 429, typeRateLimited, "rate_limited", true},
		{unavailable("try later", errors.New("dial tcp: secret host")), 503, typeAPI, reasonServiceUnavailable, false},
		{errors.New("pq: secret internals"), 500, typeAPI, "internal_error", false},
		{&checkout.Error{Code: checkout.EINTERNAL, Reason: "x", Message: "secret internals"}, 500, typeAPI, "internal_error", false},
		{&checkout.Error{Code: checkout.ECONFLICT, Message: "no reason"}, 409, typeConflict, checkout.ECONFLICT, true},
	} {
		status, o := errorResponse(tc.err, "req_1")
		if status != tc.status || o.Type != tc.typ || o.Code != tc.code {
			t.Errorf("%v: %d %s/%s, want %d %s/%s", tc.err, status, o.Type, o.Code, tc.status, tc.typ, tc.code)
		}
		if !tc.leaksMessage && strings.Contains(o.Message, "secret") {
			t.Errorf("%v: message %q leaks the cause", tc.err, o.Message)
		}
	}
}
