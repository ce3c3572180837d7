// Package rtsp is ingest's RTSP side (RFC 7826 / RFC 2326, gortsplib): a
// server that accepts publishers (ANNOUNCE + RECORD) at
// rtsp://host:port/<site>/<device> over TCP and UDP, and over RTSPS (TLS) on
// a second address when a certificate is configured; and a puller that
// reads IP cameras which only serve (DESCRIBE + PLAY), reconnecting with
// backoff. Both feed H.264, AAC and Opus media into a segmenter per session
// through the same recorder, and report the continuity of each stream
// (start, stop, gaps, outages) as observations.
//
// The server never serves streams to readers.
package rtsp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/auth"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/nokstream/nokstream/ingest/access"
	"github.com/nokstream/nokstream/ingest/metrics"
	"github.com/nokstream/nokstream/ingest/observe"
	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/internal/events"
)

// isTLS reports whether a connection came in over RTSPS.
func isTLS(c *gortsplib.ServerConn) bool {
	_, ok := c.NetConn().(*tls.Conn)
	return ok
}

// discardSink is the observation sink of a server without one.
type discardSink struct{}

func (discardSink) Observe(events.Observation) error             { return nil }
func (discardSink) LastMedia(string, string) (time.Time, error)  { return time.Time{}, nil }
func (discardSink) SetLastMedia(string, string, time.Time) error { return nil }

// Config of the RTSP server.
type Config struct {
	Addr        string        `yaml:"addr"`          // TCP listen address, default ":8554"
	UDPRTPAddr  string        `yaml:"udp_rtp_addr"`  // default ":8000"; empty with UDPRTCPAddr empty disables UDP
	UDPRTCPAddr string        `yaml:"udp_rtcp_addr"` // default ":8001" (RTP port + 1)
	ReadTimeout time.Duration `yaml:"read_timeout"`  // a publisher silent this long is cut off
	MaxSDPBytes int           `yaml:"max_sdp_bytes"` // larger ANNOUNCE bodies are refused
	// TakeoverAfter is how long a live publisher must have sent nothing
	// before a new publisher of its stream may take it over; until then a
	// second ANNOUNCE is refused with 453, so a leaked secret cannot cut a
	// live camera off.
	TakeoverAfter time.Duration `yaml:"takeover_after"`
	// MaxSessions and MaxSessionsPerAddress cap the publishers at once, in
	// all and from one client address; beyond, an ANNOUNCE is refused with
	// 503 and counted (refusal reason "session_limit").
	MaxSessions           int `yaml:"max_sessions"`
	MaxSessionsPerAddress int `yaml:"max_sessions_per_address"`
	// HandshakeTimeout closes a connection that has not started recording
	// this long after it was accepted (gortsplib would keep it open for
	// ever), and MaxPendingPerAddress caps such connections from one
	// client address: beyond, a new one is closed at accept. Both count
	// as refusals ("handshake_timeout", "connection_limit").
	HandshakeTimeout     time.Duration    `yaml:"handshake_timeout"`
	MaxPendingPerAddress int              `yaml:"max_pending_per_address"`
	Segment              segmenter.Config `yaml:"segment"`
	// TLSAddr is the RTSPS listen address, served when TLSCert and TLSKey
	// name a certificate and its key (PEM). gortsplib serves either TLS or
	// plain RTSP on one server, so RTSPS has its own address, TCP only
	// (RTSPS over UDP would need SRTP, which publishers rarely speak).
	TLSAddr string `yaml:"tls_addr"`
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Addr: ":8554", UDPRTPAddr: ":8000", UDPRTCPAddr: ":8001", ReadTimeout: 10 * time.Second,
		MaxSDPBytes: 64 << 10, Segment: segmenter.DefaultConfig(), TLSAddr: ":8322",
		TakeoverAfter: 5 * time.Second, MaxSessions: 2000, MaxSessionsPerAddress: 200,
		HandshakeTimeout: 30 * time.Second, MaxPendingPerAddress: 256}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Addr == "" {
		return fmt.Errorf("rtsp: empty listen address")
	}
	if (c.UDPRTPAddr == "") != (c.UDPRTCPAddr == "") {
		return fmt.Errorf("rtsp: set both UDP RTP and RTCP addresses, or neither")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("rtsp: set both the TLS certificate and key, or neither")
	}
	if c.TLSCert != "" && c.TLSAddr == "" {
		return fmt.Errorf("rtsp: a TLS certificate is set but no RTSPS address")
	}
	if c.TakeoverAfter <= 0 || c.MaxSessions <= 0 || c.MaxSessionsPerAddress <= 0 {
		return fmt.Errorf("rtsp: takeover_after %v, max_sessions %d and max_sessions_per_address %d must be positive",
			c.TakeoverAfter, c.MaxSessions, c.MaxSessionsPerAddress)
	}
	if c.HandshakeTimeout <= 0 || c.MaxPendingPerAddress <= 0 {
		return fmt.Errorf("rtsp: handshake_timeout %v and max_pending_per_address %d must be positive",
			c.HandshakeTimeout, c.MaxPendingPerAddress)
	}
	return c.Segment.Validate()
}

