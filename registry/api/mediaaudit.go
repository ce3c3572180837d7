package api

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// Media access is audited in aggregate: one media.get row of the audit log
// per user, stream, purpose and MediaAuditWindow, with the number of
// fetches and the span of time and footage they covered (a 4-hour review of
// three streams is a few dozen rows, not 7 200). A fetch is counted in
// memory before its first byte is served; every mediaAuditFlush the counts
// are added to the open windows in the database (store.AddMediaAccess,
// summed over every registry), and a window that ended mediaAuditGrace ago
// becomes its audit row (store.CloseMediaAccess). When Run ends, the counts
// are written and every open window is closed. A crash loses the fetches
// of at most the last mediaAuditFlush; the windows already in the database
// are closed by the next registry to run.
const (
	// MediaAuditWindow is the span of time one audit row of media access
	// covers.
	MediaAuditWindow = 5 * time.Minute
	mediaAuditFlush  = 2 * time.Second
	// mediaAuditGrace is how long after its end a window stays open for
	// the counts of registries that have not flushed yet.
	mediaAuditGrace = 30 * time.Second
)

// mediaAuditStore is what the media audit writes to; *store.Store is one.
type mediaAuditStore interface {
	AddMediaAccess(ctx context.Context, accesses []store.MediaAccess) error
	CloseMediaAccess(ctx context.Context, until time.Time) (int, error)
}

type mediaAccessKey struct {
	actor           int64
	stream, purpose string
	window          time.Time
}

// mediaAudit counts media fetches by window until they are flushed.
type mediaAudit struct {
	store mediaAuditStore // nil: every fetch is its own audit row
	audit func(ctx context.Context, e store.AuditEntry) error
	log   *slog.Logger
	now   func() time.Time

	flushing sync.Mutex // one flush at a time
	mu       sync.Mutex
	open     map[mediaAccessKey]*store.MediaAccess
	stopped  bool // Run has ended: fetches go to the database at once
}

// newMediaAudit returns the audit of media fetches: aggregated in st, or,
// with st nil, one audit row each through audit.
func newMediaAudit(st mediaAuditStore, audit func(context.Context, store.AuditEntry) error, log *slog.Logger, now func() time.Time) *mediaAudit {
	return &mediaAudit{store: st, audit: audit, log: log, now: now, open: map[mediaAccessKey]*store.MediaAccess{}}
}

// record counts one fetch (Fetches 1, First and Last its time) in its
// window.
func (a *mediaAudit) record(ctx context.Context, m store.MediaAccess) error {
	m.WindowStart = m.First.Truncate(MediaAuditWindow)
	m.WindowEnd = m.WindowStart.Add(MediaAuditWindow)
	if a.store == nil {
		return a.audit(ctx, m.AuditEntry())
	}
	a.mu.Lock()
	if a.stopped {
		// Served while the server drains after Run: straight into the
		// open window, which the next registry to run closes.
		a.mu.Unlock()
		return a.store.AddMediaAccess(ctx, []store.MediaAccess{m})
	}
	k := mediaAccessKey{m.ActorID, m.Stream, m.Purpose, m.WindowStart}
	if cur, ok := a.open[k]; ok {
		cur.Merge(m)
	} else {
		a.open[k] = &m
	}
	a.mu.Unlock()
	return nil
}

// flush adds the counts in memory to the open windows in the database and
// closes the windows that ended by until (none if until is zero). Counts
// that could not be written stay for the next flush.
func (a *mediaAudit) flush(ctx context.Context, until time.Time) error {
	if a.store == nil {
		return nil
	}
	a.flushing.Lock()
	defer a.flushing.Unlock()
	a.mu.Lock()
	pending := a.open
	a.open = map[mediaAccessKey]*store.MediaAccess{}
	a.mu.Unlock()
	if len(pending) > 0 {
		list := make([]store.MediaAccess, 0, len(pending))
		for _, m := range pending {
			list = append(list, *m)
		}
		if err := a.store.AddMediaAccess(ctx, list); err != nil {
			a.mu.Lock()
			for k, m := range pending {
				if cur, ok := a.open[k]; ok {
					m.Merge(*cur)
				}
				a.open[k] = m
			}
			a.mu.Unlock()
			return err
		}
	}
	if until.IsZero() {
		return nil
	}
	_, err := a.store.CloseMediaAccess(ctx, until)
	return err
}

// run flushes every mediaAuditFlush until ctx ends; the returned stop
// waits for it, then writes what is left and closes every open window.
func (a *mediaAudit) run(ctx context.Context) (stop func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(mediaAuditFlush)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := a.flush(ctx, a.now().Add(-mediaAuditGrace)); err != nil && ctx.Err() == nil {
				a.log.Warn("write the media access audit; retrying", "err", err)
			}
		}
	}()
	return func() {
		<-done
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		a.mu.Lock()
		a.stopped = true
		a.mu.Unlock()
		if err := a.flush(fctx, endOfTime()); err != nil {
			a.log.Error("write the media access audit at shutdown", "err", err)
		}
	}
}

// endOfTime is a time after every window's end.
func endOfTime() time.Time { return time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC) }

// runMediaAudit starts writing the media access audit in the background
// for Run; the returned stop waits for it to end and writes the rest.
func (s *Server) runMediaAudit(ctx context.Context) (stop func()) { return s.serving.audit.run(ctx) }

// CloseMediaAudit writes the media access counted so far and closes every
// open window into its audit row now, as Run does when it ends.
func (s *Server) CloseMediaAudit(ctx context.Context) error {
	return s.serving.audit.flush(ctx, endOfTime())
}
