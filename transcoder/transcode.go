package transcoder

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path"
	"sort"
	"strconv"
	"time"

	"github.com/asticode/go-astiav"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"golang.org/x/sys/unix"

	"github.com/nokstream/nokstream/internal/webvtt"
	"github.com/nokstream/nokstream/transcoder/detect"
)

// errUndecodable marks a segment whose media cannot be decoded: retrying
// cannot help.
var errUndecodable = errors.New("undecodable segment")

// Grid size of the pictures the detectors compare.
const gridW, gridH = 64, 36

// job is one raw segment to transcode.
type job struct {
	init, data []byte
	// start is the wall clock of the segment's first sample.
	start time.Time
	// sequence numbers the fragment (mfhd).
	sequence int64
	profile  Profile
	thumbs   Thumbnails
	// spriteName is how the WebVTT fragment refers to the sprite.
	spriteName string
	// analysisFPS is how many pictures a second the detectors look at.
	analysisFPS float64
	// threads per decoder and encoder; 0 lets FFmpeg choose.
	threads int
	det     *detect.Detector
}

// output is what one decoding pass of a segment produced.
type output struct {
	init    []byte // the rendition's init segment
	segment []byte // the rendition's media segment
	codecs  []string
	width   int
	height  int
	// frames is the number of pictures in the rendition.
	frames int
	sprite []byte
	tiles  int
	cols   int
	rows   int
	tileW  int
	tileH  int
	vtt    []byte
	// mediaStart is the segment's decode time on its stream's media
	// timeline (tfdt), and duration its length.
	mediaStart time.Duration
	duration   time.Duration
	srcWidth   int
	srcHeight  int
	// skipped counts the source pictures not decoded (skippable).
	skipped int
	// audioErr says why the rendition has no audio though the source has.
	audioErr error
	events   []detect.Event
}

// transcode decodes a raw segment once and makes from it the review
// rendition, the thumbnail sprite with its WebVTT fragment, and what the
// detectors find. Errors wrapping errUndecodable are the segment's fault.
func transcode(j job) (*output, error) {
	p := &pipeline{job: j}
	defer p.close()
	if err := p.demux(); err != nil {
		return nil, err
	}
	if err := p.run(); err != nil {
		return nil, err
	}
	return p.finish()
}

// packet is a demuxed packet kept for decoding.
type packet struct {
	pkt   *astiav.Packet
	video bool
}

// encoded is an encoded picture or audio frame.
type encoded struct {
	data []byte
	pts  int64
	dur  int64
	key  bool
}

// pipeline is the state of one transcode. close frees its FFmpeg objects in
// the reverse order of their creation.
type pipeline struct {
	job
	frees []func()

	fc      *astiav.FormatContext
	packets []packet
	vIn     *astiav.Stream
	aIn     *astiav.Stream
	vTB     int64 // video timescale
	aTB     int64 // audio timescale

	// Timing of the video track, in vTB units: base is the decode time of
	// the first sample (tfdt), end that of the end of the last, off the
	// presentation offset of the first picture.
	vBase, vEnd, off int64
	offSet           bool
	aBase, aEnd      int64
	srcFPS           float64
	// outFPS is the rendition's frame rate (renditionFPS).
	outFPS float64
	// h264 is set for an H.264 source; pktOff is the presentation offset
	// of its first packet, from which skippable tells the pictures the
	// rendition drops; skipped counts those not decoded.
	h264      bool
	pktOff    int64
	pktOffSet bool
	skipped   int

	vDec, aDec *astiav.CodecContext
	decFrame   *astiav.Frame
	decoded    int

	// Review rendition.
	outW, outH int
	sws        *astiav.SoftwareScaleContext
	swsSrc     [3]int // width, height, pixel format sws was made for
	encFrame   *astiav.Frame
	vEnc       *astiav.CodecContext
	encPkt     *astiav.Packet
	lastSlot   int64
	video      []encoded

	// Audio: copied when it is AAC, encoded otherwise.
	copyAudio bool
	audio     []encoded
	aEncode   *audioEncoder

	// Thumbnails.
	tiles     int
	tileW     int
	tileH     int
	cols      int
	rows      int
	nextTile  int
	tileSws   *astiav.SoftwareScaleContext
	tileFrame *astiav.Frame
	sprite    *astiav.Frame

	events []detect.Event
}

