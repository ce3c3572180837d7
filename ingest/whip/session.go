package whip

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/rtcpreceiver"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"

	"github.com/nokstream/nokstream/ingest/access"
	"github.com/nokstream/nokstream/ingest/observe"
	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/internal/events"
)

// Why a session ended: the reason label of the ended metric.
const (
	endDeleted   = "deleted"
	endReplaced  = "replaced"
	endStopping  = "server_stopping"
	endFailed    = "connection_failed"
	endHandshake = "handshake_timeout"
	endNoMedia   = "no_media"
	endSpool     = "spool_error"
	endBitrate   = "bitrate_cap"
	endCodec     = "codec_changes"
	endExamOver  = "exam_over"
)

// endDetails say in words why a session ended, for its stop observation.
var endDetails = map[string]string{
	endDeleted:   "the publisher ended the WHIP session",
	endReplaced:  "taken over by a new WHIP session of the stream after its silence",
	endStopping:  "ingest stopping",
	endFailed:    "WebRTC connection lost",
	endHandshake: "WebRTC connection not established in time",
	endNoMedia:   "publisher sent no media",
	endSpool:     "spool could not take the media",
	endBitrate:   "publisher sent above the session bitrate cap",
	endCodec:     "publisher changed its codec configuration too often",
	endExamOver:  "the candidate's exam window ended",
}

// stopCauses classify the end reasons for the stop observation
// (events.Observation.Cause): whether the publisher ended the session, lost
// it (the candidate page reconnects by itself), or ingest did.
var stopCauses = map[string]string{
	endDeleted:   events.CauseEnded,
	endReplaced:  events.CauseEnded,
	endExamOver:  events.CauseEnded,
	endFailed:    events.CauseLost,
	endHandshake: events.CauseLost,
	endNoMedia:   events.CauseLost,
	endStopping:  events.CauseIngest,
	endSpool:     events.CauseIngest,
	endBitrate:   events.CauseIngest,
	endCodec:     events.CauseIngest,
}

// endCause carries an end reason through a context's cause.
type endCause string

func (e endCause) Error() string { return string(e) }

// Keyframe requests: every firstKeyframeRetry until the first keyframe
// (a browser starts with one, but it may be lost or come before the
// session records), then when a segment is due and at most every
// keyframeRetry while none comes; and at once, then every keyframeRetry,
// when video was lost (packets the network lost, or a stream the writer
// cannot follow until the next keyframe), so that little is dropped.
const (
	firstKeyframeRetry = 2 * time.Second
	keyframeRetry      = time.Second
	tickInterval       = 100 * time.Millisecond
)

// session is one WHIP publisher session: a PeerConnection whose tracks are
// recorded by one segmenter.
type session struct {
	s          *Server
	id         string
	pub        access.Publisher
	stream     string
	remote     string
	etag       string
	offer      *offer
	remoteUfrg string
	// candidates counts the remote ICE candidates given, in the offer
	// and trickled (maxRemoteCandidates); under mu.
	candidates int
	pc         *webrtc.PeerConnection
	answered   time.Time

	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
	prev   *session // the session this one replaced

	connected     chan struct{}
	failed        chan struct{}
	connectedOnce sync.Once
	failedOnce    sync.Once
	tracks        chan remoteTrack
	readers       sync.WaitGroup

	mu        sync.Mutex
	obs       *observe.Session // continuity of the recording
	seg       *segmenter.Segmenter
	tl        timeline
	rec       []*recTrack
	video     *recTrack
	recording bool
	closed    bool
	lastMedia time.Time
	// lastPacket is when the last RTP packet arrived (unix nanoseconds),
	// 0 before any.
	lastPacket atomic.Int64
	lastWarn   map[string]time.Time
	kf         keyframes // when to ask for a keyframe
}

type remoteTrack struct {
	track    *webrtc.TrackRemote
	receiver *webrtc.RTPReceiver
	spec     offerTrack
}

