package persistence_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

// newSession makes (without storing) an open session for m.
func (s *store) newSession(t *testing.T, m checkout.Merchant) checkout.Session {
	t.Helper()
	sess, err := checkout.NewSession(checkout.SessionParams{
		MerchantID: m.ID, ReceivingAccount: m.Account, Amount: 10, Asset: checkout.NativeAsset,
		ExpiresIn: time.Hour, Metadata: map[string]string{"order": "B-1"},
	}, s.now)
	if err != nil {
		t.Fatalf("NewSession: %v", err)
	}
	return sess
}

func idem(key string, body string, at time.Time) *persistence.IdempotentResponse {
	return &persistence.IdempotentResponse{Key: key, RequestHash: []byte("hash-" + key), Status: 201, Body: []byte(body), CreatedAt: at}
}

// TestCreateSessionsBatch: each row of a batch gets its own answer. A taken
// memo, a memo taken by an earlier row of the batch, a used idempotency key,
// a key used twice in the batch and a row that breaks a CHECK fail alone;
// the others commit with their idempotency records, and a failed row leaves
// neither a session nor a record.
func TestCreateSessionsBatch(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 3))
	taken := st.session(t, m, 5, checkout.NativeAsset)
	if err := st.db.CreateSessions(t.Context(), []persistence.SessionCreate{{Session: st.newSession(t, m), Idempotency: idem("used", "first", st.now)}})[0]; err != nil {
		t.Fatalf("seed the used key: %v", err)
	}

	plain := st.newSession(t, m)
	keyed := st.newSession(t, m)
	memoClash := st.newSession(t, m)
	memoClash.Memo = taken.Memo
	inBatchA, inBatchB := st.newSession(t, m), st.newSession(t, m)
	inBatchB.Memo = inBatchA.Memo
	usedKey := st.newSession(t, m)
	dupKeyA, dupKeyB := st.newSession(t, m), st.newSession(t, m)
	broken := st.newSession(t, m)
	broken.Amount = 0 // sessions_amount_check
	rows := []persistence.SessionCreate{
		{Session: plain},
		{Session: keyed, Idempotency: idem("k-keyed", "keyed", st.now)},
		{Session: memoClash, Idempotency: idem("k-clash", "clash", st.now)},
		{Session: inBatchA},
		{Session: inBatchB, Idempotency: idem("k-inbatch", "inbatch", st.now)},
		{Session: usedKey, Idempotency: idem("used", "second", st.now)},
		{Session: dupKeyA, Idempotency: idem("k-dup", "dupA", st.now)},
		{Session: dupKeyB, Idempotency: idem("k-dup", "dupB", st.now)},
		{Session: broken, Idempotency: idem("k-broken", "broken", st.now)},
	}
	errs := st.db.CreateSessions(t.Context(), rows)
	want := []error{nil, nil, checkout.ErrMemoTaken, nil, checkout.ErrMemoTaken, persistence.ErrIdempotencyKeyTaken,
		nil, persistence.ErrIdempotencyKeyTaken, nil}
	for i, err := range errs {
		switch {
		case i == 8:
			wantCode(t, err, checkout.EINVALID)
		case want[i] == nil && err != nil, want[i] != nil && !errors.Is(err, want[i]):
			t.Errorf("row %d: %v, want %v", i, err, want[i])
		}
	}
	for i, r := range rows {
		var n int
		if err := st.raw.QueryRow(t.Context(), `SELECT count(*) FROM sessions WHERE id = $1`, r.Session.ID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if stored := n == 1; stored != (errs[i] == nil) {
			t.Errorf("row %d: stored %v, error %v", i, stored, errs[i])
		}
		if errs[i] == nil {
			sameSession(t, fmt.Sprintf("row %d", i), st.get(t, r.Session.ID), r.Session)
		}
	}
	for key, body := range map[string]string{"k-keyed": "keyed", "used": "first", "k-dup": "dupA"} {
		rec, err := st.db.GetIdempotencyKey(t.Context(), m.ID, key)
		if err != nil || !rec.Done || rec.Status != 201 || !bytes.Equal(rec.Body, []byte(body)) || !bytes.Equal(rec.RequestHash, []byte("hash-"+key)) {
			t.Errorf("key %s: %+v, %v; want done 201 %q", key, rec, err, body)
		}
	}
	for _, key := range []string{"k-clash", "k-inbatch", "k-broken"} {
		if _, err := st.db.GetIdempotencyKey(t.Context(), m.ID, key); !errors.Is(err, checkout.ErrNotFound) {
			t.Errorf("key %s of a failed row: %v, want not found", key, err)
		}
	}
}

// TestCreateSessionsConcurrentKeys: many batches race to spend the same
// keys; each key ends with exactly one session, the one its record names.
func TestCreateSessionsConcurrentKeys(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 4))
	const workers, keys = 8, 20
	var (
		mu  sync.Mutex
		won = map[string][]string{} // key -> session ids committed under it
		wg  sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			rows := make([]persistence.SessionCreate, keys)
			for k := range keys {
				s := st.newSession(t, m)
				key := fmt.Sprintf("k%d", (k+w)%keys)
				rows[k] = persistence.SessionCreate{Session: s, Idempotency: idem(key, s.ID, st.now)}
			}
			for k, err := range st.db.CreateSessions(t.Context(), rows) {
				switch {
				case err == nil:
					mu.Lock()
					won[rows[k].Idempotency.Key] = append(won[rows[k].Idempotency.Key], rows[k].Session.ID)
					mu.Unlock()
				case !errors.Is(err, persistence.ErrIdempotencyKeyTaken):
					t.Errorf("worker %d row %d: %v", w, k, err)
				}
			}
		})
	}
	wg.Wait()
	if n := st.count(t, "sessions"); n != keys {
		t.Errorf("%d sessions, want one per key (%d)", n, keys)
	}
	for k := range keys {
		key := fmt.Sprintf("k%d", k)
		rec, err := st.db.GetIdempotencyKey(t.Context(), m.ID, key)
		if err != nil || len(won[key]) != 1 || string(rec.Body) != won[key][0] {
			t.Errorf("key %s: winners %v, record %q, %v", key, won[key], rec.Body, err)
		}
	}
}
