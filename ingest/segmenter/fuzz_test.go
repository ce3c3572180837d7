package segmenter_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/internal/testenv"
)

// Two valid H.264 SPS (1280x720 and 640x360 high profile) and a PPS.
var (
	sps720 = []byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03,
		0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0x20, 0xf1, 0x83, 0x19, 0x60}
	sps360 = []byte{0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03,
		0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0f, 0x16, 0x2d, 0x96}
	pps = []byte{0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0}
)

// fuzzOutput keeps segments in memory and checks what the segmenter gives
// it: every segment opens with an init segment and its bytes are whole
// fragments.
type fuzzOutput struct {
	t     *testing.T
	segs  []*fuzzSegment
	inits map[string]bool
}

type fuzzSegment struct {
	h      segmenter.Header
	buf    bytes.Buffer
	closed bool
}

func (o *fuzzOutput) OpenSegment(h segmenter.Header) (segmenter.SegmentWriter, error) {
	if len(h.Init) == 0 {
		o.t.Fatalf("segment opened without an init segment")
	}
	o.inits[string(h.Init)] = true
	s := &fuzzSegment{h: h}
	o.segs = append(o.segs, s)
	return s, nil
}

func (s *fuzzSegment) WritePart(b []byte) error { s.buf.Write(b); return nil }
func (s *fuzzSegment) Close(time.Duration) error {
	s.closed = true
	return nil
}

