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

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"

	"github.com/nokstream/nokstream/ingest/whip"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
)

// TestUnrecordableMediaIsReported: a WHIP publisher whose every keyframe
// carries an SPS that does not parse has every frame refused, while its
// packets keep arriving (no gap is reported). Once that has lasted
// segment.unrecorded_after, the stream's timeline gets a refused
// observation saying why, once for the stall, and the session goes on.
func TestUnrecordableMediaIsReported(t *testing.T) {
	t.Parallel()
	var au h264.AnnexB
	if err := au.Unmarshal(testenv.H264Frame(t, "160x120")); err != nil {
		t.Fatal(err)
	}
	for i, n := range au {
		if h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
			au[i] = []byte{0x67, 0x42} // cut short: no level, no size
		}
	}
	frame, err := au.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	const frames = 150 // 6 s
	path := filepath.Join(t.TempDir(), "bad-sps.h264")
	if err := os.WriteFile(path, bytes.Repeat(frame, frames), 0o600); err != nil {
		t.Fatal(err)
	}

	e := start(t, map[string]string{"site1/cam-ws01": "webcam"}, func(c *whip.Config) { c.Segment.UnrecordedAfter = 2 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := testenv.NewWHIPClient(t, testenv.WHIPMedia{Video: "h264", VideoPath: path, FPS: 25})
	status, body, err := c.Publish(ctx, e.url+"/whip/site1/cam-ws01", "s3cret-cam-ws01")
	if err != nil || status != http.StatusCreated {
		t.Fatalf("POST offer: status %d, err %v: %s", status, err, body)
	}
	if err := c.Stream(ctx); err != nil {
		t.Fatalf("streaming 6 s: %v", err)
	}

	// All 6 s were sent: the stall, reported after 2 s, is reported once.
	testenv.WaitFor(t, 20*time.Second, "a refused observation", func() bool { return len(e.observations(t, "site1/cam-ws01", events.ObsRefused)) > 0 })
	refused := e.observations(t, "site1/cam-ws01", events.ObsRefused)
	if len(refused) != 1 || !strings.Contains(refused[0].Detail, "H264") || !strings.Contains(refused[0].Detail, "recorded nothing") ||
		!strings.Contains(refused[0].Detail, "SPS") {
		t.Errorf("refused observations %+v, want one saying that nothing of the H264 track is recorded, and why (the SPS)", refused)
	}
	if v := metric(t, e.reg, "nokstream_ingest_media_errors_total", "kind", "unrecorded"); v != 1 {
		t.Errorf("media_errors{kind=unrecorded} = %v, want 1 (once a stall)", v)
	}
	if segs, _ := e.segments(t, "site1/cam-ws01"); len(segs) != 0 {
		t.Errorf("%d segments recorded, want none", len(segs))
	}
	// Ingest keeps the session (a valid keyframe may still come); it ends
	// only for want of media once the publisher stops sending.
	for _, stop := range e.observations(t, "site1/cam-ws01", events.ObsStop) {
		if stop.Cause == events.CauseIngest {
			t.Errorf("ingest ended the session (%+v), want it kept", stop)
		}
	}
}
