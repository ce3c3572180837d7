package rtsp

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the seed corpus of FuzzRTPRecorder in testdata/fuzz/FuzzRTPRecorder")

// Parameter sets of the fuzzed descriptions: H.264 1280x720 high profile,
// and an H.265 set from gortsplib's format tests.
var (
	fuzzSPS     = []byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x83, 0x19, 0x60}
	fuzzPPS     = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
	fuzzH265VPS = []byte{0x40, 0x1, 0xc, 0x1, 0xff, 0xff, 0x1, 0x60, 0x0, 0x0, 0x3, 0x0, 0x90, 0x0, 0x0, 0x3, 0x0, 0x0, 0x3, 0x0, 0x78, 0x99, 0x98, 0x9}
	fuzzH265SPS = []byte{0x42, 0x1, 0x1, 0x1, 0x60, 0x0, 0x0, 0x3, 0x0, 0x90, 0x0, 0x0, 0x3, 0x0, 0x0, 0x3, 0x0, 0x78, 0xa0, 0x3, 0xc0, 0x80,
		0x10, 0xe5, 0x96, 0x66, 0x69, 0x24, 0xca, 0xe0, 0x10, 0x0, 0x0, 0x3, 0x0, 0x10, 0x0, 0x0, 0x3, 0x1, 0xe0, 0x80}
	fuzzH265PPS = []byte{0x44, 0x1, 0xc1, 0x72, 0xb4, 0x62, 0x40}
)

// fuzzDescription is the description a fuzz input announces: variant 0 is
// H.264 with AAC (as cameras and ffmpeg publish), 1 is H.265 with Opus.
func fuzzDescription(variant byte) *description.Session {
	if variant%2 == 1 {
		return &description.Session{Medias: []*description.Media{
			{Type: description.MediaTypeVideo, Formats: []format.Format{&format.H265{PayloadTyp: 96, VPS: fuzzH265VPS, SPS: fuzzH265SPS, PPS: fuzzH265PPS}}},
			{Type: description.MediaTypeAudio, Formats: []format.Format{&format.Opus{PayloadTyp: 111, ChannelCount: 2}}},
		}}
	}
	conf := mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 2}
	return &description.Session{Medias: []*description.Media{
		{Type: description.MediaTypeVideo, Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: fuzzSPS, PPS: fuzzPPS}}},
		{Type: description.MediaTypeAudio, Formats: []format.Format{&format.MPEG4Audio{PayloadTyp: 97, Config: &conf,
			SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}}},
	}}
}

// fuzzSource stands for the RTSP session: it hands packets to the
// recorder's callbacks as gortsplib does — only packets of the format's
// payload type, timestamps decoded as gortsplib's decoder does (from the
// first packet whose PTS equals its DTS, then by the signed 32-bit step),
// without the wall clock that decoder adds between tracks.
type fuzzSource struct {
	cbs   map[*description.Media]gortsplib.OnPacketRTPFunc
	forms map[*description.Media]format.Format
	pts   map[*description.Media]*fuzzPTS
}

type fuzzPTS struct {
	prev    uint32
	overall int64
}

func (s *fuzzSource) OnPacketRTP(medi *description.Media, forma format.Format, cb gortsplib.OnPacketRTPFunc) {
	s.cbs[medi], s.forms[medi] = cb, forma
}

func (s *fuzzSource) PacketPTS2(medi *description.Media, pkt *rtp.Packet) (int64, bool) {
	d := s.pts[medi]
	if d == nil {
		if !s.forms[medi].PTSEqualsDTS(pkt) {
			return 0, false
		}
		s.pts[medi] = &fuzzPTS{prev: pkt.Timestamp}
		return 0, true
	}
	d.overall += int64(int32(pkt.Timestamp - d.prev))
	d.prev = pkt.Timestamp
	return d.overall, true
}

// memOutput keeps the recorder's segments in memory.
type memOutput struct{ segs []*memSegment }

type memSegment struct {
	h      segmenter.Header
	buf    bytes.Buffer
	closed bool
}

func (o *memOutput) OpenSegment(h segmenter.Header) (segmenter.SegmentWriter, error) {
	s := &memSegment{h: h}
	o.segs = append(o.segs, s)
	return s, nil
}

func (s *memSegment) WritePart(b []byte) error    { s.buf.Write(b); return nil }
func (s *memSegment) Close(_ time.Duration) error { s.closed = true; return nil }

