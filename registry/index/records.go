package index

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
)

// ArchiveRecorder keeps the registry's copies of what the archiver reports
// on events.TopicArchive; *store.Store is one. Each method reports whether
// the event changed anything, and returns an error wrapping
// store.ErrInvalid (or store.ErrConflict) for one that can never be kept.
type ArchiveRecorder interface {
	DeletionRecorder
	RecordArchivedObject(ctx context.Context, e *events.ObjectArchived) (bool, error)
	RecordSeal(ctx context.Context, e *events.SealWritten) (bool, error)
	RecordSegmentCheck(ctx context.Context, e *events.SegmentChecked) (bool, error)
}

// ArchiveHandler returns the bus handler of events.TopicArchive (group
// DeletionGroup): each message goes, by its type, to the deletions
// (DeletionHandler) or to the registry's copies of the archiver's objects,
// seals and segment checks, idempotently: the same event twice changes
// nothing more, and an object's older snapshot after a newer one neither.
// A malformed message or one of an unknown type is dead-lettered; a
// database error is retried.
func ArchiveHandler(r ArchiveRecorder, log *slog.Logger) bus.Handler {
	deletions := DeletionHandler(r, log)
	objects := handler(log, "archived object", events.DecodeObjectArchived, r.RecordArchivedObject,
		func(e *events.ObjectArchived) []any {
			return []any{"object_key", e.ObjectKey, "kind", e.Kind, "seq", e.Seq}
		})
	seals := handler(log, "seal", events.DecodeSealWritten, r.RecordSeal,
		func(e *events.SealWritten) []any {
			return []any{"exam_id", e.ExamID, "candidate_id", e.CandidateID, "version", e.Version}
		})
	checks := handler(log, "segment check", events.DecodeSegmentChecked, r.RecordSegmentCheck,
		func(e *events.SegmentChecked) []any {
			return []any{"segment_id", e.SegmentID, "ok", e.OK, "seq", e.Seq}
		})
	return func(ctx context.Context, m bus.Message) error {
		typ, err := events.ArchiveType(m.Value)
		if err != nil {
			log.Error("reject malformed archive record", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
			return bus.Permanent(fmt.Errorf("archive record at %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err))
		}
		switch typ {
		case events.ArchiveObjectArchived:
			return objects(ctx, m)
		case events.ArchiveSealWritten:
			return seals(ctx, m)
		case events.ArchiveSegmentChecked:
			return checks(ctx, m)
		default:
			return deletions(ctx, m)
		}
	}
}
