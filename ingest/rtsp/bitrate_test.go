package rtsp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/ingest/rtsp"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
)

// TestBitrateCap: a publisher above the session bitrate cap is ended by
// ingest, with a stop observation that says why; a publisher below the cap
// on the same server keeps recording.
func TestBitrateCap(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *rtsp.Config) { c.Segment.MaxBitrate = 1_000_000 })
	dir := t.TempDir()
	fat, err := testenv.ReadClip(testenv.EncodeClip(t, dir, testenv.ClipSpec{Size: "640x480", FPS: 25, Seconds: 2, Bitrate: "4M"}))
	if err != nil {
		t.Fatal(err)
	}
	thin, err := testenv.ReadClip(testenv.EncodeClip(t, dir, testenv.ClipSpec{Size: "160x120", FPS: 25, Seconds: 2, Bitrate: "200k"}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	thinCtx, stopThin := context.WithCancel(ctx)
	defer stopThin()
	thinDone := make(chan error, 1)
	go func() {
		thinDone <- testenv.Publish(thinCtx, thin, "rtsp://cam2:s3cret-cam2@"+s.cfg.Addr+"/site1/cam2", nil)
	}()
	fatDone := make(chan error, 1)
	go func() { fatDone <- testenv.Publish(ctx, fat, "rtsp://cam1:s3cret-cam1@"+s.cfg.Addr+"/site1/cam1", nil) }()

	var stop *events.Observation
	testenv.WaitFor(t, 40*time.Second, "the stop observation of the publisher above the cap", func() bool {
		pend, err := s.spool.PendingObservations()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pend {
			if p.Observation.Kind == events.ObsStop {
				if p.Observation.StreamID == "site1/cam2" {
					t.Fatalf("the publisher below the cap was stopped: %+v", p.Observation)
				}
				stop = &p.Observation
			}
		}
		return stop != nil
	})
	if stop.StreamID != "site1/cam1" || stop.Cause != events.CauseIngest || !strings.Contains(stop.Detail, "bitrate cap") {
		t.Errorf("stop %+v, want site1/cam1 ended by ingest for the bitrate cap", stop)
	}
	// The other publisher keeps recording after it.
	testenv.WaitFor(t, 20*time.Second, "a segment of site1/cam2 after the stop", func() bool {
		pend, err := s.spool.Pending()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pend {
			if p.Event.StreamID == "site1/cam2" && p.Event.Start.After(stop.Start) {
				return true
			}
		}
		return false
	})
	select {
	case err := <-thinDone:
		t.Errorf("the publisher below the cap ended: %v", err)
	default:
	}
	stopThin()
	<-thinDone
	cancel()
	<-fatDone
}