func (p *pipeline) onClose(f func()) { p.frees = append(p.frees, f) }

func (p *pipeline) close() {
	for i := len(p.frees) - 1; i >= 0; i-- {
		p.frees[i]()
	}
}

// demux reads every packet of the segment, demuxed from memory with the
// init segment in front.
//
// The bytes reach FFmpeg as an in-memory file (memfd) that its own file
// protocol opens, not through an astiav IOContext: go-astiav v0.16.0 never
// forgets an IOContext's callbacks (io_context.go registers them in a
// package map and Free does not remove them), so every segment read that
// way stayed reachable for ever, a segment's size of memory per segment
// (TestMemoryFlat).
func (p *pipeline) demux() error {
	in, err := memFile("segment", p.init, p.data)
	if err != nil {
		return fmt.Errorf("demux: %w", err)
	}
	p.onClose(func() { _ = in.Close() })
	p.fc = astiav.AllocFormatContext()
	if p.fc == nil {
		return errors.New("demux: alloc format context")
	}
	p.onClose(p.fc.Free)
	if err := p.fc.OpenInput(fmt.Sprintf("file:/proc/self/fd/%d", in.Fd()), nil, nil); err != nil {
		return fmt.Errorf("%w: open: %w", errUndecodable, err)
	}
	p.onClose(p.fc.CloseInput)
	for _, s := range p.fc.Streams() {
		switch s.CodecParameters().MediaType() {
		case astiav.MediaTypeVideo:
			if p.vIn == nil {
				p.vIn = s
			}
		case astiav.MediaTypeAudio:
			if p.aIn == nil {
				p.aIn = s
			}
		}
	}
	if p.vIn == nil {
		return fmt.Errorf("%w: no video track", errUndecodable)
	}
	var err2 error
	if p.vTB, err2 = timescale(p.vIn); err2 != nil {
		return err2
	}
	if p.aIn != nil {
		if p.aTB, err2 = timescale(p.aIn); err2 != nil {
			return err2
		}
	}
	p.onClose(func() {
		for _, k := range p.packets {
			k.pkt.Free()
		}
	})
	vFirst, aFirst := true, true
	var firstDur int64
	for {
		pkt := astiav.AllocPacket()
		if err := p.fc.ReadFrame(pkt); err != nil {
			pkt.Free()
			if errors.Is(err, astiav.ErrEof) {
				break
			}
			return fmt.Errorf("%w: read: %w", errUndecodable, err)
		}
		switch {
		case pkt.StreamIndex() == p.vIn.Index():
			if vFirst {
				p.vBase, vFirst = pkt.Dts(), false
				firstDur = pkt.Duration()
			}
			p.vEnd = max(p.vEnd, pkt.Dts()+pkt.Duration())
			p.packets = append(p.packets, packet{pkt: pkt, video: true})
		case p.aIn != nil && pkt.StreamIndex() == p.aIn.Index():
			if aFirst {
				p.aBase, aFirst = pkt.Dts(), false
			}
			p.aEnd = max(p.aEnd, pkt.Dts()+pkt.Duration())
			p.packets = append(p.packets, packet{pkt: pkt})
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
	if spans, err := trackSpans(p.data); err == nil {
		if sp, ok := spans[p.vIn.ID()]; ok {
			p.vBase, p.vEnd = sp.base, sp.end
		}
		if p.aIn != nil {
			if sp, ok := spans[p.aIn.ID()]; ok {
				p.aBase, p.aEnd = sp.base, sp.end
			}
		}
	}
	if aFirst {
		p.aIn = nil
	}
	if firstDur > 0 {
		p.srcFPS = float64(p.vTB) / float64(firstDur)
	}
	if r := p.vIn.AvgFrameRate(); r.Num() > 0 && r.Den() > 0 {
		p.srcFPS = r.Float64()
	}
	if p.srcFPS <= 0 || p.srcFPS > 240 {
		p.srcFPS = 25
	}
	p.outFPS = renditionFPS(p.srcFPS, p.profile.MaxFPS)
	return nil
}

// renditionFPS returns the frame rate of the rendition of a source at src
// frames a second: src, or, above max (0 for none), src divided by the
// smallest whole number that brings it to max or under, so that the
// rendition keeps every n-th picture and moves evenly (25 and 30 with max
// 15 give 12.5 and 15; 10 and 15 with max 5 give 5).
func renditionFPS(src, max float64) float64 {
	if max <= 0 || src <= max*1.01 {
		return src
	}
	return src / math.Ceil(src/max-0.01)
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

// run decodes every packet and hands the frames on.
func (p *pipeline) run() error {
	var err error
	if p.vDec, err = openDecoder(p.vIn, p.threads, p.decodeOptions()); err != nil {
		return err
	}
	p.onClose(p.vDec.Free)
	if p.aIn != nil {
		if p.aDec, err = openDecoder(p.aIn, 1, nil); err != nil {
			return err
		}
		p.onClose(p.aDec.Free)
		p.copyAudio = p.aIn.CodecParameters().CodecID() == astiav.CodecIDAac
		if !p.copyAudio {
			if p.aEncode, err = newAudioEncoder(p.aDec, p.aIn.TimeBase(), p.profile.AudioBitrate); err != nil {
				return err
			}
			p.onClose(p.aEncode.free)
		}
	}
	p.decFrame = astiav.AllocFrame()
	p.onClose(p.decFrame.Free)
	p.encPkt = astiav.AllocPacket()
	p.onClose(p.encPkt.Free)

	var decodeErrs int
	var lastErr error
	p.h264 = p.vIn.CodecParameters().CodecID() == astiav.CodecIDH264
	for _, k := range p.packets {
		if k.video {
			if !p.pktOffSet {
				// The first picture in decode order is the keyframe
				// shown first: the presentation offset of the segment.
				p.pktOff, p.pktOffSet = max(k.pkt.Pts()-p.vBase, 0), true
			}
			if p.skippable(k.pkt) {
				p.skipped++
				continue
			}
			if err := p.vDec.SendPacket(k.pkt); err != nil {
				decodeErrs++
				lastErr = err
				continue
			}
			if err := p.receiveVideo(); err != nil {
				return err
			}
			continue
		}
		if p.copyAudio {
			p.audio = append(p.audio, encoded{data: k.pkt.Data(), pts: k.pkt.Dts(), dur: k.pkt.Duration(), key: true})
		}
		if err := p.aDec.SendPacket(k.pkt); err != nil {
			continue // a bad audio frame: the detectors miss it
		}
		if err := p.receiveAudio(); err != nil {
			return err
		}
	}
	// Drain the decoders.
	if err := p.vDec.SendPacket(nil); err == nil {
		if err := p.receiveVideo(); err != nil {
			return err
		}
	}
	if p.aDec != nil {
		if err := p.aDec.SendPacket(nil); err == nil {
			if err := p.receiveAudio(); err != nil {
				return err
			}
		}
	}
	if p.decoded == 0 {
		if lastErr != nil {
			return fmt.Errorf("%w: no picture decoded (%d packets refused, last: %w)", errUndecodable, decodeErrs, lastErr)
		}
		return fmt.Errorf("%w: no picture decoded", errUndecodable)
	}
	// Drain the encoders.
	if err := p.encodeVideo(nil); err != nil {
		return err
	}
	if p.aEncode != nil {
		pkts, err := p.aEncode.flush()
		if err != nil {
			return err
		}
		p.audio = append(p.audio, pkts...)
	}
	return nil
}

// decodeOptions returns the options of the video decoder that spare work
// nothing needs: skip_loop_filter=all when the rendition is at most 2/3 of
// the source's width. H.264's deblocking filter is about a seventh of
// decoding, and what it smooths is gone once the picture is scaled down
// (the drift it leaves in later pictures of a GOP is above 50 dB PSNR at
// 360p from 1080p; the benchmark reports the rendition's SSIM). Pictures
// that nothing needs are not even sent to the decoder (skippable).
func (p *pipeline) decodeOptions() map[string]string {
	o := map[string]string{}
	cp := p.vIn.CodecParameters()
	if w, h := cp.Width(), cp.Height(); w > 0 && h > 0 {
		if ow, _ := fit(w, h, p.profile.Width, p.profile.Height); ow*3 <= w*2 {
			o["skip_loop_filter"] = "all"
		}
	}
	return o
}

// skippable reports whether a video packet need not be decoded at all: an
// H.264 picture that no other picture refers to (nal_ref_idc 0 in every
// slice, as the B-frames of most sources that have them), which the
// rendition drops because it keeps fewer pictures than the source has and
// this one is not the first of its 1/outFPS slot (videoFrame). Only such
// pictures are skipped, so the rendition keeps the same, evenly spaced,
// pictures as when every one is decoded.
func (p *pipeline) skippable(pkt *astiav.Packet) bool {
	if p.outFPS >= p.srcFPS || !p.h264 || pkt.Pts() == astiav.NoPtsValue {
		return false
	}
	var au h264.AVCC
	if err := au.Unmarshal(pkt.Data()); err != nil {
		return false
	}
	nslices := 0
	for _, n := range au {
		if len(n) == 0 {
			return false
		}
		if t := h264.NALUType(n[0] & 0x1f); t >= h264.NALUTypeNonIDR && t <= h264.NALUTypeIDR {
			if n[0]>>5&3 != 0 {
				return false
			}
			nslices++
		}
	}
	if nslices == 0 {
		return false
	}
	// The slot of this picture and of the one a source frame before it.
	rel := ticks(pkt.Pts()-p.pktOff-p.vBase, p.vTB).Seconds()
	shift := 0.5 * p.outFPS / p.srcFPS
	return math.Floor(rel*p.outFPS+shift) == math.Floor((rel-1/p.srcFPS)*p.outFPS+shift)
}

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

func (p *pipeline) receiveVideo() error {
	for {
		err := p.vDec.ReceiveFrame(p.decFrame)
		if errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof) {
			return nil
		}
		if err != nil {
			// A broken picture; the next keyframe may decode.
			continue
		}
		err = p.videoFrame(p.decFrame)
		p.decFrame.Unref()
		if err != nil {
			return err
		}
	}
}

func (p *pipeline) receiveAudio() error {
	for {
		err := p.aDec.ReceiveFrame(p.decFrame)
		if errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof) {
			return nil
		}
		if err != nil {
			continue
		}
		err = p.audioFrame(p.decFrame)
		p.decFrame.Unref()
		if err != nil {
			return err
		}
	}
}

// videoAt returns the wall clock at which a picture of the segment with
// presentation time pts is shown: the segment's first picture is shown at
// its start.
func (p *pipeline) videoAt(pts int64) time.Time {
	return p.start.Add(ticks(pts-p.off-p.vBase, p.vTB))
}

func ticks(t, scale int64) time.Duration {
	return time.Duration(t/scale)*time.Second + time.Duration(t%scale)*time.Second/time.Duration(scale)
}

// videoFrame handles one decoded picture: it is scaled once for the
// rendition, and the scaled picture feeds the encoder, the detectors and the
// thumbnails.
func (p *pipeline) videoFrame(f *astiav.Frame) error {
	pts := f.Pts()
	if pts == astiav.NoPtsValue {
		return nil
	}
	if !p.offSet {
		p.off = max(pts-p.vBase, 0)
		p.offSet = true
	}
	p.decoded++
	rel := ticks(pts-p.off-p.vBase, p.vTB)
	if p.outFPS < p.srcFPS {
		// Keep the first picture of each 1/outFPS slot: every n-th of a
		// steady source. The slots begin half a source picture early, so
		// that timestamps a little off (RTP clocks) keep the same ones.
		slot := int64(math.Floor(rel.Seconds()*p.outFPS + 0.5*p.outFPS/p.srcFPS))
		if p.encFrame != nil && slot <= p.lastSlot {
			return nil
		}
		p.lastSlot = slot
	}
	if err := p.scale(f); err != nil {
		return err
	}
	p.encFrame.SetPts(pts)
	at := p.videoAt(pts)

	if last := p.det.SampledAt(); last.IsZero() || at.Sub(last) >= time.Duration(float64(time.Second)/p.analysisFPS)-time.Millisecond {
		p.events = append(p.events, p.det.Video(at, lumaGrid(p.encFrame, gridW, gridH))...)
	}
	if p.nextTile < p.tiles && rel >= time.Duration(p.nextTile)*p.thumbs.Interval-time.Millisecond {
		if err := p.thumbnail(p.nextTile); err != nil {
			return err
		}
		p.nextTile++
	}
	return p.encodeVideo(p.encFrame)
}

// scale scales a decoded picture into p.encFrame, setting up the scaler, the
// encoder and the sprite on the first picture.
func (p *pipeline) scale(f *astiav.Frame) error {
	src := [3]int{f.Width(), f.Height(), int(f.PixelFormat())}
	if p.sws == nil || src != p.swsSrc {
		if p.sws != nil {
			p.sws.Free()
		}
		if p.vEnc == nil {
			p.outW, p.outH = fit(f.Width(), f.Height(), p.profile.Width, p.profile.Height)
		}
		// Area averaging to scale down by half or more (cameras): a
		// third of bicubic's cost from 1080p to 360p, as sharp. Less
		// than that (a screen to 1280 wide), area blurs text: bicubic.
		flag := astiav.SoftwareScaleContextFlagBicubic
		if p.outW*2 <= f.Width() && p.outH*2 <= f.Height() {
			flag = astiav.SoftwareScaleContextFlagArea
		}
		sws, err := astiav.CreateSoftwareScaleContext(f.Width(), f.Height(), f.PixelFormat(), p.outW, p.outH,
			astiav.PixelFormatYuv420P, astiav.NewSoftwareScaleContextFlags(flag))
		if err != nil {
			return fmt.Errorf("%w: scale %dx%d %s: %w", errUndecodable, f.Width(), f.Height(), f.PixelFormat(), err)
		}
		p.sws, p.swsSrc = sws, src
		if p.encFrame == nil {
			p.onClose(func() { p.sws.Free() })
			p.encFrame = astiav.AllocFrame()
			p.onClose(p.encFrame.Free)
		}
	}
	if p.vEnc == nil {
		if err := p.openVideoEncoder(); err != nil {
			return err
		}
		if err := p.openSprite(); err != nil {
			return err
		}
	}
	// The picture's buffer is reused unless the encoder still holds it
	// (libx264 copies what it is sent).
	if !writable(p.encFrame) {
		p.encFrame.Unref()
		p.encFrame.SetWidth(p.outW)
		p.encFrame.SetHeight(p.outH)
		p.encFrame.SetPixelFormat(astiav.PixelFormatYuv420P)
		if err := p.encFrame.AllocBuffer(0); err != nil {
			return fmt.Errorf("alloc picture: %w", err)
		}
	}
	if err := p.sws.ScaleFrame(f, p.encFrame); err != nil {
		return fmt.Errorf("scale picture: %w", err)
	}
	return nil
}

// fit returns the size of a w×h picture scaled to fit in maxW×maxH (0: no
// limit), keeping its aspect ratio, never enlarged, in even numbers.
func fit(w, h, maxW, maxH int) (int, int) {
	s := 1.0
	if maxW > 0 {
		s = math.Min(s, float64(maxW)/float64(w))
	}
	if maxH > 0 {
		s = math.Min(s, float64(maxH)/float64(h))
	}
	even := func(v float64) int { return max(2, int(math.Round(v/2))*2) }
	return even(float64(w) * s), even(float64(h) * s)
}

func (p *pipeline) openVideoEncoder() error {
	codec := astiav.FindEncoderByName("libx264")
	if codec == nil {
		return errors.New("no libx264 encoder in this FFmpeg")
	}
	cc := astiav.AllocCodecContext(codec)
	if cc == nil {
		return errors.New("alloc libx264 encoder")
	}
	p.vEnc = cc
	p.onClose(cc.Free)
	fps := p.outFPS
	cc.SetWidth(p.outW)
	cc.SetHeight(p.outH)
	cc.SetPixelFormat(astiav.PixelFormatYuv420P)
	cc.SetSampleAspectRatio(astiav.NewRational(1, 1))
	cc.SetTimeBase(p.vIn.TimeBase())
	cc.SetFramerate(astiav.NewRational(int(math.Round(fps*1000)), 1000))
	cc.SetGopSize(max(1, int(math.Round(p.profile.Keyint.Seconds()*fps))))
	cc.SetFlags(cc.Flags().Add(astiav.CodecContextFlagGlobalHeader))
	cc.SetThreadCount(p.threads)
	opts := astiav.NewDictionary()
	defer opts.Free()
	for k, v := range p.profile.x264Options() {
		if err := opts.Set(k, v, 0); err != nil {
			return fmt.Errorf("libx264 option %s: %w", k, err)
		}
	}
	if err := cc.Open(codec, opts); err != nil {
		return fmt.Errorf("open libx264 encoder %dx%d: %w", p.outW, p.outH, err)
	}
	return nil
}

// encodeVideo sends a picture (nil to drain) to the encoder and keeps what
// comes out.
func (p *pipeline) encodeVideo(f *astiav.Frame) error {
	if p.vEnc == nil {
		return nil
	}
	if err := p.vEnc.SendFrame(f); err != nil {
		return fmt.Errorf("encode picture: %w", err)
	}
	for {
		err := p.vEnc.ReceivePacket(p.encPkt)
		if errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("encode picture: %w", err)
		}
		avcc, err := annexBToAVCC(p.encPkt.Data())
		if err != nil {
			p.encPkt.Unref()
			return err
		}
		p.video = append(p.video, encoded{data: avcc, pts: p.encPkt.Pts(), key: p.encPkt.Flags().Has(astiav.PacketFlagKey)})
		p.encPkt.Unref()
	}
}

