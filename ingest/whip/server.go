// Package whip is ingest's WebRTC endpoint: WHIP (RFC 9725) publishers —
// a candidate's webcam and screen from a browser, OBS, any WHIP client —
// POST an SDP offer to /whip/<site>/<device> with the device's secret as
// bearer token, and their H.264, VP9 or AV1 video and Opus audio go, without
// decoding, into a segmenter per session, like RTSP publishers'.
//
// A session carries at most one video and one audio track; a webcam and a
// screen are two devices, each its own stream and session. A new session of
// a stream replaces the running one. Media arrives over one UDP port for all
// sessions (ICE UDP mux), optionally over ICE-TCP.
package whip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/ingest/access"
	"github.com/nokstream/nokstream/ingest/observe"
	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/httpserver"
)

// Outputs gives each authenticated stream its segment output (the spool).
type Outputs func(site, device, source string) segmenter.Output

// errStopping refuses publishers while the server is not running.
var errStopping = errors.New("ingest is not running")

// Gate decides whether new publishers are taken. It returns nil to admit,
// or the reason to refuse with 503 (a spool near its quota). Running
// sessions are never cut off by it.
type Gate func() error

// Options are the optional collaborators of a Server.
type Options struct {
	// Continuity receives the start, stop and gaps of every session, and
	// the refusals of known streams. Without it nothing is reported.
	Continuity *observe.Continuity
	// Gate, if set, is asked before each new publisher is taken.
	Gate Gate
}

// Server is the WHIP endpoint. Its Handler serves /whip/; Run owns the
// media sockets and the sessions.
type Server struct {
	cfg     Config
	checker access.Checker
	outputs Outputs
	log     *slog.Logger
	m       *Metrics
	now     func() time.Time
	mux     *http.ServeMux
	cont    *observe.Continuity
	gate    Gate

	ready    chan struct{}
	udpConn  net.PacketConn
	udpMux   ice.UDPMux
	tcpLn    net.Listener
	tcpMux   ice.TCPMux
	loopback bool

	mu      sync.Mutex
	running bool
	// ran is set by the first Run or Close: the sockets are theirs to
	// close.
	ran      bool
	sessions map[string]*session // by id
	byStream map[string]*session
	wg       sync.WaitGroup
}

// New wires a server; Run opens its sockets and serves sessions.
func New(cfg Config, checker access.Checker, outputs Outputs, log *slog.Logger, m *Metrics, now func() time.Time, opts ...Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m == nil {
		m = NewMetrics(prometheus.NewRegistry())
	}
	s := &Server{cfg: cfg, checker: checker, outputs: outputs, log: log, m: m, now: now,
		ready: make(chan struct{}), sessions: map[string]*session{}, byStream: map[string]*session{}}
	for _, o := range opts {
		if o.Continuity != nil {
			s.cont = o.Continuity
		}
		if o.Gate != nil {
			s.gate = o.Gate
		}
	}
	if s.cont == nil {
		s.cont = observe.New(discardSink{}, 0, log, nil, now)
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("POST /whip/{site}/{device}", s.handlePost)
	s.mux.HandleFunc("OPTIONS /whip/{site}/{device}", s.handleOptions)
	s.mux.HandleFunc("OPTIONS /whip/{site}/{device}/{session}", s.handleOptions)
	s.mux.HandleFunc("DELETE /whip/{site}/{device}/{session}", s.handleDelete)
	s.mux.HandleFunc("PATCH /whip/{site}/{device}/{session}", s.handlePatch)
	// The media sockets are opened here, not in Run, so that their
	// addresses are known (and a port in use is an error) before the
	// service runs.
	if cfg.UDPAddr != "" {
		conn, err := net.ListenPacket("udp", cfg.UDPAddr)
		if err != nil {
			return nil, fmt.Errorf("listen webrtc udp on %s: %w", cfg.UDPAddr, err)
		}
		s.udpConn = conn
		if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && a.IP.IsLoopback() {
			s.loopback = true
		}
	}
	if cfg.TCPAddr != "" {
		ln, err := net.Listen("tcp", cfg.TCPAddr)
		if err != nil {
			s.closeSockets()
			return nil, fmt.Errorf("listen webrtc tcp on %s: %w", cfg.TCPAddr, err)
		}
		s.tcpLn = ln
	}
	return s, nil
}

// Handler returns the HTTP handler of the endpoint, to be mounted at
// /whip/. It refuses publishers (503) until Run has opened the sockets.
func (s *Server) Handler() http.Handler { return s }

// Ready is closed once Run serves sessions.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// UDPAddr returns the address of the UDP media socket (New opened it), or
// nil when each session has its own port.
func (s *Server) UDPAddr() net.Addr {
	if s.udpConn == nil {
		return nil
	}
	return s.udpConn.LocalAddr()
}

// TCPAddr returns the address of the ICE-TCP listener, or nil without one.
func (s *Server) TCPAddr() net.Addr {
	if s.tcpLn == nil {
		return nil
	}
	return s.tcpLn.Addr()
}

// Close releases the sockets of a server whose Run was not called.
func (s *Server) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ran {
		return nil
	}
	s.ran = true
	s.closeSockets()
	return nil
}

