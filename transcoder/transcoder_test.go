package transcoder

import (
	"bytes"
	"fmt"
	"image/jpeg"
	"math"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	dto "github.com/prometheus/client_model/go"

	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/internal/webvtt"
)

var t0 = time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)

// TestRendition transcodes clips of each source kind and checks with
// ffprobe what an expert's player gets: the rendition spans the raw
// segment's time exactly, with the configured codec and size, at the
// configured frame rate (cameras at most 15, screens at most 2.5 pictures a
// second, every n-th picture of the source so that motion stays even), with
// audio when the source had it; the sprite holds a tile per 2 s and the
// WebVTT cues cover the segment.
func TestRendition(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, source string
		clip         clipSpec
		segment      time.Duration
		wantW, wantH int
		fps          float64 // of the rendition
		audio        bool
		// keep: the video codecs carry on from segment to segment
		// (a source without B-frames, decoded and encoded without
		// delay).
		keep bool
	}{
		{name: "room 720p25 with AAC", source: events.SourceRoom, segment: 4 * time.Second,
			clip:  clipSpec{video: "testsrc2=size=1280x720:rate=25", audio: "sine=frequency=440:sample_rate=48000", seconds: 9, bframes: 2},
			wantW: 640, wantH: 360, fps: 6.25, audio: true},
		{name: "room 360p25 B-frames ultrafast, as ffmpeg publishes", source: events.SourceRoom, segment: 6 * time.Second,
			clip:  clipSpec{video: "testsrc2=size=640x360:rate=25", audio: "sine=frequency=440:sample_rate=48000", seconds: 13, bframes: 2, preset: "ultrafast"},
			wantW: 640, wantH: 360, fps: 6.25, audio: true},
		{name: "webcam 4:3 30 fps with Opus", source: events.SourceWebcam, segment: 4 * time.Second,
			// Keyframes every 1.5 s: the segments (4.5 s) are no
			// multiple of the rendition's keyframe interval (2 s).
			clip:  clipSpec{video: "testsrc2=size=640x480:rate=30", audio: "sine=frequency=300:sample_rate=48000", audioEnc: "opus", seconds: 8, gop: 45},
			wantW: 480, wantH: 360, fps: 6, audio: true, keep: true},
		{name: "webcam VP9 with Opus", source: events.SourceWebcam, segment: 4 * time.Second,
			clip:  clipSpec{video: "testsrc2=size=640x360:rate=30", codec: "vp9", audio: "sine=frequency=300:sample_rate=48000", audioEnc: "opus", seconds: 8, gop: 60},
			wantW: 640, wantH: 360, fps: 6, audio: true},
		{name: "screen AV1", source: events.SourceScreen, segment: 4 * time.Second,
			clip:  clipSpec{video: "testsrc2=size=1280x720:rate=10", codec: "av1", seconds: 8, gop: 20},
			wantW: 1280, wantH: 720, fps: 2.5},
		{name: "screen 1600x900 without audio", source: events.SourceScreen, segment: 4 * time.Second,
			clip:  clipSpec{video: "testsrc2=size=1600x900:rate=15", seconds: 8, gop: 30},
			wantW: 1280, wantH: 720, fps: 2.5, keep: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			segs := cutClip(t, ffmpegFMP4(t, tc.clip), "dev1", tc.source, tc.segment, t0)
			h := newHarness(t, testConfig())
			h.publish(segs...)
			h.waitDone(segs)
			for _, s := range segs {
				h.mu.Lock()
				rr := h.renditions[s.event.SegmentID]
				h.mu.Unlock()
				if rr == nil {
					t.Fatalf("segment %d: no rendition", s.event.Sequence)
				}
				t.Run(fmt.Sprint("segment ", s.event.Sequence), func(t *testing.T) {
					checkRendition(t, h, s, rr, tc.wantW, tc.wantH, tc.fps, tc.audio)
				})
			}
			// Played one after the other, the renditions' pictures keep
			// decoding in order: no sample of one segment is decoded
			// after the first of the next (a player reading the review
			// playlist whole saw decode times go back at each boundary
			// of a source with B-frames).
			var prevEnd int64 = -1
			for _, s := range segs {
				h.mu.Lock()
				rr := h.renditions[s.event.SegmentID]
				h.mu.Unlock()
				base, end, monotonic := videoDecodeSpan(t, h.get(rr.Rendition.Object.Key))
				if !monotonic {
					t.Errorf("segment %d: a video sample lasts less than a tick or decode times go back", s.event.Sequence)
				}
				if prevEnd >= 0 && base < prevEnd {
					t.Errorf("segment %d: video decoding starts at %d, before the previous segment's last picture ends (%d)",
						s.event.Sequence, base, prevEnd)
				}
				prevEnd = end
			}
			// Each segment after the first carried on with the
			// previous one's decoder and encoder, and still decodes
			// on its own (checkRendition).
			var reused dto.Metric
			if err := h.met.codecsReused.Write(&reused); err != nil {
				t.Fatal(err)
			}
			if got := reused.GetCounter().GetValue(); tc.keep && int(got) != len(segs)-1 {
				t.Errorf("codecs reused for %v of %d segments, want all but the first", got, len(segs))
			}
			// One init segment for the stream: a player switching
			// segments needs no new one.
			inits := map[string]bool{}
			for _, rr := range h.renditions {
				inits[rr.Rendition.Init.Key] = true
			}
			if len(inits) != 1 {
				t.Errorf("%d distinct init segments for one stream, want 1: %v", len(inits), inits)
			}
			if n := len(h.observed()); n != 0 {
				t.Errorf("a clean test pattern gave %d observations: %+v", n, h.observed())
			}
		})
	}
}

