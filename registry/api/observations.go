package api

import (
	"context"
	"net/http"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// observationStore lists what the observation routes call of the registry's
// database.
type observationStore interface {
	Observations(ctx context.Context, site, device string, from, to time.Time) ([]store.Observation, error)
}

// observationJSON is an observation in the answer of the observations route.
type observationJSON struct {
	ObservationID string    `json:"observation_id"`
	StreamID      string    `json:"stream_id"`
	Kind          string    `json:"kind"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	Measure       float64   `json:"measure"`
	Detail        string    `json:"detail"`
	Reporter      string    `json:"reporter"`
	SegmentID     string    `json:"segment_id,omitempty"`
}

// observations handles GET /api/v1/streams/{site}/{device}/observations:
// what ingest, the transcoder and the archiver observed on the stream
// (start, stop, gap, outage, reconnect, salvaged, black, frozen, …) that
// overlaps [from, to), ordered by start. Access is that of the segments
// route.
func (s *Server) observations(w http.ResponseWriter, r *http.Request, c *caller) error {
	site, device, err := s.stream(r, c)
	if err != nil {
		return err
	}
	from, to, err := timeRange(r.URL.Query(), s.now())
	if err != nil {
		return err
	}
	obs, err := s.db.observations.Observations(r.Context(), site, device, from, to)
	if err != nil {
		return err
	}
	if err := s.audit(r, c, "observations.list", site+"/"+device,
		map[string]any{"from": from.UTC(), "to": to.UTC(), "observations": len(obs)}); err != nil {
		return err
	}
	out := make([]observationJSON, 0, len(obs))
	for _, o := range obs {
		out = append(out, observationJSON{
			ObservationID: o.ObservationID,
			StreamID:      o.StreamID,
			Kind:          o.Kind,
			Start:         o.Start.UTC(),
			End:           o.End.UTC(),
			Measure:       o.Measure,
			Detail:        o.Detail,
			Reporter:      o.Reporter,
			SegmentID:     o.SegmentID,
		})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
