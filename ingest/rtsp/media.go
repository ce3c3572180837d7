package rtsp

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"github.com/nokstream/nokstream/ingest/observe"
	"github.com/nokstream/nokstream/ingest/segmenter"
)

// packetSource is what a recorder reads packets from: a publisher's
// *gortsplib.ServerSession or a pulled camera's *gortsplib.Client.
type packetSource interface {
	OnPacketRTP(medi *description.Media, forma format.Format, cb gortsplib.OnPacketRTPFunc)
	PacketPTS2(medi *description.Media, pkt *rtp.Packet) (int64, bool)
}

var (
	_ packetSource = (*gortsplib.ServerSession)(nil)
	_ packetSource = (*gortsplib.Client)(nil)
)

// recorder feeds the media of one RTSP session, published or pulled, into
// a segmenter: one H.264 track and one AAC or Opus track at most, the
// first of each in the description.
type recorder struct {
	stream    string
	transport string // metric label: rtsp, rtsps or rtsp_pull
	log       *slog.Logger
	m         *Metrics
	seg       *segmenter.Segmenter
	medias    []mediaWriter
	codecs    []string
	now       func() time.Time

	mu        sync.Mutex
	closed    bool
	session   *observe.Session
	lastWarn  map[string]time.Time
	onFailure func() // ends the RTSP session when the spool fails
	// stopReason says why ingest ended the session itself (a publisher
	// above the bitrate cap); empty otherwise.
	stopReason string
}

// mediaWriter is a recorded format of the session's description and its
// writer.
type mediaWriter struct {
	media  *description.Media
	format format.Format
	w      formatWriter
	clock  *mediaClock
	// prog tells when the track's media keeps arriving with none of it
	// recorded.
	prog *segmenter.Progress
}

// The RTP clock of a track may leap ahead of the time between its packets'
// arrivals by maxTimestampJump, or fall back by maxTimestampBack (B-frames
// are sent out of presentation order), before it is taken as a jump of the
// sender's clock (an encoder restarted, a clock set) and re-anchored to the
// arrival time. Otherwise a jump back would drop everything the camera
// sends until its clock caught up again, and a jump ahead would make one
// segment last hours and date the rest hours from when they were captured.
// As WHIP's timeline does (whip.maxTimestampJump).
//
// A publisher whose media runs ahead of real time by more than
// maxMediaAhead over its session (it sends faster than it captures, one
// step under maxTimestampJump after another) is ended: its media would be
// dated ever further into the future.
const (
	maxTimestampJump = 10 * time.Second
	maxTimestampBack = 3 * time.Second
	maxMediaAhead    = 30 * time.Second
)

// mediaClock re-anchors one track's presentation timestamps (gortsplib's,
// in the clock rate) when the sender's RTP clock jumps.
type mediaClock struct {
	rate    int64
	started bool
	offset  int64     // added to gortsplib's timestamps
	max     int64     // the latest timestamp given out
	arrival time.Time // of the last packet
	// The first packet's timestamp and arrival.
	pts0     int64
	arrival0 time.Time
}

// ahead returns how far the track's media time at pts, which arrived at
// arrival, has run ahead of the time since its first packet arrived.
func (c *mediaClock) ahead(pts int64, arrival time.Time) time.Duration {
	d := pts - c.pts0
	media := time.Duration(d/c.rate)*time.Second + time.Duration(d%c.rate)*time.Second/time.Duration(c.rate)
	return media - arrival.Sub(c.arrival0)
}

// pts returns the session time of a packet gortsplib timed at raw that
// arrived at arrival. jumped reports that the clock was re-anchored.
func (c *mediaClock) pts(raw int64, arrival time.Time) (pts int64, jumped bool) {
	if !c.started {
		c.started, c.max, c.arrival = true, raw, arrival
		c.pts0, c.arrival0 = raw, arrival
		return raw, false
	}
	elapsed := max(arrival.Sub(c.arrival), 0)
	c.arrival = arrival
	pts = raw + c.offset
	if pts > c.max+ticks(elapsed+maxTimestampJump, c.rate) || pts < c.max-ticks(maxTimestampBack, c.rate) {
		pts = c.max + max(ticks(elapsed, c.rate), 1)
		c.offset = pts - raw
		jumped = true
	}
	c.max = max(c.max, pts)
	return pts, jumped
}

