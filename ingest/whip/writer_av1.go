package whip

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpav1"
	"github.com/pion/rtp"

	"github.com/nokstream/nokstream/ingest/segmenter"
)

// av1Writer records AV1 (the AOM's RTP payload format for AV1).
type av1Writer struct {
	dec *rtpav1.Decoder
	w   *segmenter.AV1
}

func newAV1Writer(seg *segmenter.Segmenter, idx int) (*av1Writer, error) {
	dec := &rtpav1.Decoder{}
	if err := dec.Init(); err != nil {
		return nil, err
	}
	return &av1Writer{dec: dec, w: segmenter.NewAV1(seg, idx)}, nil
}

func (a *av1Writer) write(rt *recTrack, pkt *rtp.Packet, arrival time.Time) (sample, error) {
	tu, err := a.dec.Decode(pkt)
	if err != nil {
		if errors.Is(err, rtpav1.ErrMorePacketsNeeded) || errors.Is(err, rtpav1.ErrNonStartingPacketAndNoPrevious) {
			return sample{}, nil
		}
		return sample{}, fmt.Errorf("av1 rtp: %w", err)
	}
	pts, ok := rt.stamp(pkt.Timestamp, arrival)
	if !ok {
		return sample{}, nil
	}
	return sample{written: true, key: segmenter.IsAV1RandomAccess(tu), pts: pts}, a.w.Write(pts, tu)
}
