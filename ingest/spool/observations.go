package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/nokstream/nokstream/internal/atomicfile"
	"github.com/nokstream/nokstream/internal/events"
)

// Metrics of the spool: what comes in.
type Metrics struct {
	segmentsIn prometheus.Counter
	bytesIn    prometheus.Counter
}

// NewMetrics registers the spool metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		segmentsIn: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_ingest_segments_total",
			Help: "Segments closed into the spool (received), salvaged ones included."}),
		bytesIn: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_ingest_spooled_bytes_total",
			Help: "Bytes of media fragments written to the spool."}),
	}
}

// Instrument makes the spool count what it receives into m.
func (s *Spool) Instrument(m *Metrics) { s.m = m }

// PendingObservation is an observation waiting to be published.
type PendingObservation struct {
	Name        string // file name in the spool; pass it to ObservationDone
	Observation events.Observation
}

// Observe stores an observation durably (fsync'd) until ObservationDone.
// Observations are published in the order Observe was called.
func (s *Spool) Observe(o events.Observation) error {
	if err := o.Validate(); err != nil {
		return fmt.Errorf("spool observation: %w", err)
	}
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	s.mu.Lock()
	// ULIDs from the monotonic source sort in the order they were made,
	// also within one millisecond.
	id, err := ulid.New(ulid.Timestamp(s.now()), s.entropy)
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("observation id: %w", err)
	}
	if err := atomicfile.WriteFile(s.path("obs", id.String()+".json"), b, 0o600); err != nil {
		return fmt.Errorf("spool observation %s of %s: %w", o.Kind, o.StreamID, err)
	}
	s.used.Add(int64(len(b)))
	s.wake()
	return nil
}

// PendingObservations lists the observations not yet published, oldest
// first.
func (s *Spool) PendingObservations() ([]PendingObservation, error) {
	entries, err := os.ReadDir(s.path("obs"))
	if err != nil {
		return nil, fmt.Errorf("list spooled observations: %w", err)
	}
	var out []PendingObservation
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		b, err := os.ReadFile(s.path("obs", name))
		if err != nil {
			return nil, fmt.Errorf("read spooled observation %s: %w", name, err)
		}
		var o events.Observation
		if err := json.Unmarshal(b, &o); err != nil {
			return nil, fmt.Errorf("parse spooled observation %s: %w", name, err)
		}
		out = append(out, PendingObservation{Name: name, Observation: o})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ObservationDone removes a published observation.
func (s *Spool) ObservationDone(name string) error {
	p := s.path("obs", name)
	if fi, err := os.Stat(p); err == nil {
		s.used.Add(-fi.Size())
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool observation done %s: %w", name, err)
	}
	return nil
}

// LastMedia returns the wall clock of the last media of a stream that the
// spool knows of, or the zero time for a stream never seen.
func (s *Spool) LastMedia(site, device string) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stateLocked(site, device)
	if err != nil {
		return time.Time{}, err
	}
	return st.LastMedia, nil
}

// SetLastMedia records t as the stream's last media if it is later than
// what is recorded.
func (s *Spool) SetLastMedia(site, device string, t time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stateLocked(site, device)
	if err != nil {
		return err
	}
	if !t.After(st.LastMedia) {
		return nil
	}
	st.LastMedia = t.UTC()
	return s.saveStateLocked(site, device, st)
}
