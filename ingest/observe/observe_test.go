package observe_test

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nokstream/nokstream/ingest/observe"
	"github.com/nokstream/nokstream/ingest/spool"
	"github.com/nokstream/nokstream/internal/events"
)

// TestContinuity: a session's start and stop, a gap inside it measured from
// packet arrival, and the gap between it and the next session — also
// across a restart of ingest (a new spool on the same directory) — are
// spooled as observations in order.
func TestContinuity(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sp, err := spool.Open(dir, "test", log, clock)
	if err != nil {
		t.Fatal(err)
	}
	c := observe.New(sp, 2*time.Second, log, nil, clock)
	s := c.Start("site1", "cam1", "test")
	for range 10 {
		now = now.Add(40 * time.Millisecond)
		s.Media()
	}
	now = now.Add(3 * time.Second) // a gap inside the session
	s.Media()
	now = now.Add(time.Second)
	s.Stop(events.CauseLost, "publisher disconnected")

	// ingest restarts; the next session comes 10 s after the last media.
	sp2, err := spool.Open(dir, "test", log, clock)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(9 * time.Second)
	observe.New(sp2, 2*time.Second, log, nil, clock).Start("site1", "cam1", "test")

	pend, err := sp2.PendingObservations()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pend {
		o := p.Observation
		got = append(got, o.Kind)
		if o.Kind == "gap" && o.Measure != o.End.Sub(o.Start).Seconds() {
			t.Errorf("gap measure %.3f, span %s", o.Measure, o.End.Sub(o.Start))
		}
	}
	want := []string{"start", "gap", "stop", "gap", "start"}
	if len(got) != len(want) {
		t.Fatalf("observations %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("observations %v, want %v", got, want)
		}
	}
	if o := pend[2].Observation; o.Cause != events.CauseLost || o.Detail != "publisher disconnected (session of 4s)" {
		t.Errorf("stop observation has cause %q, detail %q", o.Cause, o.Detail)
	}
	if m := pend[1].Observation.Measure; m < 2.9 || m > 3.1 {
		t.Errorf("gap in the session %.2f s, want 3", m)
	}
	if m := pend[3].Observation.Measure; m < 9.9 || m > 10.1 {
		t.Errorf("gap between sessions %.2f s, want 10", m)
	}
	if err := sp2.ObservationDone(pend[0].Name); err != nil {
		t.Fatal(err)
	}
	if pend, _ := sp2.PendingObservations(); len(pend) != 4 {
		t.Errorf("%d observations left after one was done, want 4", len(pend))
	}
}

// TestSessionRefusedIsNotFolded: a publisher refused a moment ago (folded
// refusals, one every 10 s) must not swallow the report that a live
// session's media is not recorded: both are on the timeline.
func TestSessionRefusedIsNotFolded(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sp, err := spool.Open(t.TempDir(), "test", log, clock)
	if err != nil {
		t.Fatal(err)
	}
	c := observe.New(sp, 2*time.Second, log, nil, clock)
	s := c.Start("site1", "cam1", "test")
	c.Refused("site1", "cam1", "stream is live: takeover refused")
	now = now.Add(time.Second)
	s.Refused("H264 media arriving for 15s recorded nothing: invalid SPS")
	pend, err := sp.PendingObservations()
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, p := range pend {
		if p.Observation.Kind == events.ObsRefused {
			details = append(details, p.Observation.Detail)
		}
	}
	if len(details) != 2 || details[1] != "H264 media arriving for 15s recorded nothing: invalid SPS" {
		t.Errorf("refused observations %q, want the takeover's and the unrecorded media's", details)
	}
}
