package persistence_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

func (s *store) cursor(t *testing.T, acct string) persistence.Cursor {
	t.Helper()
	c, err := s.db.GetCursor(t.Context(), acct)
	if err != nil {
		t.Fatalf("GetCursor: %v", err)
	}
	return c
}

func TestEnsureCursorKeepsTheFirst(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	acct := account(t, 1)

	if ok, err := st.db.HasCursor(t.Context(), acct); err != nil || ok {
		t.Fatalf("HasCursor before EnsureCursor = %v, %v; want false", ok, err)
	}
	if _, err := st.db.GetCursor(t.Context(), acct); !errors.Is(err, checkout.ErrNotFound) {
		t.Fatalf("GetCursor before EnsureCursor = %v, want ErrNotFound", err)
	}
	for _, token := range []string{"100", "5", "200"} {
		if err := st.db.EnsureCursor(t.Context(), acct, token); err != nil {
			t.Fatalf("EnsureCursor(%s): %v", token, err)
		}
	}
	if got, want := st.cursor(t, acct), (persistence.Cursor{Account: acct, PagingToken: "100"}); got != want {
		t.Errorf("cursor = %+v, want %+v", got, want)
	}
	if ok, err := st.db.HasCursor(t.Context(), acct); err != nil || !ok {
		t.Errorf("HasCursor = %v, %v; want true", ok, err)
	}
}

func TestAdvanceCursorOnlyMovesForward(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	acct, bystander := account(t, 1), account(t, 2)
	t0 := st.now
	for _, a := range []string{acct, bystander} {
		if err := st.db.EnsureCursor(t.Context(), a, "9"); err != nil {
			t.Fatalf("EnsureCursor: %v", err)
		}
	}

	steps := []struct {
		name       string
		token      string
		caughtUpTo time.Time
		want       persistence.Cursor
	}{
		// "10" sorts before "9" as text: paging tokens compare as numbers.
		{"forward past a digit boundary", "10", time.Time{}, persistence.Cursor{PagingToken: "10"}},
		{"back is ignored", "9", time.Time{}, persistence.Cursor{PagingToken: "10"}},
		{"ledger time set", "10", t0, persistence.Cursor{PagingToken: "10", CaughtUpTo: t0}},
		{"both forward", "1234567890123456789", t0.Add(5 * time.Second),
			persistence.Cursor{PagingToken: "1234567890123456789", CaughtUpTo: t0.Add(5 * time.Second)}},
		{"both back", "999999999999999999", t0.Add(time.Second),
			persistence.Cursor{PagingToken: "1234567890123456789", CaughtUpTo: t0.Add(5 * time.Second)}},
		{"zero time keeps ledger time", "99999999999999999999", time.Time{},
			persistence.Cursor{PagingToken: "99999999999999999999", CaughtUpTo: t0.Add(5 * time.Second)}},
		{"ledger time forward, token unchanged", "99999999999999999999", t0.Add(6*time.Second + time.Microsecond),
			persistence.Cursor{PagingToken: "99999999999999999999", CaughtUpTo: t0.Add(6*time.Second + time.Microsecond)}},
	}
	for _, step := range steps {
		err := st.db.AdvanceCursor(t.Context(), persistence.Cursor{Account: acct, PagingToken: step.token, CaughtUpTo: step.caughtUpTo})
		if err != nil {
			t.Fatalf("%s: AdvanceCursor: %v", step.name, err)
		}
		step.want.Account = acct
		if got := st.cursor(t, acct); got != step.want {
			t.Errorf("%s: cursor = %+v, want %+v", step.name, got, step.want)
		}
	}
	if got, want := st.cursor(t, bystander), (persistence.Cursor{Account: bystander, PagingToken: "9"}); got != want {
		t.Errorf("another account's cursor = %+v, want %+v", got, want)
	}
}

func TestWatchedAccounts(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	got, err := st.db.WatchedAccounts(t.Context())
	if err != nil || len(got) != 0 {
		t.Fatalf("WatchedAccounts of an empty database = %v, %v; want none", got, err)
	}
	want := []string{account(t, 3), account(t, 1), account(t, 2)}
	for _, a := range append(want, want[0]) {
		if err := st.db.EnsureCursor(t.Context(), a, "1"); err != nil {
			t.Fatalf("EnsureCursor: %v", err)
		}
	}
	got, err = st.db.WatchedAccounts(t.Context())
	if err != nil {
		t.Fatalf("WatchedAccounts: %v", err)
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("WatchedAccounts = %v, want %v", got, want)
	}
}