// Run serves sessions on the sockets New opened until ctx ends; then it
// refuses new publishers, ends every session (closing its last segment into
// the spool), closes the sockets and returns once they have all ended.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return errors.New("whip: run after close")
	}
	s.ran = true
	s.mu.Unlock()
	if s.udpConn != nil {
		s.udpMux = webrtc.NewICEUDPMux(slogFactory{s.log}.NewLogger("udpmux"), s.udpConn)
	}
	if s.tcpLn != nil {
		s.tcpMux = webrtc.NewICETCPMux(slogFactory{s.log}.NewLogger("tcpmux"), s.tcpLn, 32)
	}
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	close(s.ready)
	s.log.Info("whip endpoint ready", "udp", s.UDPAddr(), "tcp", s.TCPAddr())

	<-ctx.Done()
	s.mu.Lock()
	s.running = false
	all := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		all = append(all, ss)
	}
	s.mu.Unlock()
	for _, ss := range all {
		ss.end(endStopping)
	}
	s.wg.Wait()
	s.closeSockets()
	return nil
}

func (s *Server) closeSockets() {
	if s.udpMux != nil {
		_ = s.udpMux.Close()
	}
	if s.udpConn != nil {
		_ = s.udpConn.Close()
	}
	if s.tcpMux != nil {
		_ = s.tcpMux.Close()
	}
	if s.tcpLn != nil {
		_ = s.tcpLn.Close()
	}
}

// ServeHTTP implements http.Handler. Every answer carries the CORS headers
// that let a page on another origin (the candidate's exam page) publish.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", s.cfg.AllowOrigin)
	h.Set("Access-Control-Expose-Headers", "Location, ETag, Accept-Patch, Link")
	if s.cfg.AllowOrigin != "*" {
		h.Add("Vary", "Origin")
	}
	s.mux.ServeHTTP(w, r)
}

