// Package index fills the registry's segment index from SegmentClosed events
// on the bus (events.TopicSegments).
//
// Indexing is idempotent, as at-least-once delivery requires: the same event
// twice is one row. An event that can never be indexed (malformed JSON, a
// missing field, a segment id reused for other bytes) is a poison message
// and goes to the dead-letter topic; a database error is retried.
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

// Indexer stores segments in the index; *store.Store is one.
type Indexer interface {
	// IndexSegment reports whether the segment was new. It returns an
	// error wrapping store.ErrInvalid or store.ErrConflict for events that
	// can never be indexed.
	IndexSegment(ctx context.Context, e *events.SegmentClosed) (inserted bool, err error)
}

// Handler returns the bus handler that indexes SegmentClosed events into
// idx. The bus consumer counts the outcomes (handled, retried,
// dead-lettered); the handler logs why it rejects an event.
func Handler(idx Indexer, log *slog.Logger) bus.Handler {
	return func(ctx context.Context, m bus.Message) error {
		e, err := events.DecodeSegmentClosed(m.Value)
		if err != nil {
			log.Error("reject malformed segment event", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
			return bus.Permanent(fmt.Errorf("index segment at %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err))
		}
		inserted, err := idx.IndexSegment(ctx, e)
		switch {
		case errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrConflict):
			log.Error("reject segment event", "segment_id", e.SegmentID, "stream", e.StreamID, "err", err)
			return bus.Permanent(err)
		case err != nil:
			return err
		case inserted:
			log.Debug("indexed segment", "segment_id", e.SegmentID, "stream", e.StreamID, "sequence", e.Sequence)
		default:
			log.Debug("segment already indexed", "segment_id", e.SegmentID, "stream", e.StreamID)
		}
		return nil
	}
}
