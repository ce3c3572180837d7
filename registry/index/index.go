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
	return handler(log, "segment", events.DecodeSegmentClosed, idx.IndexSegment,
		func(e *events.SegmentClosed) []any {
			return []any{"segment_id", e.SegmentID, "stream", e.StreamID, "sequence", e.Sequence}
		})
}

// handler decodes one kind of event and indexes it. An event that cannot be
// decoded, or that the store refuses as invalid or conflicting, can never be
// indexed: it is logged and dead-lettered. Any other error is retried.
func handler[E any](log *slog.Logger, what string, decode func([]byte) (E, error),
	index func(context.Context, E) (bool, error), attrs func(E) []any) bus.Handler {
	return func(ctx context.Context, m bus.Message) error {
		e, err := decode(m.Value)
		if err != nil {
			log.Error("reject malformed "+what+" event", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
			return bus.Permanent(fmt.Errorf("index %s at %s/%d/%d: %w", what, m.Topic, m.Partition, m.Offset, err))
		}
		changed, err := index(ctx, e)
		switch {
		case errors.Is(err, store.ErrInvalid) || errors.Is(err, store.ErrConflict):
			log.Error("reject "+what+" event", append(attrs(e), "err", err)...)
			return bus.Permanent(err)
		case err != nil:
			return err
		case changed:
			log.Debug("indexed "+what, attrs(e)...)
		default:
			log.Debug(what+" already indexed", attrs(e)...)
		}
		return nil
	}
}
