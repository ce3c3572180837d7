// Package uploader drains the spool: it uploads each closed segment and its
// init segment to the blob store, publishes SegmentClosed, and only then
// removes the segment from the spool. It also publishes the spooled
// observations, in the order they were made, and removes each once the bus
// accepted it; observations need only the bus, so they flow while the blob
// store is down.
//
// Segments are shipped strictly in order within a stream. When the blob store
// or the bus is down, the uploader retries with backoff and the spool keeps
// growing; nothing is dropped.
package uploader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/nokstream/nokstream/ingest/spool"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
)

// Metrics of the uploader.
type Metrics struct {
	uploadSeconds  prometheus.Histogram
	publishSeconds prometheus.Histogram
	shipped        prometheus.Counter
	shippedBytes   prometheus.Counter
	errors         *prometheus.CounterVec
	backlog        prometheus.Gauge
	backlogBytes   prometheus.Gauge
	backlogAge     prometheus.Gauge
	backlogObs     prometheus.Gauge
}

// NewMetrics registers the uploader metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		uploadSeconds: f.NewHistogram(prometheus.HistogramOpts{Name: "nokstream_ingest_upload_seconds",
			Help: "Time to upload one segment to the blob store.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 12)}),
		publishSeconds: f.NewHistogram(prometheus.HistogramOpts{Name: "nokstream_ingest_publish_seconds",
			Help: "Time to publish one SegmentClosed event.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		shipped: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_ingest_segments_shipped_total",
			Help: "Segments uploaded and announced."}),
		shippedBytes: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_ingest_shipped_bytes_total",
			Help: "Bytes of segments uploaded and announced."}),
		errors: f.NewCounterVec(prometheus.CounterOpts{Name: "nokstream_ingest_ship_errors_total",
			Help: "Failed attempts to ship a segment or observation, by step (upload, publish, publish_observation, spool)."}, []string{"step"}),
		backlog: f.NewGauge(prometheus.GaugeOpts{Name: "nokstream_ingest_spool_backlog_segments",
			Help: "Closed segments in the spool not yet uploaded and announced."}),
		backlogBytes: f.NewGauge(prometheus.GaugeOpts{Name: "nokstream_ingest_spool_backlog_bytes",
			Help: "Bytes of closed segments in the spool not yet shipped."}),
		backlogAge: f.NewGauge(prometheus.GaugeOpts{Name: "nokstream_ingest_spool_oldest_seconds",
			Help: "Age of the oldest segment waiting in the spool."}),
		backlogObs: f.NewGauge(prometheus.GaugeOpts{Name: "nokstream_ingest_spool_backlog_observations",
			Help: "Observations in the spool not yet published."}),
	}
}

// initTTL is how long an init segment seen in the blob store is trusted to
// still be there.
const initTTL = 10 * time.Minute

// Uploader ships spooled segments.
type Uploader struct {
	spool   *spool.Spool
	store   blob.Store
	pub     bus.Publisher
	log     *slog.Logger
	m       *Metrics
	minWait time.Duration
	maxWait time.Duration

	mu      sync.Mutex
	lastErr error
	// inits remembers when an init key was last seen in the blob store. An
	// entry is trusted for initTTL only: the sweeper may delete an init
	// whose footage expired, and a camera may come back with the same one.
	inits map[string]time.Time
}

// New returns an uploader. m may be nil.
func New(sp *spool.Spool, store blob.Store, pub bus.Publisher, log *slog.Logger, m *Metrics) *Uploader {
	return &Uploader{spool: sp, store: store, pub: pub, log: log, m: m,
		minWait: 200 * time.Millisecond, maxWait: 10 * time.Second, inits: map[string]time.Time{}}
}

// Err returns the error of the last failed attempt, or nil once shipping
// succeeds again. It backs the readiness check.
func (u *Uploader) Err() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lastErr
}

// Run ships segments until ctx ends. On return, whatever was not shipped is
// still in the spool and is shipped by the next Run.
func (u *Uploader) Run(ctx context.Context) error {
	// The backlog gauges are also refreshed apart from the shipping loop,
	// which may sit in one slow upload or publish for long while a
	// dependency is down.
	gauges := make(chan struct{})
	go func() {
		defer close(gauges)
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if pend, err := u.spool.Pending(); err == nil {
					u.updateBacklog(pend)
				}
				if obs, err := u.spool.PendingObservations(); err == nil && u.m != nil {
					u.m.backlogObs.Set(float64(len(obs)))
				}
			}
		}
	}()
	defer func() { <-gauges }()
	wait := u.minWait
	tick := time.NewTicker(5 * time.Second) // also refreshes backlog metrics
	defer tick.Stop()
	for {
		err := u.drain(ctx)
		u.mu.Lock()
		u.lastErr = err
		u.mu.Unlock()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			u.log.Warn("shipping segments, will retry", "err", err, "retry_in", wait)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			wait = min(wait*2, u.maxWait)
			continue
		}
		wait = u.minWait
		select {
		case <-ctx.Done():
			return nil
		case <-u.spool.Notify():
		case <-tick.C:
		}
	}
}

// Drain ships everything pending once and returns the first error.
func (u *Uploader) Drain(ctx context.Context) error { return u.drain(ctx) }

func (u *Uploader) drain(ctx context.Context) error {
	obsErr := u.drainObservations(ctx)
	err := u.drainSegments(ctx)
	if err == nil {
		err = obsErr
	}
	return err
}

