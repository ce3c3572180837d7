package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/registry/store"
)

// TestSegmentPartitions: footage of a month without a partition waits in
// the default partition, moves into the month's partition when it is made,
// and stays indexed once, findable and idempotent throughout.
func TestSegmentPartitions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, dsn := open(t)
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	may := time.Date(2031, 5, 31, 23, 59, 57, 0, time.UTC) // its 6 s cross into June
	partitionOf := func(id string) string {
		t.Helper()
		var p string
		if err := db.QueryRow(ctx, `SELECT tableoid::regclass::text FROM segment_rows WHERE segment_id = $1`, id).Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	e := segmentEvent(0, may)
	if _, err := s.IndexSegment(ctx, e); err != nil {
		t.Fatal(err)
	}
	if p := partitionOf(e.SegmentID); p != "segment_rows_default" {
		t.Errorf("footage of a month without a partition is in %s", p)
	}
	made, err := s.EnsureSegmentPartitions(ctx, may)
	if err != nil || made != 4 {
		t.Fatalf("ensure partitions: %d %v, want 4 made", made, err)
	}
	if made, err := s.EnsureSegmentPartitions(ctx, may); err != nil || made != 0 {
		t.Errorf("ensure again: %d %v, want none", made, err)
	}
	if p := partitionOf(e.SegmentID); p != "segment_rows_y2031m05" {
		t.Errorf("after the partition is made the footage is in %s", p)
	}
	if inserted, err := s.IndexSegment(ctx, e); err != nil || inserted {
		t.Errorf("the same event again: %v %v", inserted, err)
	}
	conflicting := *e
	conflicting.Sequence = 7
	if _, err := s.IndexSegment(ctx, &conflicting); !errors.Is(err, store.ErrConflict) {
		t.Errorf("a conflicting event: %v", err)
	}
	// A range query across the month boundary finds the segment that
	// starts before it.
	segs, err := s.Segments(ctx, "site1", "cam1", may.Add(3*time.Second), may.Add(time.Hour))
	if err != nil || len(segs) != 1 {
		t.Errorf("segments across the month boundary: %d %v", len(segs), err)
	}
	if _, err := s.SegmentByID(ctx, e.SegmentID); err != nil {
		t.Errorf("segment by id: %v", err)
	}
}