// ticks converts a duration into ticks of rate.
func ticks(d time.Duration, rate int64) int64 {
	sec := int64(d / time.Second)
	rem := int64(d % time.Second)
	return sec*rate + rem*rate/int64(time.Second)
}

// errNoMedia is returned for a description with nothing ingest can record.
var errNoMedia = errors.New("no supported media: need H.264 or H.265 video and/or AAC (7.35–96 kHz) or Opus audio")

// newRecorder builds the per-media writers of desc over one segmenter
// writing to out.
func newRecorder(stream, transport string, desc *description.Session, cfg segmenter.Config, out segmenter.Output,
	log *slog.Logger, m *Metrics, now func() time.Time) (*recorder, error) {
	r := &recorder{stream: stream, transport: transport, log: log, m: m, now: now, lastWarn: map[string]time.Time{}}
	var tracks []segmenter.Track
	var pend []mediaWriter
	hasVideo, hasAudio := false, false
	for _, md := range desc.Medias {
		for _, f := range md.Formats {
			w, video := newFormatWriter(f)
			if w == nil || (video && hasVideo) || (!video && hasAudio) {
				continue
			}
			if video {
				hasVideo = true
			} else {
				hasAudio = true
			}
			tracks = append(tracks, w.track())
			pend = append(pend, mediaWriter{media: md, format: f, w: w, clock: &mediaClock{rate: int64(f.ClockRate())}})
		}
	}
	if !hasVideo && !hasAudio {
		return nil, errNoMedia
	}
	seg, err := segmenter.New(cfg, tracks, out, now)
	if err != nil {
		return nil, err
	}
	r.seg = seg
	for i, mw := range pend {
		if err := mw.w.open(seg, i); err != nil {
			return nil, fmt.Errorf("media %d: %w", i, err)
		}
		mw.prog = seg.Progress(i, mw.format.Codec())
		r.medias = append(r.medias, mw)
		r.codecs = append(r.codecs, mw.format.Codec())
	}
	// Say what is not recorded (a second video, G.711 audio, metadata…),
	// so that an operator does not wonder where it went.
	for _, md := range desc.Medias {
		for _, f := range md.Formats {
			used := false
			for _, mw := range r.medias {
				used = used || mw.format == f
			}
			if !used {
				log.Warn("media not recorded", "stream", stream, "codec", f.Codec(),
					"reason", "only the first H.264/H.265 video and the first AAC/Opus audio are recorded")
			}
		}
	}
	return r, nil
}

// setSession sets the observation session that receives the arrival of
// every packet.
func (r *recorder) setSession(session *observe.Session) {
	r.mu.Lock()
	r.session = session
	r.mu.Unlock()
}

// attach starts reading the recorder's media from src. session (which may
// be set later with setSession) receives the arrival of every packet;
// onFailure ends the RTSP session when the spool cannot take the media.
func (r *recorder) attach(src packetSource, session *observe.Session, onFailure func()) {
	r.mu.Lock()
	r.session = session
	r.onFailure = onFailure
	r.mu.Unlock()
	for _, mw := range r.medias {
		src.OnPacketRTP(mw.media, mw.format, func(pkt *rtp.Packet) {
			pts, ok := src.PacketPTS2(mw.media, pkt)
			if !ok {
				return
			}
			r.packet(mw, pkt, pts)
		})
	}
}

