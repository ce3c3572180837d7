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

// TestUnrecordableMediaIsReported: a camera whose description carries an
// SPS that does not parse, and that sends none in band, looks alive (its
// packets arrive, so no gap is reported) and records nothing. Once its
// media has arrived for segment.unrecorded_after with nothing recorded, the
// stream's timeline gets a refused observation saying why, once for the
// stall (not once a keyframe), and the session goes on; a healthy camera on
// the same server records.
func TestUnrecordableMediaIsReported(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *rtsp.Config) { c.Segment.UnrecordedAfter = 2 * time.Second })
	path := testenv.EncodeClip(t, t.TempDir(), testenv.ClipSpec{Size: "320x240", FPS: 25, Seconds: 2})
	good, err := testenv.ReadClip(path)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := testenv.ReadClip(path)
	if err != nil {
		t.Fatal(err)
	}
	bad.SPS = []byte{0x67, 0x42} // cut short: no level, no size

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- testenv.Publish(ctx, bad, "rtsp://cam1:s3cret-cam1@"+s.cfg.Addr+"/site1/cam1", nil) }()
	go func() { errs <- testenv.Publish(ctx, good, "rtsp://cam2:s3cret-cam2@"+s.cfg.Addr+"/site1/cam2", nil) }()

	testenv.WaitFor(t, 30*time.Second, "a refused observation of site1/cam1", func() bool {
		return len(s.observations(t, "site1/cam1", events.ObsRefused)) > 0
	})
	refused := s.observations(t, "site1/cam1", events.ObsRefused)[0]
	if !strings.Contains(refused.Detail, "H264") || !strings.Contains(refused.Detail, "recorded nothing") {
		t.Errorf("refused observation says %q, want what is not recorded and why", refused.Detail)
	}
	// The healthy camera records, and meanwhile the bad one's media keeps
	// arriving (keyframes every 2 s): still one report of its stall.
	testenv.WaitFor(t, 30*time.Second, "site1/cam2 to record 3 segments", func() bool {
		return s.streamSeconds(t, "site1/cam2") >= 5.9
	})
	if n := s.streamSeconds(t, "site1/cam1"); n != 0 {
		t.Errorf("site1/cam1 recorded %.1f s, want nothing", n)
	}
	if n := counterSum(t, s.reg, "nokstream_ingest_media_errors_total", "kind", "unrecorded"); n != 1 {
		t.Errorf("media_errors{kind=unrecorded} = %v, want 1 (once a stall)", n)
	}
	if stops := s.observations(t, "site1/cam1", events.ObsStop); len(stops) > 0 {
		t.Errorf("site1/cam1 was stopped (%+v), want the session kept: valid parameter sets may still come", stops[0])
	}
	select {
	case err := <-errs:
		t.Fatalf("a publisher ended early: %v", err)
	default:
	}
}
