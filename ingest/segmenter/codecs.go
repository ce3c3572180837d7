package segmenter

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// avc writes a video codec that carries parameter sets in band (H.264,
// H.265): it derives decode timestamps (B-frames), keeps the parameter sets
// out of band in the init segment and starts a new init when they change.
type avc struct {
	s       *Segmenter
	track   int
	name    string
	params  [][]byte // the codec's parameter sets, in codec order
	dirty   bool     // params changed since the segmenter last got them
	waitIDR bool
	c       avcCodec
}

// avcCodec is what differs between H.264 and H.265.
type avcCodec interface {
	// param returns the index in params of a parameter-set NAL unit, -1
	// for a unit to keep in the sample, -2 for one to drop.
	param(n []byte) int
	validate(i int, n []byte) error
	randomAccess(nalus [][]byte) bool
	extract(au [][]byte, pts int64) (int64, error)
	reset()
	codec(params [][]byte) mp4.Codec
}

// Write adds one access unit with its presentation timestamp (90 kHz).
func (v *avc) Write(pts int64, au [][]byte) error {
	found := make([][]byte, len(v.params))
	nalus := make([][]byte, 0, len(au))
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch i := v.c.param(n); {
		case i >= 0:
			found[i] = n
		case i == -1:
			nalus = append(nalus, n)
		}
	}
	for i, n := range found {
		if n != nil && !bytes.Equal(n, v.params[i]) {
			if err := v.c.validate(i, n); err != nil {
				return fmt.Errorf("%s: %w: %w", v.name, ErrCodec, err)
			}
			v.params[i] = bytes.Clone(n)
			v.dirty = true
		}
	}
	complete := true
	for _, n := range v.params {
		complete = complete && n != nil
	}
	if !complete {
		return nil // waiting for parameter sets
	}
	if v.dirty || !v.configured() {
		err := v.s.SetCodec(v.track, v.c.codec(v.params))
		if err != nil && !errors.Is(err, ErrCodecChanges) {
			return err
		}
		v.dirty = false // applied, also with ErrCodecChanges
		if err != nil {
			return err
		}
	}
	if len(nalus) == 0 {
		return nil
	}
	idr := v.c.randomAccess(nalus)
	if v.waitIDR {
		if !idr {
			return nil
		}
		v.waitIDR = false
	}
	forDTS := nalus
	if idr {
		forDTS = append(append([][]byte{}, v.params...), nalus...)
	}
	dts, err := v.c.extract(forDTS, pts)
	if err != nil {
		v.c.reset()
		v.waitIDR = true
		return fmt.Errorf("%s: %w: %w", v.name, err, ErrWaitingKeyframe)
	}
	payload, err := h264.AVCC(nalus).Marshal()
	if err != nil {
		return fmt.Errorf("%s: %w", v.name, err)
	}
	return v.s.WriteSample(v.track, dts, int32(pts-dts), idr, payload)
}

// configured reports whether the segmenter's codec has this writer's
// parameter sets.
func (v *avc) configured() bool {
	switch c := v.s.Codec(v.track).(type) {
	case *mp4.CodecH264:
		return c.SPS != nil && c.PPS != nil
	case *mp4.CodecH265:
		return c.VPS != nil && c.SPS != nil && c.PPS != nil
	}
	return false
}

// H264 turns H.264 access units (NAL units of one picture, as rtph264
// decodes them) into samples of one track.
type H264 struct{ avc }

// NewH264 returns an H.264 writer for a track. sps and pps come from the SDP
// and may be nil when the publisher sends them only in band.
func NewH264(s *Segmenter, track int, sps, pps []byte) *H264 {
	return &H264{avc{s: s, track: track, name: "h264", params: [][]byte{sps, pps}, waitIDR: true,
		c: &h264Codec{dtsx: h264.NewDTSExtractor()}}}
}

type h264Codec struct{ dtsx *h264.DTSExtractor }

func (*h264Codec) param(n []byte) int {
	switch h264.NALUType(n[0] & 0x1f) {
	case h264.NALUTypeSPS:
		return 0
	case h264.NALUTypePPS:
		return 1
	case h264.NALUTypeAccessUnitDelimiter:
		return -2
	}
	return -1
}

