package rtsp_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
)

// TestStopCause: a publisher that ends its session with a TEARDOWN is
// reported as having ended it on purpose; one whose connection drops
// without a word (a killed process, a pulled cable) as lost, so that the
// site console can say it is reconnecting.
func TestStopCause(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	clip, err := testenv.ReadClip(testenv.EncodeClip(t, t.TempDir(), testenv.ClipSpec{Size: "160x120", FPS: 25, Seconds: 1}))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, device string
		end          func(c *gortsplib.Client, conn net.Conn)
		cause        string
	}{
		{"teardown", "cam1", func(c *gortsplib.Client, _ net.Conn) { c.Close() }, events.CauseEnded},
		{"connection dropped", "cam2", func(c *gortsplib.Client, conn net.Conn) {
			_ = conn.Close() // no TEARDOWN
			_ = c.Wait()
			c.Close()
		}, events.CauseLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conns := make(chan net.Conn, 1)
			tcp := gortsplib.TransportTCP
			c := &gortsplib.Client{Transport: &tcp, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err == nil {
					conns <- nc
				}
				return nc, err
			}}
			if err := c.StartRecording("rtsp://"+tc.device+":s3cret-"+tc.device+"@"+s.cfg.Addr+"/site1/"+tc.device, clip.Description()); err != nil {
				t.Fatalf("publish: %v", err)
			}
			tc.end(c, <-conns)

			stream := "site1/" + tc.device
			var stop *events.Observation
			testenv.WaitFor(t, 10*time.Second, "the stop observation of "+stream, func() bool {
				pend, err := s.spool.PendingObservations()
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range pend {
					if p.Observation.StreamID == stream && p.Observation.Kind == events.ObsStop {
						stop = &p.Observation
					}
				}
				return stop != nil
			})
			if stop.Cause != tc.cause {
				t.Errorf("stop of %s has cause %q (detail %q), want %q", stream, stop.Cause, stop.Detail, tc.cause)
			}
			t.Logf("stop: cause %s, detail %q", stop.Cause, stop.Detail)
		})
	}
}
