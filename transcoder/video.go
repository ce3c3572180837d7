package transcoder

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/asticode/go-astiav"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
)

// videoStage is the video stage: it decodes the source's pictures, keeps
// those of the rendition's frame rate, scales each kept one once (the
// scaled picture also feeds the detectors and the thumbnails) and encodes
// it with libx264. It owns its FFmpeg objects (free).
type videoStage struct {
	tr      track
	profile Profile
	threads int
	srcFPS  float64
	// outFPS is the rendition's frame rate (renditionFPS).
	outFPS float64

	// off is the presentation offset of the first picture, in tr.scale
	// units.
	off    int64
	offSet bool
	// h264 is set for an H.264 source; pktOff is the presentation offset
	// of its first packet, from which skippable tells the pictures the
	// rendition drops; skipped counts those not decoded.
	h264      bool
	pktOff    int64
	pktOffSet bool
	skipped   int

	dec      *astiav.CodecContext
	frame    *astiav.Frame // decoded
	decoded  int
	sendErrs int
	lastErr  error
	// sent and received count the packets the decoder took and the
	// pictures it gave back, encSent and encGot the pictures the encoder
	// took and the packets it gave back: when they match at the end of
	// the segment, nothing is held back and neither needs draining
	// (drained says one was), so that both can serve the stream's next
	// segment (videoCodecs).
	sent, received  int
	encSent, encGot int
	drained         bool
	// kept counts the pictures of this segment the rendition keeps.
	kept int
	// key is what the codecs are opened for (videoCodecs.key); reused
	// says they are the previous segment's.
	key    string
	reused bool

	// The rendition.
	outW, outH int
	sws        *astiav.SoftwareScaleContext
	swsSrc     [3]int // width, height, pixel format sws was made for
	scaled     *astiav.Frame
	enc        *astiav.CodecContext
	pkt        *astiav.Packet
	lastSlot   int64
	pictures   []encoded
}

// encoded is an encoded picture or audio frame.
type encoded struct {
	data []byte
	pts  int64
	dur  int64
	key  bool
}

// videoCodecs are the video decoder, scaler and encoder of a stream, kept
// from one of its segments to the next (Config.KeepCodecs): opening them
// for every segment, and the page faults of their fresh buffers, cost about
// a tenth of a screen's transcoding. They serve the next segment only if it
// continues the last one on the media timeline with the same source
// parameters and profile; the encoder then starts it with an IDR picture,
// so that each rendition segment still decodes on its own.
type videoCodecs struct {
	// key is what they were opened for: the source's codec parameters,
	// the profile and the rendition's frame rate.
	key string
	// end is where the last segment ended on the media timeline.
	end        int64
	dec, enc   *astiav.CodecContext
	frame      *astiav.Frame
	pkt        *astiav.Packet
	sws        *astiav.SoftwareScaleContext
	swsSrc     [3]int
	scaled     *astiav.Frame
	outW, outH int
}

// free frees the codecs, in the reverse order of their creation.
func (c *videoCodecs) free() {
	if c == nil {
		return
	}
	freeCodec(c.enc)
	freeFrame(c.scaled)
	freeSws(c.sws)
	freePacket(c.pkt)
	freeFrame(c.frame)
	freeCodec(c.dec)
}

func freeCodec(c *astiav.CodecContext) {
	if c != nil {
		c.Free()
	}
}

func freeFrame(f *astiav.Frame) {
	if f != nil {
		f.Free()
	}
}

func freePacket(p *astiav.Packet) {
	if p != nil {
		p.Free()
	}
}

func freeSws(s *astiav.SoftwareScaleContext) {
	if s != nil {
		s.Free()
	}
}

