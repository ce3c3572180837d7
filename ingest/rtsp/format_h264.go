package rtsp

import (
	"errors"
	"fmt"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/rtp"

	"github.com/nokstream/nokstream/ingest/segmenter"
)

// h264Writer records H.264 video (RFC 6184), its parameter sets from the
// description's sprop-parameter-sets or in band.
type h264Writer struct {
	f   *format.H264
	dec *rtph264.Decoder
	w   *segmenter.H264
}

func (h *h264Writer) track() segmenter.Track {
	return segmenter.Track{Codec: &mp4.CodecH264{SPS: h.f.SPS, PPS: h.f.PPS}, TimeScale: 90000}
}

func (h *h264Writer) open(seg *segmenter.Segmenter, idx int) error {
	dec, err := h.f.CreateDecoder()
	if err != nil {
		return err
	}
	h.dec, h.w = dec, segmenter.NewH264(seg, idx, h.f.SPS, h.f.PPS)
	return nil
}

func (h *h264Writer) write(pkt *rtp.Packet, pts int64) error {
	au, err := h.dec.Decode(pkt)
	if err != nil {
		if errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
			return nil
		}
		return fmt.Errorf("h264 rtp: %w", err)
	}
	return h.w.Write(pts, au)
}
