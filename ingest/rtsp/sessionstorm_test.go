package rtsp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
)

// TestSessionStormIsRefused: a publisher that connects, records and hangs
// up in a loop wrote a start and a stop observation (and, with a keyframe,
// a segment) each time, as fast as it looped. A stream may start 10
// sessions in a row, then one every 6 s: beyond, ANNOUNCE is refused with
// 503 and a reason. Another stream's publisher starts as usual.
func TestSessionStormIsRefused(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	clip, err := testenv.ReadClip(testenv.EncodeClip(t, t.TempDir(), testenv.ClipSpec{Size: "160x120", FPS: 25, Seconds: 1}))
	if err != nil {
		t.Fatal(err)
	}
	record := func(device string) error {
		tcp := gortsplib.TransportTCP
		c := &gortsplib.Client{Transport: &tcp}
		err := c.StartRecording("rtsp://"+device+":s3cret-"+device+"@"+s.cfg.Addr+"/site1/"+device, clip.Description())
		if err == nil {
			c.Close()
		}
		return err
	}
	stops := func() int {
		pend, err := s.spool.PendingObservations()
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range pend {
			if p.Observation.StreamID == "site1/cam1" && p.Observation.Kind == events.ObsStop {
				n++
			}
		}
		return n
	}
	var refused []error
	for i := range 20 {
		if err := record("cam1"); err != nil {
			refused = append(refused, err)
			continue
		}
		// The session has ended before the next starts (else the next is
		// refused as a takeover of a live stream).
		testenv.WaitFor(t, 10*time.Second, "the session to end", func() bool { return stops() == i+1-len(refused) })
	}
	if len(refused) < 9 || len(refused) > 10 {
		t.Errorf("%d of 20 sessions started in a row were refused, want 10 (9 if 6 s passed)", len(refused))
	}
	for _, err := range refused {
		if !strings.Contains(err.Error(), "503") {
			t.Errorf("refusal %v, want 503", err)
		}
	}
	if err := record("cam2"); err != nil {
		t.Errorf("another stream's publisher: %v", err)
	}
	pend, err := s.spool.PendingObservations()
	if err != nil {
		t.Fatal(err)
	}
	starts := 0
	for _, p := range pend {
		if p.Observation.StreamID == "site1/cam1" && p.Observation.Kind == events.ObsStart {
			starts++
		}
	}
	if starts > 11 {
		t.Errorf("%d start observations for site1/cam1, want at most 11", starts)
	}
	if n := counterSum(t, s.reg, "nokstream_ingest_publishers_refused_total", "reason", "session_rate"); n != float64(len(refused)) {
		t.Errorf("refused{reason=session_rate} = %v, want %d", n, len(refused))
	}
	if !strings.Contains(s.log.String(), "too many sessions started") {
		t.Errorf("the log does not say why")
	}
}
