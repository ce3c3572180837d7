package access

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"sync"
	"time"
)

// Cache is a Checker that keeps devices publishing while the registry is
// unreachable. Every check goes to the registry first, so a rotated secret
// or a disabled device takes effect at once while the registry answers.
// Only when the registry fails with an error other than ErrUnknownStream,
// ErrBadCredentials or ErrNodeRefused (no registry answers, or its database
// is down) does Cache answer from the last
// successful authentication of the same site, device and user, if it is
// younger than TTL and the secret hashes to the same SHA-256. Secrets are
// never kept in clear.
type Cache struct {
	next Checker
	ttl  time.Duration
	now  func() time.Time

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
}

type cacheKey struct{ site, device, user string }

type cacheEntry struct {
	secret [sha256.Size]byte
	pub    Publisher
	at     time.Time
}

// DefaultCacheTTL is how long a successful authentication may stand in for
// an unreachable registry.
const DefaultCacheTTL = 10 * time.Minute

// NewCache wraps next.
func NewCache(next Checker, ttl time.Duration, now func() time.Time) *Cache {
	if ttl <= 0 {
		ttl = DefaultCacheTTL
	}
	return &Cache{next: next, ttl: ttl, now: now, entries: map[cacheKey]cacheEntry{}}
}

// CheckPublisher implements Checker.
func (c *Cache) CheckPublisher(ctx context.Context, site, device, user, secret string) (Publisher, error) {
	k := cacheKey{site, device, user}
	sum := sha256.Sum256([]byte(secret))
	pub, err := c.next.CheckPublisher(ctx, site, device, user, secret)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		c.entries[k] = cacheEntry{secret: sum, pub: pub, at: now}
		return pub, nil
	case errors.Is(err, ErrUnknownStream) || errors.Is(err, ErrBadCredentials):
		delete(c.entries, k)
		return Publisher{}, err
	case errors.Is(err, ErrNodeRefused):
		// A revoked node learns nothing, not even from its cache.
		return Publisher{}, err
	}
	e, ok := c.entries[k]
	if ok && now.Sub(e.at) < c.ttl && subtle.ConstantTimeCompare(e.secret[:], sum[:]) == 1 {
		return e.pub, nil
	}
	if ok && now.Sub(e.at) >= c.ttl {
		delete(c.entries, k)
	}
	return Publisher{}, err
}