// Outputs gives each authenticated stream its segment output (the spool).
type Outputs func(site, device, source string) segmenter.Output

// Metrics of the RTSP server.
type Metrics struct {
	active   *prometheus.GaugeVec
	refused  *prometheus.CounterVec
	bytesIn  prometheus.Counter
	errors   *prometheus.CounterVec
	sessions *prometheus.CounterVec
}

// NewMetrics registers the metrics.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	// The session metrics are shared with the other transports (WHIP).
	shared := metrics.NewPublishers(reg)
	return &Metrics{
		active:  shared.Active,
		refused: shared.Refused,
		bytesIn: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_ingest_rtsp_received_bytes_total",
			Help: "Media payload bytes received over RTSP."}),
		errors:   shared.Errors,
		sessions: shared.Sessions,
	}
}

// Gate decides whether new publishers are taken. It returns nil to admit,
// or the reason to refuse with 503 (for example a spool near its quota).
// Running sessions are never cut off by it.
type Gate func() error

// Server is the RTSP ingest server.
type Server struct {
	cfg     Config
	checker access.Checker
	outputs Outputs
	log     *slog.Logger
	m       *Metrics
	now     func() time.Time
	srv     *gortsplib.Server
	tlsSrv  *gortsplib.Server // RTSPS, nil without a certificate
	// ln and tlsLn are the sockets New opened, until Run hands them to
	// gortsplib (tlsLn nil without a certificate).
	ln, tlsLn *listeners
	cont      *observe.Continuity
	gate      Gate

	mu         sync.Mutex
	publishers map[*gortsplib.ServerSession]*publisher
	byStream   map[string]*publisher
}

// Options are the optional collaborators of a Server.
type Options struct {
	// Continuity receives the observations of every session. Without it
	// nothing is reported.
	Continuity *observe.Continuity
	// Gate, if set, is asked before each new publisher is taken.
	Gate Gate
}

// New wires a server; Run starts it.
func New(cfg Config, checker access.Checker, outputs Outputs, log *slog.Logger, m *Metrics, now func() time.Time, opts ...Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m == nil {
		m = NewMetrics(prometheus.NewRegistry())
	}
	s := &Server{cfg: cfg, checker: checker, outputs: outputs, log: log, m: m, now: now,
		publishers: map[*gortsplib.ServerSession]*publisher{}, byStream: map[string]*publisher{}}
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
	var cert tls.Certificate
	if cfg.TLSCert != "" {
		var err error
		if cert, err = tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, fmt.Errorf("rtsps: load certificate %s: %w", cfg.TLSCert, err)
		}
	}
	// The sockets are opened here, not in Run, so that their addresses are
	// known (and a port in use is an error) before the service runs.
	ln, err := listen(cfg.Addr, cfg.UDPRTPAddr, cfg.UDPRTCPAddr)
	if err != nil {
		return nil, err
	}
	s.ln = ln
	refused := func(reason string) { s.m.refused.WithLabelValues("rtsp", reason).Inc() }
	ln.guard = newGuard(cfg.HandshakeTimeout, cfg.MaxPendingPerAddress, refused)
	s.srv = &gortsplib.Server{
		Handler:      s,
		RTSPAddress:  ln.tcp.Addr().String(),
		ReadTimeout:  cfg.ReadTimeout,
		WriteTimeout: cfg.ReadTimeout,
		// Basic only: device secrets are stored hashed, so digest (which needs
		// the clear secret on the server) cannot be offered. Use RTSPS where
		// the network is not trusted.
		AuthMethods: []auth.VerifyMethod{auth.VerifyMethodBasic},
	}
	s.srv.Listen, s.srv.ListenPacket = ln.hooks()
	if ln.rtp != nil {
		s.srv.UDPRTPAddress, s.srv.UDPRTCPAddress = ln.rtp.LocalAddr().String(), ln.rtcp.LocalAddr().String()
	}
	if cfg.TLSCert != "" {
		tlsLn, err := listen(cfg.TLSAddr, "", "")
		if err != nil {
			_ = ln.close()
			return nil, fmt.Errorf("rtsps: %w", err)
		}
		s.tlsLn = tlsLn
		tlsLn.guard = ln.guard
		s.tlsSrv = &gortsplib.Server{
			Handler:      s,
			RTSPAddress:  tlsLn.tcp.Addr().String(),
			TLSConfig:    &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
			ReadTimeout:  cfg.ReadTimeout,
			WriteTimeout: cfg.ReadTimeout,
			AuthMethods:  []auth.VerifyMethod{auth.VerifyMethodBasic},
		}
		s.tlsSrv.Listen, s.tlsSrv.ListenPacket = tlsLn.hooks()
	}
	return s, nil
}

