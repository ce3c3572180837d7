package whip

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpav1"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpsimpleaudio"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpvp9"
	"github.com/bluenviron/gortsplib/v4/pkg/rtcpreceiver"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
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
	idx      int
	spec     offerTrack
	video    bool
	remote   *webrtc.TrackRemote
	receiver *webrtc.RTPReceiver
	rr       *rtcpreceiver.RTCPReceiver
	clock    *trackClock
	// handle depacketizes one packet (in order) and writes the frame it
	// completes. Called with the session's lock held.
	handle func(pkt *rtp.Packet, arrival time.Time) (sample, error)
	// floor drops samples at or before it after the track was moved back
	// by a resync: they would overlap what was written.
	floor    int64
	hasFloor bool
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
	rt := &recTrack{idx: idx, spec: t.spec, video: t.spec.kind == webrtc.RTPCodecTypeVideo, remote: t.track,
		receiver: t.receiver, rr: rr}
	rt.clock = newTrackClock(int(t.spec.codec.clockRate), rr.PacketNTP)
	seg := ss.seg
	// at converts a frame's RTP timestamp to the session timeline.
	at := func(ts uint32, arrival time.Time) int64 {
		pts, jumped := ss.tl.pts(rt.clock, ts, arrival)
		if jumped {
			ss.s.m.pub.Errors.WithLabelValues(transport, "timestamp").Inc()
			ss.warnLocked("timestamp", fmt.Errorf("track %d: RTP timestamp jumped, re-anchored to arrival time", idx))
		}
		return pts
	}
	switch t.spec.codec.mime {
	case webrtc.MimeTypeH264:
		dec := &rtph264.Decoder{PacketizationMode: 1}
		if err := dec.Init(); err != nil {
			return nil, err
		}
		w := segmenter.NewH264(seg, idx, nil, nil)
		var prevTS uint32
		var pending, sawSPS bool
		rt.handle = func(pkt *rtp.Packet, arrival time.Time) (sample, error) {
			au, err := dec.Decode(pkt)
			// Without a marker bit the decoder completes an access unit
			// when the timestamp changes: then the unit it returns is the
			// previous packet's.
			ts := pkt.Timestamp
			if pending && prevTS != ts {
				ts = prevTS
			}
			prevTS = pkt.Timestamp
			pending = errors.Is(err, rtph264.ErrMorePacketsNeeded)
			if err != nil {
				if pending || errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
					return sample{}, nil
				}
				return sample{}, fmt.Errorf("h264 rtp: %w", err)
			}
			pts := at(ts, arrival)
			if !rt.admit(pts) {
				return sample{}, nil
			}
			// An IDR starts a segment only once the parameter sets are
			// known (they come in band, with the IDR).
			for _, n := range au {
				if len(n) > 0 && h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
					sawSPS = true
				}
			}
			return sample{written: true, key: sawSPS && h264.IsRandomAccess(au), pts: pts}, w.Write(pts, au)
		}
	case webrtc.MimeTypeVP9:
		dec := &rtpvp9.Decoder{}
		if err := dec.Init(); err != nil {
			return nil, err
		}
		w := segmenter.NewVP9(seg, idx)
		rt.handle = func(pkt *rtp.Packet, arrival time.Time) (sample, error) {
			frame, err := dec.Decode(pkt)
			if err != nil {
				if errors.Is(err, rtpvp9.ErrMorePacketsNeeded) || errors.Is(err, rtpvp9.ErrNonStartingPacketAndNoPrevious) {
					return sample{}, nil
				}
				return sample{}, fmt.Errorf("vp9 rtp: %w", err)
			}
			pts := at(pkt.Timestamp, arrival)
			if !rt.admit(pts) {
				return sample{}, nil
			}
			return sample{written: true, key: segmenter.IsVP9KeyFrame(frame), pts: pts}, w.Write(pts, frame)
		}
	case webrtc.MimeTypeAV1:
		dec := &rtpav1.Decoder{}
		if err := dec.Init(); err != nil {
			return nil, err
		}
		w := segmenter.NewAV1(seg, idx)
		rt.handle = func(pkt *rtp.Packet, arrival time.Time) (sample, error) {
			tu, err := dec.Decode(pkt)
			if err != nil {
				if errors.Is(err, rtpav1.ErrMorePacketsNeeded) || errors.Is(err, rtpav1.ErrNonStartingPacketAndNoPrevious) {
					return sample{}, nil
				}
				return sample{}, fmt.Errorf("av1 rtp: %w", err)
			}
			pts := at(pkt.Timestamp, arrival)
			if !rt.admit(pts) {
				return sample{}, nil
			}
			return sample{written: true, key: segmenter.IsAV1RandomAccess(tu), pts: pts}, w.Write(pts, tu)
		}
	default: // Opus
		dec := &rtpsimpleaudio.Decoder{}
		if err := dec.Init(); err != nil {
			return nil, err
		}
		w := segmenter.NewOpus(seg, idx)
		rt.handle = func(pkt *rtp.Packet, arrival time.Time) (sample, error) {
			frame, err := dec.Decode(pkt)
			if err != nil {
				return sample{}, fmt.Errorf("opus rtp: %w", err)
			}
			pts := at(pkt.Timestamp, arrival)
			if !rt.admit(pts) {
				return sample{}, nil
			}
			return sample{written: true, pts: pts}, w.Write(pts, frame)
		}
	}
	return rt, nil
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
				ss.needKey = true
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
		smp, err := rt.handle(p, arrival)
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
			if rt == ss.video && errors.Is(err, segmenter.ErrWaitingKeyframe) {
				ss.needKey = true
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
			ss.lastVideoPTS = smp.pts
			if smp.key {
				ss.needKey = false
				// Mirror the segmenter's cut: the first keyframe opens a
				// segment, and so does each keyframe a segment duration
				// after the one that opened the current segment.
				if !ss.gotKey {
					ss.gotKey, ss.cutPTS = true, smp.pts
				} else if smp.pts-ss.cutPTS >= ticks(ss.s.cfg.Segment.SegmentDuration, rt.clock.rate) {
					ss.cutPTS = smp.pts
				}
			}
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