// annexBToAVCC turns an access unit of start-code-prefixed NAL units, as
// libx264 writes them, into the length-prefixed form of MP4 (ISO/IEC
// 14496-15). Parameter sets are in the init segment, so they are dropped.
func annexBToAVCC(b []byte) ([]byte, error) {
	var au h264.AnnexB
	if err := au.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("encoded picture: %w", err)
	}
	nalus := au[:0]
	for _, n := range au {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeAccessUnitDelimiter:
		default:
			nalus = append(nalus, n)
		}
	}
	return h264.AVCC(nalus).Marshal()
}

// audioFrame handles one decoded block of audio: its level feeds the
// detectors, and it is encoded when the source is not AAC.
func (p *pipeline) audioFrame(f *astiav.Frame) error {
	if pts := f.Pts(); pts != astiav.NoPtsValue && f.SampleRate() > 0 {
		if rms, ok := frameRMS(f); ok {
			at := p.start.Add(ticks(pts, p.aTB) - ticks(p.vBase, p.vTB))
			dur := time.Duration(f.NbSamples()) * time.Second / time.Duration(f.SampleRate())
			p.events = append(p.events, p.det.Audio(at, dur, rms)...)
		}
	}
	if p.aEncode != nil {
		pkts, err := p.aEncode.encode(f)
		if err != nil {
			return err
		}
		p.audio = append(p.audio, pkts...)
	}
	return nil
}