func (r *recorder) packet(mw mediaWriter, pkt *rtp.Packet, pts int64) {
	r.m.bytesIn.Add(float64(len(pkt.Payload)))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.session != nil {
		r.session.Media()
	}
	arrival := r.now()
	pts, jumped := mw.clock.pts(pts, arrival)
	if jumped {
		r.m.errors.WithLabelValues(r.transport, "timestamp").Inc()
		r.warnLocked("timestamp", fmt.Errorf("%s: RTP timestamp jumped, re-anchored to arrival time", mw.format.Codec()))
	}
	if ahead := mw.clock.ahead(pts, arrival); ahead > maxMediaAhead {
		// Dropped: it would be dated in the future.
		r.endLocked("timestamp", "publisher's media runs ahead of real time: ",
			"publisher's media runs ahead of real time, closing session",
			fmt.Errorf("%s: %s ahead after %s, at most %s", mw.format.Codec(), ahead.Round(time.Millisecond),
				arrival.Sub(mw.clock.arrival0).Round(time.Millisecond), maxMediaAhead))
		return
	}
	err := mw.w.write(pkt, pts)
	if why := mw.prog.Packet(arrival, err); why != "" {
		r.unrecordedLocked(why)
	}
	if err == nil {
		return
	}
	if errors.Is(err, segmenter.ErrBitrate) || errors.Is(err, segmenter.ErrCodecChanges) {
		// One publisher may not fill the spool, nor cut a segment of
		// every frame.
		if errors.Is(err, segmenter.ErrCodecChanges) {
			r.endLocked("codec", "publisher changed its codec configuration too often: ",
				"publisher changed its codec configuration too often, closing session", err)
		} else {
			r.endLocked("bitrate", "publisher sent above the session bitrate cap: ", "publisher above the bitrate cap, closing session", err)
		}
		return
	}
	var werr *segmenter.OutputError
	if errors.As(err, &werr) {
		// The spool cannot take the data: stop this session rather than
		// pretend to record.
		r.m.errors.WithLabelValues(r.transport, "write").Inc()
		r.log.Error("spooling failed, closing session", "stream", r.stream, "err", err)
		if r.onFailure != nil {
			go r.onFailure()
		}
		return
	}
	kind := "decode"
	switch {
	case errors.Is(err, segmenter.ErrTimestampBack):
		kind = "timestamp"
	case errors.Is(err, segmenter.ErrCodec):
		kind = "codec"
	}
	r.m.errors.WithLabelValues(r.transport, kind).Inc()
	r.warnLocked(kind, err)
}

// unrecordedLocked reports a track whose media keeps arriving with none of
// it recorded (segmenter.Progress): the session stays (valid parameter sets
// or a keyframe may still come), and the stream's timeline shows why it
// has no footage, as a refused observation.
func (r *recorder) unrecordedLocked(why string) {
	r.m.errors.WithLabelValues(r.transport, "unrecorded").Inc()
	r.log.Warn("rtsp media arriving but not recorded", "stream", r.stream, "transport", r.transport, "reason", why)
	if r.session != nil {
		r.session.Refused(why)
	}
}

// endLocked ends the session, once, for what the publisher did: it is
// counted as a media error of kind, logged with msg and err, and the stop
// observation says why and err.
func (r *recorder) endLocked(kind, why, msg string, err error) {
	if r.stopReason != "" {
		return
	}
	r.m.errors.WithLabelValues(r.transport, kind).Inc()
	r.stopReason = why + err.Error()
	r.log.Warn(msg, "stream", r.stream, "err", err)
	if r.onFailure != nil {
		go r.onFailure()
	}
}

func (r *recorder) warn(kind string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warnLocked(kind, err)
}

// warnLocked logs at most one warning of a kind per session every 10 s.
func (r *recorder) warnLocked(kind string, err error) {
	now := time.Now()
	if now.Sub(r.lastWarn[kind]) < 10*time.Second {
		return
	}
	r.lastWarn[kind] = now
	r.log.Warn("rtsp media problem", "stream", r.stream, "transport", r.transport, "kind", kind, "err", err)
}

// ingestStop returns why ingest ended the session itself, or "".
func (r *recorder) ingestStop() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopReason
}

// close ends the session's segmenter once; it reports whether it did.
func (r *recorder) close() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.closed = true
	if err := r.seg.Close(); err != nil {
		r.log.Error("closing last segment", "stream", r.stream, "err", err)
	}
	return true
}
