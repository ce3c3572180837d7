package index

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/registry/store"
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
	return func(ctx context.Context, m bus.Message) error {
		e, err := events.DecodeRenditionReady(m.Value)
		if err != nil {
			log.Error("reject malformed rendition event", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
			return bus.Permanent(fmt.Errorf("index rendition at %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err))
		}
		changed, err := idx.IndexRendition(ctx, e)
		switch {
		case errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrConflict):
			log.Error("reject rendition event", "segment_id", e.SegmentID, "stream", e.StreamID, "err", err)
			return bus.Permanent(err)
		case err != nil:
			return err
		case changed:
			log.Debug("indexed rendition", "segment_id", e.SegmentID, "stream", e.StreamID, "variant", e.Variant)
		}
		return nil
	}
}
