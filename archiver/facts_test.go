package archiver_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nokstream/nokstream/archiver"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/events"
)

// TestStaleFactsDeleteNothing: the sweeper decides from its copy of the
// registry's facts, which may lag. Footage the copy takes for footage of
// no exam is marked; then the registry registers, late, the exam it is
// evidence of, and the copy does not hear of it. While the newest watermark
// the archiver consumed is older than the mark, nothing is deleted, though
// the copy says it may be, and so while the newest is older than
// FactsMaxAge (a lagging copy); once the copy is current (a recent
// watermark newer than the mark), the exam's footage is kept and only
// footage of no exam goes.
func TestStaleFactsDeleteNothing(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	c := &clock{now: t0.Add(time.Hour)}
	d := dirStore(t, c)
	e := newEnv(t, d, archiver.DefaultConfig(), c) // SweepDelay a day
	e.facts.watermarked.Store(true)
	seg := 6 * time.Second
	exam := e.segment("cam1", events.SourceRoom, t0, seg)             // the late exam's footage
	none := e.segment("cam1", events.SourceRoom, t0.Add(-2*day), seg) // footage of no exam
	for _, ev := range []*events.SegmentClosed{none, exam} {
		e.deliver(ev)
		e.expect(ev.ObjectKey, ev.Start.Add(seg).Add(30*day), false, "unlinked")
	}

	// The copy falls behind; the sweeper marks both.
	e.facts.frozen.Store(true)
	c.Set(t0.Add(31 * day))
	if st, err := e.svc.Sweep(ctx); err != nil || st.Marked < 2 {
		t.Fatalf("sweep: %+v %v, want both segments marked", st, err)
	}
	markedAt := c.Now()
	// The exam, registered late: the footage at t0 is its evidence.
	e.exam("late", t0.Add(-time.Hour), t0.Add(time.Hour))

	// No watermark, then one older than the mark, then one newer than the
	// mark but days old (the copy's consumer lags): nothing is deleted.
	for _, wm := range []*events.FactsWatermark{nil,
		{Type: events.FactsWatermarkType, Seq: 1, At: markedAt.Add(-time.Hour)},
		{Type: events.FactsWatermarkType, Seq: 1, At: markedAt.Add(time.Hour)}} {
		if wm != nil {
			if err := e.ast.SaveWatermark(ctx, wm, c.Now()); err != nil {
				t.Fatal(err)
			}
		}
		c.Set(c.Now().Add(2 * day))
		st, err := e.svc.Sweep(ctx)
		if err != nil || st.Deleted != 0 || st.Stale < 2 {
			t.Fatalf("sweep on a stale copy (watermark %v): %+v %v, want nothing deleted and both kept marked", wm, st, err)
		}
		for _, ev := range []*events.SegmentClosed{none, exam} {
			if _, err := d.Stat(ctx, ev.ObjectKey); err != nil {
				t.Fatalf("%s on a stale copy: %v, want it kept", ev.ObjectKey, err)
			}
			if o := e.object(ev.ObjectKey); o.MarkedAt == nil || o.DeletedAt != nil {
				t.Fatalf("%s on a stale copy: marked %v, deleted %v; want it still marked", ev.ObjectKey, o.MarkedAt, o.DeletedAt)
			}
		}
	}

	// The copy catches up, and a watermark newer than the mark comes.
	e.facts.frozen.Store(false)
	if err := e.ast.SaveWatermark(ctx, &events.FactsWatermark{Type: events.FactsWatermarkType, Seq: 2, At: c.Now()}, c.Now()); err != nil {
		t.Fatal(err)
	}
	st, err := e.svc.Sweep(ctx)
	if err != nil || st.Deleted < 1 || st.Unmarked < 1 || st.Stale != 0 {
		t.Fatalf("sweep on a current copy: %+v %v, want footage of no exam deleted and the exam's unmarked", st, err)
	}
	if _, err := d.Stat(ctx, none.ObjectKey); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("footage of no exam on a current copy: %v, want it deleted", err)
	}
	e.expect(exam.ObjectKey, t0.Add(time.Hour+90*day), false, "provisional")
}