// newVideoStage returns the video stage of a demuxed segment. It takes
// kept, the codecs the stream's previous segment left (nil for none): it
// uses them if the segment continues that one, and frees them otherwise.
func newVideoStage(d *demuxer, profile Profile, threads int, kept *videoCodecs) *videoStage {
	v := &videoStage{tr: d.video, profile: profile, threads: threads, srcFPS: d.srcFPS,
		outFPS: renditionFPS(d.srcFPS, profile.MaxFPS),
		h264:   d.video.in.CodecParameters().CodecID() == astiav.CodecIDH264}
	cp := d.video.in.CodecParameters()
	v.key = fmt.Sprintf("%s %dx%d %s %x %d|%+v|%v|%d", cp.CodecID(), cp.Width(), cp.Height(), cp.PixelFormat(),
		cp.ExtraData(), v.tr.scale, profile, v.outFPS, threads)
	if kept == nil {
		return v
	}
	if kept.key != v.key || kept.end != v.tr.base {
		kept.free()
		return v
	}
	v.reused = true
	v.dec, v.enc, v.frame, v.pkt = kept.dec, kept.enc, kept.frame, kept.pkt
	v.sws, v.swsSrc, v.scaled, v.outW, v.outH = kept.sws, kept.swsSrc, kept.scaled, kept.outW, kept.outH
	return v
}

// release hands over the codecs for the stream's next segment, or returns
// nil if they cannot serve it (one was drained). The stage keeps nothing.
func (v *videoStage) release() *videoCodecs {
	if v.drained || v.dec == nil || v.enc == nil {
		return nil
	}
	c := &videoCodecs{key: v.key, end: v.tr.end, dec: v.dec, enc: v.enc, frame: v.frame, pkt: v.pkt,
		sws: v.sws, swsSrc: v.swsSrc, scaled: v.scaled, outW: v.outW, outH: v.outH}
	v.dec, v.enc, v.frame, v.pkt, v.sws, v.scaled = nil, nil, nil, nil, nil, nil
	return c
}

// free frees what the stage holds, in the reverse order of creation; it is
// safe on a stage opened part way.
func (v *videoStage) free() {
	(&videoCodecs{dec: v.dec, enc: v.enc, frame: v.frame, pkt: v.pkt, sws: v.sws, scaled: v.scaled}).free()
	v.dec, v.enc, v.frame, v.pkt, v.sws, v.scaled = nil, nil, nil, nil, nil, nil
}

// open opens the decoder unless the stage has the previous segment's; the
// scaler and the encoder wait for the first picture, whose size they take.
func (v *videoStage) open() error {
	if v.dec != nil {
		return nil
	}
	var err error
	if v.dec, err = openDecoder(v.tr.in, v.threads, v.decodeOptions()); err != nil {
		return err
	}
	v.frame = astiav.AllocFrame()
	v.pkt = astiav.AllocPacket()
	return nil
}

// finish drains the decoder, handing the pictures it held back to each,
// and then the encoder, unless neither holds anything back.
func (v *videoStage) finish(each func(*astiav.Frame) error) error {
	if v.sent != v.received {
		v.drained = true
		if err := v.decode(nil, each); err != nil {
			return err
		}
	}
	if err := v.undecodable(); err != nil {
		return err
	}
	if v.encSent != v.encGot {
		v.drained = true
		return v.encode(nil)
	}
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

// decodeOptions returns the options of the video decoder that spare work
// nothing needs: skip_loop_filter=all when the rendition is at most 2/3 of
// the source's width. H.264's deblocking filter is about a seventh of
// decoding, and what it smooths is gone once the picture is scaled down
// (the drift it leaves in later pictures of a GOP is above 50 dB PSNR at
// 360p from 1080p; the benchmark reports the rendition's SSIM). Pictures
// that nothing needs are not even sent to the decoder (skippable).
func (v *videoStage) decodeOptions() map[string]string {
	o := map[string]string{}
	cp := v.tr.in.CodecParameters()
	if w, h := cp.Width(), cp.Height(); w > 0 && h > 0 {
		if ow, _ := fit(w, h, v.profile.Width, v.profile.Height); ow*3 <= w*2 {
			o["skip_loop_filter"] = "all"
		}
	}
	return o
}

// decode sends a packet (nil to drain) to the decoder and hands each
// picture that comes out to each. A packet the decoder refuses is counted
// (undecodable) and skipped: the next keyframe may decode.
func (v *videoStage) decode(pkt *astiav.Packet, each func(*astiav.Frame) error) error {
	if pkt != nil {
		if !v.pktOffSet {
			// The first picture in decode order is the keyframe
			// shown first: the presentation offset of the segment.
			v.pktOff, v.pktOffSet = max(pkt.Pts()-v.tr.base, 0), true
		}
		if v.skippable(pkt) {
			v.skipped++
			return nil
		}
	}
	if err := v.dec.SendPacket(pkt); err != nil {
		if pkt != nil {
			v.sendErrs++
			v.lastErr = err
		}
		return nil
	}
	if pkt != nil {
		v.sent++
	}
	for {
		err := v.dec.ReceiveFrame(v.frame)
		if errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof) {
			return nil
		}
		if err != nil {
			// A broken picture; the next keyframe may decode.
			continue
		}
		v.received++
		err = each(v.frame)
		v.frame.Unref()
		if err != nil {
			return err
		}
	}
}