func checkRendition(t *testing.T, h *harness, s rawSegment, rr *events.RenditionReady, wantW, wantH int, fps float64, audio bool) {
	ev := s.event
	if rr.StreamID != ev.StreamID || rr.Sequence != ev.Sequence || !rr.Start.Equal(ev.Start) ||
		rr.Duration != ev.Duration || rr.SourceSHA256 != ev.SHA256 || rr.Variant != events.VariantReview {
		t.Errorf("event does not describe its source: %+v", rr)
	}
	init, seg := h.get(rr.Rendition.Init.Key), h.get(rr.Rendition.Object.Key)
	for _, o := range []struct {
		ref events.ObjectRef
		b   []byte
	}{{rr.Rendition.Init, init}, {rr.Rendition.Object, seg}} {
		if r := ref(o.ref.Key, o.b); r != o.ref {
			t.Errorf("stored %s is %+v, event says %+v", o.ref.Key, r, o.ref)
		}
	}

	// What ffprobe sees.
	raw := testenv.FFprobe(t, h.file("raw.mp4", s.init, s.data))
	rev := testenv.FFprobe(t, h.file("review.mp4", init, seg))
	if d := math.Abs(rev.DurationSeconds() - raw.DurationSeconds()); d > 1/fps+1e-3 {
		t.Errorf("rendition lasts %.3f s, raw %.3f s: more than a frame apart", rev.DurationSeconds(), raw.DurationSeconds())
	}
	want := "video:h264"
	if audio {
		want += ",audio:aac"
	}
	if got := strings.Join(rev.Codecs(), ","); got != want {
		t.Errorf("rendition streams %s, want %s", got, want)
	}
	if v := rev.Streams[0]; v.Width != wantW || v.Height != wantH {
		t.Errorf("rendition picture %dx%d, want %dx%d", v.Width, v.Height, wantW, wantH)
	}
	if rr.Rendition.Width != wantW || rr.Rendition.Height != wantH {
		t.Errorf("event says %dx%d, want %dx%d", rr.Rendition.Width, rr.Rendition.Height, wantW, wantH)
	}
	// Within a picture of the rate over the segment: a 1 s segment of a
	// 25 fps source at 6.25 has 7 pictures (every 4th, from the first).
	if secs := ev.Duration; math.Abs(rr.Rendition.FrameRate-fps)*secs > 1.01 {
		t.Errorf("rendition has %.2f frames a second over %.2f s, want %.2f", rr.Rendition.FrameRate, secs, fps)
	}
	if steps := presentationSteps(t, seg); len(steps) > 0 && (slices.Min(steps) < slices.Max(steps)-2) {
		t.Errorf("pictures %v ticks apart, want them evenly spaced", steps)
	}

	// Each segment starts with a picture that decodes on its own (IDR)
	// and decodes alone, without the segment before it: a player can
	// seek to it, also when the encoder carried on from that segment.
	if !firstVideoSampleSync(t, seg) {
		t.Errorf("rendition segment does not start with a sync sample")
	}
	out, err := exec.Command(testenv.Tool(t, "ffmpeg"), "-v", "error", "-i", h.file("alone.mp4", init, seg), "-map", "0:v", "-f", "null", "-").CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("rendition segment alone does not decode cleanly: %v\n%s", err, out)
	}

	// Same decode time and length as the raw segment, so that players can
	// switch between the two at the boundary.
	rawStart, rawDur := videoTiming(t, s.init, s.data)
	revStart, revDur := videoTiming(t, init, seg)
	if revStart != rawStart {
		t.Errorf("rendition starts at %v on the media timeline, raw at %v", revStart, rawStart)
	}
	if revDur != rawDur {
		t.Errorf("rendition spans %v, raw %v", revDur, rawDur)
	}
	// The audio covers the same span too: a player buffers only where
	// both tracks have media.
	if rawA, ok := audioSpan(t, s.init, s.data); ok {
		revA, ok := audioSpan(t, init, seg)
		if !ok {
			t.Errorf("rendition has no audio samples")
		} else if (revA[0]-rawA[0]).Abs() > 30*time.Millisecond || (revA[1]-rawA[1]).Abs() > 30*time.Millisecond {
			t.Errorf("rendition audio spans %v, raw audio %v", revA, rawA)
		}
	}
	if got := time.Duration(rr.MediaStart * float64(time.Second)); (got - rawStart).Abs() > time.Millisecond {
		t.Errorf("event says media start %v, segment %v", got, rawStart)
	}

	// Thumbnails: a tile every 2 s, and cues that cover the segment.
	th := rr.Thumbnails
	if th == nil {
		t.Fatal("no thumbnails")
	}
	tiles := int(math.Ceil(ev.Duration/2 - 1e-6))
	if th.Tiles != tiles {
		t.Errorf("%d tiles for %.3f s, want %d", th.Tiles, ev.Duration, tiles)
	}
	sprite := h.get(th.Sprite.Key)
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(sprite))
	if err != nil {
		t.Fatalf("sprite is not a JPEG: %v", err)
	}
	if cfg.Width != th.Columns*th.TileWidth || cfg.Height != (tiles+th.Columns-1)/th.Columns*th.TileHeight {
		t.Errorf("sprite %dx%d does not hold %d tiles of %dx%d, %d a row", cfg.Width, cfg.Height, tiles, th.TileWidth, th.TileHeight, th.Columns)
	}
	if th.TileWidth != 160 {
		t.Errorf("tile width %d, want 160", th.TileWidth)
	}
	cues, err := webvtt.Parse(h.get(th.VTT.Key))
	if err != nil {
		t.Fatalf("WebVTT fragment: %v", err)
	}
	if len(cues) != tiles {
		t.Fatalf("%d cues, want %d", len(cues), tiles)
	}
	at := rawStart
	re := regexp.MustCompile(`^(.+)#xywh=(\d+),(\d+),(\d+),(\d+)$`)
	for i, c := range cues {
		if (c.Start-at).Abs() > time.Millisecond || c.End <= c.Start {
			t.Errorf("cue %d: %v --> %v, want it to start at %v", i, c.Start, c.End, at)
		}
		at = c.End
		m := re.FindStringSubmatch(c.Text)
		if m == nil || m[1] != path.Base(th.Sprite.Key) {
			t.Errorf("cue %d: text %q does not point into %s", i, c.Text, path.Base(th.Sprite.Key))
			continue
		}
		x, _ := strconv.Atoi(m[2])
		y, _ := strconv.Atoi(m[3])
		if x+th.TileWidth > cfg.Width || y+th.TileHeight > cfg.Height {
			t.Errorf("cue %d: tile at %d,%d outside the sprite", i, x, y)
		}
	}
	if end := rawStart + rawDur; (at - end).Abs() > time.Millisecond {
		t.Errorf("cues end at %v, segment at %v", at, end)
	}
}

