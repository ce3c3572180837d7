package rtsp_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
)

// TestTimestampJumpsAreReanchored: a camera whose RTP clock jumps — its
// encoder restarts and the timestamps go back an hour, then its clock is
// set and they leap five hours ahead — keeps being recorded: every second
// it sends is in the segments, no segment lasts hours, and none is dated
// hours away from when it was received (the evidence stays attributed to
// the time it was captured).
func TestTimestampJumpsAreReanchored(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	clip, err := testenv.ReadClip(testenv.EncodeClip(t, t.TempDir(), testenv.ClipSpec{Size: "160x120", FPS: 25, Seconds: 2, Audio: true}))
	if err != nil {
		t.Fatal(err)
	}
	desc := clip.Description()
	venc, err := desc.Medias[0].Formats[0].(*format.H264).CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	aenc, err := desc.Medias[1].Formats[0].(*format.MPEG4Audio).CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	aRate := int64(desc.Medias[1].Formats[0].ClockRate())

	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Transport: &tcp, WriteQueueSize: 8192}
	began := time.Now()
	if err := c.StartRecording("rtsp://cam1:s3cret-cam1@"+s.cfg.Addr+"/site1/cam1", desc); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Three runs of two loops of the clip (4 s each), each starting on a
	// keyframe: the first from timestamp 0, the second an hour before it,
	// the third five hours after.
	const loops = 2
	for _, base := range []time.Duration{0, -time.Hour, 5 * time.Hour} {
		for loop := range loops {
			off := base + time.Duration(loop)*clip.Duration
			for _, f := range clip.Frames {
				pts := off + f.PTS
				var pkts []*rtp.Packet
				m := desc.Medias[0]
				if f.Video {
					pkts, err = venc.Encode(f.AU)
					for _, p := range pkts {
						p.Timestamp = uint32(int64(pts) * 90000 / int64(time.Second))
					}
				} else {
					m = desc.Medias[1]
					pkts, err = aenc.Encode(f.AU)
					for _, p := range pkts {
						p.Timestamp = uint32(int64(pts) * aRate / int64(time.Second))
					}
				}
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range pkts {
					if err := c.WritePacketRTP(m, p); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	sent := 3 * loops * clip.Duration.Seconds()
	// Everything but the last frame is in closed segments once the last
	// keyframe has cut one; the session's end closes the rest.
	testenv.WaitFor(t, 20*time.Second, "the media before the last keyframe to be spooled", func() bool {
		return s.streamSeconds(t, "site1/cam1") >= sent-clip.Duration.Seconds()-0.5
	})
	c.Close()
	testenv.WaitFor(t, 20*time.Second, "the session's last segment", func() bool {
		return s.streamSeconds(t, "site1/cam1") >= sent-0.5
	})
	ended := time.Now()
	pend, err := s.spool.Pending()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, p := range pend {
		if p.Event.StreamID != "site1/cam1" {
			continue
		}
		ev := p.Event
		total += ev.Duration
		if ev.Duration > 10 {
			t.Errorf("segment %d lasts %.0f s, for a clip sent in %.0f s", ev.Sequence, ev.Duration, sent)
		}
		if ev.Start.Before(began.Add(-time.Minute)) || ev.Start.After(ended.Add(time.Minute)) {
			t.Errorf("segment %d is dated %s, received between %s and %s", ev.Sequence, ev.Start.Format(time.TimeOnly),
				began.Format(time.TimeOnly), ended.Format(time.TimeOnly))
		}
		if !ev.IsIndependent() {
			t.Errorf("segment %d does not start on a keyframe", ev.Sequence)
		}
	}
	if total < sent-0.5 || total > sent+0.5 {
		t.Errorf("segments add up to %.2f s, %.0f s were sent", total, sent)
	}
	if n := counterSum(t, s.reg, "nokstream_ingest_media_errors_total", "kind", "timestamp"); n < 1 {
		t.Errorf("media_errors{kind=timestamp} = %v: the jumps are not counted", n)
	}
	path, _ := joinedSpool(t, s, "site1/cam1")
	if probe := testenv.FFprobe(t, path); len(probe.Codecs()) != 2 {
		t.Errorf("ffprobe sees streams %v in the segments, want video and audio", probe.Codecs())
	}
}

// joinedSpool is joined for a server of startServer.
func joinedSpool(t *testing.T, s *server, stream string) (string, int) {
	path, pend := joined(t, &env{spool: s.spool}, stream)
	return path, len(pend)
}

// TestMediaAheadOfRealTimeEndsTheSession: a publisher advancing its clock
// 9 s a frame — each step under what is taken as a jump — would have an
// hour of media dated into the future within a second. Once its media runs
// 30 s ahead of real time ingest ends the session and says why; nothing
// recorded is dated more than that ahead.
func TestMediaAheadOfRealTimeEndsTheSession(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	clip, err := testenv.ReadClip(testenv.EncodeClip(t, t.TempDir(), testenv.ClipSpec{Size: "160x120", FPS: 25, Seconds: 1}))
	if err != nil {
		t.Fatal(err)
	}
	desc := clip.Description()
	enc, err := desc.Medias[0].Formats[0].(*format.H264).CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Transport: &tcp, WriteQueueSize: 8192}
	began := time.Now()
	if err := c.StartRecording("rtsp://cam1:s3cret-cam1@"+s.cfg.Addr+"/site1/cam1", desc); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const frames = 400
	for i := range frames {
		pkts, err := enc.Encode(clip.Frames[0].AU) // the keyframe
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			p.Timestamp = uint32(i * 9 * 90000)
			if err := c.WritePacketRTP(desc.Medias[0], p); err != nil {
				break // ended by the server
			}
		}
	}
	var stop *events.Observation
	testenv.WaitFor(t, 20*time.Second, "the session to be ended, or an hour recorded", func() bool {
		pend, err := s.spool.PendingObservations()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pend {
			if p.Observation.Kind == events.ObsStop && p.Observation.StreamID == "site1/cam1" {
				stop = &p.Observation
			}
		}
		return stop != nil || s.streamSeconds(t, "site1/cam1") > 3000
	})
	if stop == nil || stop.Cause != events.CauseIngest || !strings.Contains(stop.Detail, "ahead of real time") {
		t.Fatalf("stop observation %+v, want the session ended by ingest for media ahead of real time", stop)
	}
	pend, err := s.spool.Pending()
	if err != nil {
		t.Fatal(err)
	}
	limit := time.Now().Add(40 * time.Second)
	for _, p := range pend {
		if p.Event.StreamID == "site1/cam1" && p.Event.Start.After(limit) {
			t.Errorf("segment %d is dated %s, %s after it was received", p.Event.Sequence, p.Event.Start.Format(time.TimeOnly),
				p.Event.Start.Sub(began).Round(time.Second))
		}
	}
}
