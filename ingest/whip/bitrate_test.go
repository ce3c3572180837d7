package whip_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/nokstream/nokstream/ingest/whip"
	"github.com/nokstream/nokstream/internal/testenv"
)

// TestBitrateCap: a WHIP publisher above the session bitrate cap (here
// all-intra video against a 1 Mbit/s cap) is ended by ingest, counted as
// ended for the cap, after a few seconds of media at most.
func TestBitrateCap(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"site1/cam-ws01": "webcam"}, func(c *whip.Config) { c.Segment.MaxBitrate = 1_000_000 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := testenv.NewWHIPClient(t, testenv.MakeWHIPMedia(t, 15, "h264", false, 1))
	if status, body, err := c.Publish(ctx, e.url+"/whip/site1/cam-ws01", "s3cret-cam-ws01"); err != nil || status != http.StatusCreated {
		t.Fatalf("POST offer: %d %v %s", status, err, body)
	}
	go func() { _ = c.Stream(ctx) }() // the server closes the connection on the way
	testenv.WaitFor(t, 30*time.Second, "the session to end for the bitrate cap", func() bool {
		return metric(t, e.reg, "nokstream_ingest_whip_sessions_ended_total", "reason", "bitrate_cap") == 1
	})
	segs, _ := e.segments(t, "site1/cam-ws01")
	if d := total(segs); d > 8 {
		t.Errorf("recorded %.2f s of a session above the cap, want it ended within about 5 s", d)
	}
}