// finish muxes the rendition and encodes the sprite.
func (p *pipeline) finish() (*output, error) {
	if len(p.video) == 0 {
		return nil, fmt.Errorf("%w: no picture encoded", errUndecodable)
	}
	o := &output{
		width:      p.outW,
		height:     p.outH,
		frames:     len(p.video),
		mediaStart: ticks(p.vBase, p.vTB),
		duration:   ticks(p.vEnd-p.vBase, p.vTB),
		srcWidth:   p.vIn.CodecParameters().Width(),
		srcHeight:  p.vIn.CodecParameters().Height(),
		events:     p.events,
		skipped:    p.skipped,
	}
	sps, pps, err := parameterSets(p.vEnc.ExtraData())
	if err != nil {
		return nil, err
	}
	vCodec := &mp4.CodecH264{SPS: sps, PPS: pps}
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: uint32(p.vTB), Codec: vCodec}}}
	o.codecs = []string{codecString(vCodec)}
	part := fmp4.Part{SequenceNumber: uint32(p.sequence + 1), Tracks: []*fmp4.PartTrack{p.videoTrack()}}

	if p.aIn != nil && len(p.audio) > 0 {
		// Audio that cannot be muxed does not cost the expert the
		// picture.
		if at, aCodec, scale, err := p.audioTrack(); err != nil {
			o.audioErr = err
		} else {
			init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: 2, TimeScale: uint32(scale), Codec: aCodec})
			part.Tracks = append(part.Tracks, at)
			o.codecs = append(o.codecs, codecString(aCodec))
		}
	}
	var ib seekablebuffer.Buffer
	if err := init.Marshal(&ib); err != nil {
		return nil, fmt.Errorf("mux init: %w", err)
	}
	var sb seekablebuffer.Buffer
	size := 4096
	for _, t := range part.Tracks {
		for _, smp := range t.Samples {
			size += len(smp.Payload) + 16
		}
	}
	sb.Grow(size)
	if err := part.Marshal(&sb); err != nil {
		return nil, fmt.Errorf("mux segment: %w", err)
	}
	o.init, o.segment = ib.Bytes(), sb.Bytes()

	if p.sprite != nil {
		// A picture late or missing at the end: repeat the last tile.
		for ; p.nextTile < p.tiles && p.nextTile > 0; p.nextTile++ {
			if err := p.thumbnail(p.nextTile); err != nil {
				return nil, err
			}
		}
		jpg, err := encodeJPEG(p.sprite, p.thumbs.Quality)
		if err != nil {
			return nil, err
		}
		o.sprite, o.tiles, o.cols, o.rows, o.tileW, o.tileH = jpg, p.tiles, p.cols, p.rows, p.tileW, p.tileH
		o.vtt = p.thumbnailCues(o.mediaStart, o.duration)
	}
	return o, nil
}