// Addr returns the TCP address the server is bound to (New opened it).
func (s *Server) Addr() string { return s.srv.RTSPAddress }

// UDPAddrs returns the addresses of the RTP and RTCP sockets, or "" without
// UDP.
func (s *Server) UDPAddrs() (rtp, rtcp string) { return s.srv.UDPRTPAddress, s.srv.UDPRTCPAddress }

// TLSAddr returns the RTSPS address, or "" without a certificate.
func (s *Server) TLSAddr() string {
	if s.tlsSrv == nil {
		return ""
	}
	return s.tlsSrv.RTSPAddress
}

// Close releases the sockets of a server whose Run was not called; after
// Run it does nothing.
func (s *Server) Close() error {
	err := s.ln.close()
	if s.tlsLn != nil {
		err = errors.Join(err, s.tlsLn.close())
	}
	return err
}

// Run serves until ctx ends, then closes every session (each open segment is
// closed and spooled) and returns.
func (s *Server) Run(ctx context.Context) error {
	if err := s.srv.Start(); err != nil {
		_ = s.Close()
		return fmt.Errorf("start rtsp server on %s: %w", s.Addr(), err)
	}
	rtp, _ := s.UDPAddrs()
	s.log.Info("rtsp server listening", "addr", s.Addr(), "udp_rtp", rtp)
	done := make(chan error, 2)
	go func() { done <- s.srv.Wait() }()
	servers := 1
	if s.tlsSrv != nil {
		if err := s.tlsSrv.Start(); err != nil {
			s.srv.Close()
			<-done
			_ = s.Close()
			return fmt.Errorf("start rtsps server on %s: %w", s.TLSAddr(), err)
		}
		s.log.Info("rtsps server listening", "addr", s.TLSAddr())
		go func() { done <- s.tlsSrv.Wait() }()
		servers++
	}
	var err error
	select {
	case <-ctx.Done():
	case e := <-done:
		servers--
		err = fmt.Errorf("rtsp server: %w", e)
	}
	s.srv.Close()
	if s.tlsSrv != nil {
		s.tlsSrv.Close()
	}
	for range servers {
		<-done
	}
	s.closeAll()
	return err
}

func (s *Server) closeAll() {
	s.mu.Lock()
	ps := make([]*publisher, 0, len(s.publishers))
	for _, p := range s.publishers {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	for _, p := range ps {
		s.endPublisher(p, events.CauseIngest, "server stopping")
	}
}

// OnConnOpen implements gortsplib.ServerHandlerOnConnOpen.
func (s *Server) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	s.log.Debug("rtsp connection opened", "remote_addr", ctx.Conn.NetConn().RemoteAddr().String())
}

// OnConnClose implements gortsplib.ServerHandlerOnConnClose.
func (s *Server) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	s.log.Debug("rtsp connection closed", "remote_addr", ctx.Conn.NetConn().RemoteAddr().String(), "err", ctx.Error)
}

// OnSessionClose implements gortsplib.ServerHandlerOnSessionClose.
func (s *Server) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	s.mu.Lock()
	p := s.publishers[ctx.Session]
	s.mu.Unlock()
	if p != nil {
		reason := "publisher disconnected"
		if ctx.Error != nil {
			reason = ctx.Error.Error()
		}
		if why := p.ingestStop(); why != "" {
			s.endPublisher(p, events.CauseIngest, why)
			return
		}
		s.endPublisher(p, closeCause(ctx.Error), reason)
		return
	}
}

