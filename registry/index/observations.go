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
	return func(ctx context.Context, m bus.Message) error {
		o, err := events.DecodeObservation(m.Value)
		if err != nil {
			log.Error("reject malformed observation", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
			return bus.Permanent(fmt.Errorf("index observation at %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err))
		}
		inserted, err := idx.IndexObservation(ctx, o)
		switch {
		case errors.Is(err, store.ErrInvalid):
			log.Error("reject observation", "observation_id", o.ObservationID, "stream", o.StreamID, "err", err)
			return bus.Permanent(err)
		case err != nil:
			return err
		case inserted:
			log.Debug("indexed observation", "observation_id", o.ObservationID, "stream", o.StreamID, "kind", o.Kind)
		}
		return nil
	}
}