// videoTrack lays out the encoded pictures so that the rendition covers
// exactly the raw segment's time span: the same decode time of the first
// sample (tfdt), the same end, and each picture presented when it was in
// the raw segment. The rendition has no B-frames, so its pictures are
// decoded in presentation order, each at its presentation time less one
// offset: the raw segment's first picture's presentation offset, or more
// where the last picture would otherwise be decoded at or after the
// segment's end and overlap the next segment (a source whose first picture
// has a smaller offset than the later ones, as ingest derives the decode
// times of an RTSP stream with B-frames: ffmpeg reading a review playlist
// whole saw decode times go back at every boundary).
func (p *pipeline) videoTrack() *fmp4.PartTrack {
	sort.SliceStable(p.video, func(a, b int) bool { return p.video[a].pts < p.video[b].pts })
	t := &fmp4.PartTrack{ID: 1, BaseTime: uint64(p.vBase)}
	off := p.off
	if n := len(p.video); n > 1 {
		// Room for the last picture to last a frame before the end.
		frame := max((p.video[n-1].pts-p.video[0].pts)/int64(n-1), 1)
		off = max(off, p.video[n-1].pts+frame-p.vEnd)
	}
	dts := make([]int64, len(p.video))
	for i, e := range p.video {
		switch {
		case i == 0:
			dts[i] = p.vBase
		default:
			// Never before the previous one; never after the picture's
			// presentation, as the previous is before the previous
			// picture's.
			dts[i] = max(e.pts-off, dts[i-1]+1)
		}
	}
	for i, e := range p.video {
		next := p.vEnd
		if i+1 < len(p.video) {
			next = dts[i+1]
		}
		t.Samples = append(t.Samples, &fmp4.Sample{
			Duration:        uint32(max(next-dts[i], 1)),
			PTSOffset:       int32(e.pts - dts[i]),
			IsNonSyncSample: !e.key,
			Payload:         e.data,
		})
	}
	return t
}

