// Package archiver keeps the archive honest. For now it checks every
// announced segment against the blob store: the object must exist with the
// announced size and SHA-256. Every check is recorded in the registry; a
// mismatch is an alert-level log and a metric, never a silent pass.
package archiver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
)

// Group is the archiver's consumer group.
const Group = "archiver"

// Recorder stores the result of a check (the registry).
type Recorder interface {
	RecordSegmentCheck(ctx context.Context, segmentID string, ok bool, detail, checker string) error
}

// Deps are what the archiver talks to.
type Deps struct {
	Bus      bus.Bus
	Blob     blob.Store
	Recorder Recorder
	Log      *slog.Logger
	Registry prometheus.Registerer
}

// Service is the archiver.
type Service struct {
	d        Deps
	checked  *prometheus.CounterVec
	failures prometheus.Counter
}

// New wires the archiver.
func New(d Deps) *Service {
	f := promauto.With(d.Registry)
	return &Service{
		d: d,
		checked: f.NewCounterVec(prometheus.CounterOpts{Name: "nokstream_archiver_segments_checked_total",
			Help: "Segments checked against the blob store, by result (ok, mismatch, missing)."}, []string{"result"}),
		failures: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_archiver_integrity_failures_total",
			Help: "Segments whose stored object is missing or differs from its announcement. Alert on any increase."}),
	}
}

// Run consumes segment events until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	return s.d.Bus.Consume(ctx, events.TopicSegments, Group, s.Handle)
}

// Handle checks one SegmentClosed event. It is idempotent: checking twice
// records two checks with the same result.
func (s *Service) Handle(ctx context.Context, m bus.Message) error {
	ev, err := events.DecodeSegmentClosed(m.Value)
	if err != nil {
		return bus.Permanent(err)
	}
	ok, detail, err := s.check(ctx, ev)
	if err != nil {
		return err // blob store unreachable: retry
	}
	result := "ok"
	if !ok {
		result = "mismatch"
		if detail == "object missing" {
			result = "missing"
		}
		s.failures.Inc()
		s.d.Log.Error("ALERT segment integrity check failed", "stream", ev.StreamID, "segment_id", ev.SegmentID,
			"object_key", ev.ObjectKey, "detail", detail)
	}
	if err := s.d.Recorder.RecordSegmentCheck(ctx, ev.SegmentID, ok, detail, "archiver"); err != nil {
		return fmt.Errorf("record check of %s: %w", ev.SegmentID, err)
	}
	s.checked.WithLabelValues(result).Inc()
	return nil
}

func (s *Service) check(ctx context.Context, ev *events.SegmentClosed) (bool, string, error) {
	for _, o := range []struct {
		key, sha string
		size     int64
	}{{ev.ObjectKey, ev.SHA256, ev.Bytes}, {ev.InitKey, ev.InitSHA256, ev.InitBytes}} {
		if o.sha == "" {
			continue
		}
		ok, detail, err := s.checkObject(ctx, o.key, o.sha, o.size)
		if err != nil || !ok {
			return ok, detail, err
		}
	}
	return true, "size and sha256 match", nil
}

func (s *Service) checkObject(ctx context.Context, key, wantSHA string, wantSize int64) (bool, string, error) {
	a, err := s.d.Blob.Stat(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return false, "object missing", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("stat %s: %w", key, err)
	}
	if a.Size != wantSize {
		return false, fmt.Sprintf("%s: size %d, announced %d", key, a.Size, wantSize), nil
	}
	r, err := s.d.Blob.Get(ctx, key)
	if err != nil {
		return false, "", fmt.Errorf("get %s: %w", key, err)
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return false, "", fmt.Errorf("read %s: %w", key, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != wantSHA {
		return false, fmt.Sprintf("%s: sha256 %s, announced %s", key, got, wantSHA), nil
	}
	return true, "", nil
}
