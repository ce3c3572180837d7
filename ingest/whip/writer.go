package whip

import (
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/nokstream/nokstream/ingest/segmenter"
)

// trackWriter depacketizes one track's RTP packets, in order, and writes
// each frame they complete to the track's segmenter track. There is one
// implementation per codec, each in its own file (writer_h264.go,
// writer_vp9.go, writer_av1.go, writer_opus.go). Called with the session's
// lock held.
type trackWriter interface {
	// write handles one packet that arrived at arrival; rt.stamp places a
	// frame on the session timeline.
	write(rt *recTrack, pkt *rtp.Packet, arrival time.Time) (sample, error)
}

// newTrackWriter returns the writer of a track of codec mime (one the
// offer accepted), writing track idx of seg.
func newTrackWriter(mime string, seg *segmenter.Segmenter, idx int) (trackWriter, error) {
	switch mime {
	case webrtc.MimeTypeH264:
		return newH264Writer(seg, idx)
	case webrtc.MimeTypeVP9:
		return newVP9Writer(seg, idx)
	case webrtc.MimeTypeAV1:
		return newAV1Writer(seg, idx)
	default:
		return newOpusWriter(seg, idx)
	}
}