// OnRequest implements gortsplib.ServerHandlerOnRequest. gortsplib answers
// an ANNOUNCE whose SDP does not parse with 400 before any handler sees
// it; the same parse is done here so that the refusal has a reason in the
// log and the metrics.
func (s *Server) OnRequest(sc *gortsplib.ServerConn, req *base.Request) {
	if req.Method != base.Announce {
		return
	}
	var sd sdp.SessionDescription
	err := sd.Unmarshal(req.Body)
	if err == nil {
		var desc description.Session
		err = desc.Unmarshal(&sd)
	}
	if err != nil {
		s.m.refused.WithLabelValues("rtsp", "bad_sdp").Inc()
		s.log.Warn("rtsp publisher refused", "reason", "invalid SDP: "+err.Error(), "path", req.URL.Path,
			"remote_addr", sc.NetConn().RemoteAddr().String())
	}
}

// OnPacketsLost implements gortsplib.ServerHandlerOnPacketsLost: counted
// and logged (at most every 10 s per session) instead of gortsplib's own
// log line.
func (s *Server) OnPacketsLost(ctx *gortsplib.ServerHandlerOnPacketsLostCtx) {
	s.mu.Lock()
	p := s.publishers[ctx.Session]
	s.mu.Unlock()
	transport := "rtsp"
	if p != nil {
		transport = p.transport
		p.warn("packets_lost", fmt.Errorf("%d RTP packets lost", ctx.Lost))
	}
	s.m.errors.WithLabelValues(transport, "packets_lost").Add(float64(ctx.Lost))
}

// OnDescribe refuses readers: ingest only records.
func (s *Server) OnDescribe(_ *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	return &base.Response{StatusCode: base.StatusNotFound}, nil, fmt.Errorf("ingest does not serve streams; publish with ANNOUNCE")
}

func splitPath(p string) (site, device string, ok bool) {
	p = strings.Trim(p, "/")
	parts := strings.Split(p, "/")
	if len(parts) != 2 || !access.ValidName(parts[0]) || !access.ValidName(parts[1]) {
		return "", "", false
	}
	return parts[0], parts[1], true
}

func (s *Server) refuse(reason string, status base.StatusCode, err error) (*base.Response, error) {
	s.m.refused.WithLabelValues("rtsp", reason).Inc()
	return &base.Response{StatusCode: status}, err
}

