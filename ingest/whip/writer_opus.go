package whip

import (
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpsimpleaudio"
	"github.com/pion/rtp"

	"github.com/nokstream/nokstream/ingest/segmenter"
)

// opusWriter records Opus (RFC 7587): one frame per packet.
type opusWriter struct {
	dec *rtpsimpleaudio.Decoder
	w   *segmenter.Opus
}

func newOpusWriter(seg *segmenter.Segmenter, idx int) (*opusWriter, error) {
	dec := &rtpsimpleaudio.Decoder{}
	if err := dec.Init(); err != nil {
		return nil, err
	}
	return &opusWriter{dec: dec, w: segmenter.NewOpus(seg, idx)}, nil
}

func (o *opusWriter) write(rt *recTrack, pkt *rtp.Packet, arrival time.Time) (sample, error) {
	frame, err := o.dec.Decode(pkt)
	if err != nil {
		return sample{}, fmt.Errorf("opus rtp: %w", err)
	}
	pts, ok := rt.stamp(pkt.Timestamp, arrival)
	if !ok {
		return sample{}, nil
	}
	return sample{written: true, pts: pts}, o.w.Write(pts, frame)
}