func (*h264Codec) validate(i int, n []byte) error {
	if i != 0 {
		return nil
	}
	var p h264.SPS
	if err := p.Unmarshal(n); err != nil {
		return fmt.Errorf("invalid SPS: %w", err)
	}
	return nil
}

func (*h264Codec) randomAccess(nalus [][]byte) bool { return h264.IsRandomAccess(nalus) }
func (c *h264Codec) extract(au [][]byte, pts int64) (int64, error) {
	return c.dtsx.Extract(au, pts)
}
func (c *h264Codec) reset() { c.dtsx = h264.NewDTSExtractor() }
func (*h264Codec) codec(p [][]byte) mp4.Codec {
	return &mp4.CodecH264{SPS: p[0], PPS: p[1]}
}

// H265 turns H.265 access units (as rtph265 decodes them) into samples of
// one track: many IP cameras send H.265.
type H265 struct{ avc }

// NewH265 returns an H.265 writer for a track; the parameter sets may be nil
// when they come only in band.
func NewH265(s *Segmenter, track int, vps, sps, pps []byte) *H265 {
	return &H265{avc{s: s, track: track, name: "h265", params: [][]byte{vps, sps, pps}, waitIDR: true,
		c: &h265Codec{dtsx: h265.NewDTSExtractor()}}}
}

type h265Codec struct{ dtsx *h265.DTSExtractor }

func (*h265Codec) param(n []byte) int {
	if len(n) < 2 {
		return -2
	}
	switch h265.NALUType((n[0] >> 1) & 0x3f) {
	case h265.NALUType_VPS_NUT:
		return 0
	case h265.NALUType_SPS_NUT:
		return 1
	case h265.NALUType_PPS_NUT:
		return 2
	case h265.NALUType_AUD_NUT:
		return -2
	}
	return -1
}

func (*h265Codec) validate(i int, n []byte) error {
	if i != 1 {
		return nil
	}
	var p h265.SPS
	if err := p.Unmarshal(n); err != nil {
		return fmt.Errorf("invalid SPS: %w", err)
	}
	return nil
}

func (*h265Codec) randomAccess(nalus [][]byte) bool { return h265.IsRandomAccess(nalus) }
func (c *h265Codec) extract(au [][]byte, pts int64) (int64, error) {
	return c.dtsx.Extract(au, pts)
}
func (c *h265Codec) reset() { c.dtsx = h265.NewDTSExtractor() }
func (*h265Codec) codec(p [][]byte) mp4.Codec {
	return &mp4.CodecH265{VPS: p[0], SPS: p[1], PPS: p[2]}
}

// AAC writes MPEG-4 audio access units (RFC 3640 depacketized).
type AAC struct {
	s     *Segmenter
	track int
	// samplesPerAU is 1024 for AAC-LC (960 with the frame-length flag).
	samplesPerAU int64
}

// NewAAC returns an AAC writer for a track.
func NewAAC(s *Segmenter, track int, conf *mpeg4audio.AudioSpecificConfig) *AAC {
	n := int64(mpeg4audio.SamplesPerAccessUnit)
	if conf != nil && conf.FrameLengthFlag {
		n = 960
	}
	return &AAC{s: s, track: track, samplesPerAU: n}
}

// Write adds the access units of one RTP packet; pts is the first one's, in
// the sample rate.
func (a *AAC) Write(pts int64, aus [][]byte) error {
	for i, au := range aus {
		if err := a.s.WriteSample(a.track, pts+int64(i)*a.samplesPerAU, 0, true, au); err != nil {
			return err
		}
	}
	return nil
}

// Opus writes Opus packets (48 kHz timestamps).
type Opus struct {
	s     *Segmenter
	track int
}

// NewOpus returns an Opus writer for a track.
func NewOpus(s *Segmenter, track int) *Opus { return &Opus{s: s, track: track} }

// Write adds one Opus packet.
func (o *Opus) Write(pts int64, pkt []byte) error {
	return o.s.WriteSample(o.track, pts, 0, true, pkt)
}
