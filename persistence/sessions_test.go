package persistence_test

import (
	"errors"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
)

func TestSessionRoundTrip(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 1))
	usdc := checkout.Asset{Code: "USDC", Issuer: account(t, 0xA1)}
	// A clock in another zone, with nanoseconds Postgres cannot keep.
	zone := time.FixedZone("UTC-5", -5*60*60)
	created := time.Date(2031, 3, 4, 5, 6, 7, 123456789, zone)

	tests := []struct {
		name string
		make func(t *testing.T) checkout.Session
		want func(s checkout.Session) checkout.Session
	}{
		{"text memo, lumens", func(t *testing.T) checkout.Session {
			s, err := checkout.NewSession(checkout.SessionParams{MerchantID: m.ID, ReceivingAccount: m.Account,
				Amount: 12_5000000, Asset: checkout.NativeAsset, ExpiresIn: time.Hour}, created)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, nil},
		{"id memo, credit asset, metadata and urls", func(t *testing.T) checkout.Session {
			s, err := checkout.NewSession(checkout.SessionParams{MerchantID: m.ID, ReceivingAccount: m.Account,
				Amount: 1, Asset: usdc, ExpiresIn: 7 * 24 * time.Hour, MemoType: checkout.MemoID,
				Metadata:   map[string]string{"order": "A-1", "note": "ünïcödé \"quoted\"", "empty": ""},
				SuccessURL: "https://shop.example/ok?x=1&y=2", CancelURL: "https://shop.example/cancel"}, created)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}, nil},
		{"closed muxed session with the largest memo", func(t *testing.T) checkout.Session {
			s, err := checkout.NewSession(checkout.SessionParams{MerchantID: m.ID, ReceivingAccount: m.Account,
				Amount: 1 << 62, Asset: usdc, ExpiresIn: time.Minute, MemoType: checkout.MemoMuxed}, created)
			if err != nil {
				t.Fatal(err)
			}
			s.Memo = "18446744073709551615"
			s.Status, s.PaymentStatus, s.AmountReceived = checkout.StatusCanceled, checkout.PaymentPartiallyPaid, 5
			s.ClosedAt = created.Add(30 * time.Second)
			s.UpdatedAt, s.Version = created.Add(30*time.Second), 7
			return s
		}, func(s checkout.Session) checkout.Session {
			s.ClosedAt = created.Add(30 * time.Second).UTC().Truncate(time.Microsecond)
			s.UpdatedAt = s.ClosedAt
			return s
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.make(t)
			if err := st.db.CreateSession(t.Context(), s); err != nil {
				t.Fatalf("CreateSession: %v", err)
			}
			got := st.get(t, s.ID)
			want := s
			if tt.want != nil {
				want = tt.want(s)
			}
			sameSession(t, "GetSession", got, want)
			wantCreated := time.Date(2031, 3, 4, 10, 6, 7, 123456000, time.UTC)
			for name, tm := range map[string]time.Time{"created_at": got.CreatedAt, "updated_at": got.UpdatedAt, "expires_at": got.ExpiresAt} {
				if tm.Location() != time.UTC {
					t.Errorf("%s is in %v, want UTC", name, tm.Location())
				}
			}
			if !got.CreatedAt.Equal(wantCreated) || got.CreatedAt.Nanosecond() != 123456000 {
				t.Errorf("created_at = %v, want %v", got.CreatedAt, wantCreated)
			}

			id, err := st.db.SessionIDByMemo(t.Context(), m.Account, s.MemoType, s.Memo)
			if err != nil || id != s.ID {
				t.Errorf("SessionIDByMemo = %q, %v; want %q", id, err, s.ID)
			}
		})
	}
}

func TestGetSessionUnknown(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	_, err := st.db.GetSession(t.Context(), checkout.NewID(checkout.PrefixSession))
	if !errors.Is(err, checkout.ErrNotFound) {
		t.Fatalf("GetSession of an unknown id = %v, want ErrNotFound", err)
	}
}

func TestSessionIDByMemoMatchesTypeAndAccount(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 1))
	s, err := checkout.NewSession(checkout.SessionParams{MerchantID: m.ID, ReceivingAccount: m.Account,
		Amount: 1, Asset: checkout.NativeAsset, ExpiresIn: time.Hour, MemoType: checkout.MemoID}, st.now)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.db.CreateSession(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		account string
		typ     checkout.MemoType
	}{
		{"text memo with the same digits", m.Account, checkout.MemoText},
		{"muxed id with the same digits", m.Account, checkout.MemoMuxed},
		{"another account", account(t, 2), checkout.MemoID},
	} {
		if id, err := st.db.SessionIDByMemo(t.Context(), tt.account, tt.typ, s.Memo); !errors.Is(err, checkout.ErrNotFound) {
			t.Errorf("%s: SessionIDByMemo = %q, %v; want ErrNotFound", tt.name, id, err)
		}
	}
}

func TestCreateSessionConstraints(t *testing.T) {
	t.Parallel()
	st := newStore(t)
	m := st.merchant(t, "Acme", account(t, 1))
	other := st.merchant(t, "Other", account(t, 2))
	first := st.session(t, m, 10*unit, checkout.NativeAsset)

	newSession := func(t *testing.T, mer checkout.Merchant) checkout.Session {
		t.Helper()
		s, err := checkout.NewSession(checkout.SessionParams{MerchantID: mer.ID, ReceivingAccount: mer.Account,
			Amount: 10 * unit, Asset: checkout.NativeAsset, ExpiresIn: time.Hour}, st.now)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("memo taken on the same account", func(t *testing.T) {
		s := newSession(t, m)
		s.Memo = first.Memo
		err := st.db.CreateSession(t.Context(), s)
		if !errors.Is(err, checkout.ErrMemoTaken) {
			t.Fatalf("CreateSession = %v, want ErrMemoTaken", err)
		}
		if _, err := st.db.GetSession(t.Context(), s.ID); !errors.Is(err, checkout.ErrNotFound) {
			t.Errorf("refused session was stored: %v", err)
		}
	})
	t.Run("same memo on another account", func(t *testing.T) {
		s := newSession(t, other)
		s.Memo = first.Memo
		if err := st.db.CreateSession(t.Context(), s); err != nil {
			t.Fatalf("CreateSession: %v", err)
		}
		id, err := st.db.SessionIDByMemo(t.Context(), other.Account, checkout.MemoText, first.Memo)
		if err != nil || id != s.ID {
			t.Errorf("SessionIDByMemo on the other account = %q, %v; want %q", id, err, s.ID)
		}
	})
	t.Run("unknown merchant", func(t *testing.T) {
		s := newSession(t, checkout.Merchant{ID: checkout.NewID(checkout.PrefixMerchant), Account: m.Account})
		err := st.db.CreateSession(t.Context(), s)
		wantCode(t, err, checkout.EINVALID)
	})
	t.Run("breaking a check", func(t *testing.T) {
		s := newSession(t, m)
		s.Status = checkout.StatusComplete // complete with nothing received, and no closed_at
		err := st.db.CreateSession(t.Context(), s)
		wantCode(t, err, checkout.EINVALID)
	})
	if n := st.count(t, "sessions"); n != 2 {
		t.Errorf("%d sessions stored, want 2", n)
	}
}
