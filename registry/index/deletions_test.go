package index_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
)

// TestDeletionHandler: the archiver's report of a deletion takes the
// segment out of the index and is one audit entry however often it is
// delivered; a report that can never be recorded is dead-lettered.
func TestDeletionHandler(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	if err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer s.Close()
	seg := event(0)
	if _, err := s.IndexSegment(ctx, seg); err != nil {
		t.Fatal(err)
	}
	at := seg.Start.Add(40 * 24 * time.Hour)
	b, err := json.Marshal(events.ObjectDeleted{ObjectKey: seg.ObjectKey, Kind: "segment", StreamID: seg.StreamID,
		Bytes: seg.Bytes, SHA256: seg.SHA256, Rule: "unlinked", RetainUntil: at.Add(-24 * time.Hour),
		MarkedAt: at.Add(-24 * time.Hour), DeletedAt: at, Archiver: "archiver-1"})
	if err != nil {
		t.Fatal(err)
	}
	h := index.DeletionHandler(s, discard())
	m := bus.Message{Topic: events.TopicArchive, Key: seg.ObjectKey, Value: b}
	for i := range 3 {
		if err := h(ctx, m); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	if segs, err := s.Segments(ctx, "site1", "cam1", time.Time{}, time.Now()); err != nil || len(segs) != 0 {
		t.Errorf("the deleted segment is still indexed: %d rows, %v", len(segs), err)
	}
	trail, err := s.ObjectAudit(ctx, []string{seg.ObjectKey}, time.Time{}, 10)
	if err != nil || len(trail) != 1 || trail[0].Action != "archive.delete" || trail[0].Detail["archiver"] != "archiver-1" {
		t.Errorf("three deliveries: audit %+v, %v; want one archive.delete entry", trail, err)
	}
	for _, bad := range []string{`{"object_key": "x"`, `{"object_key": "x", "kind": "segment", "rule": "unlinked"}`} {
		err := h(ctx, bus.Message{Topic: events.TopicArchive, Key: "x", Value: []byte(bad)})
		if !bus.IsPermanent(err) {
			t.Errorf("%s: got %v, want a permanent error", bad, err)
		}
	}
}
