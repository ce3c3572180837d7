package access

import (
	"context"
	"errors"
	"testing"
	"time"
)

type fakeChecker struct {
	err error // returned when set
}

func (f *fakeChecker) CheckPublisher(_ context.Context, site, device, user, secret string) (Publisher, error) {
	if f.err != nil {
		return Publisher{}, f.err
	}
	if user != device || secret != "right" {
		return Publisher{}, ErrBadCredentials
	}
	return Publisher{Site: site, Device: device, Source: "room"}, nil
}

// TestCacheWhileRegistryDown: a device that authenticated keeps publishing
// while the registry is down, for the cache's TTL and with the same secret
// only; while the registry answers, its answer always wins.
func TestCacheWhileRegistryDown(t *testing.T) {
	now := time.Unix(1000, 0)
	f := &fakeChecker{}
	c := NewCache(f, 10*time.Minute, func() time.Time { return now })
	ctx := context.Background()
	if _, err := c.CheckPublisher(ctx, "s", "cam1", "cam1", "right"); err != nil {
		t.Fatal(err)
	}
	down := errors.New("connection refused")
	f.err = down
	for _, tc := range []struct {
		name   string
		after  time.Duration
		secret string
		want   error
	}{
		{"same secret, registry down", time.Minute, "right", nil},
		{"wrong secret, registry down", time.Minute, "wrong", down},
		{"after the TTL", 11 * time.Minute, "right", down},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now = time.Unix(1000, 0).Add(tc.after)
			_, err := c.CheckPublisher(ctx, "s", "cam1", "cam1", tc.secret)
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
	// A rotated secret: the registry says no, and the cache forgets.
	now = time.Unix(1000, 0)
	f.err = nil
	if _, err := c.CheckPublisher(ctx, "s", "cam1", "cam1", "right"); err != nil {
		t.Fatal(err)
	}
	f.err = ErrBadCredentials
	if _, err := c.CheckPublisher(ctx, "s", "cam1", "cam1", "right"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("registry refuses: err %v", err)
	}
	f.err = down
	if _, err := c.CheckPublisher(ctx, "s", "cam1", "cam1", "right"); !errors.Is(err, down) {
		t.Errorf("after a refusal the cache still admits: err %v", err)
	}
}
