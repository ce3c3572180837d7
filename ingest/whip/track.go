package whip

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/rtcpreceiver"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/nokstream/nokstream/ingest/segmenter"
)

// sample is what a depacketized frame became.
type sample struct {
	written bool  // handed to the segmenter
	key     bool  // a keyframe (video)
	pts     int64 // on the session timeline, in the track's rate
}

// recTrack is one recorded track of a session.
type recTrack struct {
	ss       *session
	idx      int
	spec     offerTrack
	video    bool
	remote   *webrtc.TrackRemote
	receiver *webrtc.RTPReceiver
	rr       *rtcpreceiver.RTCPReceiver
	clock    *trackClock
	// w depacketizes the track's packets (in order) and writes the frames
	// they complete.
	w trackWriter
	// floor drops samples at or before it after the track was moved back
	// by a resync: they would overlap what was written.
	floor    int64
	hasFloor bool
	// prog tells when the track's media keeps arriving with none of it
	// recorded.
	prog *segmenter.Progress
}

// initialCodec is a track's codec before its first keyframe tells the
// parameters (the segmenter writes no init before it).
func initialCodec(t offerTrack) mp4.Codec {
	switch t.codec.mime {
	case webrtc.MimeTypeH264:
		return &mp4.CodecH264{}
	case webrtc.MimeTypeVP9:
		return &mp4.CodecVP9{}
	case webrtc.MimeTypeAV1:
		return &mp4.CodecAV1{}
	default:
		return &mp4.CodecOpus{ChannelCount: t.channels}
	}
}

// newRecTrack sets up the depacketizer and writer of a track. Called with
// the session's lock held.
func (ss *session) newRecTrack(idx int, t remoteTrack) (*recTrack, error) {
	rr, err := ss.newRTCPReceiver(int(t.spec.codec.clockRate))
	if err != nil {
		return nil, err
	}
	rt := &recTrack{ss: ss, idx: idx, spec: t.spec, video: t.spec.kind == webrtc.RTPCodecTypeVideo, remote: t.track,
		receiver: t.receiver, rr: rr}
	rt.clock = newTrackClock(int(t.spec.codec.clockRate), rr.PacketNTP)
	if rt.w, err = newTrackWriter(t.spec.codec.mime, ss.seg, idx); err != nil {
		return nil, err
	}
	return rt, nil
}

// stamp returns the session time of a frame of the track with RTP
// timestamp ts that arrived at arrival, and whether it may be written
// (admit). Called with the session's lock held.
func (rt *recTrack) stamp(ts uint32, arrival time.Time) (int64, bool) {
	pts, jumped := rt.ss.tl.pts(rt.clock, ts, arrival)
	if jumped {
		rt.ss.s.m.pub.Errors.WithLabelValues(transport, "timestamp").Inc()
		rt.ss.warnLocked("timestamp", fmt.Errorf("track %d: RTP timestamp jumped, re-anchored to arrival time", rt.idx))
	}
	return pts, rt.admit(pts)
}

// admit reports whether a sample at pts may be written: not at or before
// the floor a backward resync left.
func (rt *recTrack) admit(pts int64) bool {
	if rt.hasFloor {
		if pts <= rt.floor {
			return false
		}
		rt.hasFloor = false
	}
	return true
}

// readRTP reads a track's packets until the connection closes.
func (ss *session) readRTP(rt *recTrack) {
	defer ss.readers.Done()
	for {
		pkt, _, err := rt.remote.ReadRTP()
		if err != nil {
			return
		}
		arrival := ss.s.now()
		ss.lastPacket.Store(arrival.UnixNano())
		ss.s.m.bytesIn.Add(float64(len(pkt.Payload)))
		pkts, lost, err := rt.rr.ProcessPacket2(pkt, arrival, true)
		if err != nil {
			ss.mu.Lock()
			ss.s.m.pub.Errors.WithLabelValues(transport, "decode").Inc()
			ss.warnLocked("decode", err)
			ss.mu.Unlock()
			continue
		}
		if lost > 0 {
			ss.s.m.lost.Add(float64(lost))
			if rt.video {
				ss.mu.Lock()
				ss.kf.lost()
				ss.mu.Unlock()
			}
		}
		if ss.writePackets(rt, pkts, arrival) {
			return
		}
	}
}