// OnAnnounce authenticates a publisher and prepares its segmenter.
func (s *Server) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	remote := ctx.Conn.NetConn().RemoteAddr().String()
	site, device, ok := splitPath(ctx.Path)
	if !ok {
		s.log.Warn("rtsp publisher refused", "reason", "bad path", "path", ctx.Path, "remote_addr", remote)
		return s.refuse("bad_path", base.StatusNotFound, fmt.Errorf("path %q is not /<site>/<device>", ctx.Path))
	}
	stream := site + "/" + device
	if err := s.checkLimits(remote); err != nil {
		s.log.Warn("rtsp publisher refused", "reason", err.Error(), "stream", stream, "remote_addr", remote)
		return s.refuse("session_limit", base.StatusServiceUnavailable, err)
	}
	var a headers.Authorization
	if err := a.Unmarshal(ctx.Request.Header["Authorization"]); err != nil || a.Method != headers.AuthMethodBasic || a.BasicUser == "" {
		// gortsplib answers 401 with a Basic challenge when no credentials
		// were sent; the client retries with them.
		return s.refuse("no_credentials", base.StatusUnauthorized, liberrors.ErrServerAuth{})
	}
	pub, err := s.checker.CheckPublisher(context.Background(), site, device, a.BasicUser, a.BasicPass)
	switch {
	case errors.Is(err, access.ErrUnknownStream):
		// Answered as wrong credentials, so that device names cannot be
		// probed before authentication (the log and metrics tell apart).
		s.log.Warn("rtsp publisher refused", "reason", "unknown stream", "stream", stream, "remote_addr", remote)
		return s.refuse("unknown_stream", base.StatusUnauthorized, liberrors.ErrServerAuth{})
	case errors.Is(err, access.ErrBadCredentials):
		s.log.Warn("rtsp publisher refused", "reason", "wrong credentials", "stream", stream, "remote_addr", remote)
		return s.refuse("bad_credentials", base.StatusUnauthorized, liberrors.ErrServerAuth{})
	case err != nil:
		s.log.Error("rtsp publisher check", "stream", stream, "err", err)
		return s.refuse("registry_unavailable", base.StatusServiceUnavailable, fmt.Errorf("check publisher: %w", err))
	}
	if err := s.checkTakeover(stream); err != nil {
		s.log.Warn("rtsp publisher refused", "reason", err.Error(), "stream", stream, "remote_addr", remote)
		s.cont.Refused(site, device, err.Error())
		return s.refuse("stream_busy", base.StatusNotEnoughBandwidth, err)
	}
	if err := s.cont.Admit(site, device); err != nil {
		s.log.Warn("rtsp publisher refused", "reason", err.Error(), "stream", stream, "remote_addr", remote)
		s.cont.Refused(site, device, err.Error())
		return s.refuse("session_rate", base.StatusServiceUnavailable, err)
	}
	if len(ctx.Request.Body) > s.cfg.MaxSDPBytes {
		reason := fmt.Sprintf("SDP of %d bytes is larger than %d", len(ctx.Request.Body), s.cfg.MaxSDPBytes)
		s.log.Warn("rtsp publisher refused", "reason", reason, "stream", stream, "remote_addr", remote)
		s.cont.Refused(site, device, reason)
		return s.refuse("bad_sdp", base.StatusBadRequest, errors.New(reason))
	}
	if s.gate != nil {
		if err := s.gate(); err != nil {
			s.log.Warn("rtsp publisher refused", "reason", err.Error(), "stream", stream, "remote_addr", remote)
			s.cont.Refused(site, device, err.Error())
			return s.refuse("spool_full", base.StatusServiceUnavailable, err)
		}
	}
	transport := "rtsp"
	if isTLS(ctx.Conn) {
		transport = "rtsps"
	}
	rec, err := newRecorder(stream, transport, ctx.Description, s.cfg.Segment, s.outputs(pub.Site, pub.Device, pub.Source), s.log, s.m, s.now)
	if err != nil {
		s.log.Warn("rtsp publisher refused", "reason", err.Error(), "stream", stream, "remote_addr", remote)
		s.cont.Refused(site, device, err.Error())
		return s.refuse("unsupported_media", base.StatusUnsupportedMediaType, err)
	}
	rec.seg.OnCodecChange(func(track int, codec string) {
		s.log.Warn("codec configuration changed mid-stream, starting a new init segment", "stream", stream, "track", track, "codec", codec)
	})
	p := &publisher{recorder: rec, pub: pub, remote: remote, session: ctx.Session, announced: s.now()}

	s.mu.Lock()
	old := s.byStream[stream]
	s.publishers[ctx.Session] = p
	s.byStream[stream] = p
	s.mu.Unlock()
	if old != nil {
		// A camera that reconnects takes over its silent session.
		silent := s.now().Sub(old.lastActive()).Round(time.Millisecond)
		s.log.Info("new publisher takes over the silent previous session", "stream", stream, "remote_addr", remote, "silent_for", silent)
		old.session.Close()
		s.endPublisher(old, events.CauseLost, fmt.Sprintf("taken over by a new publisher from %s after %s of silence", remote, silent))
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnSetup accepts the publisher's transports and refuses readers.
func (s *Server) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStateInitial {
		return &base.Response{StatusCode: base.StatusNotFound}, nil, fmt.Errorf("ingest does not serve streams")
	}
	return &base.Response{StatusCode: base.StatusOK}, nil, nil
}

