package segmenter

import (
	"bytes"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// H264 turns H.264 access units (NAL units of one picture, as rtph264
// decodes them) into samples of one track: it derives decode timestamps
// (B-frames), keeps parameter sets out of band in the init segment and
// starts a new init when they change.
type H264 struct {
	s       *Segmenter
	track   int
	sps     []byte
	pps     []byte
	dtsx    *h264.DTSExtractor
	waitIDR bool
}

// NewH264 returns an H.264 writer for a track. sps and pps come from the SDP
// and may be nil when the publisher sends them only in band.
func NewH264(s *Segmenter, track int, sps, pps []byte) *H264 {
	return &H264{s: s, track: track, sps: sps, pps: pps, dtsx: h264.NewDTSExtractor(), waitIDR: true}
}

// Write adds one access unit with its presentation timestamp (90 kHz).
func (h *H264) Write(pts int64, au [][]byte) error {
	var sps, pps []byte
	nalus := make([][]byte, 0, len(au))
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		switch h264.NALUType(n[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = n
		case h264.NALUTypePPS:
			pps = n
		case h264.NALUTypeAccessUnitDelimiter:
		default:
			nalus = append(nalus, n)
		}
	}
	idr := h264.IsRandomAccess(nalus)
	if (sps != nil && !bytes.Equal(sps, h.sps)) || (pps != nil && !bytes.Equal(pps, h.pps)) {
		if sps != nil {
			var p h264.SPS
			if err := p.Unmarshal(sps); err != nil {
				return fmt.Errorf("h264: %w: invalid SPS: %w", ErrCodec, err)
			}
			h.sps = bytes.Clone(sps)
		}
		if pps != nil {
			h.pps = bytes.Clone(pps)
		}
		if h.sps != nil && h.pps != nil {
			if err := h.s.SetCodec(h.track, &mp4.CodecH264{SPS: h.sps, PPS: h.pps}); err != nil {
				return err
			}
		}
	} else if h.sps != nil && h.pps != nil {
		if c, ok := h.s.Codec(h.track).(*mp4.CodecH264); !ok || c.SPS == nil {
			if err := h.s.SetCodec(h.track, &mp4.CodecH264{SPS: h.sps, PPS: h.pps}); err != nil {
				return err
			}
		}
	}
	if h.sps == nil || h.pps == nil || len(nalus) == 0 {
		return nil // waiting for parameter sets
	}
	if h.waitIDR {
		if !idr {
			return nil
		}
		h.waitIDR = false
	}
	forDTS := nalus
	if idr {
		forDTS = append([][]byte{h.sps, h.pps}, nalus...)
	}
	dts, err := h.dtsx.Extract(forDTS, pts)
	if err != nil {
		h.dtsx = h264.NewDTSExtractor()
		h.waitIDR = true
		return fmt.Errorf("h264: %w (waiting for next IDR)", err)
	}
	payload, err := h264.AVCC(nalus).Marshal()
	if err != nil {
		return fmt.Errorf("h264: %w", err)
	}
	return h.s.WriteSample(h.track, dts, int32(pts-dts), idr, payload)
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
