package transcoder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/oklog/ulid/v2"

	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/chain"
	"github.com/nokstream/nokstream/internal/testenv"
)

// clipSpec describes a synthetic clip made with ffmpeg's lavfi sources.
type clipSpec struct {
	video    string  // lavfi video graph, e.g. "testsrc2=size=1280x720:rate=25"
	audio    string  // lavfi audio graph, "" for none
	seconds  float64 // length
	bitrate  string  // video bitrate, "" for CRF
	gop      int     // keyframe interval in frames (default 2 s)
	bframes  int
	audioEnc string // "aac" (default) or "opus"
	codec    string // "h264" (default), "vp9" or "av1"
	preset   string // libx264's, "veryfast" by default
}

// ffmpegFMP4 encodes spec with the ffmpeg program into a fragmented MP4 with
// one fragment per keyframe, H.264 at 90 kHz as ingest's RTSP tracks are.
func ffmpegFMP4(t testing.TB, spec clipSpec) []byte {
	t.Helper()
	gop := spec.gop
	if gop == 0 {
		gop = 50
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", spec.video}
	if spec.audio != "" {
		args = append(args, "-f", "lavfi", "-i", spec.audio)
	}
	args = append(args, "-t", strconv.FormatFloat(spec.seconds, 'f', -1, 64))
	switch spec.codec {
	case "vp9":
		args = append(args, "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", strconv.Itoa(gop))
	case "av1":
		args = append(args, "-c:v", "libsvtav1", "-preset", "12", "-g", strconv.Itoa(gop))
	default:
		preset := spec.preset
		if preset == "" {
			preset = "veryfast"
		}
		args = append(args, "-c:v", "libx264", "-preset", preset, "-profile:v", "main", "-bf", strconv.Itoa(spec.bframes),
			"-g", strconv.Itoa(gop), "-keyint_min", strconv.Itoa(gop), "-sc_threshold", "0")
	}
	args = append(args, "-pix_fmt", "yuv420p", "-video_track_timescale", "90000")
	if spec.bitrate != "" {
		args = append(args, "-b:v", spec.bitrate, "-maxrate", spec.bitrate, "-bufsize", spec.bitrate)
	}
	if spec.audio != "" {
		switch spec.audioEnc {
		case "opus":
			args = append(args, "-c:a", "libopus", "-b:a", "64k")
		default:
			args = append(args, "-c:a", "aac", "-b:a", "64k")
		}
	}
	args = append(args, "-f", "mp4", "-movflags", "frag_keyframe+empty_moov+default_base_moof+negative_cts_offsets", "pipe:1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Tool(t, "ffmpeg"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, stderr.String())
	}
	return out
}

// splitFMP4 splits a fragmented MP4 into its init segment (ftyp+moov) and
// the fragments after it.
func splitFMP4(t testing.TB, b []byte) (init, frags []byte) {
	t.Helper()
	off := 0
	for off+8 <= len(b) {
		size := int(binary.BigEndian.Uint32(b[off:]))
		typ := string(b[off+4 : off+8])
		if size < 8 || off+size > len(b) {
			t.Fatalf("fmp4: bad box %q of size %d at %d", typ, size, off)
		}
		off += size
		if typ == "moov" {
			return b[:off], b[off:]
		}
	}
	t.Fatalf("fmp4: no moov")
	return nil, nil
}

// rawSegment is one segment cut the way ingest cuts it, and its event.
type rawSegment struct {
	event *events.SegmentClosed
	init  []byte
	data  []byte
}

type memOutput struct {
	segs []*memSegment
}

type memSegment struct {
	h    segmenter.Header
	buf  bytes.Buffer
	dur  time.Duration
	done bool
}

func (o *memOutput) OpenSegment(h segmenter.Header) (segmenter.SegmentWriter, error) {
	s := &memSegment{h: h}
	o.segs = append(o.segs, s)
	return s, nil
}

func (s *memSegment) WritePart(b []byte) error { s.buf.Write(b); return nil }
func (s *memSegment) Close(d time.Duration) error {
	s.dur, s.done = d, true
	return nil
}

// cutClip runs ingest's segmenter over a fragmented MP4, as if its samples
// had arrived over RTSP, and returns the segments with their events for
// stream site1/<device>, whose first sample is at wall clock start.
func cutClip(t testing.TB, clip []byte, device, source string, segDur time.Duration, start time.Time) []rawSegment {
	t.Helper()
	initBytes, frags := splitFMP4(t, clip)
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(initBytes)); err != nil {
		t.Fatalf("parse init: %v", err)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(frags); err != nil {
		t.Fatalf("parse fragments: %v", err)
	}
	tracks := make([]segmenter.Track, len(in.Tracks))
	index := map[int]int{}
	for i, tr := range in.Tracks {
		tracks[i] = segmenter.Track{Codec: tr.Codec, TimeScale: tr.TimeScale}
		index[tr.ID] = i
	}
	type smp struct {
		track int
		dts   int64
		at    float64
		s     *fmp4.Sample
		first bool // of its fragment
	}
	var all []smp
	for _, p := range parts {
		for _, pt := range p.Tracks {
			i := index[pt.ID]
			dts := int64(pt.BaseTime)
			for j, s := range pt.Samples {
				all = append(all, smp{track: i, dts: dts, at: float64(dts) / float64(tracks[i].TimeScale), s: s, first: j == 0})
				dts += int64(s.Duration)
			}
		}
	}
	sort.SliceStable(all, func(a, b int) bool { return all[a].at < all[b].at })
	cfg := segmenter.DefaultConfig()
	cfg.SegmentDuration = segDur
	out := &memOutput{}
	sg, err := segmenter.New(cfg, tracks, out, func() time.Time { return start })
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range all {
		// ffmpeg flags sync samples with tfhd/trun defaults, which
		// mediacommon does not read: look at the NAL units instead.
		// Each fragment starts on a keyframe (frag_keyframe).
		sync := true
		if c := tracks[s.track].Codec; c.IsVideo() {
			sync = s.first
			if _, ok := c.(*mp4.CodecH264); ok {
				var au h264.AVCC
				if err := au.Unmarshal(s.s.Payload); err != nil {
					t.Fatalf("sample: %v", err)
				}
				sync = h264.IsRandomAccess(au)
			}
		}
		if err := sg.WriteSample(s.track, s.dts, s.s.PTSOffset, sync, s.s.Payload); err != nil {
			t.Fatalf("segmenter: %v", err)
		}
	}
	if err := sg.Close(); err != nil {
		t.Fatal(err)
	}
	var segs []rawSegment
	cv := chain.Zero
	for i, s := range out.segs {
		data := s.buf.Bytes()
		sum := sha256.Sum256(data)
		isum := sha256.Sum256(s.h.Init)
		ev := &events.SegmentClosed{
			SegmentID:     ulid.Make().String(),
			StreamID:      "site1/" + device,
			Source:        source,
			Site:          "site1",
			Device:        device,
			Sequence:      int64(i),
			Start:         s.h.Start,
			Duration:      s.dur.Seconds(),
			Codecs:        s.h.Codecs,
			Bytes:         int64(len(data)),
			SHA256:        hex.EncodeToString(sum[:]),
			PrevChain:     cv,
			InitSHA256:    hex.EncodeToString(isum[:]),
			InitBytes:     int64(len(s.h.Init)),
			IngestNode:    "test",
			Discontinuity: s.h.Discontinuity,
		}
		ev.Chain, _ = chain.Next(cv, ev.SHA256)
		cv = ev.Chain
		ev.ObjectKey = fmt.Sprintf("raw/%s/%s/%s/%010d-%s.m4s", ev.Site, ev.Device, ev.Start.UTC().Format("2006-01-02"), i, ev.SegmentID)
		ev.InitKey = fmt.Sprintf("raw/%s/%s/init/%s.mp4", ev.Site, ev.Device, ev.InitSHA256)
		segs = append(segs, rawSegment{event: ev, init: s.h.Init, data: data})
	}
	return segs
}

// store puts the segments and their init segments into a blob store.
func storeSegments(t testing.TB, st blob.Store, segs []rawSegment) {
	t.Helper()
	for _, s := range segs {
		for _, o := range []struct {
			key string
			b   []byte
		}{{s.event.InitKey, s.init}, {s.event.ObjectKey, s.data}} {
			if err := st.Put(context.Background(), o.key, bytes.NewReader(o.b), int64(len(o.b))); err != nil {
				t.Fatal(err)
			}
		}
	}
}
