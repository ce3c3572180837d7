package rtsp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/format"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
)

// TestCodecFlappingEndsTheSession: a publisher whose parameter sets flip
// between two resolutions at every frame (each one a keyframe) would have
// every frame cut into a segment of its own with a new init — a file, an
// fsync and an event a frame. After 30 changes within a minute ingest ends
// the session and its stop observation says why; what it recorded until
// then is in segments that each start on a keyframe.
func TestCodecFlappingEndsTheSession(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	dir := t.TempDir()
	var clips [2]*testenv.Clip
	for i, size := range []string{"160x120", "176x144"} {
		c, err := testenv.ReadClip(testenv.EncodeClip(t, dir, testenv.ClipSpec{Size: size, FPS: 25, Seconds: 1}))
		if err != nil {
			t.Fatal(err)
		}
		clips[i] = c
	}
	desc := clips[0].Description()
	enc, err := desc.Medias[0].Formats[0].(*format.H264).CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Transport: &tcp, WriteQueueSize: 8192}
	if err := c.StartRecording("rtsp://cam1:s3cret-cam1@"+s.cfg.Addr+"/site1/cam1", desc); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const frames = 200
	for i := range frames {
		clip := clips[i%2]
		au := append([][]byte{clip.SPS, clip.PPS}, clip.Frames[0].AU...) // the keyframe
		pkts, err := enc.Encode(au)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			p.Timestamp = uint32(i * 3600) // 25 fps
			if err := c.WritePacketRTP(desc.Medias[0], p); err != nil {
				break // ended by the server
			}
		}
	}

	var stop *events.Observation
	segments := func() int {
		pend, err := s.spool.Pending()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range pend {
			if p.Event.StreamID == "site1/cam1" {
				n++
				if !p.Event.IsIndependent() {
					t.Errorf("segment %d does not start on a keyframe", p.Event.Sequence)
				}
			}
		}
		return n
	}
	testenv.WaitFor(t, 20*time.Second, "the session to be ended, or a segment a frame", func() bool {
		pend, err := s.spool.PendingObservations()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pend {
			if p.Observation.Kind == events.ObsStop && p.Observation.StreamID == "site1/cam1" {
				stop = &p.Observation
			}
		}
		return stop != nil || segments() >= frames/2
	})
	if stop == nil || stop.Cause != events.CauseIngest || !strings.Contains(stop.Detail, "codec configuration") {
		t.Fatalf("stop observation %+v, want the session ended by ingest for its codec changes", stop)
	}
	// The stop comes after the last segment is closed.
	if n := segments(); n < 10 || n > 32 {
		t.Errorf("%d segments, want one for each of the ~30 configurations taken", n)
	}
	if n := counterSum(t, s.reg, "nokstream_ingest_media_errors_total", "kind", "codec"); n != 1 {
		t.Errorf("media_errors{kind=codec} = %v, want 1", n)
	}
}
