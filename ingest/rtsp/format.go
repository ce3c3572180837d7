package rtsp

import (
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"github.com/nokstream/nokstream/ingest/segmenter"
)

// formatWriter records one RTP format of a session into one track of the
// session's segmenter: it depacketizes the format's packets and writes each
// frame they complete. There is one implementation per codec, each in its
// own file (format_h264.go, format_h265.go, format_aac.go, format_opus.go).
type formatWriter interface {
	// track is the segmenter track the frames go to.
	track() segmenter.Track
	// open sets up the depacketizer and the writer of track idx of seg.
	open(seg *segmenter.Segmenter, idx int) error
	// write depacketizes one packet, presented at pts on the track's
	// clock, and writes the frame it completes, if any.
	write(pkt *rtp.Packet, pts int64) error
}

// The sample rates of MPEG-4 audio's table (ISO/IEC 14496-3 1.6.3.4).
const (
	minAACSampleRate = 7350
	maxAACSampleRate = 96000
)

// newFormatWriter returns the writer of a format ingest records and
// whether it is video, or nil for a format it does not record.
func newFormatWriter(f format.Format) (formatWriter, bool) {
	switch f := f.(type) {
	case *format.H264:
		return &h264Writer{f: f}, true
	case *format.H265:
		return &h265Writer{f: f}, true
	case *format.MPEG4Audio:
		// The sample rate is the track's clock: one no encoder uses (an
		// explicit 1 Hz in the configuration) would make each access unit
		// last minutes and a segment hours.
		if f.Config == nil || f.Config.SampleRate < minAACSampleRate || f.Config.SampleRate > maxAACSampleRate {
			return nil, false
		}
		return &aacWriter{f: f}, false
	case *format.Opus:
		return &opusWriter{f: f}, false
	}
	return nil, false
}
