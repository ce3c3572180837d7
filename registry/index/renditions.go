package index

import (
	"context"
	"log/slog"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
)

// RenditionGroup is the registry's consumer group for renditions.
const RenditionGroup = "registry-renditions"

// RenditionIndexer stores renditions; *store.Store is one.
type RenditionIndexer interface {
	// IndexRendition reports whether the index changed. It returns an
	// error wrapping store.ErrInvalid or store.ErrConflict for an event
	// that can never be indexed.
	IndexRendition(ctx context.Context, e *events.RenditionReady) (changed bool, err error)
}

// RenditionHandler returns the bus handler that indexes RenditionReady
// events (events.TopicRenditions) into idx, idempotently: the same event
// twice is one row. A malformed event, or one for a segment that was
// transcoded from other bytes, is dead-lettered; a database error is
// retried.
func RenditionHandler(idx RenditionIndexer, log *slog.Logger) bus.Handler {
	return handler(log, "rendition", events.DecodeRenditionReady, idx.IndexRendition,
		func(e *events.RenditionReady) []any {
			return []any{"segment_id", e.SegmentID, "stream", e.StreamID, "variant", e.Variant}
		})
}
