package index

import (
	"context"
	"log/slog"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
)

// DeletionGroup is the registry's consumer group for the archiver's
// deletions and records (events.TopicArchive, ArchiveHandler). Its name
// is from when deletions were all the topic carried.
const DeletionGroup = "registry-deletions"

// DeletionRecorder records deletions; *store.Store is one.
type DeletionRecorder interface {
	// RecordDeletion reports whether the deletion was new. It returns an
	// error wrapping store.ErrInvalid for an event that can never be
	// recorded.
	RecordDeletion(ctx context.Context, e *events.ObjectDeleted) (recorded bool, err error)
}

// DeletionHandler returns the bus handler that records the archiver's
// ObjectDeleted events in the registry (the audit log, the segment index),
// idempotently: the same event twice is one audit entry. A malformed event
// is dead-lettered; a database error is retried.
func DeletionHandler(r DeletionRecorder, log *slog.Logger) bus.Handler {
	return handler(log, "deletion", events.DecodeObjectDeleted, r.RecordDeletion,
		func(e *events.ObjectDeleted) []any {
			return []any{"object_key", e.ObjectKey, "kind", e.Kind, "rule", e.Rule}
		})
}
