package segmenter_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/internal/testenv"
)

// limitOutput keeps each segment's header, bytes and duration.
type limitOutput struct{ segs []*limitSegment }

type limitSegment struct {
	h   segmenter.Header
	buf bytes.Buffer
	dur time.Duration
}

func (o *limitOutput) OpenSegment(h segmenter.Header) (segmenter.SegmentWriter, error) {
	s := &limitSegment{h: h}
	o.segs = append(o.segs, s)
	return s, nil
}

func (s *limitSegment) WritePart(b []byte) error { s.buf.Write(b); return nil }
func (s *limitSegment) Close(d time.Duration) error {
	s.dur = d
	return nil
}

// publishWithoutKeyframes feeds the video of a real clip, looped for
// seconds, as a publisher that marks only its very first frame as a
// keyframe (a camera with a GOP of minutes), into a segmenter with cfg.
func publishWithoutKeyframes(t *testing.T, clip *testenv.Clip, seconds int, cfg segmenter.Config) *limitOutput {
	t.Helper()
	out := &limitOutput{}
	seg, err := segmenter.New(cfg, []segmenter.Track{{Codec: &mp4.CodecH264{SPS: clip.SPS, PPS: clip.PPS}, TimeScale: 90000}},
		out, func() time.Time { return time.Unix(1_700_000_000, 0) })
	if err != nil {
		t.Fatal(err)
	}
	first := true
	for loop := time.Duration(0); loop < time.Duration(seconds)*time.Second; loop += clip.Duration {
		for _, f := range clip.Frames {
			if !f.Video {
				continue
			}
			payload, err := h264.AVCC(f.AU).Marshal()
			if err != nil {
				t.Fatal(err)
			}
			dts := (loop + f.DTS) * 90000 / time.Second
			if err := seg.WriteSample(0, int64(dts), int32((f.PTS-f.DTS)*90000/time.Second), first, payload); err != nil {
				t.Fatalf("write at %v: %v", loop+f.DTS, err)
			}
			first = false
		}
	}
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSegmentLimits: a publisher that sends no keyframe cannot grow a
// segment without limit: it is cut at 60 s (by default, whatever the
// keyframes) or at the byte limit; the segments after such a cut are marked
// not independent, and the whole still plays (ffmpeg decodes every frame of
// init + segments in order).
func TestSegmentLimits(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clip, err := testenv.ReadClip(testenv.EncodeClip(t, dir, testenv.ClipSpec{Size: "160x120", FPS: 25, Seconds: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if d := segmenter.DefaultConfig(); d.MaxSegmentDuration != 60*time.Second || d.MaxSegmentBytes != 256<<20 || d.MaxBitrate != 40_000_000 {
		t.Errorf("defaults %+v, want 60 s, 256 MiB, 40 Mbit/s", d)
	}
	for _, c := range []segmenter.Config{
		{SegmentDuration: 6 * time.Second, PartDuration: time.Second, MaxSegmentDuration: 61 * time.Second},
		{SegmentDuration: 6 * time.Second, PartDuration: time.Second, MaxSegmentBytes: 257 << 20},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: valid, want refused above the 60 s / 256 MiB limits", c)
		}
	}

	t.Run("duration", func(t *testing.T) {
		t.Parallel()
		out := publishWithoutKeyframes(t, clip, 130, segmenter.DefaultConfig())
		if len(out.segs) != 3 {
			t.Fatalf("%d segments of 130 s without keyframes, want 3 (cut at 60 s)", len(out.segs))
		}
		file := filepath.Join(t.TempDir(), "joined.mp4")
		joined := bytes.NewBuffer(bytes.Clone(out.segs[0].h.Init))
		var total time.Duration
		for i, s := range out.segs {
			d, err := segmenter.MediaDuration(s.h.Init, s.buf.Bytes())
			if err != nil {
				t.Fatalf("segment %d: %v", i, err)
			}
			if d > 60*time.Second+40*time.Millisecond {
				t.Errorf("segment %d lasts %v, more than 60 s", i, d)
			}
			if want := i > 0; s.h.NotIndependent != want {
				t.Errorf("segment %d: not independent %v, want %v", i, s.h.NotIndependent, want)
			}
			total += d
			joined.Write(s.buf.Bytes())
		}
		if total < 129*time.Second {
			t.Errorf("segments last %v together, want 130 s", total)
		}
		if err := os.WriteFile(file, joined.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		// Played in order, every frame decodes.
		outp, err := exec.Command(testenv.Tool(t, "ffmpeg"), "-v", "error", "-i", file, "-map", "0:v", "-f", "null", "-").CombinedOutput()
		// (The null muxer's remarks on the last frame's timestamps are
		// not decoding errors.)
		if err != nil || bytes.Contains(outp, []byte("[h264 @")) {
			t.Errorf("ffmpeg decoding the segments in order: %v\n%s", err, outp)
		}
		n, err := exec.Command(testenv.Tool(t, "ffprobe"), "-v", "error", "-count_frames", "-select_streams", "v:0",
			"-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", file).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := strconv.Atoi(strings.TrimSpace(string(n))); got != 130*25 {
			t.Errorf("%s frames decoded, want %d", n, 130*25)
		}
	})

	t.Run("bytes", func(t *testing.T) {
		t.Parallel()
		cfg := segmenter.DefaultConfig()
		cfg.MaxSegmentBytes = 1 << 20
		big, err := testenv.ReadClip(testenv.EncodeClip(t, dir, testenv.ClipSpec{Size: "640x480", FPS: 25, Seconds: 2, Bitrate: "8M"}))
		if err != nil {
			t.Fatal(err)
		}
		out := publishWithoutKeyframes(t, big, 10, cfg)
		if len(out.segs) < 5 {
			t.Fatalf("%d segments of 10 s at 8 Mbit/s with a 1 MiB limit, want at least 5", len(out.segs))
		}
		for i, s := range out.segs {
			if s.buf.Len() > 1<<20+64<<10 {
				t.Errorf("segment %d has %d bytes, over the 1 MiB limit", i, s.buf.Len())
			}
			if want := i > 0; s.h.NotIndependent != want {
				t.Errorf("segment %d: not independent %v, want %v", i, s.h.NotIndependent, want)
			}
		}
	})
}

// countOutput counts bytes and keeps nothing.
type countOutput struct{ n int }

func (o *countOutput) OpenSegment(segmenter.Header) (segmenter.SegmentWriter, error) { return o, nil }
func (o *countOutput) WritePart(b []byte) error                                      { o.n += len(b); return nil }
func (o *countOutput) Close(time.Duration) error                                     { return nil }

// TestBitrateCap: a session above the cap (40 Mbit/s by default) is refused
// with ErrBitrate within a few seconds of media; one below is not.
func TestBitrateCap(t *testing.T) {
	t.Parallel()
	feed := func(mbits int, seconds int) error {
		seg, err := segmenter.New(segmenter.DefaultConfig(), []segmenter.Track{{Codec: h264Codec(sps720), TimeScale: 90000}},
			&countOutput{}, func() time.Time { return time.Unix(1_700_000_000, 0) })
		if err != nil {
			t.Fatal(err)
		}
		frame := make([]byte, mbits*1_000_000/8/25)
		for i := range seconds * 25 {
			if err := seg.WriteSample(0, int64(i*3600), 0, i%50 == 0, frame); err != nil {
				return err
			}
		}
		return seg.Close()
	}
	err := feed(50, 10)
	var be *segmenter.BitrateError
	if !errors.Is(err, segmenter.ErrBitrate) || !errors.As(err, &be) || be.Cap != 40_000_000 || be.Bitrate < 48_000_000 {
		t.Errorf("50 Mbit/s: %v, want ErrBitrate naming about 50 and the cap of 40", err)
	}
	if err := feed(30, 60); err != nil {
		t.Errorf("30 Mbit/s: %v, want no error", err)
	}
}