// undecodable returns why no picture was decoded, nil if one was.
func (v *videoStage) undecodable() error {
	if v.decoded > 0 {
		return nil
	}
	if v.lastErr != nil {
		return fmt.Errorf("%w: no picture decoded (%d packets refused, last: %w)", errUndecodable, v.sendErrs, v.lastErr)
	}
	return fmt.Errorf("%w: no picture decoded", errUndecodable)
}

// skippable reports whether a video packet need not be decoded at all: an
// H.264 picture that no other picture refers to (nal_ref_idc 0 in every
// slice, as the B-frames of most sources that have them), which the
// rendition drops because it keeps fewer pictures than the source has and
// this one is not the first of its 1/outFPS slot (keep). Only such
// pictures are skipped, so the rendition keeps the same, evenly spaced,
// pictures as when every one is decoded.
func (v *videoStage) skippable(pkt *astiav.Packet) bool {
	if v.outFPS >= v.srcFPS || !v.h264 || pkt.Pts() == astiav.NoPtsValue {
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
	rel := ticks(pkt.Pts()-v.pktOff-v.tr.base, v.tr.scale).Seconds()
	shift := 0.5 * v.outFPS / v.srcFPS
	return math.Floor(rel*v.outFPS+shift) == math.Floor((rel-1/v.srcFPS)*v.outFPS+shift)
}

// keep reports whether a decoded picture goes into the rendition, and
// when it is shown relative to the segment's first picture. It keeps the
// first picture of each 1/outFPS slot: every n-th of a steady source. The
// slots begin half a source picture early, so that timestamps a little off
// (RTP clocks) keep the same ones.
func (v *videoStage) keep(f *astiav.Frame) (time.Duration, bool) {
	pts := f.Pts()
	if pts == astiav.NoPtsValue {
		return 0, false
	}
	if !v.offSet {
		v.off = max(pts-v.tr.base, 0)
		v.offSet = true
	}
	v.decoded++
	rel := ticks(pts-v.off-v.tr.base, v.tr.scale)
	if v.outFPS < v.srcFPS {
		slot := int64(math.Floor(rel.Seconds()*v.outFPS + 0.5*v.outFPS/v.srcFPS))
		if v.kept > 0 && slot <= v.lastSlot {
			return rel, false
		}
		v.lastSlot = slot
	}
	v.kept++
	return rel, true
}

// scale scales a decoded picture into v.scaled, with the picture's
// timestamp, setting up the scaler and the encoder on the first picture
// unless the stage has the previous segment's. It reports whether this was
// the segment's first picture, which the encoder makes an IDR picture.
func (v *videoStage) scale(f *astiav.Frame) (first bool, err error) {
	first = v.kept == 1
	src := [3]int{f.Width(), f.Height(), int(f.PixelFormat())}
	if v.sws == nil || src != v.swsSrc {
		if v.sws != nil {
			v.sws.Free()
			v.sws = nil
		}
		if v.enc == nil {
			v.outW, v.outH = fit(f.Width(), f.Height(), v.profile.Width, v.profile.Height)
		}
		// Area averaging to scale down by half or more (cameras): a
		// third of bicubic's cost from 1080p to 360p, as sharp. Less
		// than that (a screen to 1280 wide), area blurs text: bicubic.
		flag := astiav.SoftwareScaleContextFlagBicubic
		if v.outW*2 <= f.Width() && v.outH*2 <= f.Height() {
			flag = astiav.SoftwareScaleContextFlagArea
		}
		sws, err := astiav.CreateSoftwareScaleContext(f.Width(), f.Height(), f.PixelFormat(), v.outW, v.outH,
			astiav.PixelFormatYuv420P, astiav.NewSoftwareScaleContextFlags(flag))
		if err != nil {
			return false, fmt.Errorf("%w: scale %dx%d %s: %w", errUndecodable, f.Width(), f.Height(), f.PixelFormat(), err)
		}
		v.sws, v.swsSrc = sws, src
		if v.scaled == nil {
			v.scaled = astiav.AllocFrame()
		}
	}
	if v.enc == nil {
		if err := v.openEncoder(); err != nil {
			return false, err
		}
	}
	// The picture's buffer is reused unless the encoder still holds it
	// (libx264 copies what it is sent).
	if !writable(v.scaled) {
		v.scaled.Unref()
		v.scaled.SetWidth(v.outW)
		v.scaled.SetHeight(v.outH)
		v.scaled.SetPixelFormat(astiav.PixelFormatYuv420P)
		if err := v.scaled.AllocBuffer(0); err != nil {
			return false, fmt.Errorf("alloc picture: %w", err)
		}
	}
	if err := v.sws.ScaleFrame(f, v.scaled); err != nil {
		return false, fmt.Errorf("scale picture: %w", err)
	}
	v.scaled.SetPts(f.Pts())
	if first {
		v.scaled.SetPictureType(astiav.PictureTypeI)
	} else {
		v.scaled.SetPictureType(astiav.PictureTypeNone)
	}
	return first, nil
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

func (v *videoStage) openEncoder() error {
	codec := astiav.FindEncoderByName("libx264")
	if codec == nil {
		return errors.New("no libx264 encoder in this FFmpeg")
	}
	cc := astiav.AllocCodecContext(codec)
	if cc == nil {
		return errors.New("alloc libx264 encoder")
	}
	v.enc = cc
	fps := v.outFPS
	cc.SetWidth(v.outW)
	cc.SetHeight(v.outH)
	cc.SetPixelFormat(astiav.PixelFormatYuv420P)
	cc.SetSampleAspectRatio(astiav.NewRational(1, 1))
	cc.SetTimeBase(v.tr.in.TimeBase())
	cc.SetFramerate(astiav.NewRational(int(math.Round(fps*1000)), 1000))
	cc.SetGopSize(max(1, int(math.Round(v.profile.Keyint.Seconds()*fps))))
	cc.SetFlags(cc.Flags().Add(astiav.CodecContextFlagGlobalHeader))
	cc.SetThreadCount(v.threads)
	opts := astiav.NewDictionary()
	defer opts.Free()
	x264 := v.profile.x264Options()
	// A picture sent as I is an IDR picture: each segment starts with one
	// (scale), also when the encoder carries on from the previous one.
	// Rate control by the frame rate, not by timestamps (the rendition
	// keeps every n-th picture, evenly): with timestamps x264 holds one
	// picture back to learn its duration, and the encoder would have to
	// be drained, and so closed, at the end of every segment.
	x264["forced-idr"] = "1"
	x264["x264-params"] = "force-cfr=1"

	for k, val := range x264 {
		if err := opts.Set(k, val, 0); err != nil {
			return fmt.Errorf("libx264 option %s: %w", k, err)
		}
	}
	if err := cc.Open(codec, opts); err != nil {
		return fmt.Errorf("open libx264 encoder %dx%d: %w", v.outW, v.outH, err)
	}
	return nil
}

// encode sends a picture (nil to drain) to the encoder and keeps what
// comes out.
func (v *videoStage) encode(f *astiav.Frame) error {
	if v.enc == nil {
		return nil
	}
	if err := v.enc.SendFrame(f); err != nil {
		return fmt.Errorf("encode picture: %w", err)
	}
	if f != nil {
		v.encSent++
	}
	for {
		err := v.enc.ReceivePacket(v.pkt)
		if errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("encode picture: %w", err)
		}
		avcc, err := annexBToAVCC(v.pkt.Data())
		if err != nil {
			v.pkt.Unref()
			return err
		}
		v.encGot++
		v.pictures = append(v.pictures, encoded{data: avcc, pts: v.pkt.Pts(), key: v.pkt.Flags().Has(astiav.PacketFlagKey)})
		v.pkt.Unref()
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