// record feeds a fuzz input through the recorder of an RTSP session into a
// segmenter writing to memory. The input is a variant byte, then packets,
// each a media byte (0 video, 1 audio), a 16-bit length and an RTP packet;
// a packet that does not parse is skipped, as gortsplib drops it. It fails
// t when what is written is not well-formed fMP4.
func record(t *testing.T, data []byte) *memOutput {
	t.Helper()
	if len(data) == 0 {
		return &memOutput{}
	}
	desc := fuzzDescription(data[0])
	data = data[1:]
	out := &memOutput{}
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := segmenter.Config{SegmentDuration: time.Second, PartDuration: 200 * time.Millisecond, MaxBitrate: -1}
	r, err := newRecorder("site1/cam1", "rtsp", desc, cfg, out, log, m, func() time.Time { return time.Unix(1_700_000_000, 0) })
	if err != nil {
		t.Fatalf("recorder: %v", err)
	}
	src := &fuzzSource{cbs: map[*description.Media]gortsplib.OnPacketRTPFunc{}, forms: map[*description.Media]format.Format{},
		pts: map[*description.Media]*fuzzPTS{}}
	// The recorder ends the session (in a goroutine) only when the output
	// fails, which the write error count below tells.
	r.attach(src, nil, func() {})
	for len(data) >= 3 {
		medi := desc.Medias[int(data[0])%len(desc.Medias)]
		n := min(int(binary.BigEndian.Uint16(data[1:3])), len(data)-3)
		b := data[3 : 3+n]
		data = data[3+n:]
		var pkt rtp.Packet
		if pkt.Unmarshal(b) != nil {
			continue
		}
		pkt.PayloadType = src.forms[medi].PayloadType()
		src.cbs[medi](&pkt)
	}
	if !r.close() {
		t.Fatalf("the recorder was closed before its session ended")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				if mf.GetName() == "nokstream_ingest_media_errors_total" && l.GetName() == "kind" && l.GetValue() == "write" && mt.GetCounter().GetValue() != 0 {
					t.Fatalf("%v write errors from an output that never fails", mt.GetCounter().GetValue())
				}
			}
		}
	}
	for i, s := range out.segs {
		if !s.closed {
			t.Fatalf("segment %d not closed", i)
		}
		var init fmp4.Init
		if err := init.Unmarshal(bytes.NewReader(s.h.Init)); err != nil {
			t.Fatalf("segment %d: init segment does not parse: %v", i, err)
		}
		ids := map[int]bool{}
		for _, tr := range init.Tracks {
			ids[tr.ID] = true
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(s.buf.Bytes()); err != nil {
			t.Fatalf("segment %d does not parse: %v", i, err)
		}
		for _, p := range parts {
			for _, pt := range p.Tracks {
				if !ids[pt.ID] {
					t.Fatalf("segment %d has a fragment of track %d, not in its init segment", i, pt.ID)
				}
			}
		}
	}
	return out
}

// FuzzRTPRecorder feeds RTP packets through ingest's depacketisers and
// recorder into a segmenter writing to memory: whatever a publisher sends,
// nothing panics, the output is never blamed, and every segment written is
// well-formed fMP4 (mediacommon parses its init segment and fragments, and
// each fragment's tracks are in the init segment).
func FuzzRTPRecorder(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		record(t, data)
	})
}

