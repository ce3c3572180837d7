package store_test

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/registry/store"
)

// TestCompactSegmentIndex: footage indexed as it arrives, every stream at
// once, leaves a month's covering index sparse; the owner's compaction
// rebuilds a month that ended more than the grace ago (not the month being
// written), once, so that it is smaller and every read gives what it gave
// before; late footage still lands in it. A rebuild that fails leaves the
// old index working and no half-built copy behind; a second compaction at
// the same time is refused.
func TestCompactSegmentIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, dsn := open(t)
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	march := time.Date(2025, 3, 10, 8, 0, 0, 0, time.UTC)
	if _, err := s.EnsureSegmentPartitions(ctx, march); err != nil {
		t.Fatal(err)
	}
	// 40 streams, a segment of each every 6 s, in the order they close:
	// March's and April's footage.
	const streams, perStream = 40, 120
	event := func(stream int, seq int64, at time.Time) *events.SegmentClosed {
		e := segmentEvent(seq, at)
		dev := fmt.Sprintf("cam%d", stream)
		e.StreamID, e.Device = "site1/"+dev, dev
		e.SegmentID = fmt.Sprintf("%s-%s-%d", dev, at.Format("0102"), seq)
		e.ObjectKey = events.SegmentObjectKey("site1", dev, e.Start, e.Sequence, e.SegmentID)
		e.InitKey = "site1/" + dev + "/init.mp4"
		return e
	}
	for _, day := range []time.Time{march, march.AddDate(0, 1, 0)} {
		for k := range perStream {
			batch := make([]*events.SegmentClosed, 0, streams)
			for st := range streams {
				seq := int64(k)
				if day.Month() == time.April {
					seq += perStream
				}
				batch = append(batch, event(st, seq, day.Add(time.Duration(k)*6*time.Second)))
			}
			if _, errs, err := s.IndexSegments(ctx, batch); err != nil || slices.ContainsFunc(errs, func(e error) bool { return e != nil }) {
				t.Fatalf("index: %v %v", err, errs)
			}
		}
	}
	read := func() [][]store.Segment {
		t.Helper()
		var out [][]store.Segment
		for _, dev := range []string{"cam0", "cam17", "cam39"} {
			for _, day := range []time.Time{march, march.AddDate(0, 1, 0)} {
				segs, err := s.Segments(ctx, "site1", dev, day.Add(-time.Minute), day.Add(time.Hour))
				if err != nil || len(segs) != perStream {
					t.Fatalf("segments of %s on %s: %d %v", dev, day.Format(time.DateOnly), len(segs), err)
				}
				out = append(out, segs)
			}
		}
		return out
	}
	before := read()
	var reported []store.CompactedPartition
	progress := func(p store.CompactedPartition) { reported = append(reported, p) }

	// A partition attached by hand with no end is never closed, so never
	// rebuilt, and does not stop the others'.
	if _, err := db.Exec(ctx, `CREATE TABLE segment_rows_far (LIKE segment_rows INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
		ALTER TABLE segment_rows ATTACH PARTITION segment_rows_far FOR VALUES FROM ('3000-01-01') TO (MAXVALUE)`); err != nil {
		t.Fatal(err)
	}

	// A compaction already running: refused, nothing rebuilt.
	if _, err := db.Exec(ctx, `SELECT pg_advisory_lock(hashtext('nokstream_compact_segment_index'))`); err != nil {
		t.Fatal(err)
	}
	if done, err := store.CompactSegmentIndex(ctx, dsn, time.Date(2025, 4, 10, 0, 0, 0, 0, time.UTC), store.CompactionGrace, progress); err == nil ||
		!strings.Contains(err.Error(), "another compaction is running") || len(done) != 0 {
		t.Fatalf("a second compaction at once: %v %v", done, err)
	}
	if _, err := db.Exec(ctx, `SELECT pg_advisory_unlock(hashtext('nokstream_compact_segment_index'))`); err != nil {
		t.Fatal(err)
	}

	// Ten days into April: March is past its grace, April is being written.
	done, err := store.CompactSegmentIndex(ctx, dsn, time.Date(2025, 4, 10, 0, 0, 0, 0, time.UTC), store.CompactionGrace, progress)
	if err != nil || len(done) != 1 || done[0].Partition != "segment_rows_y2025m03" {
		t.Fatalf("compaction on 10 April: %+v %v, want March's partition", done, err)
	}
	p := done[0]
	t.Logf("%s: %d rows, %d → %d bytes in %v", p.Index, p.Rows, p.BytesBefore, p.BytesAfter, p.Took)
	if p.BytesAfter*10 > p.BytesBefore*8 {
		t.Errorf("March's index went from %d to %d bytes, want at least a fifth less", p.BytesBefore, p.BytesAfter)
	}
	if len(reported) != 2 || reported[0].Took != 0 || reported[1] != p {
		t.Errorf("progress: %+v, want March's start and end", reported)
	}
	var valid, all int
	if err := db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE x.indisvalid), count(*) FROM pg_index x
		WHERE x.indrelid = 'segment_rows_y2025m03'::regclass`).Scan(&valid, &all); err != nil || valid != all || all != 2 {
		t.Errorf("March's indexes after the rebuild: %d valid of %d (%v), want its two", valid, all, err)
	}
	var child bool
	if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhparent = 'segment_rows_stream_start'::regclass
		AND inhrelid = $1::regclass)`, p.Index).Scan(&child); err != nil || !child {
		t.Errorf("the rebuilt index is not the covering index's partition (%v)", err)
	}
	if after := read(); !reflect.DeepEqual(before, after) {
		t.Error("the segments read after the rebuild differ from those before")
	}
	if again, err := store.CompactSegmentIndex(ctx, dsn, time.Date(2025, 4, 11, 0, 0, 0, 0, time.UTC), store.CompactionGrace, nil); err != nil || len(again) != 0 {
		t.Errorf("compaction again: %+v %v, want nothing to do", again, err)
	}
	// Late footage of March is indexed into the rebuilt index.
	late := event(3, 9999, march.Add(5*time.Hour))
	if inserted, err := s.IndexSegment(ctx, late); err != nil || !inserted {
		t.Fatalf("late footage: %v %v", inserted, err)
	}
	if segs, err := s.Segments(ctx, "site1", "cam3", march.Add(5*time.Hour), march.Add(6*time.Hour)); err != nil || len(segs) != 1 ||
		segs[0].SegmentID != late.SegmentID {
		t.Errorf("late footage read back: %+v %v", segs, err)
	}

	// April's rebuild fails half way: it waits for a writer of the
	// partition, and is cancelled there, after its new copy was made.
	writer, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.Exec(ctx, `LOCK TABLE segment_rows_y2025m04 IN ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	failed := make(chan error, 1)
	go func() {
		_, err := store.CompactSegmentIndex(cctx, dsn, time.Date(2025, 5, 10, 0, 0, 0, 0, time.UTC), store.CompactionGrace, nil)
		failed <- err
	}()
	watch, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		var waiting bool
		if err := watch.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
			AND query LIKE 'REINDEX INDEX CONCURRENTLY%' AND wait_event_type = 'Lock')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the rebuild never waited for the partition's writer")
		}
	}
	cancel()
	// The writer ends, as writers do (the half-built copy's drop waits
	// for it).
	if err := writer.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-failed; err == nil || !strings.Contains(err.Error(), "free disk") {
		t.Errorf("a rebuild cancelled half way: %v, want its error", err)
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE x.indisvalid), count(*) FROM pg_index x
		WHERE x.indrelid = 'segment_rows_y2025m04'::regclass`).Scan(&valid, &all); err != nil || valid != all || all != 2 {
		t.Errorf("April's indexes after a failed rebuild: %d valid of %d (%v), want its two and no half-built copy", valid, all, err)
	}
	if after := read(); !reflect.DeepEqual(before, after) {
		t.Error("the segments read after a failed rebuild differ from those before")
	}
	done, err = store.CompactSegmentIndex(ctx, dsn, time.Date(2025, 5, 10, 0, 0, 0, 0, time.UTC), store.CompactionGrace, nil)
	if err != nil || len(done) != 1 || done[0].Partition != "segment_rows_y2025m04" {
		t.Errorf("April's compaction after the failed one: %+v %v", done, err)
	}
}
