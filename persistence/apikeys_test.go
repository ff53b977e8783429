package persistence_test

import (
	"strings"
	"testing"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

func TestNewAPIKeyShape(t *testing.T) {
	for _, live := range []bool{false, true} {
		k, secret := persistence.NewAPIKey("mer_x", live, time.Now())
		want := persistence.APIKeyPrefixTest
		if live {
			want = persistence.APIKeyPrefixLive
		}
		if !strings.HasPrefix(secret, want) || len(secret) != len(want)+32 {
			t.Errorf("secret %q: want %s and 32 characters", secret, want)
		}
		if !persistence.LooksLikeAPIKey(secret) {
			t.Errorf("LooksLikeAPIKey(%q) = false", secret)
		}
		if !strings.HasPrefix(secret, k.Prefix) || len(k.Prefix) != len(want)+8 {
			t.Errorf("prefix %q of %q", k.Prefix, secret)
		}
		if !checkout.HasPrefix(k.ID, checkout.PrefixAPIKey) {
			t.Errorf("id %q", k.ID)
		}
	}
	for _, bad := range []string{"", "sk_test_", "pk_test_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "sk_test_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"sk_test_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "sk_test_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"} {
		if persistence.LooksLikeAPIKey(bad) {
			t.Errorf("LooksLikeAPIKey(%q) = true", bad)
		}
	}
}

func TestAPIKeyLifecycle(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	m, err := checkout.NewMerchant("Keys shop", account(t, 1), s.now)
	if err != nil {
		t.Fatal(err)
	}
	k1, secret1 := persistence.NewAPIKey(m.ID, false, s.now)
	if err := s.db.CreateMerchantWithKey(ctx, m, k1, secret1); err != nil {
		t.Fatalf("CreateMerchantWithKey: %v", err)
	}
	// Only the hash is stored.
	var stored int
	if err := s.raw.QueryRow(ctx, `SELECT count(*) FROM api_keys WHERE hash = $1 AND prefix = $2`,
		persistence.HashAPIKey(secret1), k1.Prefix).Scan(&stored); err != nil || stored != 1 {
		t.Fatalf("stored hash rows = %d, %v", stored, err)
	}
	if n := s.countWhere(t, `SELECT count(*) FROM api_keys WHERE position($1::bytea in hash) > 0`, []byte(secret1)); n != 0 {
		t.Fatalf("the secret itself is stored")
	}

	got, err := s.db.AuthenticateAPIKey(ctx, secret1)
	if err != nil || got.ID != k1.ID || got.MerchantID != m.ID {
		t.Fatalf("AuthenticateAPIKey = %+v, %v", got, err)
	}
	_, unknown := persistence.NewAPIKey(m.ID, false, s.now)
	if _, err := s.db.AuthenticateAPIKey(ctx, unknown); err != persistence.ErrAPIKeyInvalid {
		t.Fatalf("unknown key: %v", err)
	}

	k2, secret2 := persistence.NewAPIKey(m.ID, false, s.now)
	if err := s.db.CreateAPIKey(ctx, k2, secret2); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	k3, secret3 := persistence.NewAPIKey("mer_aaaaaaaaaaaaaaaaaaaaaaaa", false, s.now)
	wantCode(t, s.db.CreateAPIKey(ctx, k3, secret3), checkout.ENOTFOUND)

	revoked, err := s.db.RevokeAPIKey(ctx, k1.ID, s.now.Add(time.Minute))
	if err != nil || revoked.RevokedAt.IsZero() {
		t.Fatalf("RevokeAPIKey = %+v, %v", revoked, err)
	}
	if _, err := s.db.AuthenticateAPIKey(ctx, secret1); err != persistence.ErrAPIKeyInvalid {
		t.Fatalf("revoked key: %v", err)
	}
	// Revoking again keeps the first revocation time.
	again, err := s.db.RevokeAPIKey(ctx, k1.ID, s.now.Add(time.Hour))
	if err != nil || !again.RevokedAt.Equal(revoked.RevokedAt) {
		t.Fatalf("second revoke = %+v, %v; want revoked at %s", again, err, revoked.RevokedAt)
	}
	if _, err := s.db.AuthenticateAPIKey(ctx, secret2); err != nil {
		t.Fatalf("the other key stopped working: %v", err)
	}
	if _, err := s.db.RevokeAPIKeyByPrefix(ctx, k2.Prefix, s.now); err != nil {
		t.Fatalf("RevokeAPIKeyByPrefix: %v", err)
	}
	if _, err := s.db.AuthenticateAPIKey(ctx, secret2); err != persistence.ErrAPIKeyInvalid {
		t.Fatalf("key revoked by prefix: %v", err)
	}
	wantCode(t, func() error { _, err := s.db.RevokeAPIKey(ctx, "key_aaaaaaaaaaaaaaaaaaaaaaaa", s.now); return err }(), checkout.ENOTFOUND)
	wantCode(t, func() error { _, err := s.db.RevokeAPIKeyByPrefix(ctx, "sk_test_nothing", s.now); return err }(), checkout.ENOTFOUND)

	// A prefix shared by two keys revokes neither.
	k4, secret4 := persistence.NewAPIKey(m.ID, false, s.now)
	k5, secret5 := persistence.NewAPIKey(m.ID, false, s.now)
	k5.Prefix = k4.Prefix
	for _, kk := range []struct {
		k persistence.APIKey
		s string
	}{{k4, secret4}, {k5, secret5}} {
		if err := s.db.CreateAPIKey(ctx, kk.k, kk.s); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, func() error { _, err := s.db.RevokeAPIKeyByPrefix(ctx, k4.Prefix, s.now); return err }(), checkout.EINVALID)
	if _, err := s.db.AuthenticateAPIKey(ctx, secret4); err != nil {
		t.Fatalf("ambiguous prefix revoked a key: %v", err)
	}
}

func (s *store) countWhere(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.raw.QueryRow(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}
