package transcoder

import (
	"errors"
	"fmt"
	"os"

	"github.com/asticode/go-astiav"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"golang.org/x/sys/unix"
)

// packet is a demuxed packet kept for decoding.
type packet struct {
	pkt   *astiav.Packet
	video bool
}

// track is a demuxed track of the segment: its stream, its timescale, and
// its span in that timescale: base is the decode time of its first sample
// (tfdt), end that of the end of its last.
type track struct {
	in        *astiav.Stream
	scale     int64
	base, end int64
}

// demuxer is the demux stage: it reads every packet of a segment, with the
// init segment in front, and owns the FFmpeg objects that takes (free).
type demuxer struct {
	file    *os.File
	fc      *astiav.FormatContext
	opened  bool
	packets []packet

	video track
	// audio is nil for a segment without audio samples.
	audio *track
	// srcFPS is the source's frame rate.
	srcFPS float64
}

// free frees what open allocated, in the reverse order; it is safe after
// an open that failed part way.
func (d *demuxer) free() {
	for _, k := range d.packets {
		k.pkt.Free()
	}
	d.packets = nil
	if d.fc != nil {
		if d.opened {
			d.fc.CloseInput()
		}
		d.fc.Free()
	}
	if d.file != nil {
		_ = d.file.Close()
	}
}

// open reads every packet of the segment data, demuxed from memory with
// the init segment in front.
//
// The bytes reach FFmpeg as an in-memory file (memfd) that its own file
// protocol opens, not through an astiav IOContext: go-astiav v0.16.0 never
// forgets an IOContext's callbacks (io_context.go registers them in a
// package map and Free does not remove them), so every segment read that
// way stayed reachable for ever, a segment's size of memory per segment
// (TestMemoryFlat).
func (d *demuxer) open(init, data []byte) error {
	var err error
	if d.file, err = memFile("segment", init, data); err != nil {
		return fmt.Errorf("demux: %w", err)
	}
	if d.fc = astiav.AllocFormatContext(); d.fc == nil {
		return errors.New("demux: alloc format context")
	}
	if err := d.fc.OpenInput(fmt.Sprintf("file:/proc/self/fd/%d", d.file.Fd()), nil, nil); err != nil {
		return fmt.Errorf("%w: open: %w", errUndecodable, err)
	}
	d.opened = true
	var vIn, aIn *astiav.Stream
	for _, s := range d.fc.Streams() {
		switch s.CodecParameters().MediaType() {
		case astiav.MediaTypeVideo:
			if vIn == nil {
				vIn = s
			}
		case astiav.MediaTypeAudio:
			if aIn == nil {
				aIn = s
			}
		}
	}
	if vIn == nil {
		return fmt.Errorf("%w: no video track", errUndecodable)
	}
	v := track{in: vIn}
	if v.scale, err = timescale(vIn); err != nil {
		return err
	}
	var a track
	if aIn != nil {
		a.in = aIn
		if a.scale, err = timescale(aIn); err != nil {
			return err
		}
	}
	vFirst, aFirst := true, true
	var firstDur int64
	for {
		pkt := astiav.AllocPacket()
		if err := d.fc.ReadFrame(pkt); err != nil {
			pkt.Free()
			if errors.Is(err, astiav.ErrEof) {
				break
			}
			return fmt.Errorf("%w: read: %w", errUndecodable, err)
		}
		switch {
		case pkt.StreamIndex() == vIn.Index():
			if vFirst {
				v.base, vFirst = pkt.Dts(), false
				firstDur = pkt.Duration()
			}
			v.end = max(v.end, pkt.Dts()+pkt.Duration())
			d.packets = append(d.packets, packet{pkt: pkt, video: true})
		case aIn != nil && pkt.StreamIndex() == aIn.Index():
			if aFirst {
				a.base, aFirst = pkt.Dts(), false
			}
			a.end = max(a.end, pkt.Dts()+pkt.Duration())
			d.packets = append(d.packets, packet{pkt: pkt})
		default:
			pkt.Free()
		}
	}
	if vFirst {
		return fmt.Errorf("%w: no video samples", errUndecodable)
	}
	// The span of each track as its fragments declare it, which is what
	// the segmenter measured; FFmpeg's packet durations can be short by
	// the last sample's.
	if spans, err := trackSpans(data); err == nil {
		if sp, ok := spans[vIn.ID()]; ok {
			v.base, v.end = sp.base, sp.end
		}
		if aIn != nil {
			if sp, ok := spans[aIn.ID()]; ok {
				a.base, a.end = sp.base, sp.end
			}
		}
	}
	d.video = v
	if aIn != nil && !aFirst {
		d.audio = &a
	}
	if firstDur > 0 {
		d.srcFPS = float64(v.scale) / float64(firstDur)
	}
	if r := vIn.AvgFrameRate(); r.Num() > 0 && r.Den() > 0 {
		d.srcFPS = r.Float64()
	}
	if d.srcFPS <= 0 || d.srcFPS > 240 {
		d.srcFPS = 25
	}
	return nil
}

