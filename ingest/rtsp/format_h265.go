package rtsp

import (
	"errors"
	"fmt"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/rtp"

	"github.com/nokstream/nokstream/ingest/segmenter"
)

// h265Writer records H.265 video (RFC 7798), its parameter sets from the
// description or in band.
type h265Writer struct {
	f   *format.H265
	dec *rtph265.Decoder
	w   *segmenter.H265
}

func (h *h265Writer) track() segmenter.Track {
	return segmenter.Track{Codec: &mp4.CodecH265{VPS: h.f.VPS, SPS: h.f.SPS, PPS: h.f.PPS}, TimeScale: 90000}
}

func (h *h265Writer) open(seg *segmenter.Segmenter, idx int) error {
	dec, err := h.f.CreateDecoder()
	if err != nil {
		return err
	}
	h.dec, h.w = dec, segmenter.NewH265(seg, idx, h.f.VPS, h.f.SPS, h.f.PPS)
	return nil
}

func (h *h265Writer) write(pkt *rtp.Packet, pts int64) error {
	au, err := h.dec.Decode(pkt)
	if err != nil {
		if errors.Is(err, rtph265.ErrMorePacketsNeeded) || errors.Is(err, rtph265.ErrNonStartingPacketAndNoPrevious) {
			return nil
		}
		return fmt.Errorf("h265 rtp: %w", err)
	}
	return h.w.Write(pts, au)
}
