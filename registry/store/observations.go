package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
)

// IndexObservation adds an observation to the index and reports whether it
// was new. The same observation twice (same observation_id) is one row. An
// observation that fails validation is ErrInvalid.
func (s *Store) IndexObservation(ctx context.Context, o *events.Observation) (inserted bool, err error) {
	if err := o.Validate(); err != nil {
		return false, fmt.Errorf("index observation: %w: %w", ErrInvalid, err)
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO observations (observation_id, stream_id, site, device, kind, start_at, end_at,
			measure, detail, reporter, segment_id, cause)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (observation_id) DO NOTHING`,
		o.ObservationID, o.StreamID, o.Site, o.Device, o.Kind, o.Start, o.End,
		o.Measure, o.Detail, o.Reporter, o.SegmentID, o.Cause)
	if err != nil {
		return false, fmt.Errorf("index observation %s: %w", o.ObservationID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Observation is an indexed observation.
type Observation struct {
	events.Observation
	IndexedAt time.Time
}

// Observations returns the observations of stream <site>/<device> that
// overlap [from, to) (an instant at from counts), ordered by start.
func (s *Store) Observations(ctx context.Context, site, device string, from, to time.Time) ([]Observation, error) {
	rows, err := s.pool.Query(ctx, `SELECT observation_id, stream_id, site, device, kind, start_at, end_at,
			measure, detail, reporter, segment_id, cause, indexed_at
		FROM observations
		WHERE stream_id = $1 AND start_at < $3 AND end_at >= $2
		ORDER BY start_at, kind, observation_id`,
		site+"/"+device, from, to)
	if err != nil {
		return nil, fmt.Errorf("list observations of %s/%s: %w", site, device, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Observation, error) {
		var o Observation
		err := row.Scan(&o.ObservationID, &o.StreamID, &o.Site, &o.Device, &o.Kind, &o.Start, &o.End,
			&o.Measure, &o.Detail, &o.Reporter, &o.SegmentID, &o.Cause, &o.IndexedAt)
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("list observations of %s/%s: %w", site, device, err)
	}
	return out, nil
}
