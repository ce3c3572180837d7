package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/events"
)

// published is what ReportRecords handed the bus, decoded.
type published struct {
	objects []*events.ObjectArchived
	seals   []*events.SealWritten
	checks  []*events.SegmentChecked
}

// report publishes the queued records into p, failing the publish of the
// failAt-th (1-based; 0: none) with errBus, and returns how many went.
func report(t *testing.T, s *store.Store, p *published, failAt int) (int, error) {
	t.Helper()
	calls := 0
	return s.ReportRecords(t.Context(), 100, time.Now(), func(_ context.Context, key string, value []byte) error {
		calls++
		if calls == failAt {
			return errBus
		}
		typ, err := events.ArchiveType(value)
		if err != nil {
			t.Fatalf("record under %s: %v", key, err)
		}
		switch typ {
		case events.ArchiveObjectArchived:
			e, err := events.DecodeObjectArchived(value)
			if err != nil || e.ObjectKey != key {
				t.Fatalf("record under %s: %v %s", key, err, value)
			}
			p.objects = append(p.objects, e)
		case events.ArchiveSealWritten:
			e, err := events.DecodeSealWritten(value)
			if err != nil || key != e.ExamID+"/"+e.CandidateID {
				t.Fatalf("record under %s: %v %s", key, err, value)
			}
			p.seals = append(p.seals, e)
		case events.ArchiveSegmentChecked:
			e, err := events.DecodeSegmentChecked(value)
			if err != nil || key != e.SegmentID {
				t.Fatalf("record under %s: %v %s", key, err, value)
			}
			p.checks = append(p.checks, e)
		default:
			t.Fatalf("record of type %s under %s", typ, key)
		}
		return nil
	})
}

var errBus = errors.New("the bus is down")

// TestRecords: each change the registry keeps a copy of is queued with it
// and published once: an archived segment and its init, a new retention
// (with a higher seq than the object's first record, so the registry keeps
// the newer), a deletion, a check and a seal. A publish that fails leaves
// the rest queued for the next pass, and nothing is published twice.
func TestRecords(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := open(t)
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	sum, link := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	seg := store.ArchiveObject{Key: "site1/cam1/000001.m4s", Kind: store.ArchiveSegment, StreamID: "site1/cam1", Site: "site1",
		Device: "cam1", Source: "room", Sequence: 1, Start: at, End: at.Add(6 * time.Second), Bytes: 100, SHA256: sum,
		PrevChain: strings.Repeat("0", 64), Chain: link, InitKey: "site1/cam1/init.mp4", SegmentID: "s1", Verified: true,
		RetainUntil: at.AddDate(0, 1, 0), Rule: "unlinked", DecidedAt: at}
	init := store.ArchiveObject{Key: seg.InitKey, Kind: store.ArchiveInit, StreamID: "site1/cam1", Site: "site1",
		Start: seg.Start, End: seg.End, Bytes: 10, SHA256: sum, Verified: true, RetainUntil: seg.RetainUntil, Rule: "serves",
		DecidedAt: at}
	if err := s.SaveArchivedSegment(ctx, seg, init, store.StreamChain{StreamID: "site1/cam1", Sequence: 1, Chain: link, SegmentID: "s1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordSegmentCheck(ctx, "s1", true, "size and sha256 match", "archiver-1"); err != nil {
		t.Fatal(err)
	}
	var p published
	if n, err := report(t, s, &p, 0); err != nil || n != 3 {
		t.Fatalf("report: %d, %v; want 3 records", n, err)
	}
	if len(p.objects) != 2 || p.objects[0].ObjectKey != seg.Key || p.objects[1].ObjectKey != init.Key || len(p.checks) != 1 {
		t.Fatalf("published %+v", p)
	}
	first := p.objects[0]
	if first.Chain != link || !first.Verified || first.Sequence != 1 || !first.RetainUntil.Equal(seg.RetainUntil) || first.DeletedAt != nil {
		t.Errorf("the segment's record: %+v", first)
	}
	if c := p.checks[0]; !c.OK || c.Checker != "archiver-1" || c.CheckedAt.IsZero() {
		t.Errorf("the check's record: %+v", c)
	}
	if n, err := report(t, s, &p, 0); err != nil || n != 0 {
		t.Errorf("a second report: %d, %v; want nothing again", n, err)
	}

	// A new retention, a deletion, a seal: 1 + 1 + 3 records; the bus
	// fails on the second.
	later := at.AddDate(5, 0, 0)
	if err := s.SetArchiveRetention(ctx, []store.RetentionUpdate{{Key: seg.Key, RetainUntil: later, LegalHold: true,
		Rule: "appeal", DecidedAt: at}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDeletion(ctx, init.Key, at.Add(time.Hour), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	sl := store.Seal{ExamID: "e1", CandidateID: "c1", Version: 1, ManifestKey: "seals/e1/c1/0001/manifest.json",
		SignatureKey: "seals/e1/c1/0001/manifest.sig", MerkleRoot: link, KeyID: "k1", Objects: 2, Bytes: 110, SealedAt: at}
	sealObj := func(key string) store.ArchiveObject {
		return store.ArchiveObject{Key: key, Kind: store.ArchiveSeal, Site: "site1", Start: at, End: at, Bytes: 5,
			ExamID: "e1", CandidateID: "c1", Verified: true, RetainUntil: later, Rule: "certificate", DecidedAt: at}
	}
	if err := s.SaveSeal(ctx, sl, sealObj(sl.ManifestKey), sealObj(sl.SignatureKey)); err != nil {
		t.Fatal(err)
	}
	p = published{}
	if n, err := report(t, s, &p, 2); !errors.Is(err, errBus) || n != 1 {
		t.Fatalf("report with the bus failing on the second record: %d, %v", n, err)
	}
	if n, err := report(t, s, &p, 0); err != nil || n != 4 {
		t.Fatalf("the next pass: %d, %v; want the other 4", n, err)
	}
	if len(p.objects) != 4 || len(p.seals) != 1 {
		t.Fatalf("published %d objects and %d seals, want 4 and 1", len(p.objects), len(p.seals))
	}
	held := p.objects[0]
	if held.ObjectKey != seg.Key || !held.LegalHold || !held.RetainUntil.Equal(later) || held.Rule != "appeal" || held.Seq <= first.Seq {
		t.Errorf("the new retention's record: %+v (the first had seq %d)", held, first.Seq)
	}
	if gone := p.objects[1]; gone.ObjectKey != init.Key || gone.DeletedAt == nil || !gone.DeletedAt.Equal(at.Add(time.Hour)) {
		t.Errorf("the deletion's record: %+v", gone)
	}
	if got := p.seals[0]; got.Version != 1 || got.MerkleRoot != link || got.Objects != 2 || got.ManifestKey != sl.ManifestKey {
		t.Errorf("the seal's record: %+v", got)
	}
	if n, err := s.UnreportedRecords(ctx); err != nil || n != 0 {
		t.Errorf("unreported records: %d, %v", n, err)
	}
	if n, err := s.PruneRecords(ctx, time.Now().Add(time.Minute)); err != nil || n != 8 {
		t.Errorf("prune the reported records: %d, %v; want 8", n, err)
	}
}
