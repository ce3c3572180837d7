package segmenter

import (
	"fmt"
	"time"
)

// Progress watches one track of a session for media that keeps arriving
// while none of it is recorded: a camera whose description carries
// parameter sets that do not parse and that sends none in band, one that
// never sends a keyframe, or one whose every frame is refused. Such a
// session looks alive (its packets arrive, no gap is reported) and records
// nothing; Progress tells the transport when to say so on the stream's
// timeline, once a stall.
//
// It is called under the same lock as the segmenter's writes.
type Progress struct {
	s        *Segmenter
	track    int
	name     string
	samples  int64
	since    time.Time // the first packet since the track last recorded
	reported bool
	err      error // the last error writing the track's media
}

// Progress returns a watch on a track; name says what it is in the reason
// ("H264", "MPEG-4 Audio").
func (s *Segmenter) Progress(trackIndex int, name string) *Progress {
	return &Progress{s: s, track: trackIndex, name: name}
}

// Packet notes a packet of the track that arrived at, and what writing it
// returned. It returns a reason, once a stall, when the track's media has
// been arriving for Config.UnrecordedAfter with nothing recorded; "" else.
func (p *Progress) Packet(at time.Time, err error) string {
	if n := p.s.tracks[p.track].samples; n != p.samples {
		p.samples, p.since, p.reported, p.err = n, at, false, nil
		return ""
	}
	if err != nil {
		p.err = err
	}
	if p.since.IsZero() {
		p.since = at
	}
	after := p.s.cfg.UnrecordedAfter
	if p.reported || at.Sub(p.since) < after {
		return ""
	}
	p.reported = true
	why := "waiting for its parameter sets or a keyframe"
	if p.err != nil {
		why = p.err.Error()
	}
	what := "recorded nothing"
	if p.samples > 0 {
		what = "recorded nothing more"
	}
	return fmt.Sprintf("%s media arriving for %s %s: %s", p.name, at.Sub(p.since).Round(time.Second), what, why)
}
