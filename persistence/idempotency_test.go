package persistence_test

import (
	"bytes"
	"sync"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
)

func TestIdempotencyKeyClaim(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	m := s.merchant(t, "Idem shop", account(t, 2))
	hash := []byte("hash-1")
	stale := s.now.Add(-5 * time.Minute)

	rec, claimed, err := s.db.ClaimIdempotencyKey(ctx, m.ID, "k1", hash, s.now, stale)
	if err != nil || !claimed {
		t.Fatalf("first claim = %+v, %v, %v", rec, claimed, err)
	}
	rec, claimed, err = s.db.ClaimIdempotencyKey(ctx, m.ID, "k1", hash, s.now, stale)
	if err != nil || claimed || rec.Done || !bytes.Equal(rec.RequestHash, hash) {
		t.Fatalf("second claim while in progress = %+v, %v, %v", rec, claimed, err)
	}
	if err := s.db.CompleteIdempotencyKey(ctx, m.ID, "k1", 201, []byte(`{"id":"cs_x"}`)); err != nil {
		t.Fatal(err)
	}
	rec, claimed, err = s.db.ClaimIdempotencyKey(ctx, m.ID, "k1", []byte("other"), s.now, stale)
	if err != nil || claimed || !rec.Done || rec.Status != 201 || string(rec.Body) != `{"id":"cs_x"}` || !bytes.Equal(rec.RequestHash, hash) {
		t.Fatalf("claim after completion = %+v, %v, %v", rec, claimed, err)
	}

	// A released claim can be made again.
	if _, claimed, _ := s.db.ClaimIdempotencyKey(ctx, m.ID, "k2", hash, s.now, stale); !claimed {
		t.Fatal("k2 not claimed")
	}
	if err := s.db.ReleaseIdempotencyKey(ctx, m.ID, "k2"); err != nil {
		t.Fatal(err)
	}
	if _, claimed, _ := s.db.ClaimIdempotencyKey(ctx, m.ID, "k2", hash, s.now, stale); !claimed {
		t.Fatal("k2 not claimed after release")
	}
	// A stale claim for the same request is taken over; for another request it is not.
	later := s.now.Add(10 * time.Minute)
	if _, claimed, _ := s.db.ClaimIdempotencyKey(ctx, m.ID, "k2", []byte("other"), later, later.Add(-5*time.Minute)); claimed {
		t.Fatal("a stale claim was taken over by a different request")
	}
	if _, claimed, _ := s.db.ClaimIdempotencyKey(ctx, m.ID, "k2", hash, later, later.Add(-5*time.Minute)); !claimed {
		t.Fatal("a stale claim was not taken over")
	}
	// Keys are per merchant.
	other := s.merchant(t, "Other shop", account(t, 3))
	if _, claimed, _ := s.db.ClaimIdempotencyKey(ctx, other.ID, "k1", hash, s.now, stale); !claimed {
		t.Fatal("another merchant's key blocked this one")
	}

	n, err := s.db.DeleteIdempotencyKeysBefore(ctx, s.now.Add(time.Second))
	if err != nil || n != 2 { // k1 of both merchants; k2 was reclaimed at later
		t.Fatalf("DeleteIdempotencyKeysBefore = %d, %v", n, err)
	}
	_, err = s.db.GetIdempotencyKey(ctx, m.ID, "k1")
	wantCode(t, err, checkout.ENOTFOUND)
}

func TestIdempotencyKeyConcurrentClaims(t *testing.T) {
	s := newStore(t)
	m := s.merchant(t, "Race shop", account(t, 4))
	const n = 8
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	for range n {
		wg.Go(func() {
			_, claimed, err := s.db.ClaimIdempotencyKey(t.Context(), m.ID, "race", []byte("h"), s.now, s.now.Add(-time.Minute))
			if err != nil {
				t.Error(err)
			}
			if claimed {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d claims won, want 1", wins)
	}
}
