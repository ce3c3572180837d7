package store_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/registry/store"
)

// TestIndexSegmentsBatch: a batch indexes each new segment once, tells
// duplicates (in the batch and already indexed) from conflicts and invalid
// events, and stores what IndexSegment would.
func TestIndexSegmentsBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	old := segmentEvent(0, t0)
	if _, err := s.IndexSegment(ctx, old); err != nil {
		t.Fatal(err)
	}
	a, b := segmentEvent(1, t0.Add(6*time.Second)), segmentEvent(2, t0.Add(12*time.Second))
	b.Codecs = []string{`odd"codec\`, "mp4a.40.2"}
	conflict := *old
	conflict.SHA256 = strings.Repeat("cd", 32)
	invalid := segmentEvent(3, t0.Add(18*time.Second))
	invalid.SHA256 = "short"
	batch := []*events.SegmentClosed{a, old, b, a, &conflict, invalid}
	inserted, errs, err := s.IndexSegments(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, true, false, false, false}; !slices.Equal(inserted, want) {
		t.Errorf("inserted %v, want %v", inserted, want)
	}
	for i, want := range []error{nil, nil, nil, nil, store.ErrConflict, store.ErrInvalid} {
		if (want == nil && errs[i] != nil) || (want != nil && !errors.Is(errs[i], want)) {
			t.Errorf("event %d: %v, want %v", i, errs[i], want)
		}
	}
	segs, err := s.Segments(ctx, "site1", "cam1", t0, t0.Add(time.Minute))
	if err != nil || len(segs) != 3 {
		t.Fatalf("segments: %d %v", len(segs), err)
	}
	if !slices.Equal(segs[2].Codecs, b.Codecs) || !segs[1].End.Equal(a.Start.Add(6*time.Second)) {
		t.Errorf("stored %+v", segs[2])
	}
}