// audioSpan returns where the audio samples of a segment start and end on
// the media timeline, from their decode times and durations.
func audioSpan(t *testing.T, init, seg []byte) ([2]time.Duration, bool) {
	t.Helper()
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init)); err != nil {
		t.Fatal(err)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(seg); err != nil {
		t.Fatal(err)
	}
	for _, tr := range in.Tracks {
		if tr.Codec.IsVideo() {
			continue
		}
		var start, end int64
		found := false
		for _, p := range parts {
			for _, pt := range p.Tracks {
				if pt.ID != tr.ID || len(pt.Samples) == 0 {
					continue
				}
				e := int64(pt.BaseTime)
				for _, smp := range pt.Samples {
					e += int64(smp.Duration)
				}
				if !found || int64(pt.BaseTime) < start {
					start = int64(pt.BaseTime)
				}
				end = max(end, e)
				found = true
			}
		}
		return [2]time.Duration{ticks(start, int64(tr.TimeScale)), ticks(end, int64(tr.TimeScale))}, found
	}
	return [2]time.Duration{}, false
}

// videoTiming returns the decode time of the first video sample of a
// segment (its tfdt) and the span of the video samples.
func videoTiming(t *testing.T, init, seg []byte) (start, dur time.Duration) {
	t.Helper()
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(init)); err != nil {
		t.Fatal(err)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(seg); err != nil {
		t.Fatal(err)
	}
	for _, tr := range in.Tracks {
		if !tr.Codec.IsVideo() {
			continue
		}
		for _, p := range parts {
			for _, pt := range p.Tracks {
				if pt.ID == tr.ID {
					d, err := segmenter.MediaDuration(init, seg)
					if err != nil {
						t.Fatal(err)
					}
					return ticks(int64(pt.BaseTime), int64(tr.TimeScale)), d
				}
			}
		}
	}
	t.Fatal("no video track")
	return 0, 0
}