// newSession negotiates a session: it answers the offer and gathers the
// local candidates (host candidates on the mux sockets, so at once). The
// session records nothing until it is registered and run.
func (s *Server) newSession(pub access.Publisher, off *offer, remote string) (*session, string, *httpError) {
	ctx, cancel := context.WithCancelCause(context.Background())
	ss := &session{
		s: s, id: newSessionID(), pub: pub, stream: pub.Site + "/" + pub.Device, remote: remote, offer: off,
		ctx: ctx, cancel: cancel, done: make(chan struct{}),
		connected: make(chan struct{}), failed: make(chan struct{}), tracks: make(chan remoteTrack, 4),
		lastWarn: map[string]time.Time{},
	}
	ss.etag = `"` + ss.id + `"`
	ss.remoteUfrg = sdpAttribute(off.sdp, "ice-ufrag")
	ss.candidates = off.candidates
	api, err := s.api(ss.stream)
	if err != nil {
		cancel(err)
		return nil, "", refusal(http.StatusInternalServerError, "internal", "set up WebRTC: %v", err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		cancel(err)
		return nil, "", refusal(http.StatusInternalServerError, "internal", "set up WebRTC: %v", err)
	}
	ss.pc = pc
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			ss.connectedOnce.Do(func() { close(ss.connected) })
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			ss.failedOnce.Do(func() { close(ss.failed) })
		}
	})
	pc.OnTrack(func(track *webrtc.TrackRemote, receiver *webrtc.RTPReceiver) {
		spec, ok := off.track(track.Kind())
		if !ok {
			return
		}
		select {
		case ss.tracks <- remoteTrack{track: track, receiver: receiver, spec: spec}:
		default:
		}
	})
	answer, herr := ss.answer()
	if herr != nil {
		ss.abort()
		return nil, "", herr
	}
	ss.answered = s.now()
	return ss, answer, nil
}

// answer applies the offer and returns the answer with every local
// candidate (no trickle from our side: the answer is complete).
func (ss *session) answer() (string, *httpError) {
	pc := ss.pc
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: ss.offer.sdp}); err != nil {
		return "", refusal(http.StatusBadRequest, "bad_sdp", "SDP offer refused: %v", err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", refusal(http.StatusBadRequest, "bad_sdp", "cannot answer the offer: %v", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", refusal(http.StatusBadRequest, "bad_sdp", "cannot answer the offer: %v", err)
	}
	select {
	case <-gathered:
	case <-time.After(5 * time.Second):
		return "", refusal(http.StatusServiceUnavailable, "internal", "gathering local ICE candidates timed out")
	}
	return pc.LocalDescription().SDP, nil
}

// api builds the pion API of one session. MediaEngine and interceptors are
// per PeerConnection (pion requires it); the sockets are shared.
func (s *Server) api(stream string) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	// Only the codecs ingest records are registered: pion answers nothing
	// else. PLI and FIR let ingest ask for keyframes; NACK recovers lost
	// packets; transport-cc feedback lets the sender's bandwidth estimate
	// rise above its start value.
	fb := []webrtc.RTCPFeedback{{Type: "ccm", Parameter: "fir"}}
	for i, c := range videoCodecs {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: c.mime, ClockRate: c.clockRate, SDPFmtpLine: c.fmtp, RTCPFeedback: fb},
			PayloadType:        webrtc.PayloadType(96 + i),
		}, webrtc.RTPCodecTypeVideo); err != nil {
			return nil, err
		}
	}
	for _, c := range audioCodecs {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: c.mime, ClockRate: c.clockRate, Channels: c.channels, SDPFmtpLine: c.fmtp},
			PayloadType:        111,
		}, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, err
		}
	}
	ir := &interceptor.Registry{}
	// No RTCP report interceptor: each track's rtcpreceiver sends the
	// receiver reports and reads the sender reports ingest aligns on.
	if err := webrtc.ConfigureNack(me, ir); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureTWCCSender(me, ir); err != nil {
		return nil, err
	}
	var se webrtc.SettingEngine
	se.LoggerFactory = slogFactory{s.log.With("stream", stream)}
	networks := []webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6}
	if s.udpMux != nil {
		se.SetICEUDPMux(s.udpMux)
	} else if err := se.SetEphemeralUDPPortRange(s.cfg.UDPPortMin, s.cfg.UDPPortMax); err != nil {
		return nil, err
	}
	if s.tcpMux != nil {
		se.SetICETCPMux(s.tcpMux)
		networks = append(networks, webrtc.NetworkTypeTCP4, webrtc.NetworkTypeTCP6)
	}
	se.SetNetworkTypes(networks)
	se.SetIncludeLoopbackCandidate(s.loopback)
	// Browsers hide their host addresses behind mDNS names; their
	// connectivity checks still reach our candidates and teach us their
	// address, so ingest neither resolves nor publishes mDNS names.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetICETimeouts(5*time.Second, s.cfg.ReadTimeout, 2*time.Second)
	if len(s.cfg.NAT1To1IPs) > 0 {
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: s.cfg.NAT1To1IPs, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteAppend,
		}); err != nil {
			return nil, err
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// track returns the offered track of a kind.
func (o *offer) track(kind webrtc.RTPCodecType) (offerTrack, bool) {
	for _, t := range o.tracks {
		if t.kind == kind {
			return t, true
		}
	}
	return offerTrack{}, false
}

// sdpAttribute returns the first value of an attribute in an SDP text.
func sdpAttribute(sdpText, key string) string {
	for _, line := range strings.Split(sdpText, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a="+key+":"); ok {
			return v
		}
	}
	return ""
}