// handleOptions answers CORS preflights and WHIP clients' OPTIONS
// (RFC 9725 lets a client send OPTIONS before the POST).
func (s *Server) handleOptions(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.PathValue("session") == "" {
		h.Set("Access-Control-Allow-Methods", "OPTIONS, POST")
		h.Set("Allow", "OPTIONS, POST")
		h.Set("Accept-Post", "application/sdp")
	} else {
		h.Set("Access-Control-Allow-Methods", "OPTIONS, PATCH, DELETE")
		h.Set("Allow", "OPTIONS, PATCH, DELETE")
		h.Set("Accept-Patch", "application/trickle-ice-sdpfrag")
	}
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, If-Match")
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

// writeError answers with a status and a plain-text reason.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

// refuse counts, logs and answers a refused publisher.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, e *httpError) {
	s.m.pub.Refused.WithLabelValues(transport, e.label).Inc()
	s.log.Warn("whip publisher refused", "reason", e.msg, "refusal", e.label, "stream", r.PathValue("site")+"/"+r.PathValue("device"),
		"remote_addr", httpserver.ClientAddr(r, s.cfg.TrustedProxies), "status", e.status)
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="nokstream"`)
	}
	writeError(w, e.status, e.msg)
}

// bearerToken returns the token of an "Authorization: Bearer" header
// (RFC 6750 Section 2.1).
func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// authenticate decides who publishes site/device. A WHIP client sends its
// credential as a bearer token (RFC 9725, RFC 6750): the device's secret,
// checked by the registry with the device name as user, or a candidate's
// exam token (POST /api/v1/exam/login), which the registry accepts for the
// candidate's own workstation webcam and screen inside the exam window
// only (access.CandidateChecker).
func (s *Server) authenticate(ctx context.Context, r *http.Request, site, device string) (access.Publisher, *httpError) {
	token, ok := bearerToken(r)
	if !ok {
		return access.Publisher{}, refusal(http.StatusUnauthorized, "no_credentials",
			"missing credentials: send the device secret or the exam token as \"Authorization: Bearer <token>\"")
	}
	pub, err := s.checker.CheckPublisher(ctx, site, device, device, token)
	if cc, ok := s.checker.(access.CandidateChecker); ok && errors.Is(err, access.ErrBadCredentials) {
		pub, err = cc.CheckCandidate(ctx, site, device, token)
	}
	// An unknown stream answers as a known one with wrong credentials, so
	// that device names cannot be probed before authentication; the reason
	// is kept apart in the metrics and the log.
	switch {
	case errors.Is(err, access.ErrUnknownStream):
		return access.Publisher{}, refusal(http.StatusUnauthorized, "unknown_stream", "wrong credentials for %s/%s", site, device)
	case errors.Is(err, access.ErrBadCredentials):
		return access.Publisher{}, refusal(http.StatusUnauthorized, "bad_credentials", "wrong credentials for %s/%s", site, device)
	case err != nil:
		s.log.Error("whip publisher check", "stream", site+"/"+device, "err", err)
		return access.Publisher{}, refusal(http.StatusServiceUnavailable, "registry_unavailable",
			"cannot check the publisher now; try again")
	}
	return pub, nil
}

// handlePost creates a session from an SDP offer (RFC 9725 ingest session
// setup): 201 Created with the answer and the session's Location.
func (s *Server) handlePost(w http.ResponseWriter, r *http.Request) {
	site, device := r.PathValue("site"), r.PathValue("device")
	if !access.ValidName(site) || !access.ValidName(device) {
		s.refuse(w, r, refusal(http.StatusNotFound, "bad_path", "%q is not /whip/<site>/<device>", r.URL.Path))
		return
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/sdp" {
		s.refuse(w, r, refusal(http.StatusUnsupportedMediaType, "bad_sdp",
			"the offer must be sent as Content-Type: application/sdp"))
		return
	}
	s.mu.Lock()
	running := s.running
	s.mu.Unlock()
	if !running {
		s.refuse(w, r, refusal(http.StatusServiceUnavailable, "stopping", "%v; try again", errStopping))
		return
	}
	if herr := s.checkLimits(r); herr != nil {
		s.refuse(w, r, herr)
		return
	}
	pub, herr := s.authenticate(r.Context(), r, site, device)
	if herr != nil {
		s.refuse(w, r, herr)
		return
	}
	// From here on the stream is known and the publisher authenticated:
	// a refusal is also an observation on the stream's timeline.
	refuseKnown := func(e *httpError) {
		s.cont.Refused(site, device, "whip: "+e.msg)
		s.refuse(w, r, e)
	}
	if herr := s.checkTakeover(site + "/" + device); herr != nil {
		refuseKnown(herr)
		return
	}
	if err := s.cont.Admit(site, device); err != nil {
		refuseKnown(refusal(http.StatusServiceUnavailable, "session_rate", "%v; try again then", err))
		return
	}
	if s.gate != nil {
		if err := s.gate(); err != nil {
			refuseKnown(refusal(http.StatusServiceUnavailable, "spool_full", "%v", err))
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(s.cfg.MaxOfferBytes)+1))
	if err != nil {
		refuseKnown(refusal(http.StatusBadRequest, "bad_sdp", "reading the offer: %v", err))
		return
	}
	if len(body) > s.cfg.MaxOfferBytes {
		refuseKnown(refusal(http.StatusRequestEntityTooLarge, "bad_sdp",
			"the SDP offer is larger than %d bytes", s.cfg.MaxOfferBytes))
		return
	}
	off, herr := parseOffer(body)
	if herr != nil {
		refuseKnown(herr)
		return
	}
	ss, answer, herr := s.newSession(pub, off, httpserver.ClientAddr(r, s.cfg.TrustedProxies))
	if herr != nil {
		refuseKnown(herr)
		return
	}
	if err := s.register(ss); err != nil {
		ss.abort()
		s.refuse(w, r, refusal(http.StatusServiceUnavailable, "stopping", "%v; try again", err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/sdp")
	h.Set("Location", ss.location())
	h.Set("ETag", ss.etag)
	h.Set("Accept-Patch", "application/trickle-ice-sdpfrag")
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
}

// checkLimits refuses a new session beyond Config.MaxSessions, or beyond
// Config.MaxSessionsPerAddress from the client of r (through
// Config.TrustedProxies).
func (s *Server) checkLimits(r *http.Request) *httpError {
	ip := httpserver.ClientAddr(r, s.cfg.TrustedProxies)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sessions) >= s.cfg.MaxSessions {
		return refusal(http.StatusServiceUnavailable, "session_limit", "ingest has its maximum of %d WHIP sessions; try again later", s.cfg.MaxSessions)
	}
	n := 0
	for _, ss := range s.sessions {
		if hostOf(ss.remote) == ip {
			n++
		}
	}
	if n >= s.cfg.MaxSessionsPerAddress {
		return refusal(http.StatusServiceUnavailable, "session_limit", "%s has its maximum of %d WHIP sessions; try again later", ip, s.cfg.MaxSessionsPerAddress)
	}
	return nil
}

// hostOf returns the host of a host:port address.
func hostOf(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// checkTakeover refuses a new publisher of stream with 409 while its
// running session has sent something within Config.TakeoverAfter: only a
// silent session may be taken over.
func (s *Server) checkTakeover(stream string) *httpError {
	s.mu.Lock()
	old := s.byStream[stream]
	s.mu.Unlock()
	if old == nil {
		return nil
	}
	if idle := s.now().Sub(old.lastActive()); idle < s.cfg.TakeoverAfter {
		return refusal(http.StatusConflict, "stream_busy",
			"%s is live (media %s ago): a new publisher may take it over after %s of silence", stream, idle.Round(time.Millisecond), s.cfg.TakeoverAfter)
	}
	return nil
}

// register adds a negotiated session, replacing the stream's running one,
// and starts it.
func (s *Server) register(ss *session) error {
	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return errStopping
	}
	old := s.byStream[ss.stream]
	ss.prev = old
	s.sessions[ss.id] = ss
	s.byStream[ss.stream] = ss
	s.wg.Add(1)
	s.mu.Unlock()
	if old != nil {
		// A takeover of a silent session: its stop observation says so.
		s.log.Info("new whip session takes over the silent previous one", "stream", ss.stream, "remote_addr", ss.remote,
			"silent_for", s.now().Sub(old.lastActive()).Round(time.Millisecond))
		old.end(endReplaced)
	}
	go ss.run()
	return nil
}

// unregister forgets an ended session.
func (s *Server) unregister(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions[ss.id] == ss {
		delete(s.sessions, ss.id)
	}
	if s.byStream[ss.stream] == ss {
		delete(s.byStream, ss.stream)
	}
}

// lookup returns the session a request's URL names.
func (s *Server) lookup(r *http.Request) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss := s.sessions[r.PathValue("session")]
	if ss == nil || ss.pub.Site != r.PathValue("site") || ss.pub.Device != r.PathValue("device") {
		return nil
	}
	return ss
}

// handleDelete ends a session (RFC 9725 session teardown): its last segment is
// closed before the answer. The session URL, with its 128-bit random id, is
// the publisher's capability, as the token was checked when it was made.
func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	ss := s.lookup(r)
	if ss == nil {
		writeError(w, http.StatusNotFound, "no such WHIP session")
		return
	}
	ss.end(endDeleted)
	select {
	case <-ss.done:
	case <-time.After(10 * time.Second):
		s.log.Warn("whip session slow to end", "stream", ss.stream, "session", ss.id)
	case <-r.Context().Done():
	}
	w.WriteHeader(http.StatusOK)
}

// handlePatch takes trickled ICE candidates (RFC 9725 trickle ICE, RFC
// 8840 SDP fragments). ICE restarts are not supported (422, as RFC 9725
// asks of an endpoint that trickles but does not restart): the publisher
// starts a new session instead, which continues the stream.
func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request) {
	ss := s.lookup(r)
	if ss == nil {
		writeError(w, http.StatusNotFound, "no such WHIP session")
		return
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/trickle-ice-sdpfrag" {
		writeError(w, http.StatusUnsupportedMediaType, "send candidates as Content-Type: application/trickle-ice-sdpfrag")
		return
	}
	if m := r.Header.Get("If-Match"); m != "" && m != ss.etag {
		if m == "*" {
			writeError(w, http.StatusUnprocessableEntity, "ICE restart is not supported: end this session and start a new one")
			return
		}
		writeError(w, http.StatusPreconditionFailed, "the ETag does not match this session's ICE session")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(s.cfg.MaxOfferBytes)+1))
	if err != nil || len(body) > s.cfg.MaxOfferBytes {
		writeError(w, http.StatusBadRequest, "unreadable or too large SDP fragment")
		return
	}
	if status, err := ss.addCandidates(string(body)); err != nil {
		writeError(w, status, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// discardSink is the observation sink of a server without one.
type discardSink struct{}

func (discardSink) Observe(events.Observation) error             { return nil }
func (discardSink) LastMedia(string, string) (time.Time, error)  { return time.Time{}, nil }
func (discardSink) SetLastMedia(string, string, time.Time) error { return nil }

// newSessionID returns 128 random bits in hex.
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
