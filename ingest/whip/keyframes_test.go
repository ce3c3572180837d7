package whip

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"

	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/internal/testenv"
)

// paramSets returns the SPS and PPS x264 writes for a WebRTC-like
// (baseline, no B-frames) stream of size.
func paramSets(t *testing.T, size string) (sps, pps []byte) {
	t.Helper()
	r, err := h264reader.NewReader(bytes.NewReader(testenv.H264Frame(t, size)))
	if err != nil {
		t.Fatal(err)
	}
	for sps == nil || pps == nil {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			t.Fatalf("no SPS and PPS in x264's %s stream", size)
		}
		if err != nil {
			t.Fatal(err)
		}
		switch h264.NALUType(nal.Data[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = bytes.Clone(nal.Data)
		case h264.NALUTypePPS:
			pps = bytes.Clone(nal.Data)
		}
	}
	return sps, pps
}

// durOutput keeps the duration of each segment the segmenter closes.
type durOutput struct{ segs []*durSegment }

type durSegment struct {
	h   segmenter.Header
	dur time.Duration
}

func (o *durOutput) OpenSegment(h segmenter.Header) (segmenter.SegmentWriter, error) {
	s := &durSegment{h: h}
	o.segs = append(o.segs, s)
	return s, nil
}

func (*durSegment) WritePart([]byte) error        { return nil }
func (s *durSegment) Close(d time.Duration) error { s.dur = d; return nil }

// browserRun plays a browser's camera into a segmenter, as a WHIP session
// does: 25 fps, a keyframe only at the start, when asked (three frames
// after the request, as an encoder takes a moment) and at a change of
// resolution at changeAt, which sends the new parameter sets with an IDR,
// or with withIDR false, before P-frames (a keyframe then comes only when
// asked). The session's keyframe schedule is consulted at every frame.
func browserRun(t *testing.T, seconds int, changeAt time.Duration, withIDR bool) (*durOutput, int) {
	t.Helper()
	const (
		fps     = 25
		segDur  = 2 * time.Second
		answer  = 3 // frames between a request and the keyframe
		rate    = 90000
		frameTk = rate / fps
	)
	sps1, pps1 := paramSets(t, "320x240")
	sps2, pps2 := paramSets(t, "640x480")
	if bytes.Equal(sps1, sps2) {
		t.Fatal("x264 wrote the same SPS for both sizes")
	}
	cfg := segmenter.DefaultConfig()
	cfg.SegmentDuration = segDur
	out := &durOutput{}
	t0 := time.Unix(1_700_000_000, 0)
	now := t0
	seg, err := segmenter.New(cfg, []segmenter.Track{{Codec: &mp4.CodecH264{}, TimeScale: rate}},
		out, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	kf := keyframes{segment: ticks(segDur, rate)}
	// As startRecording wires it: the video is track 0.
	seg.OnCodecChange(func(track int, _ string) {
		if track == 0 {
			kf.codecChanged()
		}
	})
	w := segmenter.NewH264(seg, 0, nil, nil)
	asks, keyIn := 0, -1
	changeFrame := int(changeAt * fps / time.Second)
	for i := 0; i < seconds*fps; i++ {
		now = t0.Add(time.Duration(i) * time.Second / fps)
		if kf.due(now) {
			asks++
			if keyIn < 0 {
				keyIn = answer
			}
		}
		var au [][]byte
		switch {
		case i == 0:
			au = [][]byte{sps1, pps1, {0x65, 0x88, 0x84, 0x00}}
		case i == changeFrame && withIDR:
			au, keyIn = [][]byte{sps2, pps2, {0x65, 0x88, 0x84, 0x00}}, -1
		case i == changeFrame:
			au = [][]byte{sps2, pps2, {0x41, 0x9a, 0x02, 0x00}}
		case keyIn == 0:
			au, keyIn = [][]byte{{0x65, 0x88, 0x84, 0x00}}, -1
		default:
			au = [][]byte{{0x41, 0x9a, 0x02, 0x00}}
			if keyIn > 0 {
				keyIn--
			}
		}
		pts := int64(i * frameTk)
		if err := w.Write(pts, au); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		kf.written(pts, h264.IsRandomAccess(au))
	}
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}
	return out, asks
}

// A browser that changes its resolution mid-segment (a new SPS, so the
// segmenter cuts there) still gets its keyframe requests a segment
// duration into each new segment: no segment after the change runs to
// twice its duration (a WHIP webcam segment of 10.5 s with 6 s segments
// was seen before the schedule followed that cut).
func TestKeyframeScheduleFollowsCodecChanges(t *testing.T) {
	t.Parallel()
	const seconds = 14
	for _, tc := range []struct {
		name    string
		withIDR bool
	}{{"sps with idr", true}, {"sps before p-frames", false}} {
		t.Run(tc.name, func(t *testing.T) {
			out, asks := browserRun(t, seconds, 3300*time.Millisecond, tc.withIDR)
			var total time.Duration
			inits := map[string]bool{}
			for i, s := range out.segs {
				total += s.dur
				inits[string(s.h.Init)] = true
				t.Logf("segment %d: %v (discontinuity %v)", i, s.dur, s.h.Discontinuity)
				if i == len(out.segs)-1 {
					continue
				}
				// 2 s, plus at most the browser's answer and a tick.
				if s.dur > 2300*time.Millisecond {
					t.Errorf("segment %d lasts %v with 2 s segments, want at most 2.3 s", i, s.dur)
				}
			}
			if len(inits) != 2 {
				t.Errorf("%d init segments, want 2 (before and after the change)", len(inits))
			}
			// Every segment but the one the change closed is a segment
			// duration long: ~6 for 14 s.
			if n := len(out.segs); n < 6 || n > 8 {
				t.Errorf("%d segments in %d s of 2 s segments and one change, want 6 to 8", n, seconds)
			}
			// Without an IDR with the new SPS, the P-frames until the
			// next keyframe cannot be recorded: it is asked for at once.
			lost := 0 * time.Millisecond
			if !tc.withIDR {
				lost = 200 * time.Millisecond
			}
			if total < seconds*time.Second-lost-100*time.Millisecond {
				t.Errorf("segments add up to %v of %d s, want all but %v", total, seconds, lost)
			}
			if asks > seconds {
				t.Errorf("%d keyframe requests in %d s, want about one a segment", asks, seconds)
			}
		})
	}
}