// videoDecodeSpan returns the decode time of a rendition segment's first
// video sample (track 1, its tfdt), the end of its last, and whether every
// sample lasts at least two ticks (a duration of one tick is where the
// layout had to squeeze a picture in).
func videoDecodeSpan(t *testing.T, seg []byte) (base, end int64, monotonic bool) {
	t.Helper()
	var parts fmp4.Parts
	if err := parts.Unmarshal(seg); err != nil {
		t.Fatal(err)
	}
	base, monotonic = -1, true
	for _, p := range parts {
		for _, pt := range p.Tracks {
			if pt.ID != 1 {
				continue
			}
			if base < 0 {
				base = int64(pt.BaseTime)
			}
			end = int64(pt.BaseTime)
			for _, smp := range pt.Samples {
				if smp.Duration < 2 {
					monotonic = false
				}
				end += int64(smp.Duration)
			}
		}
	}
	if base < 0 {
		t.Fatal("no video samples in the rendition")
	}
	return base, end, monotonic
}

// presentationSteps returns the time between one picture of a rendition
// segment and the next, in presentation order, in ticks.
func presentationSteps(t *testing.T, seg []byte) []int64 {
	t.Helper()
	var parts fmp4.Parts
	if err := parts.Unmarshal(seg); err != nil {
		t.Fatal(err)
	}
	var pts []int64
	for _, p := range parts {
		for _, pt := range p.Tracks {
			if pt.ID != 1 {
				continue
			}
			dts := int64(pt.BaseTime)
			for _, smp := range pt.Samples {
				pts = append(pts, dts+int64(smp.PTSOffset))
				dts += int64(smp.Duration)
			}
		}
	}
	slices.Sort(pts)
	var steps []int64
	for i := 1; i < len(pts); i++ {
		steps = append(steps, pts[i]-pts[i-1])
	}
	return steps
}

// firstVideoSampleSync reports whether the first video sample of a
// rendition segment is a sync sample.
func firstVideoSampleSync(t *testing.T, seg []byte) bool {
	t.Helper()
	var parts fmp4.Parts
	if err := parts.Unmarshal(seg); err != nil {
		t.Fatal(err)
	}
	for _, p := range parts {
		for _, pt := range p.Tracks {
			if pt.ID == 1 && len(pt.Samples) > 0 {
				return !pt.Samples[0].IsNonSyncSample
			}
		}
	}
	return false
}
