package store_test

import (
	"context"
	"errors"
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

// TestIndexSegmentsHostileFields: fields the index cannot hold (a NUL, text
// that is not UTF-8, a key longer than S3 allows, too many codecs) are
// invalid events, refused one by one, and the batch's other segments are
// indexed (before, PostgreSQL refused the whole batch, at every retry);
// and what the compact layout stores otherwise (hashes not in lowercase
// hex, ingest's own object keys, a second init of a stream) reads back as
// it came.
func TestIndexSegmentsHostileFields(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, dsn := open(t)
	t0 := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	var batch []*events.SegmentClosed
	for i := range 9 {
		e := segmentEvent(int64(i), t0.Add(time.Duration(i)*6*time.Second))
		e.SegmentID = fmt.Sprintf("01JNQ00000000000000000000%d", i)
		e.ObjectKey = events.SegmentObjectKey(e.Site, e.Device, e.Start, e.Sequence, e.SegmentID)
		batch = append(batch, e)
	}
	batch[1].Device, batch[1].StreamID = "cam\x001", "site1/cam\x001"
	batch[2].IngestNode = "node\xff"
	batch[3].ObjectKey = strings.Repeat("k", events.MaxObjectKey+1)
	batch[4].Codecs = slices.Repeat([]string{"avc1.64001f"}, 17)
	batch[5].SHA256 = strings.ToUpper(batch[5].SHA256)                    // kept as it came
	batch[6].InitKey, batch[6].InitSHA256 = "site1/cam1/init-2.mp4", "22" // a second init
	batch[7].ObjectKey = "elsewhere/7.m4s"                                // not ingest's form
	inserted, errs, err := s.IndexSegments(ctx, batch)
	if err != nil {
		t.Fatalf("a batch with hostile events failed whole: %v", err)
	}
	for i := range batch {
		bad := i >= 1 && i <= 4
		if bad != errors.Is(errs[i], store.ErrInvalid) || bad == inserted[i] {
			t.Errorf("event %d: inserted %v, %v", i, inserted[i], errs[i])
		}
	}
	// Keys of ingest's form at the edges of where the index derives them
	// rather than stores them: a sequence of eleven digits, the years 999
	// and 1000 (Go and PostgreSQL format those alike or not).
	var edges []*events.SegmentClosed
	for i, at := range []time.Time{t0, time.Date(999, 12, 31, 23, 59, 59, 999999000, time.UTC), time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		e := segmentEvent([]int64{12345678901, 5, 6}[i], at)
		e.Device, e.StreamID, e.SegmentID = "cam2", "site1/cam2", fmt.Sprintf("01JNQ0000000000000000000E%d", i)
		e.ObjectKey = events.SegmentObjectKey(e.Site, e.Device, e.Start, e.Sequence, e.SegmentID)
		edges = append(edges, e)
	}
	if _, errs, err := s.IndexSegments(ctx, edges); err != nil || errors.Join(errs...) != nil {
		t.Fatalf("the edges: %v %v", err, errs)
	}
	for _, r := range []struct {
		device   string
		from, to time.Time
		want     []*events.SegmentClosed
	}{
		{"cam1", t0, t0.Add(time.Hour), []*events.SegmentClosed{batch[0], batch[5], batch[6], batch[7], batch[8]}},
		{"cam2", edges[1].Start, edges[2].Start.Add(time.Minute), edges[1:]},
		{"cam2", t0, t0.Add(time.Minute), edges[:1]},
	} {
		segs, err := s.Segments(ctx, "site1", r.device, r.from, r.to)
		if err != nil || len(segs) != len(r.want) {
			t.Fatalf("segments of %s from %v: %d %v, want %d", r.device, r.from, len(segs), err, len(r.want))
		}
		for i, g := range segs {
			e := r.want[i]
			want := store.Segment{SegmentClosed: *e, End: g.End, IndexedAt: g.IndexedAt}
			want.Start = g.Start // microseconds
			if !reflect.DeepEqual(g, want) {
				t.Errorf("segment %s reads back as\n%+v, want\n%+v", e.SegmentID, g.SegmentClosed, want.SegmentClosed)
			}
			// The view (SQL) shows what the playlist's read (Go) does.
			if v, err := s.SegmentByID(ctx, e.SegmentID); err != nil || !reflect.DeepEqual(v, g) {
				t.Errorf("segment %s through the view:\n%+v %v, want\n%+v", e.SegmentID, v.SegmentClosed, err, g.SegmentClosed)
			}
			o, err := s.ObjectByKey(ctx, e.ObjectKey)
			if err != nil || o.SegmentID != e.SegmentID || o.SHA256 != e.SHA256 {
				t.Errorf("segment %s by its key: %+v %v", e.SegmentID, o, err)
			}
		}
	}
	// Stored: the key not of ingest's form, and the one of the year 999.
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	rows, err := db.Query(ctx, `SELECT segment_id FROM segment_rows WHERE object_key IS NOT NULL ORDER BY segment_id`)
	if err != nil {
		t.Fatal(err)
	}
	if kept, err := pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || !slices.Equal(kept, []string{batch[7].SegmentID, edges[1].SegmentID}) {
		t.Errorf("keys stored for %v (%v), want those of the year 999 and not of ingest's form", kept, err)
	}
	if o, err := s.ObjectByKey(ctx, "site1/cam1/init-2.mp4"); err != nil || !o.Init || o.SHA256 != "22" || o.SegmentID != batch[6].SegmentID {
		t.Errorf("the second init: %+v %v", o, err)
	}
}
