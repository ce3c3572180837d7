package rtsp

import (
	"errors"
	"fmt"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/rtp"

	"github.com/nokstream/nokstream/ingest/segmenter"
)

// aacWriter records MPEG-4 audio (AAC, RFC 3640), whose configuration the
// description gives.
type aacWriter struct {
	f   *format.MPEG4Audio
	dec *rtpmpeg4audio.Decoder
	w   *segmenter.AAC
}

func (a *aacWriter) track() segmenter.Track {
	return segmenter.Track{Codec: &mp4.CodecMPEG4Audio{Config: *a.f.Config}, TimeScale: uint32(a.f.ClockRate())}
}

func (a *aacWriter) open(seg *segmenter.Segmenter, idx int) error {
	dec, err := a.f.CreateDecoder()
	if err != nil {
		return err
	}
	a.dec, a.w = dec, segmenter.NewAAC(seg, idx, a.f.Config)
	return nil
}

func (a *aacWriter) write(pkt *rtp.Packet, pts int64) error {
	aus, err := a.dec.Decode(pkt)
	if err != nil {
		if errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) {
			return nil
		}
		return fmt.Errorf("aac rtp: %w", err)
	}
	return a.w.Write(pts, aus)
}
