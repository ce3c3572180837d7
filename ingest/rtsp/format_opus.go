package rtsp

import (
	"fmt"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpsimpleaudio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/rtp"

	"github.com/nokstream/nokstream/ingest/segmenter"
)

// opusWriter records Opus audio (RFC 7587), stereo unless the description
// says otherwise.
type opusWriter struct {
	f   *format.Opus
	dec *rtpsimpleaudio.Decoder
	w   *segmenter.Opus
}

func (o *opusWriter) track() segmenter.Track {
	ch := o.f.ChannelCount
	if ch == 0 {
		ch = 2
	}
	return segmenter.Track{Codec: &mp4.CodecOpus{ChannelCount: ch}, TimeScale: 48000}
}

func (o *opusWriter) open(seg *segmenter.Segmenter, idx int) error {
	dec, err := o.f.CreateDecoder()
	if err != nil {
		return err
	}
	o.dec, o.w = dec, segmenter.NewOpus(seg, idx)
	return nil
}

func (o *opusWriter) write(pkt *rtp.Packet, pts int64) error {
	op, err := o.dec.Decode(pkt)
	if err != nil {
		return fmt.Errorf("opus rtp: %w", err)
	}
	return o.w.Write(pts, op)
}
