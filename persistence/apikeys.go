package persistence

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	checkout "github.com/checkoutd/checkoutd"
)

// APIKey is a merchant's secret API key as stored: never the key itself,
// only its SHA-256 hash and a prefix people can recognize it by.
type APIKey struct {
	ID         string
	MerchantID string
	// Prefix is the key's first characters, such as "sk_test_4xqa7b2c",
	// shown in listings and accepted by `checkoutd merchant keys revoke`.
	Prefix    string
	CreatedAt time.Time
	// RevokedAt is when the key stopped working; zero while it works.
	RevokedAt time.Time
}

// API key prefixes. A live key is made for the public network, a test key
// for any other.
const (
	APIKeyPrefixLive = "sk_live_"
	APIKeyPrefixTest = "sk_test_"
)

// apiKeyShownChars is how many random characters of a key its stored prefix
// keeps: 40 bits, enough to tell a merchant's keys apart, too few to matter.
const apiKeyShownChars = 8

var keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewAPIKey returns a fresh key for a merchant and its secret, which is
// shown once and never stored: 32 random base32 characters (160 bits) after
// sk_live_ or sk_test_.
func NewAPIKey(merchantID string, live bool, now time.Time) (APIKey, string) {
	var b [20]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	prefix := APIKeyPrefixTest
	if live {
		prefix = APIKeyPrefixLive
	}
	secret := prefix + keyEncoding.EncodeToString(b[:])
	return APIKey{
		ID:         checkout.NewID(checkout.PrefixAPIKey),
		MerchantID: merchantID,
		Prefix:     secret[:len(prefix)+apiKeyShownChars],
		CreatedAt:  now.UTC().Truncate(time.Microsecond),
	}, secret
}

// HashAPIKey is what the database keeps of a key: its SHA-256.
func HashAPIKey(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// LooksLikeAPIKey reports whether s has the shape of a key made by
// NewAPIKey, so that garbage is refused without a query.
func LooksLikeAPIKey(s string) bool {
	rest, ok := strings.CutPrefix(s, APIKeyPrefixTest)
	if !ok {
		rest, ok = strings.CutPrefix(s, APIKeyPrefixLive)
	}
	if !ok || len(rest) != 32 || strings.ContainsAny(rest, "\r\n") {
		return false
	}
	_, err := keyEncoding.DecodeString(rest)
	return err == nil
}

// ErrAPIKeyInvalid is returned for a key that is unknown or revoked. The two
// are not told apart, to the client or in the error.
var ErrAPIKeyInvalid = &checkout.Error{Code: checkout.EUNAUTHORIZED, Reason: "api_key_invalid",
	Message: "the API key is invalid or revoked"}

// CreateMerchantWithKey inserts a merchant and its first API key in one
// transaction, so a merchant never exists without a way in.
func (db *DB) CreateMerchantWithKey(ctx context.Context, m checkout.Merchant, k APIKey, secret string) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO merchants (id, name, account, created_at) VALUES ($1, $2, $3, $4)`,
			m.ID, m.Name, m.Account, m.CreatedAt); err != nil {
			return err
		}
		return insertAPIKey(ctx, tx, k, secret)
	})
	if err != nil {
		return fmt.Errorf("create merchant %s: %w", m.ID, interpretError(err))
	}
	return nil
}

// CreateAPIKey stores a further key for an existing merchant. An unknown
// merchant returns checkout.ErrNotFound.
func (db *DB) CreateAPIKey(ctx context.Context, k APIKey, secret string) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM merchants WHERE id = $1`, k.MerchantID).Scan(&one); err != nil {
			return err
		}
		return insertAPIKey(ctx, tx, k, secret)
	})
	if err != nil {
		return fmt.Errorf("create api key for %s: %w", k.MerchantID, interpretError(err))
	}
	return nil
}

func insertAPIKey(ctx context.Context, tx pgx.Tx, k APIKey, secret string) error {
	_, err := tx.Exec(ctx, `INSERT INTO api_keys (id, merchant_id, prefix, hash, created_at)
		VALUES ($1, $2, $3, $4, $5)`, k.ID, k.MerchantID, k.Prefix, HashAPIKey(secret), k.CreatedAt)
	return err
}

// AuthenticateAPIKey returns the key that secret is, or ErrAPIKeyInvalid
// when it is unknown or revoked. The row is found by the key's hash; the
// hashes are then compared in constant time, so that how long the answer
// takes says nothing about how close a guess came.
func (db *DB) AuthenticateAPIKey(ctx context.Context, secret string) (APIKey, error) {
	want := HashAPIKey(secret)
	var (
		k       APIKey
		hash    []byte
		revoked *time.Time
	)
	err := db.pool.QueryRow(ctx, `SELECT id, merchant_id, prefix, hash, created_at, revoked_at
		FROM api_keys WHERE hash = $1`, want).Scan(&k.ID, &k.MerchantID, &k.Prefix, &hash, &k.CreatedAt, &revoked)
	if err != nil {
		err = interpretError(err)
		if err == checkout.ErrNotFound {
			return APIKey{}, ErrAPIKeyInvalid
		}
		return APIKey{}, fmt.Errorf("authenticate api key: %w", err)
	}
	if subtle.ConstantTimeCompare(hash, want) != 1 || revoked != nil {
		return APIKey{}, ErrAPIKeyInvalid
	}
	k.CreatedAt = k.CreatedAt.UTC()
	return k, nil
}

// RevokeAPIKey revokes the key with the given id. Revoking a revoked key is
// a no-op that returns it as it is; an unknown id is checkout.ErrNotFound.
func (db *DB) RevokeAPIKey(ctx context.Context, id string, now time.Time) (APIKey, error) {
	k, err := db.revokeAPIKey(ctx, `id = $1`, id, now)
	if err != nil {
		return APIKey{}, fmt.Errorf("revoke api key %s: %w", id, err)
	}
	return k, nil
}

// RevokeAPIKeyByPrefix revokes the one key whose stored prefix is prefix.
// No match is checkout.ErrNotFound; more than one is an EINVALID error that
// asks for a longer prefix or the key id, and revokes nothing.
func (db *DB) RevokeAPIKeyByPrefix(ctx context.Context, prefix string, now time.Time) (APIKey, error) {
	k, err := db.revokeAPIKey(ctx, `prefix = $1`, prefix, now)
	if err != nil {
		return APIKey{}, fmt.Errorf("revoke api key with prefix %q: %w", prefix, err)
	}
	return k, nil
}

func (db *DB) revokeAPIKey(ctx context.Context, where, arg string, now time.Time) (APIKey, error) {
	var k APIKey
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM api_keys WHERE `+where+` FOR UPDATE`, arg)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		switch {
		case len(ids) == 0:
			return checkout.ErrNotFound
		case len(ids) > 1:
			return checkout.Errorf(checkout.EINVALID, "%d keys match; name the key by its id", len(ids))
		}
		var revoked *time.Time
		err = tx.QueryRow(ctx, `UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1
			RETURNING id, merchant_id, prefix, created_at, revoked_at`, ids[0], now).
			Scan(&k.ID, &k.MerchantID, &k.Prefix, &k.CreatedAt, &revoked)
		if revoked != nil {
			k.RevokedAt = revoked.UTC()
		}
		k.CreatedAt = k.CreatedAt.UTC()
		return err
	})
	return k, interpretError(err)
}
