package whip

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpvp9"
	"github.com/pion/rtp"

	"github.com/nokstream/nokstream/ingest/segmenter"
)

// vp9Writer records VP9 (RFC 9628).
type vp9Writer struct {
	dec *rtpvp9.Decoder
	w   *segmenter.VP9
}

func newVP9Writer(seg *segmenter.Segmenter, idx int) (*vp9Writer, error) {
	dec := &rtpvp9.Decoder{}
	if err := dec.Init(); err != nil {
		return nil, err
	}
	return &vp9Writer{dec: dec, w: segmenter.NewVP9(seg, idx)}, nil
}

func (v *vp9Writer) write(rt *recTrack, pkt *rtp.Packet, arrival time.Time) (sample, error) {
	frame, err := v.dec.Decode(pkt)
	if err != nil {
		if errors.Is(err, rtpvp9.ErrMorePacketsNeeded) || errors.Is(err, rtpvp9.ErrNonStartingPacketAndNoPrevious) {
			return sample{}, nil
		}
		return sample{}, fmt.Errorf("vp9 rtp: %w", err)
	}
	pts, ok := rt.stamp(pkt.Timestamp, arrival)
	if !ok {
		return sample{}, nil
	}
	return sample{written: true, key: segmenter.IsVP9KeyFrame(frame), pts: pts}, v.w.Write(pts, frame)
}