// writePackets writes ordered packets of a track. It reports whether the
// session must stop reading (closed, or the spool failed).
func (ss *session) writePackets(rt *recTrack, pkts []*rtp.Packet, arrival time.Time) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return true
	}
	ss.lastMedia = arrival
	ss.obs.Media()
	for _, p := range pkts {
		// Padding-only packets (bandwidth probes) carry no media.
		if len(p.Payload) == 0 {
			continue
		}
		smp, err := rt.w.write(rt, p, arrival)
		if why := rt.prog.Packet(arrival, err); why != "" {
			// Nothing of the track is recorded (parameter sets that do
			// not parse, every frame refused): the session stays, and
			// the stream's timeline says why it has no footage.
			ss.s.m.pub.Errors.WithLabelValues(transport, "unrecorded").Inc()
			ss.s.log.Warn("whip media arriving but not recorded", "stream", ss.stream, "reason", why)
			ss.obs.Refused(why)
		}
		if err != nil {
			var oerr *segmenter.OutputError
			if errors.As(err, &oerr) {
				// The spool cannot take the data: stop this publisher
				// rather than pretend to record.
				ss.s.m.pub.Errors.WithLabelValues(transport, "write").Inc()
				ss.s.log.Error("spooling failed, closing publisher", "stream", ss.stream, "err", err)
				ss.end(endSpool)
				return true
			}
			if errors.Is(err, segmenter.ErrBitrate) {
				// One publisher may not fill the spool: end it, and say why.
				ss.s.m.pub.Errors.WithLabelValues(transport, "bitrate").Inc()
				ss.s.log.Warn("publisher above the bitrate cap, closing it", "stream", ss.stream, "err", err)
				ss.end(endBitrate)
				return true
			}
			if errors.Is(err, segmenter.ErrCodecChanges) {
				// Nor cut a segment of every frame.
				ss.s.m.pub.Errors.WithLabelValues(transport, "codec").Inc()
				ss.s.log.Warn("publisher changed its codec configuration too often, closing it", "stream", ss.stream, "err", err)
				ss.end(endCodec)
				return true
			}
			if rt == ss.video && errors.Is(err, segmenter.ErrWaitingKeyframe) {
				ss.kf.lost()
			}
			kind := "decode"
			switch {
			case errors.Is(err, segmenter.ErrTimestampBack):
				kind = "timestamp"
			case errors.Is(err, segmenter.ErrCodec):
				kind = "codec"
			}
			ss.s.m.pub.Errors.WithLabelValues(transport, kind).Inc()
			ss.warnLocked(kind, err)
			continue
		}
		if smp.written && rt == ss.video {
			ss.kf.written(smp.pts, smp.key)
		}
	}
	return false
}

// readRTCP reads a track's RTCP until the connection closes: sender
// reports feed lip sync and the receiver reports' delay fields. Reading
// also drives pion's interceptors (NACK).
func (ss *session) readRTCP(rt *recTrack) {
	defer ss.readers.Done()
	for {
		pkts, _, err := rt.receiver.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			sr, ok := p.(*rtcp.SenderReport)
			if !ok || sr.SSRC != uint32(rt.remote.SSRC()) {
				continue
			}
			rt.rr.ProcessSenderReport(sr, ss.s.now())
			ss.resync()
		}
	}
}

// resync aligns the tracks by their sender reports.
func (ss *session) resync() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, rt := range ss.rec {
		last := rt.clock.ext + rt.clock.offset
		delta := ss.tl.resync(rt.clock)
		if delta == 0 {
			continue
		}
		if delta < 0 && (!rt.hasFloor || last > rt.floor) {
			// A second shift back before any sample passed the floor
			// must not lower it: the segmenter has written up to the
			// higher one.
			rt.floor, rt.hasFloor = last, true
		}
		ss.s.log.Debug("track aligned by sender reports", "stream", ss.stream, "track", rt.idx,
			"shift", time.Duration(delta*int64(time.Second)/rt.clock.rate))
	}
}