// feed interprets data as a publisher's access units — each op is a kind
// byte, a signed timestamp step and a payload — and writes them into H.264
// and AAC writers: random NAL units, IDRs with changing parameter sets,
// timestamps that jump back or far ahead, garbage audio.
func feed(t *testing.T, data []byte) *fuzzOutput {
	out := &fuzzOutput{t: t, inits: map[string]bool{}}
	seg, err := segmenter.New(segmenter.Config{SegmentDuration: time.Second, PartDuration: 200 * time.Millisecond},
		[]segmenter.Track{
			{Codec: h264Codec(sps720), TimeScale: 90000},
			{Codec: aacCodec(), TimeScale: 48000},
		}, out, func() time.Time { return time.Unix(1_700_000_000, 0) })
	if err != nil {
		t.Fatal(err)
	}
	conf := aacCodec().Config
	v := segmenter.NewH264(seg, 0, sps720, pps)
	a := segmenter.NewAAC(seg, 1, &conf)
	var vpts, apts int64
	for len(data) >= 5 {
		kind, step, n := data[0], int64(int16(binary.BigEndian.Uint16(data[1:3]))), int(binary.BigEndian.Uint16(data[3:5]))
		data = data[5:]
		n = min(n, len(data))
		payload := data[:n]
		data = data[n:]
		var err error
		switch kind % 8 {
		case 0: // IDR
			vpts += step * 90
			err = v.Write(vpts, [][]byte{append([]byte{0x65}, payload...)})
		case 1: // non-IDR picture
			vpts += step * 90
			err = v.Write(vpts, [][]byte{append([]byte{0x41}, payload...)})
		case 2: // parameter sets in band, maybe another resolution
			vpts += step * 90
			s := sps720
			if kind&0x80 != 0 {
				s = sps360
			}
			err = v.Write(vpts, [][]byte{s, pps, append([]byte{0x65}, payload...)})
		case 3: // AAC
			apts += step * 48
			err = a.Write(apts, [][]byte{payload})
		case 4: // whatever NAL units the payload holds
			vpts += step * 90
			var au [][]byte
			for len(payload) > 0 {
				l := min(int(payload[0]%16)+1, len(payload))
				au = append(au, payload[:l])
				payload = payload[l:]
			}
			err = v.Write(vpts, au)
		case 5: // a broken SPS
			vpts += step * 90
			err = v.Write(vpts, [][]byte{append([]byte{0x67}, payload...), pps, {0x65, 0x88}})
		case 7: // NAL units, each after a length byte (real slices from clipOps)
			vpts += step * 90
			var au [][]byte
			for len(payload) > 0 {
				l := min(int(payload[0]), len(payload)-1)
				au = append(au, payload[1:1+l])
				payload = payload[1+l:]
			}
			err = v.Write(vpts, au)
		}
		var oerr *segmenter.OutputError
		if errors.As(err, &oerr) {
			t.Fatalf("output error from an output that never fails: %v", err)
		}
	}
	if err := seg.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for i, s := range out.segs {
		if !s.closed {
			t.Fatalf("segment %d not closed", i)
		}
		if s.buf.Len() == 0 {
			continue
		}
		var parts fmp4.Parts
		if err := parts.Unmarshal(s.buf.Bytes()); err != nil {
			t.Fatalf("segment %d does not parse: %v", i, err)
		}
		if _, err := segmenter.MediaDuration(s.h.Init, s.buf.Bytes()); err != nil && !bytes.Contains(s.buf.Bytes(), []byte("mdat")) {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	return out
}

// op encodes one feed op.
func op(kind byte, stepMS int16, payload ...byte) []byte {
	b := []byte{kind, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(b[1:3], uint16(stepMS))
	binary.BigEndian.PutUint16(b[3:5], uint16(len(payload)))
	return append(b, payload...)
}

// clipOps turns the video of a real clip into feed ops (kind 4: the NAL
// units as they are, one byte of length each, so the ops carry real slices).
func clipOps(t testing.TB, size string) []byte {
	t.Helper()
	path := testenv.EncodeClip(t, t.TempDir(), testenv.ClipSpec{Size: size, FPS: 25, Seconds: 1})
	c, err := testenv.ReadClip(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	var prev time.Duration
	first := true
	for _, f := range c.Frames {
		if !f.Video {
			continue
		}
		var payload []byte
		au := f.AU
		if first {
			au = append([][]byte{c.SPS, c.PPS}, au...)
			first = false
		}
		for _, n := range au {
			if len(n) > 255 {
				n = n[:255]
			}
			payload = append(append(payload, byte(len(n))), n...)
		}
		step := int16((f.PTS - prev) / time.Millisecond)
		if len(out) == 0 {
			step = 1000 // after whatever came before
		}
		out = append(out, op(7, step, payload...))
		prev = f.PTS
	}
	return seq(out...)
}

func seq(ops ...[]byte) []byte { return bytes.Join(ops, nil) }

// FuzzSegmenter feeds random access units and timestamps into the H.264
// and AAC writers of a segmenter: whatever a publisher sends, it never
// panics, and what it writes is whole fragments behind an init segment.
func FuzzSegmenter(f *testing.F) {
	f.Add(seq(op(0, 0, 1, 2, 3), op(3, 0, 9, 9), op(1, 40, 4), op(3, 21, 9), op(1, 40, 5), op(0, 1000, 6), op(1, 40, 7)))
	f.Add(seq(op(0, 0, 1), op(1, 40, 2), op(1, -400, 3), op(0, 40, 4), op(3, -5, 1), op(3, 30000, 1), op(0, 30000, 5)))
	f.Add(seq(op(2, 0, 1), op(1, 40, 2), op(0x82, 1200, 3), op(1, 40, 4), op(2, 1200, 5), op(5, 40, 0xff, 0xff)))
	f.Add(seq(op(4, 0, 0x65, 1, 0x41, 2), op(4, 40, 0x09, 0x10), op(4, 40), op(0, 0)))
	f.Add(seq(clipOps(f, "64x64"), op(3, 0, 1, 2), clipOps(f, "96x64")))
	f.Fuzz(func(t *testing.T, data []byte) {
		feed(t, data)
	})
}

// TestCodecChangeStartsNewInit: new parameter sets mid-stream close the
// segment and start the next one with a new init segment, marked as a
// discontinuity; timestamps that go back are refused without disturbing
// what follows.
func TestCodecChangeStartsNewInit(t *testing.T) {
	data := seq(clipOps(t, "64x64"), op(1, -200, 9), clipOps(t, "96x64"), clipOps(t, "96x64"))
	out := feed(t, data)
	if len(out.inits) != 2 {
		t.Errorf("%d init segments, want 2 (before and after the new SPS)", len(out.inits))
	}
	var disc []bool
	for _, s := range out.segs {
		disc = append(disc, s.h.Discontinuity)
	}
	if len(out.segs) < 3 || !disc[0] {
		t.Fatalf("segments %v, want at least 3, the first a discontinuity", disc)
	}
	changed := false
	for i := 1; i < len(out.segs); i++ {
		if !bytes.Equal(out.segs[i].h.Init, out.segs[i-1].h.Init) {
			changed = true
			if !out.segs[i].h.Discontinuity {
				t.Errorf("segment %d has a new init but is not a discontinuity", i)
			}
		}
	}
	if !changed {
		t.Errorf("no segment starts with the new init")
	}
	// A sample whose timestamp goes back is refused, and the next one taken.
	seg, _ := segmenter.New(segmenter.DefaultConfig(), []segmenter.Track{{Codec: h264Codec(sps720), TimeScale: 90000},
		{Codec: aacCodec(), TimeScale: 48000}}, &fuzzOutput{t: t, inits: map[string]bool{}}, time.Now)
	conf := aacCodec().Config
	a := segmenter.NewAAC(seg, 1, &conf)
	for _, c := range []struct {
		pts  int64
		want error
	}{{48000, nil}, {49024, nil}, {1024, segmenter.ErrTimestampBack}, {50048, nil}} {
		if err := a.Write(c.pts, [][]byte{{1, 2}}); !errors.Is(err, c.want) {
			t.Errorf("aac at %d: err %v, want %v", c.pts, err, c.want)
		}
	}
	v := segmenter.NewH264(seg, 0, sps720, pps)
	if err := v.Write(100800, [][]byte{{0x67, 0xff}, pps, {0x65, 1}}); !errors.Is(err, segmenter.ErrCodec) {
		t.Errorf("broken SPS: err %v, want ErrCodec", err)
	}
}

func h264Codec(sps []byte) *mp4.CodecH264 { return &mp4.CodecH264{SPS: sps, PPS: pps} }

func aacCodec() *mp4.CodecMPEG4Audio {
	return &mp4.CodecMPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 2}}
}
