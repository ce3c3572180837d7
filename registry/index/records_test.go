package index_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
)

// TestArchiveHandler: the archiver's records reach the registry's copies
// once however often they are delivered (three deliveries of a seal, an
// object, a check: one row each); an object's older snapshot delivered
// after a newer one changes nothing, and one saying the object is deleted
// takes it out of what an export lists; a deletion on the same topic is
// still a deletion; what can never be kept is dead-lettered.
func TestArchiveHandler(t *testing.T) {
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
	h := index.ArchiveHandler(s, discard())
	deliver := func(e any, times int) error {
		t.Helper()
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		for range times {
			if err = h(ctx, bus.Message{Topic: events.TopicArchive, Key: "k", Value: b}); err != nil {
				return err
			}
		}
		return nil
	}

	seg := event(3)
	obj := events.ObjectArchived{Type: events.ArchiveObjectArchived, Seq: 10, ObjectKey: seg.ObjectKey, Kind: "segment",
		StreamID: seg.StreamID, Site: seg.Site, Device: seg.Device, Source: seg.Source, Sequence: seg.Sequence,
		Start: seg.Start, End: seg.Start.Add(6 * time.Second), Bytes: seg.Bytes, SHA256: seg.SHA256,
		PrevChain: seg.PrevChain, Chain: seg.Chain, InitKey: seg.InitKey, SegmentID: seg.SegmentID, Verified: true,
		RetainUntil: seg.Start.AddDate(3, 0, 0), LegalHold: true, Rule: "certificate", DecidedAt: seg.Start}
	if err := deliver(obj, 3); err != nil {
		t.Fatalf("object: %v", err)
	}
	window := func() []string {
		t.Helper()
		objs, err := s.ArchivedSegments(ctx, "site1", seg.Start.Add(-time.Hour), seg.Start.Add(time.Hour), "", 10)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, o := range objs {
			if !o.Verified || o.Chain != seg.Chain || !o.Room {
				t.Errorf("copy of %s: %+v", o.Key, o)
			}
			keys = append(keys, o.Key)
		}
		return keys
	}
	if got := window(); len(got) != 1 || got[0] != seg.ObjectKey {
		t.Fatalf("three deliveries of an archived segment: the footage of the window is %v, want %s once", got, seg.ObjectKey)
	}
	older := obj
	older.Seq, older.Verified = 4, false
	if err := deliver(older, 1); err != nil {
		t.Fatalf("older snapshot: %v", err)
	}
	if objs, err := s.ArchivedObjects(ctx, []string{seg.ObjectKey}); err != nil || len(objs) != 1 || !objs[0].Verified {
		t.Errorf("an older snapshot delivered late changed the copy: %+v, %v", objs, err)
	}
	deleted := obj
	at := seg.Start.AddDate(3, 0, 1)
	deleted.Seq, deleted.DeletedAt = 12, &at
	if err := deliver(deleted, 1); err != nil {
		t.Fatalf("deleted snapshot: %v", err)
	}
	if got := window(); len(got) != 0 {
		t.Errorf("a deleted segment is still listed for export: %v", got)
	}
	if err := deliver(obj, 1); err != nil { // seq 10 again, after 12
		t.Fatal(err)
	}
	if got := window(); len(got) != 0 {
		t.Errorf("a late snapshot brought a deleted segment back: %v", got)
	}

	sl := events.SealWritten{Type: events.ArchiveSealWritten, Seq: 20, ExamID: "e1", CandidateID: "c1", Version: 1,
		ManifestKey: "seals/e1/c1/0001/manifest.json", SignatureKey: "seals/e1/c1/0001/manifest.sig",
		MerkleRoot: strings.Repeat("ab", 32), KeyID: "k1", Objects: 3, Bytes: 300, SealedAt: seg.Start.Add(time.Hour)}
	if err := deliver(sl, 3); err != nil {
		t.Fatalf("seal: %v", err)
	}
	if got, err := s.LatestSeal(ctx, "e1", "c1"); err != nil || got.Version != 1 || got.MerkleRoot != sl.MerkleRoot || got.Objects != 3 {
		t.Errorf("three deliveries of a seal: latest %+v, %v", got, err)
	}
	forged := sl
	forged.MerkleRoot = strings.Repeat("cd", 32)
	if err := deliver(forged, 1); !bus.IsPermanent(err) {
		t.Errorf("another seal of the same version: %v, want a permanent error", err)
	}
	if got, _ := s.LatestSeal(ctx, "e1", "c1"); got.MerkleRoot != sl.MerkleRoot {
		t.Errorf("a seal was rewritten: root %s", got.MerkleRoot)
	}

	check := events.SegmentChecked{Type: events.ArchiveSegmentChecked, Seq: 9, SegmentID: seg.SegmentID, OK: false,
		Detail: "sha256 mismatch", CheckedAt: seg.Start.Add(time.Second), Checker: "archiver-1"}
	if err := deliver(check, 3); err != nil {
		t.Fatalf("check: %v", err)
	}
	again := check
	again.Seq, again.OK, again.CheckedAt = 11, true, check.CheckedAt.Add(time.Minute)
	if err := deliver(again, 1); err != nil {
		t.Fatal(err)
	}
	if cs, err := s.SegmentChecks(ctx, seg.SegmentID); err != nil || len(cs) != 2 || cs[0].OK || !cs[1].OK || cs[0].Detail != "sha256 mismatch" {
		t.Errorf("three deliveries of one check and one of another: %+v, %v; want two checks", cs, err)
	}

	del := events.ObjectDeleted{ObjectKey: seg.ObjectKey, Kind: "segment", StreamID: seg.StreamID, Bytes: seg.Bytes,
		SHA256: seg.SHA256, Rule: "certificate", RetainUntil: obj.RetainUntil, MarkedAt: at, DeletedAt: at, Archiver: "archiver-1"}
	if err := deliver(del, 2); err != nil {
		t.Fatalf("deletion: %v", err)
	}
	if trail, err := s.ObjectAudit(ctx, []string{seg.ObjectKey}, time.Time{}, 10); err != nil || len(trail) != 1 || trail[0].Action != "archive.delete" {
		t.Errorf("a deletion on the topic of records: audit %+v, %v", trail, err)
	}

	for _, bad := range []string{
		`{"type":"seal_written"`,
		`{"type":"seal_opened","exam_id":"e1"}`,
		`{"type":"object_archived","seq":1,"object_key":"x","kind":"segment"}`,
		`{"type":"segment_checked","segment_id":"s"}`,
		`[]`,
	} {
		err := h(ctx, bus.Message{Topic: events.TopicArchive, Key: "x", Value: []byte(bad)})
		if !bus.IsPermanent(err) {
			t.Errorf("%s: got %v, want a permanent error (dead letter)", bad, err)
		}
	}
}
