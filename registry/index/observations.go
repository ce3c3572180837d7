package index

import (
	"context"
	"log/slog"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
)

// ObservationGroup is the registry's consumer group for observations.
const ObservationGroup = "registry-observations"

// ObservationIndexer stores observations; *store.Store is one.
type ObservationIndexer interface {
	// IndexObservation reports whether the observation was new. It
	// returns an error wrapping store.ErrInvalid for one that can never be
	// indexed.
	IndexObservation(ctx context.Context, o *events.Observation) (inserted bool, err error)
}

// ObservationHandler returns the bus handler that indexes observations
// (events.TopicObservations) into idx, idempotently: the same observation
// twice is one row. A malformed observation is dead-lettered; a database
// error is retried.
func ObservationHandler(idx ObservationIndexer, log *slog.Logger) bus.Handler {
	return handler(log, "observation", events.DecodeObservation, idx.IndexObservation,
		func(o *events.Observation) []any {
			return []any{"observation_id", o.ObservationID, "stream", o.StreamID, "kind", o.Kind}
		})
}