// OnRecord starts consuming the publisher's packets.
func (s *Server) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	s.mu.Lock()
	p := s.publishers[ctx.Session]
	s.mu.Unlock()
	if p == nil {
		return &base.Response{StatusCode: base.StatusBadRequest}, fmt.Errorf("record without announce")
	}
	p.mu.Lock()
	p.recording = true
	p.mu.Unlock()
	obs := s.cont.Start(p.pub.Site, p.pub.Device, fmt.Sprintf("%s publisher from %s (%s)", p.transport, p.remote, strings.Join(p.codecs, ",")))
	p.mu.Lock()
	p.obs = obs
	p.mu.Unlock()
	// Authenticated and recording: its media is read in large pieces
	// from now on.
	bufferReads(ctx.Conn.NetConn())
	ss := ctx.Session
	p.attach(ss, p.obs, func() { ss.Close() })
	s.m.sessions.WithLabelValues(p.transport, p.pub.Source).Inc()
	s.m.active.WithLabelValues(p.transport, p.pub.Source).Inc()
	s.log.Info("rtsp publisher recording", "stream", p.stream, "source", p.pub.Source, "remote_addr", p.remote,
		"transport", p.transport, "codecs", strings.Join(p.codecs, ","))
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnDecodeError counts RTP/RTCP the library could not parse.
func (s *Server) OnDecodeError(ctx *gortsplib.ServerHandlerOnDecodeErrorCtx) {
	s.mu.Lock()
	p := s.publishers[ctx.Session]
	s.mu.Unlock()
	if p != nil {
		s.m.errors.WithLabelValues(p.transport, "decode").Inc()
		p.warn("decode", ctx.Error)
		return
	}
	s.m.errors.WithLabelValues("rtsp", "decode").Inc()
}

// closeCause tells why gortsplib closed a publisher's session: a TEARDOWN
// is the publisher ending it on purpose (RFC 7826 §13.7), a session that
// ingest closed (server stopping, spool failing) is ingest's doing, and
// anything else — the connection dropped, no packets within the read
// timeout — is a lost publisher, which is expected to come back.
func closeCause(err error) string {
	var torn liberrors.ErrServerSessionTornDown
	var terminated liberrors.ErrServerTerminated
	switch {
	case errors.As(err, &torn):
		return events.CauseEnded
	case errors.As(err, &terminated):
		return events.CauseIngest
	}
	return events.CauseLost
}

// endPublisher ends p's recording and reports the stop with its cause
// (events.CauseEnded, CauseLost or CauseIngest) and reason.
func (s *Server) endPublisher(p *publisher, cause, reason string) {
	s.mu.Lock()
	if s.publishers[p.session] == p {
		delete(s.publishers, p.session)
	}
	if s.byStream[p.stream] == p {
		delete(s.byStream, p.stream)
	}
	s.mu.Unlock()
	if p.close() {
		p.mu.Lock()
		recording := p.recording
		p.mu.Unlock()
		if recording {
			s.m.active.WithLabelValues(p.transport, p.pub.Source).Dec()
		}
		if p.obs != nil {
			p.obs.Stop(cause, reason)
		}
		s.log.Info("rtsp publisher ended", "stream", p.stream, "reason", reason, "cause", cause)
	}
}

// checkLimits refuses a new publisher beyond Config.MaxSessions, or beyond
// Config.MaxSessionsPerAddress from remote's address.
func (s *Server) checkLimits(remote string) error {
	ip := hostOf(remote)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.publishers) >= s.cfg.MaxSessions {
		return fmt.Errorf("ingest has its maximum of %d RTSP publishers", s.cfg.MaxSessions)
	}
	n := 0
	for _, p := range s.publishers {
		if hostOf(p.remote) == ip {
			n++
		}
	}
	if n >= s.cfg.MaxSessionsPerAddress {
		return fmt.Errorf("%s has its maximum of %d RTSP publishers", ip, s.cfg.MaxSessionsPerAddress)
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

// checkTakeover refuses a new publisher of stream while its publisher has
// sent something within Config.TakeoverAfter.
func (s *Server) checkTakeover(stream string) error {
	s.mu.Lock()
	old := s.byStream[stream]
	s.mu.Unlock()
	if old == nil {
		return nil
	}
	if idle := s.now().Sub(old.lastActive()); idle < s.cfg.TakeoverAfter {
		return fmt.Errorf("%s is live (media %s ago): a new publisher may take it over after %s of silence",
			stream, idle.Round(time.Millisecond), s.cfg.TakeoverAfter)
	}
	return nil
}

// lastActive returns when p last showed life: its last media, or its
// ANNOUNCE before any.
func (p *publisher) lastActive() time.Time {
	p.mu.Lock()
	obs := p.obs
	p.mu.Unlock()
	if obs != nil {
		return obs.LastMedia()
	}
	return p.announced
}

// publisher is one recording session of a publisher.
type publisher struct {
	*recorder
	pub       access.Publisher
	remote    string
	session   *gortsplib.ServerSession
	obs       *observe.Session
	recording bool
	announced time.Time
}
