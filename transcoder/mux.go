package transcoder

import (
	"errors"
	"fmt"
	"sort"
	"strconv"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// muxed is the rendition in CMAF fMP4 (ISO/IEC 23000-19).
type muxed struct {
	init    []byte // the init segment
	segment []byte // the media segment
	codecs  []string
	// audioErr says why the rendition has no audio though the source has.
	audioErr error
}

// mux is the mux stage: it lays out the encoded pictures and audio of
// fragment sequence (mfhd) as one media segment with its init segment. It
// allocates nothing of FFmpeg's. a is nil for a segment without audio.
func mux(v *videoStage, a *audioStage, sequence int64) (*muxed, error) {
	sps, pps, err := parameterSets(v.enc.ExtraData())
	if err != nil {
		return nil, err
	}
	vCodec := &mp4.CodecH264{SPS: sps, PPS: pps}
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: uint32(v.tr.scale), Codec: vCodec}}}
	m := &muxed{codecs: []string{codecString(vCodec)}}
	part := fmp4.Part{SequenceNumber: uint32(sequence + 1), Tracks: []*fmp4.PartTrack{videoTrack(v.pictures, v.tr.base, v.tr.end, v.off)}}

	if a != nil && len(a.frames) > 0 {
		// Audio that cannot be muxed does not cost the expert the
		// picture.
		if at, aCodec, scale, err := a.track(); err != nil {
			m.audioErr = err
		} else {
			init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: 2, TimeScale: uint32(scale), Codec: aCodec})
			part.Tracks = append(part.Tracks, at)
			m.codecs = append(m.codecs, codecString(aCodec))
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
	m.init, m.segment = ib.Bytes(), sb.Bytes()
	return m, nil
}

// videoTrack lays out the encoded pictures so that the rendition covers
// exactly the raw segment's time span, base to end: the same decode time of
// the first sample (tfdt), the same end, and each picture presented when it
// was in the raw segment. The rendition has no B-frames, so its pictures
// are decoded in presentation order, each at its presentation time less one
// offset: the raw segment's first picture's presentation offset off, or
// more where the last picture would otherwise be decoded at or after the
// segment's end and overlap the next segment (a source whose first picture
// has a smaller offset than the later ones, as ingest derives the decode
// times of an RTSP stream with B-frames: ffmpeg reading a review playlist
// whole saw decode times go back at every boundary).
func videoTrack(pictures []encoded, base, end, off int64) *fmp4.PartTrack {
	sort.SliceStable(pictures, func(a, b int) bool { return pictures[a].pts < pictures[b].pts })
	t := &fmp4.PartTrack{ID: 1, BaseTime: uint64(base)}
	if n := len(pictures); n > 1 {
		// Room for the last picture to last a frame before the end.
		frame := max((pictures[n-1].pts-pictures[0].pts)/int64(n-1), 1)
		off = max(off, pictures[n-1].pts+frame-end)
	}
	dts := make([]int64, len(pictures))
	for i, e := range pictures {
		switch {
		case i == 0:
			dts[i] = base
		default:
			// Never before the previous one; never after the picture's
			// presentation, as the previous is before the previous
			// picture's.
			dts[i] = max(e.pts-off, dts[i-1]+1)
		}
	}
	for i, e := range pictures {
		next := end
		if i+1 < len(pictures) {
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

// track lays out the audio: copied AAC keeps the raw timing; encoded AAC
// starts at the raw first sample's time and is cut at the raw end.
func (a *audioStage) track() (*fmp4.PartTrack, mp4.Codec, int64, error) {
	if a.copy {
		var asc mpeg4audio.AudioSpecificConfig
		if err := asc.Unmarshal(a.tr.in.CodecParameters().ExtraData()); err != nil {
			return nil, nil, 0, fmt.Errorf("AAC configuration: %w", err)
		}
		t := &fmp4.PartTrack{ID: 2, BaseTime: uint64(a.tr.base)}
		// Durations come from the decode times: FFmpeg does not give every
		// demuxed packet one, and a sample without a duration would stack
		// the audio on one instant.
		for i, e := range a.frames {
			next := a.tr.end
			if i+1 < len(a.frames) {
				next = a.frames[i+1].pts
			}
			d := next - e.pts
			if d <= 0 {
				d = max(e.dur, 1)
			}
			t.Samples = append(t.Samples, &fmp4.Sample{Duration: uint32(d), Payload: e.data})
		}
		return t, &mp4.CodecMPEG4Audio{Config: asc}, a.tr.scale, nil
	}
	var asc mpeg4audio.AudioSpecificConfig
	if err := asc.Unmarshal(a.enc.cc.ExtraData()); err != nil {
		return nil, nil, 0, fmt.Errorf("AAC encoder configuration: %w", err)
	}
	scale := int64(a.enc.cc.SampleRate())
	base := a.tr.base * scale / a.tr.scale
	end := a.tr.end * scale / a.tr.scale
	t := &fmp4.PartTrack{ID: 2, BaseTime: uint64(base)}
	at := base
	for _, e := range a.frames {
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