// seedCorpus is the seed corpus of FuzzRTPRecorder.
func seedCorpus(t *testing.T) map[string][]byte {
	clip, err := testenv.ReadClip(testenv.EncodeClip(t, t.TempDir(), testenv.ClipSpec{Size: "64x64", FPS: 10, Seconds: 1, Audio: true}))
	if err != nil {
		t.Fatal(err)
	}
	// The clip as ffmpeg would publish it, with its own parameter sets in
	// band (the description carries the seed's).
	desc := fuzzDescription(0)
	venc, err := desc.Medias[0].Formats[0].(*format.H264).CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	aenc, err := desc.Medias[1].Formats[0].(*format.MPEG4Audio).CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	type packet struct {
		media byte
		pkt   *rtp.Packet
	}
	var clipPkts []packet
	first := true
	for _, fr := range clip.Frames {
		if fr.Video {
			au := fr.AU
			if first {
				au, first = append([][]byte{clip.SPS, clip.PPS}, au...), false
			}
			pkts, err := venc.Encode(au)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pkts {
				p.Timestamp = uint32(fr.PTS * 90000 / time.Second)
				clipPkts = append(clipPkts, packet{0, p})
			}
			continue
		}
		pkts, err := aenc.Encode(fr.AU)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pkts {
			p.Timestamp = uint32(fr.PTS * 48000 / time.Second)
			clipPkts = append(clipPkts, packet{1, p})
		}
	}
	join := func(variant byte, pkts []packet, edit func(i int, b []byte) []byte) []byte {
		out := []byte{variant}
		for i, p := range pkts {
			b, err := p.pkt.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if edit != nil {
				b = edit(i, b)
			}
			out = append(out, p.media, 0, 0)
			binary.BigEndian.PutUint16(out[len(out)-2:], uint16(len(b)))
			out = append(out, b...)
		}
		return out
	}
	// H.265 and Opus: parameter sets and a made-up IDR slice and Opus
	// frames, 20 ms apart.
	hdesc := fuzzDescription(1)
	henc, err := hdesc.Medias[0].Formats[0].(*format.H265).CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	oenc, err := hdesc.Medias[1].Formats[0].(*format.Opus).CreateEncoder()
	if err != nil {
		t.Fatal(err)
	}
	var hevc []packet
	for i := range 60 {
		if i%5 == 0 {
			au := [][]byte{{0x02, 0x01, 0xd0, byte(i)}}
			if i%25 == 0 {
				au = [][]byte{fuzzH265VPS, fuzzH265SPS, fuzzH265PPS, append([]byte{0x26, 0x01, 0xaf}, bytes.Repeat([]byte{byte(i)}, 1500)...)}
			}
			pkts, err := henc.Encode(au)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pkts {
				p.Timestamp = uint32(i * 20 * 90)
				hevc = append(hevc, packet{0, p})
			}
		}
		p, err := oenc.Encode([]byte{0xfc, 0xff, 0xfe})
		if err != nil {
			t.Fatal(err)
		}
		p.Timestamp = uint32(i * 960)
		hevc = append(hevc, packet{1, p})
	}
	reversed := make([]packet, len(clipPkts))
	for i, p := range clipPkts {
		reversed[len(clipPkts)-1-i] = p
	}
	return map[string][]byte{
		"h264-aac-clip":                   join(0, clipPkts, nil),
		"h265-opus":                       join(1, hevc, nil),
		"h264-aac-clip-packets-cut-short": join(0, clipPkts, func(_ int, b []byte) []byte { return b[:len(b)*2/3] }),
		"h264-aac-clip-in-reverse":        join(0, reversed, nil),
		"h264-aac-clip-every-7th-dropped": join(0, clipPkts, func(i int, b []byte) []byte {
			if i%7 == 3 {
				return nil
			}
			return b
		}),
		"h264-aac-clip-payload-flipped": join(0, clipPkts, func(i int, b []byte) []byte {
			if i%5 == 0 && len(b) > 14 {
				b[13] ^= 0xff
			}
			return b
		}),
		"not-rtp": append([]byte{0, 0, 0, 12}, "RTSP/1.0 200"...),
		"empty":   {},
	}
}

// TestRTPRecorderSeeds: the real seeds of FuzzRTPRecorder (a clip published
// as ffmpeg does, and H.265 with Opus) are recorded whole, with both tracks,
// so that the fuzz target drives packets all the way into segments. -update
// rewrites the seed corpus in testdata/fuzz/FuzzRTPRecorder.
func TestRTPRecorderSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRTPRecorder")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range seedCorpus(t) {
			if err := os.WriteFile(filepath.Join(dir, name), fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		seed string
		segs int // the 1 s clip has one keyframe, the H.265 seed one every 0.5 s
		want time.Duration
	}{{"h264-aac-clip", 1, 750 * time.Millisecond}, {"h265-opus", 2, 1100 * time.Millisecond}} {
		t.Run(c.seed, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, c.seed))
			if err != nil {
				t.Fatalf("%v (go test ./ingest/rtsp -run TestRTPRecorderSeeds -update writes it)", err)
			}
			lines := strings.SplitN(string(raw), "\n", 3)
			b, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
			if err != nil {
				t.Fatalf("seed %s: %v", c.seed, err)
			}
			out := record(t, []byte(b))
			var total time.Duration
			for i, s := range out.segs {
				var init fmp4.Init
				if err := init.Unmarshal(bytes.NewReader(s.h.Init)); err != nil || len(init.Tracks) != 2 {
					t.Errorf("segment %d: init with %d tracks (%v), want 2", i, len(init.Tracks), err)
				}
				d, err := segmenter.MediaDuration(s.h.Init, s.buf.Bytes())
				if err != nil {
					t.Fatalf("segment %d: %v", i, err)
				}
				total += d
			}
			if len(out.segs) < c.segs || total < c.want {
				t.Errorf("%d segments of %v in all, want at least %d of %v", len(out.segs), total, c.segs, c.want)
			}
		})
	}
}
