package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// TestMediaAccessWindows: what two registries add to the same window is one
// audit row with the sums, the addresses of both and the widest spans; a
// window is closed only once it has ended, and only once; the chain
// verifies.
func TestMediaAccessWindows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	w := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return w.Add(d) }
	base := store.MediaAccess{ActorID: 7, ActorLogin: "expert1", Stream: "site1/room1", Purpose: "appeal 3",
		WindowStart: w, WindowEnd: w.Add(5 * time.Minute)}
	a, b := base, base
	a.RemoteAddrs, a.Via, a.Fetches, a.Ranged, a.First, a.Last = []string{"10.0.0.1"}, []string{"signed_url"}, 30, 4, at(time.Minute), at(2*time.Minute)
	a.MediaFrom, a.MediaTo = at(-time.Hour), at(-time.Hour+time.Minute)
	b.RemoteAddrs, b.Via, b.Fetches, b.Init, b.First, b.Last = []string{"10.0.0.2", "10.0.0.1"}, []string{"token"}, 12, 1, at(30*time.Second), at(4*time.Minute)
	b.MediaFrom, b.MediaTo = at(-2*time.Hour), at(-time.Hour+30*time.Second)
	other := base
	other.Purpose, other.Fetches, other.First, other.Last, other.Via = "review", 1, at(time.Minute), at(time.Minute), []string{"token"}
	if err := s.AddMediaAccess(ctx, []store.MediaAccess{a, other}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMediaAccess(ctx, []store.MediaAccess{b}); err != nil { // another registry
		t.Fatal(err)
	}
	if n, err := s.CloseMediaAccess(ctx, at(5*time.Minute-time.Second)); err != nil || n != 0 {
		t.Fatalf("closed %d windows before their end (%v)", n, err)
	}
	if n, err := s.CloseMediaAccess(ctx, at(5*time.Minute)); err != nil || n != 2 {
		t.Fatalf("closed %d windows at their end, want 2 (%v)", n, err)
	}
	if n, err := s.CloseMediaAccess(ctx, at(time.Hour)); err != nil || n != 0 {
		t.Fatalf("closed %d windows again", n)
	}
	log, err := s.AuditLog(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var rows []store.AuditEntry
	for _, e := range log {
		if e.Action == "media.get" {
			rows = append(rows, e)
		}
	}
	if len(rows) != 2 {
		t.Fatalf("%d media.get rows, want 2", len(rows))
	}
	// Ordered by first fetch: appeal 3 began at 0:30, review at 1:00.
	g := rows[0]
	want := map[string]any{"fetches": 42.0, "ranged": 4.0, "init": 1.0, "via": "signed_url,token",
		"first_at": "2025-03-01T10:00:30Z", "last_at": "2025-03-01T10:04:00Z",
		"media_from": "2025-03-01T08:00:00Z", "media_to": "2025-03-01T09:01:00Z",
		"window_start": "2025-03-01T10:00:00Z", "window_end": "2025-03-01T10:05:00Z"}
	for k, v := range want {
		if g.Detail[k] != v {
			t.Errorf("detail %s = %v, want %v", k, g.Detail[k], v)
		}
	}
	if g.Purpose != "appeal 3" || g.Object != "site1/room1" || g.RemoteAddr != "10.0.0.1, 10.0.0.2" || g.ActorID != 7 || !g.At.Equal(at(30*time.Second)) {
		t.Errorf("row %+v", g)
	}
	if rows[1].Purpose != "review" || rows[1].Detail["fetches"] != 1.0 || rows[1].Detail["media_from"] != nil {
		t.Errorf("second row %+v", rows[1])
	}
	brk, _, err := s.VerifyAuditLog(ctx, nil)
	if err != nil || brk != nil {
		t.Errorf("audit chain: %v %v", brk, err)
	}
}