// audioTrack lays out the audio: copied AAC keeps the raw timing; encoded
// AAC starts at the raw first sample's time and is cut at the raw end.
func (p *pipeline) audioTrack() (*fmp4.PartTrack, mp4.Codec, int64, error) {
	if p.copyAudio {
		var asc mpeg4audio.AudioSpecificConfig
		if err := asc.Unmarshal(p.aIn.CodecParameters().ExtraData()); err != nil {
			return nil, nil, 0, fmt.Errorf("AAC configuration: %w", err)
		}
		t := &fmp4.PartTrack{ID: 2, BaseTime: uint64(p.aBase)}
		// Durations come from the decode times: FFmpeg does not give every
		// demuxed packet one, and a sample without a duration would stack
		// the audio on one instant.
		for i, e := range p.audio {
			next := p.aEnd
			if i+1 < len(p.audio) {
				next = p.audio[i+1].pts
			}
			d := next - e.pts
			if d <= 0 {
				d = max(e.dur, 1)
			}
			t.Samples = append(t.Samples, &fmp4.Sample{Duration: uint32(d), Payload: e.data})
		}
		return t, &mp4.CodecMPEG4Audio{Config: asc}, p.aTB, nil
	}
	var asc mpeg4audio.AudioSpecificConfig
	if err := asc.Unmarshal(p.aEncode.cc.ExtraData()); err != nil {
		return nil, nil, 0, fmt.Errorf("AAC encoder configuration: %w", err)
	}
	scale := int64(p.aEncode.cc.SampleRate())
	base := p.aBase * scale / p.aTB
	end := p.aEnd * scale / p.aTB
	t := &fmp4.PartTrack{ID: 2, BaseTime: uint64(base)}
	at := base
	for _, e := range p.audio {
		// The encoder's priming frame comes before the first sample.
		if e.pts < base || at >= end {
			continue
		}
		d := min(e.dur, end-at)
		t.Samples = append(t.Samples, &fmp4.Sample{Duration: uint32(d), Payload: e.data})
		at += d
	}
	return t, &mp4.CodecMPEG4Audio{Config: asc}, scale, nil
}