func (ss *session) location() string {
	return "/whip/" + ss.pub.Site + "/" + ss.pub.Device + "/" + ss.id
}

// end asks the session to end; run does the rest.
func (ss *session) end(reason string) { ss.cancel(endCause(reason)) }

// abort closes a session that never ran.
func (ss *session) abort() {
	ss.cancel(endCause(endStopping))
	if ss.pc != nil {
		_ = ss.pc.Close()
	}
}

// reason returns why ctx ended.
func (ss *session) reason() string {
	var e endCause
	if errors.As(context.Cause(ss.ctx), &e) {
		return string(e)
	}
	return endStopping
}

// run records the session until it ends, then tears it down.
func (ss *session) run() {
	defer ss.s.wg.Done()
	defer close(ss.done)
	reason := ss.record()
	// A session ends only after the one it replaced, even when it ended
	// before recording: a session replacing it in turn waits for it, and
	// so for every session before (a page reloaded twice in a row).
	if prev := ss.prev; prev != nil {
		<-prev.done
		ss.prev = nil
	}
	ss.teardown(reason)
}

// record waits for the connection and the tracks, records them, and
// returns why the session ended.
func (ss *session) record() string {
	cfg := ss.s.cfg
	handshake := time.NewTimer(cfg.HandshakeTimeout)
	defer handshake.Stop()
	select {
	case <-ss.connected:
		ss.s.m.connect.Observe(ss.s.now().Sub(ss.answered).Seconds())
	case <-ss.failed:
		return endFailed
	case <-ss.ctx.Done():
		return ss.reason()
	case <-handshake.C:
		return endHandshake
	}

	// pion reports a track with its first packet. Wait for every track the
	// offer sends, or for TrackTimeout once one has come; pion buffers the
	// media meanwhile.
	var got []remoteTrack
	gather := time.NewTimer(cfg.TrackTimeout)
	defer gather.Stop()
	noMedia := time.NewTimer(cfg.ReadTimeout)
	defer noMedia.Stop()
wait:
	for len(got) < len(ss.offer.tracks) {
		select {
		case t := <-ss.tracks:
			got = append(got, t)
		case <-gather.C:
			if len(got) > 0 {
				break wait
			}
		case <-noMedia.C:
			return endNoMedia
		case <-ss.failed:
			return endFailed
		case <-ss.ctx.Done():
			return ss.reason()
		}
	}
	// The replaced session closes its last segment first, so that the
	// stream's segments stay in order.
	if ss.prev != nil {
		select {
		case <-ss.prev.done:
		case <-ss.ctx.Done():
			return ss.reason()
		}
	}
	if err := ss.startRecording(got); err != nil {
		ss.s.log.Error("whip session cannot record", "stream", ss.stream, "err", err)
		return endSpool
	}

	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if reason := ss.tick(ss.s.now()); reason != "" {
				return reason
			}
		case <-ss.failed:
			return endFailed
		case <-ss.ctx.Done():
			return ss.reason()
		}
	}
}

