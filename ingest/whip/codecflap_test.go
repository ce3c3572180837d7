package whip_test

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
)

// flappingMedia is an H.264 stream (Annex-B, as a browser's encoder makes
// it: baseline, no B-frames) whose every frame is a keyframe with new
// parameter sets, of two resolutions in turn.
func flappingMedia(t *testing.T, frames int) testenv.WHIPMedia {
	t.Helper()
	one := [2][]byte{testenv.H264Frame(t, "160x120"), testenv.H264Frame(t, "176x144")}
	var buf bytes.Buffer
	for i := range frames {
		buf.Write(one[i%2])
	}
	path := filepath.Join(t.TempDir(), "flapping.h264")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return testenv.WHIPMedia{Video: "h264", VideoPath: path, FPS: 25}
}

// TestCodecFlappingEndsTheSession: a WHIP publisher whose resolution flips
// at every frame would have every frame cut into a segment of its own with
// a new init: a file, an fsync and an event a frame. After 30 changes
// within a minute the endpoint ends the session, says why in its stop
// observation and its metrics, and what it recorded until then is kept,
// in segments that each start on a keyframe.
func TestCodecFlappingEndsTheSession(t *testing.T) {
	t.Parallel()
	const frames = 150 // 6 s
	e := start(t, map[string]string{"site1/cam-ws01": "webcam"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := testenv.NewWHIPClient(t, flappingMedia(t, frames))
	status, body, err := c.Publish(ctx, e.url+"/whip/site1/cam-ws01", "s3cret-cam-ws01")
	if err != nil || status != http.StatusCreated {
		t.Fatalf("POST offer: status %d, err %v: %s", status, err, body)
	}
	// The endpoint closes the connection midway: sending may then fail.
	_ = c.Stream(ctx)

	var stop *events.Observation
	testenv.WaitFor(t, 20*time.Second, "the session's stop observation", func() bool {
		if stops := e.observations(t, "site1/cam-ws01", events.ObsStop); len(stops) > 0 {
			stop = &stops[len(stops)-1]
		}
		return stop != nil
	})
	if stop.Cause != events.CauseIngest || !strings.Contains(stop.Detail, "codec configuration") {
		t.Errorf("stop observation %+v, want the session ended by ingest for its codec changes", stop)
	}
	if v := metric(t, e.reg, "nokstream_ingest_whip_sessions_ended_total", "reason", "codec_changes"); v != 1 {
		t.Errorf("sessions ended for codec changes: %v, want 1", v)
	}
	// The stop comes after the last segment is closed: what came until
	// the limit is recorded, a segment a configuration, each on a keyframe.
	segs, path := e.segments(t, "site1/cam-ws01")
	if n := len(segs); n < 10 || n > 32 {
		t.Errorf("%d segments, want one for each of the ~30 configurations taken", n)
	}
	for _, p := range segs {
		if !p.Event.IsIndependent() || !p.Event.Discontinuity {
			t.Errorf("segment %d: independent %v, discontinuity %v; want a keyframe and a new init each",
				p.Event.Sequence, p.Event.IsIndependent(), p.Event.Discontinuity)
		}
	}
	if got := strings.Join(testenv.FFprobe(t, path).Codecs(), ","); got != "video:h264" {
		t.Errorf("ffprobe sees %q in what was recorded, want video:h264", got)
	}
}
