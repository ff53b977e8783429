package api

import (
	"context"
	"sync"
	"time"

	checkout "github.com/checkoutd/checkoutd"
	"github.com/checkoutd/checkoutd/persistence"
)

// maxCached bounds each of the auth cache's maps; when one is full it is
// emptied, which costs a lookup per key and merchant, not correctness.
const maxCached = 10_000

// authCache remembers verified API keys (by the SHA-256 of the secret) and
// merchants for ttl, so that a request does not ask Postgres who it is.
// Only successes are remembered: an unknown or revoked key always reaches
// Postgres. A key revoked in Postgres therefore keeps working here for at
// most ttl. A ttl of zero or less remembers nothing.
type authCache struct {
	ttl   time.Duration
	clock func() time.Time

	mu        sync.Mutex
	keys      map[[32]byte]cached[persistence.APIKey]
	merchants map[string]cached[checkout.Merchant]
}

type cached[T any] struct {
	v       T
	expires time.Time
}

func newAuthCache(ttl time.Duration, clock func() time.Time) *authCache {
	return &authCache{ttl: ttl, clock: clock,
		keys: make(map[[32]byte]cached[persistence.APIKey]), merchants: make(map[string]cached[checkout.Merchant])}
}

// authenticate returns the key that secret is, from the cache while the
// answer is fresh, else from store.
func (c *authCache) authenticate(ctx context.Context, store Store, secret string) (persistence.APIKey, error) {
	if c.ttl <= 0 {
		return store.AuthenticateAPIKey(ctx, secret)
	}
	var h [32]byte
	copy(h[:], persistence.HashAPIKey(secret))
	now := c.clock()
	c.mu.Lock()
	e, ok := c.keys[h]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.v, nil
	}
	k, err := store.AuthenticateAPIKey(ctx, secret)
	if err != nil {
		return k, err
	}
	c.mu.Lock()
	if len(c.keys) >= maxCached {
		clear(c.keys)
	}
	c.keys[h] = cached[persistence.APIKey]{v: k, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return k, nil
}

// merchant returns the merchant with the given id, from the cache while the
// answer is fresh, else from store.
func (c *authCache) merchant(ctx context.Context, store Store, id string) (checkout.Merchant, error) {
	if c.ttl <= 0 {
		return store.GetMerchant(ctx, id)
	}
	now := c.clock()
	c.mu.Lock()
	e, ok := c.merchants[id]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.v, nil
	}
	m, err := store.GetMerchant(ctx, id)
	if err != nil {
		return m, err
	}
	c.mu.Lock()
	if len(c.merchants) >= maxCached {
		clear(c.merchants)
	}
	c.merchants[id] = cached[checkout.Merchant]{v: m, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	return m, nil
}
