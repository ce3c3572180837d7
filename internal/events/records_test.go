package events_test

import (
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/events"
)

// recordExamples are the archiver's records on TopicArchive besides
// ObjectDeleted, fully populated, for TestGolden.
func recordExamples() []example {
	at := time.Date(2025, 3, 10, 12, 30, 0, 0, time.UTC)
	deleted := time.Date(2030, 3, 11, 4, 0, 0, 500_000_000, time.UTC)
	return []example{
		{"seal_written", &events.SealWritten{
			Type: events.ArchiveSealWritten, Seq: 7, ExamID: "exam-2025-03-03", CandidateID: "orlova", Version: 2,
			ManifestKey:  "seals/exam-2025-03-03/orlova/0002/manifest.json",
			SignatureKey: "seals/exam-2025-03-03/orlova/0002/manifest.sig",
			MerkleRoot:   "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
			KeyID:        "3a7bd3e2360a3d29", Objects: 2402, Bytes: 2_964_111_360, SealedAt: at,
		}, func(b []byte) (any, error) { return events.DecodeSealWritten(b) }},
		{"object_archived", &events.ObjectArchived{
			Type: events.ArchiveObjectArchived, Seq: 41, ObjectKey: "raw/ep-ilinka/room1/2025/03/03/000042.m4s",
			Kind: "segment", StreamID: "ep-ilinka/room1", Site: "ep-ilinka", Device: "room1", Source: events.SourceRoom,
			Sequence: 42, Start: time.Date(2025, 3, 3, 9, 0, 1, 250_000_000, time.UTC),
			End: time.Date(2025, 3, 3, 9, 0, 5, 254_000_000, time.UTC), Bytes: 1_234_567,
			SHA256:    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			PrevChain: "0000000000000000000000000000000000000000000000000000000000000000",
			Chain:     "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752",
			InitKey:   "raw/ep-ilinka/room1/init/3a7bd3e2.mp4",
			SegmentID: "01JNE6X4N0S3G5Q7R8T9V0W1X2",
			ExamID:    "exam-2025-03-03", CandidateID: "orlova", Verified: true,
			RetainUntil: time.Date(2030, 3, 10, 0, 0, 0, 0, time.UTC), LegalHold: true, Rule: "certificate",
			DecidedAt: at, DeletedAt: &deleted,
		}, func(b []byte) (any, error) { return events.DecodeObjectArchived(b) }},
		{"segment_checked", &events.SegmentChecked{
			Type: events.ArchiveSegmentChecked, Seq: 40, SegmentID: "01JNE6X4N0S3G5Q7R8T9V0W1X2",
			OK: true, Detail: "size and sha256 match",
			CheckedAt: at, Checker: "archiver-1",
		}, func(b []byte) (any, error) { return events.DecodeSegmentChecked(b) }},
	}
}

// TestArchiveType: a message on TopicArchive says its type, and one
// without is an ObjectDeleted (the first record, which has no type);
// an unknown type or bytes that are no JSON object are refused.
func TestArchiveType(t *testing.T) {
	for _, c := range []struct {
		in, want string
		bad      bool
	}{
		{`{"object_key":"raw/a","kind":"segment"}`, events.ArchiveObjectDeleted, false},
		{`{"type":"seal_written"}`, events.ArchiveSealWritten, false},
		{`{"type":"object_archived"}`, events.ArchiveObjectArchived, false},
		{`{"type":"segment_checked"}`, events.ArchiveSegmentChecked, false},
		{`{"type":"object_deleted"}`, "", true},
		{`{"type":"seal_broken"}`, "", true},
		{`{"type":7}`, "", true},
		{`[1]`, "", true},
		{`not json`, "", true},
	} {
		got, err := events.ArchiveType([]byte(c.in))
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("ArchiveType(%s) = %q, %v; want %q, error %v", c.in, got, err, c.want, c.bad)
		}
	}
}

// fuzzRecords is FuzzEvents for the archiver's records: none of their
// decoders panics, whatever one accepts is valid and of the type
// ArchiveType reads from the same bytes, and it survives a round trip.
func fuzzRecords(t *testing.T, data []byte) {
	typ, typErr := events.ArchiveType(data)
	accepted := func(want string) {
		t.Helper()
		if typErr != nil || typ != want {
			t.Errorf("decoded a %s that ArchiveType reads as %q, %v", want, typ, typErr)
		}
	}
	if e, err := events.DecodeSealWritten(data); err == nil {
		accepted(events.ArchiveSealWritten)
		if err := e.Validate(); err != nil {
			t.Errorf("decoded an invalid seal record: %v", err)
		}
		roundTrip(t, e, func(b []byte) (any, error) { return events.DecodeSealWritten(b) })
	}
	if e, err := events.DecodeObjectArchived(data); err == nil {
		accepted(events.ArchiveObjectArchived)
		if err := e.Validate(); err != nil {
			t.Errorf("decoded an invalid archived object: %v", err)
		}
		roundTrip(t, e, func(b []byte) (any, error) { return events.DecodeObjectArchived(b) })
	}
	if e, err := events.DecodeSegmentChecked(data); err == nil {
		accepted(events.ArchiveSegmentChecked)
		if err := e.Validate(); err != nil {
			t.Errorf("decoded an invalid segment check: %v", err)
		}
		roundTrip(t, e, func(b []byte) (any, error) { return events.DecodeSegmentChecked(b) })
	}
}
