package archiver

import (
	"context"
	"fmt"
	"time"

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

// ReportRecords publishes the queued records on events.TopicArchive and
// returns how many it published.
func (s *Service) ReportRecords(ctx context.Context) (int, error) {
	if s.d.Bus == nil {
		return 0, fmt.Errorf("report records: no bus")
	}
	publish := func(ctx context.Context, key string, value []byte) error {
		return s.d.Bus.Publish(ctx, events.TopicArchive, key, value)
	}
	total := 0
	for {
		n, err := s.d.Store.ReportRecords(ctx, s.cfg.Batch, s.now(), publish)
		total += n
		if err != nil || n < s.cfg.Batch {
			return total, err
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
