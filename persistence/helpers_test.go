package persistence_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stellar/go-stellar-sdk/strkey"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
	"github.com/checkoutd/checkoutd/persistence/pgtest"
)

// store is one test's database, reached both through persistence.DB and
// through a raw connection for checking what was written and for corrupting
// rows on purpose.
type store struct {
	db  *persistence.DB
	raw *pgx.Conn
	// now is the test's clock: whole seconds, so every time written through
	// it survives Postgres's microsecond precision unchanged.
	now time.Time
}

func newStore(t *testing.T) *store {
	t.Helper()
	dsn := pgtest.New(t)
	raw, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { raw.Close(context.Background()) })
	return &store{db: open(t, dsn), raw: raw, now: time.Now().UTC().Truncate(time.Second)}
}

// account returns a valid, deterministic G... account for n.
func account(t testing.TB, n byte) string {
	t.Helper()
	key := make([]byte, 32)
	for i := range key {
		key[i] = n
	}
	a, err := strkey.Encode(strkey.VersionByteAccountID, key)
	if err != nil {
		t.Fatalf("encode account: %v", err)
	}
	return a
}

func (s *store) merchant(t *testing.T, name, acct string) checkout.Merchant {
	t.Helper()
	m, err := checkout.NewMerchant(name, acct, s.now)
	if err != nil {
		t.Fatalf("NewMerchant: %v", err)
	}
	if err := s.db.CreateMerchant(t.Context(), m); err != nil {
		t.Fatalf("CreateMerchant: %v", err)
	}
	return m
}

// session creates an open session for m on m's account, expiring an hour
// after s.now.
func (s *store) session(t *testing.T, m checkout.Merchant, amount checkout.Amount, asset checkout.Asset) checkout.Session {
	t.Helper()
	return s.sessionExpiring(t, m, amount, asset, time.Hour)
}

func (s *store) sessionExpiring(t *testing.T, m checkout.Merchant, amount checkout.Amount, asset checkout.Asset, in time.Duration) checkout.Session {
	t.Helper()
	sess, err := checkout.NewSession(checkout.SessionParams{
		MerchantID: m.ID, ReceivingAccount: m.Account, Amount: amount, Asset: asset,
		ExpiresIn: in, Metadata: map[string]string{"order": "A-1"},
	}, s.now)
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	if err := s.db.CreateSession(t.Context(), sess); err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	return sess
}

var opSeq atomic.Int64

// payment returns a payment to sess's account naming sess by its memo, with
// a fresh operation id, closed in the ledger at closedAt.
func payment(sess checkout.Session, amount checkout.Amount, asset checkout.Asset, closedAt time.Time) checkout.Payment {
	op := strconv.FormatInt(1_000_000+opSeq.Add(1), 10)
	return checkout.Payment{
		OperationID: op, TransactionHash: "tx" + op, OperationType: "payment",
		From: "GSENDER", To: sess.ReceivingAccount, Amount: amount, Asset: asset,
		MemoType: string(sess.MemoType), Memo: sess.Memo, LedgerClosedAt: closedAt,
	}
}

func (s *store) get(t *testing.T, id string) checkout.Session {
	t.Helper()
	sess, err := s.db.GetSession(t.Context(), id)
	if err != nil {
		t.Fatalf("GetSession: %v", err)
	}
	return sess
}

// apply loads the session, applies in at s.now and settles the transition
// with the version it read, as the session actor does.
func (s *store) apply(t *testing.T, id string, in checkout.Input) (checkout.Transition, error) {
	t.Helper()
	sess := s.get(t, id)
	tr, err := checkout.Apply(sess, in, s.now)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return tr, s.db.Settle(t.Context(), tr, sess.Version)
}

func (s *store) mustApply(t *testing.T, id string, in checkout.Input) checkout.Transition {
	t.Helper()
	tr, err := s.apply(t, id, in)
	if err != nil {
		t.Fatalf("Settle: %v", err)
	}
	return tr
}

// paymentRow is a payments row as stored, read without the code under test.
type paymentRow struct {
	ID, OperationID, SessionID, Disposition string
	Amount                                  int64
}

func (s *store) paymentRows(t *testing.T) []paymentRow {
	t.Helper()
	rows, err := s.raw.Query(t.Context(), `SELECT id, operation_id, coalesce(session_id, '<null>'),
		disposition, amount FROM payments ORDER BY operation_id::numeric`)
	if err != nil {
		t.Fatalf("read payments: %v", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (paymentRow, error) {
		var p paymentRow
		err := r.Scan(&p.ID, &p.OperationID, &p.SessionID, &p.Disposition, &p.Amount)
		return p, err
	})
	if err != nil {
		t.Fatalf("read payments: %v", err)
	}
	return out
}

// eventRow is an outbox row as stored, with its payload decoded.
type eventRow struct {
	Type, MerchantID, SessionID, PaymentID string
	Session                                *checkout.Session
	Payment                                *checkout.Payment
}

func (s *store) eventRows(t *testing.T) []eventRow {
	t.Helper()
	rows, err := s.raw.Query(t.Context(), `SELECT type, merchant_id, coalesce(session_id, '<null>'),
		coalesce(payment_id, '<null>'), payload FROM events ORDER BY seq`)
	if err != nil {
		t.Fatalf("read events: %v", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (eventRow, error) {
		var (
			e       eventRow
			payload []byte
		)
		if err := r.Scan(&e.Type, &e.MerchantID, &e.SessionID, &e.PaymentID, &payload); err != nil {
			return e, err
		}
		var body struct {
			Session *checkout.Session `json:"session"`
			Payment *checkout.Payment `json:"payment"`
		}
		if err := json.Unmarshal(payload, &body); err != nil {
			return e, fmt.Errorf("payload %s: %w", payload, err)
		}
		e.Session, e.Payment = body.Session, body.Payment
		return e, nil
	})
	if err != nil {
		t.Fatalf("read events: %v", err)
	}
	return out
}

func eventTypes(es []eventRow) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Type
	}
	return out
}

func (s *store) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := s.raw.QueryRow(t.Context(), `SELECT count(*) FROM `+pgx.Identifier{table}.Sanitize()).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func (s *store) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := s.raw.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("exec %q: %v", sql, err)
	}
}

func sameSession(t *testing.T, what string, got, want checkout.Session) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

// wantCode checks that err is a *checkout.Error with the given code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var e *checkout.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("error = %v, want a *checkout.Error with code %q", err, code)
	}
}