// startRecording builds the segmenter of the tracks that came and starts
// reading them.
func (ss *session) startRecording(got []remoteTrack) error {
	// Video first: the segmenter cuts on the first video track.
	var ordered []remoteTrack
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		for _, t := range got {
			if t.spec.kind == kind {
				ordered = append(ordered, t)
			}
		}
	}
	tracks := make([]segmenter.Track, len(ordered))
	for i, t := range ordered {
		tracks[i] = segmenter.Track{Codec: initialCodec(t.spec), TimeScale: t.spec.codec.clockRate}
	}
	seg, err := segmenter.New(ss.s.cfg.Segment, tracks, ss.s.outputs(ss.pub.Site, ss.pub.Device, ss.pub.Source), ss.s.now)
	if err != nil {
		return err
	}
	seg.OnCodecChange(func(track int, codec string) {
		// Browsers change the H.264 resolution when they adapt to CPU or
		// bandwidth; each change is a new SPS and so a new init segment.
		ss.s.log.Warn("codec configuration changed mid-stream, starting a new init segment",
			"stream", ss.stream, "track", track, "codec", codec)
		// Called inside a write, under ss.mu: the segmenter closed its
		// segment, and the video's next keyframe opens one.
		if ss.video != nil && track == ss.video.idx {
			ss.kf.codecChanged()
		}
	})
	now := ss.s.now()
	ss.mu.Lock()
	ss.seg = seg
	var codecs []string
	for i, t := range ordered {
		rt, err := ss.newRecTrack(i, t)
		if err != nil {
			ss.mu.Unlock()
			return err
		}
		name := strings.TrimPrefix(strings.TrimPrefix(t.spec.codec.mime, "video/"), "audio/")
		rt.prog = seg.Progress(i, name)
		ss.rec = append(ss.rec, rt)
		if rt.video && ss.video == nil {
			ss.video = rt
		}
		codecs = append(codecs, name)
	}
	if ss.video != nil {
		ss.kf.segment = ticks(ss.s.cfg.Segment.SegmentDuration, ss.video.clock.rate)
		ss.tl.setReference(ss.video.clock)
	} else {
		ss.tl.setReference(ss.rec[0].clock)
	}
	ss.lastMedia = now
	ss.recording = true
	ss.obs = ss.s.cont.Start(ss.pub.Site, ss.pub.Device,
		fmt.Sprintf("whip publisher from %s (%s)", ss.remote, strings.Join(codecs, ",")))
	ss.mu.Unlock()

	m := ss.s.m
	m.pub.Sessions.WithLabelValues(transport, ss.pub.Source).Inc()
	m.pub.Active.WithLabelValues(transport, ss.pub.Source).Inc()
	ss.s.log.Info("whip publisher recording", "stream", ss.stream, "source", ss.pub.Source, "session", ss.id,
		"remote_addr", ss.remote, "ice", ss.selectedPair(), "codecs", strings.Join(codecs, ","))
	for _, rt := range ss.rec {
		ss.readers.Add(2)
		go ss.readRTP(rt)
		go ss.readRTCP(rt)
	}
	return nil
}

// selectedPair describes the ICE candidate pair in use.
func (ss *session) selectedPair() string {
	receivers := ss.pc.GetReceivers()
	if len(receivers) == 0 || receivers[0].Transport() == nil {
		return ""
	}
	pair, err := receivers[0].Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return ""
	}
	return fmt.Sprintf("%s %s:%d <-> %s:%d", pair.Local.Protocol, pair.Local.Address, pair.Local.Port, pair.Remote.Address, pair.Remote.Port)
}

// tick asks for keyframes and ends a silent session. It returns an end
// reason, or "".
func (ss *session) tick(now time.Time) string {
	ss.mu.Lock()
	silent := now.Sub(ss.lastMedia)
	var ssrc webrtc.SSRC
	if v := ss.video; v != nil && ss.kf.due(now) {
		ssrc = v.remote.SSRC()
	}
	ss.mu.Unlock()
	if until := ss.pub.Until; !until.IsZero() && now.After(until) {
		// A candidate publishes with an exam token only during the exam.
		ss.s.log.Info("whip session past its exam window", "stream", ss.stream, "until", until)
		return endExamOver
	}
	if silent > ss.s.cfg.ReadTimeout {
		ss.s.log.Warn("whip publisher sends no media", "stream", ss.stream, "silent_for", silent.Round(time.Second))
		return endNoMedia
	}
	if ssrc != 0 {
		ss.s.m.keyframeRequests.Inc()
		if err := ss.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(ssrc)}}); err != nil {
			ss.s.log.Debug("keyframe request not sent", "stream", ss.stream, "err", err)
		}
	}
	return ""
}

