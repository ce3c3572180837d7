package whip

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"

	"github.com/nokstream/nokstream/ingest/segmenter"
)

// h264Writer records H.264 (RFC 6184, packetization mode 1), whose
// parameter sets come in band with the IDRs.
type h264Writer struct {
	dec *rtph264.Decoder
	w   *segmenter.H264
	// prevTS is the previous packet's timestamp; pending says the decoder
	// holds an access unit it has not completed.
	prevTS  uint32
	pending bool
	// sawSPS is set once a sequence parameter set went by.
	sawSPS bool
}

func newH264Writer(seg *segmenter.Segmenter, idx int) (*h264Writer, error) {
	dec := &rtph264.Decoder{PacketizationMode: 1}
	if err := dec.Init(); err != nil {
		return nil, err
	}
	return &h264Writer{dec: dec, w: segmenter.NewH264(seg, idx, nil, nil)}, nil
}

func (h *h264Writer) write(rt *recTrack, pkt *rtp.Packet, arrival time.Time) (sample, error) {
	au, err := h.dec.Decode(pkt)
	// Without a marker bit the decoder completes an access unit when the
	// timestamp changes: then the unit it returns is the previous
	// packet's.
	ts := pkt.Timestamp
	if h.pending && h.prevTS != ts {
		ts = h.prevTS
	}
	h.prevTS = pkt.Timestamp
	h.pending = errors.Is(err, rtph264.ErrMorePacketsNeeded)
	if err != nil {
		if h.pending || errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
			return sample{}, nil
		}
		return sample{}, fmt.Errorf("h264 rtp: %w", err)
	}
	pts, ok := rt.stamp(ts, arrival)
	if !ok {
		return sample{}, nil
	}
	// An IDR starts a segment only once the parameter sets are known
	// (they come in band, with the IDR).
	for _, n := range au {
		if len(n) > 0 && h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
			h.sawSPS = true
		}
	}
	return sample{written: true, key: h.sawSPS && h264.IsRandomAccess(au), pts: pts}, h.w.Write(pts, au)
}
