package api

import (
	"context"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

// nopStore, nopSessions and nopWatchers stand in where a test needs a
// Server's routes but never reaches its dependencies.
type nopStore struct{}

func (nopStore) AuthenticateAPIKey(context.Context, string) (persistence.APIKey, error) {
	return persistence.APIKey{}, persistence.ErrAPIKeyInvalid
}
func (nopStore) GetMerchant(context.Context, string) (checkout.Merchant, error) {
	return checkout.Merchant{}, checkout.ErrNotFound
}
func (nopStore) CreateSession(context.Context, checkout.Session) error { return nil }
func (nopStore) CreateSessions(_ context.Context, rows []persistence.SessionCreate) []error {
	return make([]error, len(rows))
}
func (nopStore) GetMerchantSession(context.Context, string, string) (checkout.Session, error) {
	return checkout.Session{}, checkout.ErrNotFound
}
func (nopStore) ListSessions(context.Context, persistence.ListParams) ([]checkout.Session, bool, error) {
	return nil, false, nil
}
func (nopStore) SessionPayments(context.Context, string) ([]checkout.Payment, error) { return nil, nil }
func (nopStore) GetEvent(context.Context, string, string) (checkout.Event, error) {
	return checkout.Event{}, checkout.ErrNotFound
}
func (nopStore) ListEvents(context.Context, persistence.ListParams) ([]checkout.Event, bool, error) {
	return nil, false, nil
}
func (nopStore) ClaimIdempotencyKey(context.Context, string, string, []byte, time.Time, time.Time) (persistence.IdempotencyRecord, bool, error) {
	return persistence.IdempotencyRecord{}, true, nil
}
func (nopStore) CompleteIdempotencyKey(context.Context, string, string, int, []byte) error {
	return nil
}
func (nopStore) ReleaseIdempotencyKey(context.Context, string, string) error           { return nil }
func (nopStore) DeleteIdempotencyKeysBefore(context.Context, time.Time) (int64, error) { return 0, nil }
func (nopStore) Ping(context.Context) error                                            { return nil }

type nopSessions struct{}

func (nopSessions) Cancel(string) (checkout.Session, error) {
	return checkout.Session{}, checkout.ErrNotFound
}

type nopWatchers struct{}

func (nopWatchers) Ensure(context.Context, string) error { return nil }