// teardown closes the connection, the last segment and the bookkeeping.
func (ss *session) teardown(reason string) {
	ss.cancel(endCause(reason))
	if err := ss.pc.GracefulClose(); err != nil {
		ss.s.log.Debug("closing peer connection", "stream", ss.stream, "err", err)
	}
	ss.readers.Wait()
	ss.mu.Lock()
	ss.closed = true
	recording := ss.recording
	for _, rt := range ss.rec {
		rt.rr.Close()
	}
	var segErr error
	if ss.seg != nil {
		segErr = ss.seg.Close()
	}
	obs := ss.obs
	ss.mu.Unlock()
	if obs != nil {
		obs.Stop(stopCauses[reason], endDetails[reason])
	}
	if segErr != nil {
		ss.s.log.Error("closing last segment", "stream", ss.stream, "err", segErr)
	}
	m := ss.s.m
	m.ended.WithLabelValues(reason).Inc()
	if recording {
		m.pub.Active.WithLabelValues(transport, ss.pub.Source).Dec()
	}
	ss.s.unregister(ss)
	ss.s.log.Info("whip publisher ended", "stream", ss.stream, "session", ss.id, "reason", reason)
}

// addCandidates adds the candidates of a trickle-ice-sdpfrag (RFC 8840).
func (ss *session) addCandidates(frag string) (int, error) {
	mid := ""
	if len(ss.offer.tracks) > 0 {
		mid = ss.offer.tracks[0].mid
	}
	lines := strings.Split(frag, "\n")
	n := 0
	for _, line := range lines {
		if strings.HasPrefix(strings.TrimSpace(line), "a=candidate:") {
			n++
		}
	}
	ss.mu.Lock()
	if ss.candidates+n > maxRemoteCandidates {
		had := ss.candidates
		ss.mu.Unlock()
		return http.StatusBadRequest, fmt.Errorf("%d more ICE candidates after %d: a session takes at most %d", n, had, maxRemoteCandidates)
	}
	ss.candidates += n
	ss.mu.Unlock()
	for _, line := range lines {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			if u := strings.TrimPrefix(line, "a=ice-ufrag:"); ss.remoteUfrg != "" && u != ss.remoteUfrg {
				return http.StatusUnprocessableEntity, errors.New("ICE restart is not supported: end this session and start a new one")
			}
		case strings.HasPrefix(line, "a=mid:"):
			mid = strings.TrimPrefix(line, "a=mid:")
		case strings.HasPrefix(line, "a=candidate:"):
			m := mid
			if err := ss.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: strings.TrimPrefix(line, "a="), SDPMid: &m}); err != nil {
				return http.StatusBadRequest, fmt.Errorf("candidate %q: %w", line, err)
			}
		}
	}
	return 0, nil
}

// warnLocked logs at most one warning of a kind per session every 10 s.
func (ss *session) warnLocked(kind string, err error) {
	now := ss.s.now()
	if now.Sub(ss.lastWarn[kind]) < 10*time.Second {
		return
	}
	ss.lastWarn[kind] = now
	ss.s.log.Warn("whip media problem", "stream", ss.stream, "kind", kind, "err", err)
}

// newRTCPReceiver returns the receiver-report and reordering state of a
// track (RFC 3550 Section 6.4.2). Over UDP packets come out of order, and
// NACK retransmissions come late: the reorder buffer puts them back in
// place before depacketizing.
func (ss *session) newRTCPReceiver(clockRate int) (*rtcpreceiver.RTCPReceiver, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	ssrc := binary.BigEndian.Uint32(b[:])
	rr := &rtcpreceiver.RTCPReceiver{
		ClockRate:            clockRate,
		LocalSSRC:            &ssrc,
		UnrealiableTransport: true,
		Period:               time.Second,
		WritePacketRTCP: func(p rtcp.Packet) {
			_ = ss.pc.WriteRTCP([]rtcp.Packet{p})
		},
	}
	if err := rr.Initialize(); err != nil {
		return nil, err
	}
	return rr, nil
}

// lastActive returns when the session last showed life: its last packet,
// or the answer to its offer before any.
func (ss *session) lastActive() time.Time {
	ss.mu.Lock()
	t := ss.answered
	ss.mu.Unlock()
	if n := ss.lastPacket.Load(); n != 0 {
		if p := time.Unix(0, n); p.After(t) {
			t = p
		}
	}
	return t
}
