package rtsp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
)

// TestRefusalStormIsFolded: someone holding a live camera's secret sends
// ANNOUNCE after ANNOUNCE. Each is refused (453: the camera is live), but
// each used to write a refused observation — an fsync'd file, a message on
// the bus, a row in the registry — as fast as they could be sent. Now a
// stream gets one refused observation per 10 s, the next saying how many
// were folded into it; the metrics count every one, and the camera keeps
// recording.
func TestRefusalStormIsFolded(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	clip, err := testenv.ReadClip(testenv.EncodeClip(t, t.TempDir(), testenv.ClipSpec{Size: "160x120", FPS: 25, Seconds: 2}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- testenv.Publish(ctx, clip, "rtsp://cam1:s3cret-cam1@"+s.cfg.Addr+"/site1/cam1", nil) }()
	testenv.WaitFor(t, 10*time.Second, "the camera to record", func() bool { return len(s.observations(t, "site1/cam1", events.ObsStart)) > 0 })

	const storm = 200
	valid := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n"
	auth := map[string]string{"Authorization": basic("cam1", "s3cret-cam1")}
	for i := range storm {
		if status := rawRTSP(t, s.cfg.Addr, "ANNOUNCE", "rtsp://"+s.cfg.Addr+"/site1/cam1", auth, []byte(valid)); !strings.Contains(status, " 453 ") {
			t.Fatalf("ANNOUNCE %d while the camera is live: %q, want 453", i, status)
		}
	}
	if n := counterSum(t, s.reg, "nokstream_ingest_publishers_refused_total", "reason", "stream_busy"); n != storm {
		t.Errorf("refused{reason=stream_busy} = %v, want %d", n, storm)
	}
	if got := s.observations(t, "site1/cam1", events.ObsRefused); len(got) > 2 {
		t.Errorf("%d refused observations for %d refusals within seconds, want at most 2", len(got), storm)
	}
	// The camera goes on recording.
	before := s.streamSeconds(t, "site1/cam1")
	testenv.WaitFor(t, 15*time.Second, "the camera's next segment", func() bool { return s.streamSeconds(t, "site1/cam1") > before })
	select {
	case err := <-done:
		t.Fatalf("the camera's session ended: %v", err)
	default:
	}
	cancel()
	<-done
}