// drainObservations publishes the spooled observations in order, stopping
// at the first failure so that none overtakes another.
func (u *Uploader) drainObservations(ctx context.Context) error {
	pend, err := u.spool.PendingObservations()
	if err != nil {
		u.count("spool")
		return err
	}
	if u.m != nil {
		u.m.backlogObs.Set(float64(len(pend)))
	}
	for i, p := range pend {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		b, err := json.Marshal(p.Observation)
		if err != nil {
			return err
		}
		if err := u.pub.Publish(ctx, events.TopicObservations, p.Observation.StreamID, b); err != nil {
			u.count("publish_observation")
			return fmt.Errorf("publish observation %s: %w", p.Observation.ObservationID, err)
		}
		if err := u.spool.ObservationDone(p.Name); err != nil {
			u.count("spool")
			return err
		}
		if u.m != nil {
			u.m.backlogObs.Set(float64(len(pend) - i - 1))
		}
	}
	return nil
}

// Streams is how many streams' segments the uploader ships at once. A
// stream's segments go one after another, in order; streams go side by
// side, so that what ships a segment (an upload and a publish, each a round
// trip) does not make a whole node's backlog wait in one line: after an
// outage ten cameras' backlog drained at ~10 segments a second one at a
// time on the test machine, barely more than they record.
const Streams = 4

func (u *Uploader) drainSegments(ctx context.Context) error {
	pend, err := u.spool.Pending()
	if err != nil {
		u.count("spool")
		return err
	}
	u.updateBacklog(pend)
	// Each stream's segments, in order; the streams in the order of their
	// oldest pending segment.
	var order []string
	byStream := map[string][]spool.Pending{}
	for _, p := range pend {
		id := p.Event.StreamID
		if _, ok := byStream[id]; !ok {
			order = append(order, id)
		}
		byStream[id] = append(byStream[id], p)
	}
	var (
		mu       sync.Mutex
		firstErr error
		next     int
		wg       sync.WaitGroup
	)
	take := func() []spool.Pending {
		mu.Lock()
		defer mu.Unlock()
		if next == len(order) {
			return nil
		}
		next++
		return byStream[order[next-1]]
	}
	for range min(Streams, len(order)) {
		wg.Go(func() {
			for segs := take(); segs != nil; segs = take() {
				for _, p := range segs {
					if ctx.Err() != nil {
						return
					}
					if err := u.ship(ctx, p); err != nil {
						// Keep the stream's order: its later segments wait.
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						break
					}
					// Count down rather than rescan what is left: with a
					// backlog of thousands after an outage, a rescan per
					// segment is quadratic. The age of the oldest is
					// refreshed by the gauge ticker.
					if u.m != nil {
						u.m.backlog.Dec()
						u.m.backlogBytes.Sub(float64(p.Event.Bytes))
					}
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return firstErr
}

func (u *Uploader) ship(ctx context.Context, p spool.Pending) error {
	ev := p.Event
	if err := u.putInit(ctx, ev.InitKey, p.InitPath, ev.InitBytes); err != nil {
		u.count("upload")
		return err
	}
	start := time.Now()
	if err := putFile(ctx, u.store, ev.ObjectKey, p.SegmentPath, ev.Bytes); err != nil {
		u.count("upload")
		return fmt.Errorf("upload segment %s: %w", ev.ObjectKey, err)
	}
	if u.m != nil {
		u.m.uploadSeconds.Observe(time.Since(start).Seconds())
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	start = time.Now()
	if err := u.pub.Publish(ctx, events.TopicSegments, ev.StreamID, b); err != nil {
		u.count("publish")
		return fmt.Errorf("publish segment %s: %w", ev.SegmentID, err)
	}
	if u.m != nil {
		u.m.publishSeconds.Observe(time.Since(start).Seconds())
		u.m.shipped.Inc()
		u.m.shippedBytes.Add(float64(ev.Bytes))
	}
	if err := u.spool.Done(ev.SegmentID); err != nil {
		u.count("spool")
		return err
	}
	u.log.Debug("segment shipped", "stream", ev.StreamID, "segment_id", ev.SegmentID, "object_key", ev.ObjectKey)
	return nil
}

func (u *Uploader) putInit(ctx context.Context, key, path string, size int64) error {
	u.mu.Lock()
	seen, ok := u.inits[key]
	known := ok && time.Since(seen) < initTTL
	u.mu.Unlock()
	if known {
		return nil
	}
	a, err := u.store.Stat(ctx, key)
	if err != nil && !errors.Is(err, blob.ErrNotFound) {
		return fmt.Errorf("stat init %s: %w", key, err)
	}
	if err != nil || a.Size != size {
		if err := putFile(ctx, u.store, key, path, size); err != nil {
			return fmt.Errorf("upload init %s: %w", key, err)
		}
	}
	u.mu.Lock()
	u.inits[key] = time.Now()
	u.mu.Unlock()
	return nil
}

func putFile(ctx context.Context, store blob.Store, key, path string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return store.Put(ctx, key, f, size)
}

func (u *Uploader) count(step string) {
	if u.m != nil {
		u.m.errors.WithLabelValues(step).Inc()
	}
}

func (u *Uploader) updateBacklog(pend []spool.Pending) {
	if u.m == nil {
		return
	}
	var size int64
	var oldest time.Time
	for _, p := range pend {
		size += p.Event.Bytes
		if oldest.IsZero() || p.ClosedAt.Before(oldest) {
			oldest = p.ClosedAt
		}
	}
	u.m.backlog.Set(float64(len(pend)))
	u.m.backlogBytes.Set(float64(size))
	if oldest.IsZero() {
		u.m.backlogAge.Set(0)
	} else {
		u.m.backlogAge.Set(time.Since(oldest).Seconds())
	}
}
