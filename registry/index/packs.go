package index

import (
	"context"
	"log/slog"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// Packer packs the segment index's closed hours; *store.Store is one.
type Packer interface {
	PackSegments(ctx context.Context, now time.Time, progress func(store.PackStats)) (store.PackStats, error)
}

// PackInterval is how often MaintainPacks runs.
const PackInterval = time.Minute

// MaintainPacks packs the segment index's hours as they close (see
// store.PackSegments) at once and every PackInterval, until ctx ends. A
// failure is logged and retried at the next round: until then, media are
// read from the rows.
func MaintainPacks(ctx context.Context, p Packer, now func() time.Time, log *slog.Logger) error {
	tick := time.NewTicker(PackInterval)
	defer tick.Stop()
	for {
		st, err := p.PackSegments(ctx, now(), nil)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("pack the segment index", "err", err)
		case st.Hours > 0:
			log.Info("packed the segment index", "stream_hours", st.Hours, "rows", st.Rows, "bytes", st.Bytes,
				"left_for_a_writer", st.Skipped, "took", st.Took.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
