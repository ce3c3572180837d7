package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/nokstream/nokstream/ingest/spool"
)

// QuotaAlarm is the share of the spool quota at which ingest alarms and
// refuses new publishers. Running sessions go on writing: their evidence is
// never dropped, and nothing unsent is ever deleted to make room.
const QuotaAlarm = 0.9

// fallbackQuota is the spool quota when the free disk space cannot be read.
const fallbackQuota = 20 << 30

// autoQuota returns 90% of the free space of dir's file system plus what
// the spool already holds.
func autoQuota(dir string, used int64) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fallbackQuota
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	return used + free/10*9
}

// quota watches the spool's size against its quota.
type quota struct {
	sp    *spool.Spool
	max   int64
	log   *slog.Logger
	ratio prometheus.Gauge
	used  prometheus.Gauge
	limit prometheus.Gauge
}

func newQuota(sp *spool.Spool, max int64, log *slog.Logger, reg prometheus.Registerer) *quota {
	f := promauto.With(reg)
	q := &quota{sp: sp, max: max, log: log,
		ratio: f.NewGauge(prometheus.GaugeOpts{Name: "nokstream_ingest_spool_quota_ratio",
			Help: "Spool size as a share of its quota (--spool-max-bytes); at 0.9 or more new publishers are refused."}),
		used: f.NewGauge(prometheus.GaugeOpts{Name: "nokstream_ingest_spool_used_bytes",
			Help: "Bytes the spool holds on disk (open and unsent segments, observations)."}),
		limit: f.NewGauge(prometheus.GaugeOpts{Name: "nokstream_ingest_spool_quota_bytes",
			Help: "The spool quota in bytes."}),
	}
	q.limit.Set(float64(max))
	q.update()
	return q
}

func (q *quota) share() float64 { return float64(q.sp.Used()) / float64(q.max) }

func (q *quota) update() float64 {
	r := q.share()
	q.ratio.Set(r)
	q.used.Set(float64(q.sp.Used()))
	return r
}

// err returns why new publishers are refused, or nil.
func (q *quota) err() error {
	if r := q.share(); r >= QuotaAlarm {
		return fmt.Errorf("spool at %.0f%% of its quota of %d bytes: new publishers are refused until the backlog drains", 100*r, q.max)
	}
	return nil
}

// run refreshes the metrics and logs when the alarm is raised and cleared.
func (q *quota) run(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	alarmed := false
	for {
		r := q.update()
		switch {
		case r >= QuotaAlarm && !alarmed:
			alarmed = true
			q.log.Error("ALERT spool near its quota: refusing new publishers; running sessions continue, nothing unsent is deleted",
				"used_bytes", q.sp.Used(), "quota_bytes", q.max, "ratio", r)
		case r < QuotaAlarm && alarmed:
			alarmed = false
			q.log.Info("spool below its quota alarm again: taking new publishers", "used_bytes", q.sp.Used(), "quota_bytes", q.max, "ratio", r)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