// trackSpan is where a track of a segment starts and ends, in its timescale.
type trackSpan struct{ base, end int64 }

// trackSpans returns the span of each track of a fragmented MP4 segment, by
// track ID: the earliest decode time of its fragments (tfdt) and the latest
// end of their samples.
func trackSpans(seg []byte) (map[int]trackSpan, error) {
	var parts fmp4.Parts
	if err := parts.Unmarshal(seg); err != nil {
		return nil, err
	}
	out := map[int]trackSpan{}
	for _, part := range parts {
		for _, t := range part.Tracks {
			end := int64(t.BaseTime)
			for _, smp := range t.Samples {
				end += int64(smp.Duration)
			}
			sp, ok := out[t.ID]
			if !ok {
				sp = trackSpan{base: int64(t.BaseTime), end: end}
			}
			sp.base, sp.end = min(sp.base, int64(t.BaseTime)), max(sp.end, end)
			out[t.ID] = sp
		}
	}
	return out, nil
}

// memFile returns an in-memory file (memfd_create(2), sealed against
// writes) holding parts one after the other, read from the start. Its
// bytes are the kernel's, not the Go heap's.
func memFile(name string, parts ...[]byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	for _, b := range parts {
		if _, err := f.Write(b); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("write memfd: %w", err)
		}
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_WRITE|unix.F_SEAL_GROW|unix.F_SEAL_SHRINK|unix.F_SEAL_SEAL); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("seal memfd: %w", err)
	}
	return f, nil
}

// timescale returns the MP4 timescale of a stream: the denominator of its
// time base.
func timescale(s *astiav.Stream) (int64, error) {
	tb := s.TimeBase()
	if tb.Num() != 1 || tb.Den() <= 0 {
		return 0, fmt.Errorf("%w: time base %s is not 1/timescale", errUndecodable, tb)
	}
	return int64(tb.Den()), nil
}

// openDecoder opens a decoder of stream s.
func openDecoder(s *astiav.Stream, threads int, options map[string]string) (*astiav.CodecContext, error) {
	id := s.CodecParameters().CodecID()
	codec := astiav.FindDecoder(id)
	if codec == nil {
		return nil, fmt.Errorf("%w: no decoder for %s", errUndecodable, id)
	}
	cc := astiav.AllocCodecContext(codec)
	if cc == nil {
		return nil, fmt.Errorf("alloc %s decoder", id)
	}
	if err := s.CodecParameters().ToCodecContext(cc); err != nil {
		cc.Free()
		return nil, fmt.Errorf("%w: %s decoder parameters: %w", errUndecodable, id, err)
	}
	cc.SetTimeBase(s.TimeBase())
	cc.SetThreadCount(threads)
	var opts *astiav.Dictionary
	if len(options) > 0 {
		opts = astiav.NewDictionary()
		defer opts.Free()
		for k, v := range options {
			if err := opts.Set(k, v, 0); err != nil {
				cc.Free()
				return nil, fmt.Errorf("%s decoder option %s: %w", id, k, err)
			}
		}
	}
	if err := cc.Open(codec, opts); err != nil {
		cc.Free()
		return nil, fmt.Errorf("%w: open %s decoder: %w", errUndecodable, id, err)
	}
	return cc, nil
}
