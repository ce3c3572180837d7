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

func newVideoStage(d *demuxer, profile Profile, threads int) *videoStage {
	return &videoStage{tr: d.video, profile: profile, threads: threads, srcFPS: d.srcFPS,
		outFPS: renditionFPS(d.srcFPS, profile.MaxFPS),
		h264:   d.video.in.CodecParameters().CodecID() == astiav.CodecIDH264}
}

// free frees what the stage allocated, in the reverse order; it is safe
// on a stage opened part way.
func (v *videoStage) free() {
	if v.enc != nil {
		v.enc.Free()
	}
	if v.scaled != nil {
		v.scaled.Free()
	}
	if v.sws != nil {
		v.sws.Free()
	}
	if v.pkt != nil {
		v.pkt.Free()
	}
	if v.frame != nil {
		v.frame.Free()
	}
	if v.dec != nil {
		v.dec.Free()
	}
}

// open opens the decoder; the scaler and the encoder wait for the first
// picture, whose size they take.
func (v *videoStage) open() error {
	var err error
	if v.dec, err = openDecoder(v.tr.in, v.threads, v.decodeOptions()); err != nil {
		return err
	}
	v.frame = astiav.AllocFrame()
	v.pkt = astiav.AllocPacket()
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
	for {
		err := v.dec.ReceiveFrame(v.frame)
		if errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof) {
			return nil
		}
		if err != nil {
			// A broken picture; the next keyframe may decode.
			continue
		}
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
		if v.scaled != nil && slot <= v.lastSlot {
			return rel, false
		}
		v.lastSlot = slot
	}
	return rel, true
}

// scale scales a decoded picture into v.scaled, with the picture's
// timestamp, setting up the scaler and the encoder on the first picture.
// It reports whether this was the first.
func (v *videoStage) scale(f *astiav.Frame) (first bool, err error) {
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
		first = true
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
	for k, val := range v.profile.x264Options() {
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
