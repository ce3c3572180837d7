package segmenter

import (
	"bytes"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/av1"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/vp9"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// VP9 writes VP9 frames (RFC 9628 depacketized, one frame or superframe per
// call) as samples of one track ("VP Codec ISO Media File Format Binding").
//
// The codec configuration (vpcC) is taken from key frames. A change of
// profile, bit depth, chroma subsampling or colour range starts a new init
// segment; a change of resolution alone does not: VP9 carries the frame
// size in band and decoders follow it, while WebRTC senders change
// resolution often (bandwidth and CPU adaptation) and a new init each time
// would cut the recording into many discontinuities.
type VP9 struct {
	s       *Segmenter
	track   int
	conf    *mp4.CodecVP9
	waitKey bool
}

// NewVP9 returns a VP9 writer for a track.
func NewVP9(s *Segmenter, track int) *VP9 {
	return &VP9{s: s, track: track, waitKey: true}
}

// IsVP9KeyFrame reports whether frame starts with a VP9 key frame (VP9
// bitstream specification, section 6.2).
func IsVP9KeyFrame(frame []byte) bool {
	var h vp9.Header
	if err := h.Unmarshal(frame); err != nil {
		return false
	}
	return !h.ShowExistingFrame && !h.NonKeyFrame
}

// Write adds one frame with its timestamp (90 kHz). VP9 over RTP has no
// frame reordering, so the timestamp is both PTS and DTS.
func (v *VP9) Write(pts int64, frame []byte) error {
	if len(frame) == 0 {
		return nil
	}
	var h vp9.Header
	if err := h.Unmarshal(frame); err != nil {
		return fmt.Errorf("vp9: %w: frame header: %w", ErrCodec, err)
	}
	key := !h.ShowExistingFrame && !h.NonKeyFrame
	if key {
		c := &mp4.CodecVP9{
			Width:             h.Width(),
			Height:            h.Height(),
			Profile:           h.Profile,
			BitDepth:          h.ColorConfig.BitDepth,
			ChromaSubsampling: h.ChromaSubsampling(),
			ColorRange:        h.ColorConfig.ColorRange,
		}
		if v.conf == nil || c.Profile != v.conf.Profile || c.BitDepth != v.conf.BitDepth ||
			c.ChromaSubsampling != v.conf.ChromaSubsampling || c.ColorRange != v.conf.ColorRange {
			v.conf = c
			if err := v.s.SetCodec(v.track, c); err != nil {
				return err
			}
		}
	}
	if v.waitKey {
		if !key {
			return nil
		}
		v.waitKey = false
	}
	return v.s.WriteSample(v.track, pts, 0, key, frame)
}

// AV1 OBU types used here (AV1 bitstream specification, section 6.2.2).
const (
	av1OBUSequenceHeader    = 1
	av1OBUTemporalDelimiter = 2
	av1OBUTileList          = 8
	av1OBUPadding           = 15
)

// AV1 writes AV1 temporal units (RTP payload format for AV1 depacketized:
// a list of OBUs) as samples of one track ("AV1 Codec ISO Media File Format
// Binding"): OBUs in the low overhead format, each with its size, without
// temporal delimiters, padding or tile lists (section 2.4 of the binding).
//
// A temporal unit with a sequence header is a sync sample; the sequence
// header goes into the init segment (av1C) as well, and a different one
// starts a new init.
type AV1 struct {
	s       *Segmenter
	track   int
	seqHdr  []byte
	waitKey bool
}

// NewAV1 returns an AV1 writer for a track.
func NewAV1(s *Segmenter, track int) *AV1 {
	return &AV1{s: s, track: track, waitKey: true}
}

// obuType returns the type of an OBU, or -1 when its header is invalid.
func obuType(obu []byte) int {
	if len(obu) == 0 || obu[0]&0x80 != 0 {
		return -1
	}
	return int(obu[0]>>3) & 0x0f
}

// IsAV1RandomAccess reports whether a temporal unit starts with a sequence
// header, as WebRTC senders put one in front of every key frame.
func IsAV1RandomAccess(tu [][]byte) bool {
	for _, obu := range tu {
		if obuType(obu) == av1OBUSequenceHeader {
			return true
		}
	}
	return false
}

// Write adds one temporal unit with its timestamp (90 kHz).
func (a *AV1) Write(pts int64, tu [][]byte) error {
	var seq []byte
	size := 0
	kept := make([][]byte, 0, len(tu))
	for _, obu := range tu {
		switch t := obuType(obu); t {
		case -1:
			return fmt.Errorf("av1: %w: invalid OBU header", ErrCodec)
		case av1OBUTemporalDelimiter, av1OBUTileList, av1OBUPadding:
			continue
		case av1OBUSequenceHeader:
			seq = obu
		}
		kept = append(kept, obu)
		size += len(obu) + 8
	}
	if len(kept) == 0 {
		return nil
	}
	if seq != nil && !bytes.Equal(stripOBUSize(seq), a.seqHdr) {
		plain := bytes.Clone(stripOBUSize(seq))
		var sh av1.SequenceHeader
		if err := sh.Unmarshal(plain); err != nil {
			return fmt.Errorf("av1: %w: sequence header: %w", ErrCodec, err)
		}
		a.seqHdr = plain
		if err := a.s.SetCodec(a.track, &mp4.CodecAV1{SequenceHeader: plain}); err != nil {
			return err
		}
	}
	key := seq != nil
	if a.waitKey {
		if !key {
			return nil
		}
		a.waitKey = false
	}
	payload := make([]byte, 0, size)
	for _, obu := range kept {
		payload = appendOBUWithSize(payload, obu)
	}
	return a.s.WriteSample(a.track, pts, 0, key, payload)
}

// obuHeaderLen returns the length of an OBU's header (1, or 2 with the
// extension byte).
func obuHeaderLen(obu []byte) int {
	if obu[0]&0x04 != 0 {
		return 2
	}
	return 1
}

// appendOBUWithSize appends obu to b with obu_has_size_field set, adding the
// LEB128 size when the OBU lacks it.
func appendOBUWithSize(b, obu []byte) []byte {
	if obu[0]&0x02 != 0 {
		return append(b, obu...)
	}
	hl := min(obuHeaderLen(obu), len(obu))
	b = append(b, obu[0]|0x02)
	b = append(b, obu[1:hl]...)
	payload := obu[hl:]
	var leb [8]byte
	n := av1.LEB128(uint32(len(payload))).MarshalTo(leb[:])
	b = append(b, leb[:n]...)
	return append(b, payload...)
}

// stripOBUSize returns obu without its size field (the form av1C and
// mediacommon keep the sequence header in).
func stripOBUSize(obu []byte) []byte {
	if obu[0]&0x02 == 0 {
		return obu
	}
	hl := obuHeaderLen(obu)
	if len(obu) < hl {
		return obu
	}
	var size av1.LEB128
	n, err := size.Unmarshal(obu[hl:])
	if err != nil || len(obu) < hl+n+int(size) {
		return obu
	}
	out := make([]byte, 0, hl+int(size))
	out = append(out, obu[0]&^0x02)
	out = append(out, obu[1:hl]...)
	return append(out, obu[hl+n:hl+n+int(size)]...)
}

// vp9Levels are the VP9 levels with their largest picture in luma samples
// (VP9 bitstream specification, Annex A).
var vp9Levels = []struct {
	level   int
	maxLuma int
}{
	{10, 36864}, {11, 73728}, {20, 122880}, {21, 245760}, {30, 552960}, {31, 983040},
	{40, 2228224}, {50, 8912896}, {60, 35651584},
}

// vp9CodecString returns the codec string of the VP9 binding
// (vp09.PP.LL.DD): profile, the lowest level that fits the picture size,
// and bit depth.
func vp9CodecString(c *mp4.CodecVP9) string {
	level := 62
	for _, l := range vp9Levels {
		if c.Width*c.Height <= l.maxLuma {
			level = l.level
			break
		}
	}
	depth := c.BitDepth
	if depth == 0 {
		depth = 8
	}
	return fmt.Sprintf("vp09.%02d.%02d.%02d", c.Profile, level, depth)
}

// av1CodecString returns the codec string of the AV1 binding
// (av01.P.LLT.DD) from the sequence header.
func av1CodecString(c *mp4.CodecAV1) string {
	var h av1.SequenceHeader
	if len(c.SequenceHeader) == 0 || h.Unmarshal(c.SequenceHeader) != nil || len(h.SeqLevelIdx) == 0 || len(h.SeqTier) == 0 {
		return "av01"
	}
	tier := "M"
	if h.SeqTier[0] {
		tier = "H"
	}
	depth := 8
	if h.ColorConfig.HighBitDepth {
		depth = 10
		if h.ColorConfig.TwelveBit {
			depth = 12
		}
	}
	return fmt.Sprintf("av01.%d.%02d%s.%02d", h.SeqProfile, h.SeqLevelIdx[0], tier, depth)
}
