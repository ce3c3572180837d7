package index

import (
	"context"
	"log/slog"
	"time"
)

// Partitioner makes the monthly partitions of the segment index;
// *store.Store is one.
type Partitioner interface {
	EnsureSegmentPartitions(ctx context.Context, now time.Time) (int, error)
}

// PartitionInterval is how often MaintainPartitions runs.
const PartitionInterval = 6 * time.Hour

// MaintainPartitions makes the segment index's partitions for the current
// month and the next three at once and every PartitionInterval, until ctx
// ends, so that footage always lands in its month's partition. A failure is
// logged and retried at the next round: until then, footage waits in the
// default partition and is moved when its partition is made.
func MaintainPartitions(ctx context.Context, p Partitioner, now func() time.Time, log *slog.Logger) error {
	tick := time.NewTicker(PartitionInterval)
	defer tick.Stop()
	for {
		made, err := p.EnsureSegmentPartitions(ctx, now())
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("make segment index partitions", "err", err)
		case made > 0:
			log.Info("made segment index partitions", "partitions", made)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
