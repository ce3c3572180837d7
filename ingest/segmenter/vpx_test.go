package segmenter_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"

	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/internal/testenv"
)

// memOutput keeps segments in memory.
type memOutput struct {
	mu   sync.Mutex
	segs []*memSegment
}

type memSegment struct {
	h      segmenter.Header
	buf    bytes.Buffer
	dur    time.Duration
	closed bool
}

func (o *memOutput) OpenSegment(h segmenter.Header) (segmenter.SegmentWriter, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := &memSegment{h: h}
	o.segs = append(o.segs, s)
	return s, nil
}

func (s *memSegment) WritePart(b []byte) error { s.buf.Write(b); return nil }
func (s *memSegment) Close(d time.Duration) error {
	s.dur, s.closed = d, true
	return nil
}

// encodeIVF encodes a few seconds of test pattern with ffmpeg into an IVF
// file (one frame or temporal unit per IVF frame).
func encodeIVF(t *testing.T, seconds int, codecArgs ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "video.ivf")
	args := []string{"-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-t", strconv.Itoa(seconds), "-pix_fmt", "yuv420p", "-g", "25"}
	args = append(args, codecArgs...)
	args = append(args, "-f", "ivf", path)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, testenv.Tool(t, "ffmpeg"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	return path
}

func TestVP9AndAV1AreSegmented(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		args    []string
		codec   mp4.Codec
		want    string
		rfc6381 string
		write   func(s *segmenter.Segmenter) func(pts int64, frame []byte) error
	}{
		{"vp9", []string{"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"}, &mp4.CodecVP9{}, "video:vp9", "vp09.00.20.08",
			func(s *segmenter.Segmenter) func(int64, []byte) error { return segmenter.NewVP9(s, 0).Write }},
		{"av1", []string{"-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-b:v", "300k"}, &mp4.CodecAV1{}, "video:av1", "av01.0.00M.08",
			func(s *segmenter.Segmenter) func(int64, []byte) error {
				w := segmenter.NewAV1(s, 0)
				return func(pts int64, tu []byte) error {
					var bs av1.Bitstream
					if err := bs.Unmarshal(tu); err != nil {
						return err
					}
					return w.Write(pts, bs)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := os.Open(encodeIVF(t, 5, tc.args...))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			r, _, err := ivfreader.NewWith(f)
			if err != nil {
				t.Fatal(err)
			}
			out := &memOutput{}
			cfg := segmenter.Config{SegmentDuration: 2 * time.Second, PartDuration: 500 * time.Millisecond}
			seg, err := segmenter.New(cfg, []segmenter.Track{{Codec: tc.codec, TimeScale: 90000}}, out, time.Now)
			if err != nil {
				t.Fatal(err)
			}
			write := tc.write(seg)
			for i := int64(0); ; i++ {
				frame, _, err := r.ParseNextFrame()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				pts := i * 90000 / 25 // ffmpeg wrote a constant 25 frames per second
				if err := write(pts, frame); err != nil {
					t.Fatalf("write frame at %d: %v", pts, err)
				}
			}
			if err := seg.Close(); err != nil {
				t.Fatal(err)
			}
			if len(out.segs) < 2 {
				t.Fatalf("%d segments for 5 s at 2 s, want at least 2", len(out.segs))
			}
			var joined bytes.Buffer
			joined.Write(out.segs[0].h.Init)
			total := time.Duration(0)
			for i, s := range out.segs {
				if !s.closed {
					t.Errorf("segment %d not closed", i)
				}
				if !bytes.Equal(s.h.Init, out.segs[0].h.Init) {
					t.Errorf("segment %d has a different init", i)
				}
				if i < len(out.segs)-1 && (s.dur < 2*time.Second || s.dur > 2100*time.Millisecond) {
					t.Errorf("segment %d lasts %s, want 2 s (keyframe every 1 s)", i, s.dur)
				}
				total += s.dur
				joined.Write(s.buf.Bytes())
			}
			if total < 4900*time.Millisecond || total > 5100*time.Millisecond {
				t.Errorf("segments add up to %s, want 5 s", total)
			}
			if got := out.segs[0].h.Codecs; len(got) != 1 || got[0] != tc.rfc6381 {
				t.Errorf("codec strings %v, want [%s]", got, tc.rfc6381)
			}
			path := filepath.Join(t.TempDir(), "joined.mp4")
			if err := os.WriteFile(path, joined.Bytes(), 0o600); err != nil {
				t.Fatal(err)
			}
			probe := testenv.FFprobe(t, path)
			if got := strings.Join(probe.Codecs(), ","); got != tc.want {
				t.Errorf("ffprobe sees %s, want %s", got, tc.want)
			}
			if len(probe.Streams) == 1 && (probe.Streams[0].Width != 320 || probe.Streams[0].Height != 240) {
				t.Errorf("ffprobe sees %dx%d, want 320x240", probe.Streams[0].Width, probe.Streams[0].Height)
			}
			// Every frame decodes: ffmpeg reads the whole file without error.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			dec := exec.CommandContext(ctx, testenv.Tool(t, "ffmpeg"), "-hide_banner", "-v", "error", "-xerror", "-i", path, "-f", "null", "-")
			if b, err := dec.CombinedOutput(); err != nil || len(bytes.TrimSpace(b)) > 0 {
				t.Errorf("decoding the segments: %v: %s", err, b)
			}
		})
	}
}

func TestVP9WaitsForKeyFrame(t *testing.T) {
	out := &memOutput{}
	seg, err := segmenter.New(segmenter.DefaultConfig(), []segmenter.Track{{Codec: &mp4.CodecVP9{}, TimeScale: 90000}}, out, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	w := segmenter.NewVP9(seg, 0)
	// An inter frame header: frame marker 2, profile 0, show_existing 0,
	// non-key 1, show_frame 1, error_res 0.
	if err := w.Write(0, []byte{0x86, 0x00, 0x00, 0x00}); err != nil {
		t.Fatalf("inter frame before a key frame: %v", err)
	}
	if err := w.Write(3000, []byte{0x00}); !errors.Is(err, segmenter.ErrCodec) {
		t.Errorf("garbage frame: err %v, want ErrCodec", err)
	}
	if err := seg.Close(); err != nil {
		t.Fatal(err)
	}
	if len(out.segs) != 0 {
		t.Errorf("%d segments written before any key frame", len(out.segs))
	}
}