// parameterSets returns the SPS and PPS of libx264's global header.
func parameterSets(extra []byte) (sps, pps []byte, err error) {
	var au h264.AnnexB
	if err := au.Unmarshal(extra); err != nil {
		return nil, nil, fmt.Errorf("encoder parameter sets: %w", err)
	}
	for _, n := range au {
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypePPS:
			pps = n
		}
	}
	if sps == nil || pps == nil {
		return nil, nil, errors.New("encoder parameter sets: no SPS or PPS")
	}
	return sps, pps, nil
}

// codecString returns the RFC 6381 codec string of c, as HLS CODECS wants
// it.
func codecString(c mp4.Codec) string {
	switch c := c.(type) {
	case *mp4.CodecH264:
		return fmt.Sprintf("avc1.%02x%02x%02x", c.SPS[1], c.SPS[2], c.SPS[3])
	case *mp4.CodecMPEG4Audio:
		return "mp4a.40." + strconv.Itoa(int(c.Config.Type))
	}
	return ""
}

// thumbnailCues returns the WebVTT fragment of the sprite: one cue per tile,
// on the stream's media timeline, together covering the segment.
func (p *pipeline) thumbnailCues(start, dur time.Duration) []byte {
	cues := make([]webvtt.Cue, 0, p.tiles)
	end := start + dur
	for i := range p.tiles {
		s := start + time.Duration(i)*p.thumbs.Interval
		e := min(s+p.thumbs.Interval, end)
		if i == p.tiles-1 {
			e = end
		}
		x, y := (i%p.cols)*p.tileW, (i/p.cols)*p.tileH
		cues = append(cues, webvtt.Cue{Start: s, End: e,
			Text: fmt.Sprintf("%s#xywh=%d,%d,%d,%d", path.Base(p.spriteName), x, y, p.tileW, p.tileH)})
	}
	return webvtt.Marshal(cues)
}
