package archiver

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/nokstream/nokstream/internal/events"
)

// The records the registry keeps copies of — the objects the archiver
// keeps and their retention, its seals and its checks of segments — are
// queued by archiver/store in the transaction of each change
// (archiver.records) and published here on events.TopicArchive, beside the
// deletions (reportDeletions): every recordsInterval by every replica (a
// record another replica is publishing is skipped), and first thing in a
// sweep. A record stays queued until the bus has it, so none is lost to a
// crash or an outage; the registry keeps its copies idempotently.

const (
	// recordsInterval is how often queued records are published.
	recordsInterval = time.Second
	// recordsKept is how long a published record stays in
	// archiver.records (what it says stays in the archiver's tables).
	recordsKept = 24 * time.Hour
)

type recordMetrics struct {
	published prometheus.Counter
	queued    prometheus.Gauge
}

func newRecordMetrics(f promauto.Factory) recordMetrics {
	return recordMetrics{
		published: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_archiver_records_published_total",
			Help: "Records (archived objects, seals, segment checks) published to the registry on nokstream.archive.v1."}),
		queued: f.NewGauge(prometheus.GaugeOpts{Name: "nokstream_archiver_records_queued",
			Help: "Records waiting to be published to the registry, after this replica's last attempt (0 when it published all). " +
				"Alert if it stays above zero: the registry's copies and exports lag."}),
	}
}

// ReportRecords publishes the queued records on events.TopicArchive and
// returns how many it published.
func (s *Service) ReportRecords(ctx context.Context) (n int, err error) {
	defer func() {
		s.m.records.published.Add(float64(n))
		if err == nil {
			s.m.records.queued.Set(0)
		} else if left, cerr := s.d.Store.UnreportedRecords(ctx); cerr == nil {
			s.m.records.queued.Set(float64(left))
		}
	}()
	if s.d.Bus == nil {
		return 0, errors.New("report records: no bus")
	}
	publish := func(ctx context.Context, key string, value []byte) error {
		return s.d.Bus.Publish(ctx, events.TopicArchive, key, value)
	}
	for {
		done, err := s.d.Store.ReportRecords(ctx, s.cfg.Batch, s.now(), publish)
		n += done
		if err != nil || done < s.cfg.Batch {
			return n, err
		}
	}
}

// runRecords publishes the queued records every recordsInterval, and drops
// those published more than recordsKept ago once an hour, until ctx ends.
func (s *Service) runRecords(ctx context.Context) error {
	t := time.NewTicker(recordsInterval)
	defer t.Stop()
	var pruned time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := s.ReportRecords(ctx); err != nil && ctx.Err() == nil {
			s.d.Log.Warn("records not published to the registry yet; will retry", "err", err)
		}
		if now := s.now(); now.Sub(pruned) >= time.Hour {
			pruned = now
			if _, err := s.d.Store.PruneRecords(ctx, now.Add(-recordsKept)); err != nil && ctx.Err() == nil {
				s.d.Log.Warn("prune published records", "err", err)
			}
		}
	}
}
