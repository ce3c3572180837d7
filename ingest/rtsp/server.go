// Package rtsp is ingest's RTSP server (RFC 7826 / RFC 2326, gortsplib): it
// accepts publishers (ANNOUNCE + RECORD) at rtsp://host:port/<site>/<device>
// over TCP and UDP, authenticates them with the device's credentials, and
// feeds their H.264, AAC and Opus media into a segmenter per session.
//
// It never serves streams to readers.
package rtsp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/auth"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/nokstream/nokstream/ingest/access"
	"github.com/nokstream/nokstream/ingest/segmenter"
)

// Config of the RTSP server.
type Config struct {
	Addr        string           `yaml:"addr"`          // TCP listen address, default ":8554"
	UDPRTPAddr  string           `yaml:"udp_rtp_addr"`  // default ":8000"; empty with UDPRTCPAddr empty disables UDP
	UDPRTCPAddr string           `yaml:"udp_rtcp_addr"` // default ":8001" (RTP port + 1)
	ReadTimeout time.Duration    `yaml:"read_timeout"`  // a publisher silent this long is cut off
	MaxSDPBytes int              `yaml:"max_sdp_bytes"` // larger ANNOUNCE bodies are refused
	Segment     segmenter.Config `yaml:"segment"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Addr: ":8554", UDPRTPAddr: ":8000", UDPRTCPAddr: ":8001", ReadTimeout: 10 * time.Second,
		MaxSDPBytes: 64 << 10, Segment: segmenter.DefaultConfig()}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Addr == "" {
		return fmt.Errorf("rtsp: empty listen address")
	}
	if (c.UDPRTPAddr == "") != (c.UDPRTCPAddr == "") {
		return fmt.Errorf("rtsp: set both UDP RTP and RTCP addresses, or neither")
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
	return &Metrics{
		active: f.NewGaugeVec(prometheus.GaugeOpts{Name: "nokstream_ingest_streams_active",
			Help: "Publisher sessions currently recording, by transport and source kind."}, []string{"transport", "source"}),
		refused: f.NewCounterVec(prometheus.CounterOpts{Name: "nokstream_ingest_publishers_refused_total",
			Help: "Publishers refused, by transport and reason."}, []string{"transport", "reason"}),
		bytesIn: f.NewCounter(prometheus.CounterOpts{Name: "nokstream_ingest_rtsp_received_bytes_total",
			Help: "Media payload bytes received over RTSP."}),
		errors: f.NewCounterVec(prometheus.CounterOpts{Name: "nokstream_ingest_media_errors_total",
			Help: "Media that could not be used, by transport and kind (decode, timestamp, codec, write)."}, []string{"transport", "kind"}),
		sessions: f.NewCounterVec(prometheus.CounterOpts{Name: "nokstream_ingest_sessions_total",
			Help: "Publisher sessions started, by transport and source kind."}, []string{"transport", "source"}),
	}
}

// Server is the RTSP ingest server.
type Server struct {
	cfg     Config
	checker access.Checker
	outputs Outputs
	log     *slog.Logger
	m       *Metrics
	now     func() time.Time
	srv     *gortsplib.Server

	mu         sync.Mutex
	publishers map[*gortsplib.ServerSession]*publisher
	byStream   map[string]*publisher
}

// New wires a server; Run starts it.
func New(cfg Config, checker access.Checker, outputs Outputs, log *slog.Logger, m *Metrics, now func() time.Time) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m == nil {
		m = NewMetrics(prometheus.NewRegistry())
	}
	s := &Server{cfg: cfg, checker: checker, outputs: outputs, log: log, m: m, now: now,
		publishers: map[*gortsplib.ServerSession]*publisher{}, byStream: map[string]*publisher{}}
	s.srv = &gortsplib.Server{
		Handler:        s,
		RTSPAddress:    cfg.Addr,
		UDPRTPAddress:  cfg.UDPRTPAddr,
		UDPRTCPAddress: cfg.UDPRTCPAddr,
		ReadTimeout:    cfg.ReadTimeout,
		WriteTimeout:   cfg.ReadTimeout,
		// Basic only: device secrets are stored hashed, so digest (which needs
		// the clear secret on the server) cannot be offered. Use RTSPS where
		// the network is not trusted.
		AuthMethods: []auth.VerifyMethod{auth.VerifyMethodBasic},
	}
	return s, nil
}

// Addr returns the TCP address the server listens on, once Run started it.
func (s *Server) Addr() string { return s.cfg.Addr }

// Run serves until ctx ends, then closes every session (each open segment is
// closed and spooled) and returns.
func (s *Server) Run(ctx context.Context) error {
	if err := s.srv.Start(); err != nil {
		return fmt.Errorf("start rtsp server on %s: %w", s.cfg.Addr, err)
	}
	s.log.Info("rtsp server listening", "addr", s.cfg.Addr, "udp_rtp", s.cfg.UDPRTPAddr)
	done := make(chan error, 1)
	go func() { done <- s.srv.Wait() }()
	select {
	case <-ctx.Done():
		s.srv.Close()
		<-done
		s.closeAll()
		return nil
	case err := <-done:
		s.closeAll()
		return fmt.Errorf("rtsp server: %w", err)
	}
}

func (s *Server) closeAll() {
	s.mu.Lock()
	ps := make([]*publisher, 0, len(s.publishers))
	for _, p := range s.publishers {
		ps = append(ps, p)
	}
	s.mu.Unlock()
	for _, p := range ps {
		s.endPublisher(p, "server stopping")
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
		s.endPublisher(p, reason)
	}
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
	var a headers.Authorization
	if err := a.Unmarshal(ctx.Request.Header["Authorization"]); err != nil || a.Method != headers.AuthMethodBasic || a.BasicUser == "" {
		// gortsplib answers 401 with a Basic challenge when no credentials
		// were sent; the client retries with them.
		return s.refuse("no_credentials", base.StatusUnauthorized, liberrors.ErrServerAuth{})
	}
	pub, err := s.checker.CheckPublisher(context.Background(), site, device, a.BasicUser, a.BasicPass)
	switch {
	case errors.Is(err, access.ErrUnknownStream):
		s.log.Warn("rtsp publisher refused", "reason", "unknown stream", "stream", stream, "remote_addr", remote)
		return s.refuse("unknown_stream", base.StatusNotFound, fmt.Errorf("unknown stream %s", stream))
	case errors.Is(err, access.ErrBadCredentials):
		s.log.Warn("rtsp publisher refused", "reason", "wrong credentials", "stream", stream, "remote_addr", remote)
		return s.refuse("bad_credentials", base.StatusUnauthorized, liberrors.ErrServerAuth{})
	case err != nil:
		s.log.Error("rtsp publisher check", "stream", stream, "err", err)
		return s.refuse("registry_unavailable", base.StatusServiceUnavailable, fmt.Errorf("check publisher: %w", err))
	}
	if len(ctx.Request.Body) > s.cfg.MaxSDPBytes {
		return s.refuse("bad_sdp", base.StatusBadRequest, fmt.Errorf("SDP of %d bytes is larger than %d", len(ctx.Request.Body), s.cfg.MaxSDPBytes))
	}
	p, err := newPublisher(s, pub, ctx.Description, remote)
	if err != nil {
		s.log.Warn("rtsp publisher refused", "reason", err.Error(), "stream", stream, "remote_addr", remote)
		return s.refuse("unsupported_media", base.StatusUnsupportedMediaType, err)
	}
	p.session = ctx.Session

	s.mu.Lock()
	old := s.byStream[stream]
	s.publishers[ctx.Session] = p
	s.byStream[stream] = p
	s.mu.Unlock()
	if old != nil {
		// A camera that reconnects replaces its stale session.
		s.log.Info("new publisher replaces the previous session", "stream", stream)
		old.session.Close()
		s.endPublisher(old, "replaced by a new session")
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
	p.start(ctx.Session)
	s.m.sessions.WithLabelValues("rtsp", p.pub.Source).Inc()
	s.m.active.WithLabelValues("rtsp", p.pub.Source).Inc()
	s.log.Info("rtsp publisher recording", "stream", p.stream, "source", p.pub.Source, "remote_addr", p.remote,
		"codecs", strings.Join(p.codecs, ","))
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnDecodeError counts RTP/RTCP the library could not parse.
func (s *Server) OnDecodeError(ctx *gortsplib.ServerHandlerOnDecodeErrorCtx) {
	s.m.errors.WithLabelValues("rtsp", "decode").Inc()
	s.mu.Lock()
	p := s.publishers[ctx.Session]
	s.mu.Unlock()
	if p != nil {
		p.warn("decode", ctx.Error)
	}
}

func (s *Server) endPublisher(p *publisher, reason string) {
	s.mu.Lock()
	if s.publishers[p.session] == p {
		delete(s.publishers, p.session)
	}
	if s.byStream[p.stream] == p {
		delete(s.byStream, p.stream)
	}
	s.mu.Unlock()
	if p.close() {
		if p.recording {
			s.m.active.WithLabelValues("rtsp", p.pub.Source).Dec()
		}
		s.log.Info("rtsp publisher ended", "stream", p.stream, "reason", reason)
	}
}

// publisher is one recording session.
type publisher struct {
	s       *Server
	pub     access.Publisher
	stream  string
	remote  string
	session *gortsplib.ServerSession
	desc    *description.Session
	codecs  []string

	mu        sync.Mutex
	seg       *segmenter.Segmenter
	medias    []mediaWriter
	closed    bool
	recording bool
	lastWarn  map[string]time.Time
}

type mediaWriter struct {
	media  *description.Media
	format format.Format
	write  func(pkt *rtp.Packet, pts int64) error
}

func newPublisher(s *Server, pub access.Publisher, desc *description.Session, remote string) (*publisher, error) {
	p := &publisher{s: s, pub: pub, stream: pub.Site + "/" + pub.Device, remote: remote, desc: desc, lastWarn: map[string]time.Time{}}
	var tracks []segmenter.Track
	type pending struct {
		media  *description.Media
		format format.Format
		make   func(seg *segmenter.Segmenter, idx int) (func(*rtp.Packet, int64) error, error)
	}
	var pend []pending
	hasVideo, hasAudio := false, false
	for _, m := range desc.Medias {
		for _, f := range m.Formats {
			switch f := f.(type) {
			case *format.H264:
				if hasVideo {
					continue
				}
				hasVideo = true
				tracks = append(tracks, segmenter.Track{Codec: &mp4.CodecH264{SPS: f.SPS, PPS: f.PPS}, TimeScale: 90000})
				pend = append(pend, pending{m, f, func(seg *segmenter.Segmenter, idx int) (func(*rtp.Packet, int64) error, error) {
					dec, err := f.CreateDecoder()
					if err != nil {
						return nil, err
					}
					w := segmenter.NewH264(seg, idx, f.SPS, f.PPS)
					return func(pkt *rtp.Packet, pts int64) error {
						au, err := dec.Decode(pkt)
						if err != nil {
							if errors.Is(err, rtph264.ErrMorePacketsNeeded) || errors.Is(err, rtph264.ErrNonStartingPacketAndNoPrevious) {
								return nil
							}
							return fmt.Errorf("h264 rtp: %w", err)
						}
						return w.Write(pts, au)
					}, nil
				}})
			case *format.MPEG4Audio:
				if hasAudio || f.Config == nil {
					continue
				}
				hasAudio = true
				tracks = append(tracks, segmenter.Track{Codec: &mp4.CodecMPEG4Audio{Config: *f.Config}, TimeScale: uint32(f.ClockRate())})
				pend = append(pend, pending{m, f, func(seg *segmenter.Segmenter, idx int) (func(*rtp.Packet, int64) error, error) {
					dec, err := f.CreateDecoder()
					if err != nil {
						return nil, err
					}
					w := segmenter.NewAAC(seg, idx, f.Config)
					return func(pkt *rtp.Packet, pts int64) error {
						aus, err := dec.Decode(pkt)
						if err != nil {
							if errors.Is(err, rtpmpeg4audio.ErrMorePacketsNeeded) {
								return nil
							}
							return fmt.Errorf("aac rtp: %w", err)
						}
						return w.Write(pts, aus)
					}, nil
				}})
			case *format.Opus:
				if hasAudio {
					continue
				}
				hasAudio = true
				ch := f.ChannelCount
				if ch == 0 {
					ch = 2
				}
				tracks = append(tracks, segmenter.Track{Codec: &mp4.CodecOpus{ChannelCount: ch}, TimeScale: 48000})
				pend = append(pend, pending{m, f, func(seg *segmenter.Segmenter, idx int) (func(*rtp.Packet, int64) error, error) {
					dec, err := f.CreateDecoder()
					if err != nil {
						return nil, err
					}
					w := segmenter.NewOpus(seg, idx)
					return func(pkt *rtp.Packet, pts int64) error {
						op, err := dec.Decode(pkt)
						if err != nil {
							return fmt.Errorf("opus rtp: %w", err)
						}
						return w.Write(pts, op)
					}, nil
				}})
			}
		}
	}
	if !hasVideo && !hasAudio {
		return nil, fmt.Errorf("no supported media: need H.264 video and/or AAC or Opus audio")
	}
	seg, err := segmenter.New(s.cfg.Segment, tracks, s.outputs(pub.Site, pub.Device, pub.Source), s.now)
	if err != nil {
		return nil, err
	}
	p.seg = seg
	for i, pd := range pend {
		fn, err := pd.make(seg, i)
		if err != nil {
			return nil, fmt.Errorf("media %d: %w", i, err)
		}
		p.medias = append(p.medias, mediaWriter{media: pd.media, format: pd.format, write: fn})
		p.codecs = append(p.codecs, pd.format.Codec())
	}
	return p, nil
}

func (p *publisher) start(ss *gortsplib.ServerSession) {
	p.mu.Lock()
	p.recording = true
	p.mu.Unlock()
	for _, mw := range p.medias {
		mw := mw
		ss.OnPacketRTP(mw.media, mw.format, func(pkt *rtp.Packet) {
			pts, ok := ss.PacketPTS2(mw.media, pkt)
			if !ok {
				return
			}
			p.s.m.bytesIn.Add(float64(len(pkt.Payload)))
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.closed {
				return
			}
			if err := mw.write(pkt, pts); err != nil {
				kind := "decode"
				if errors.Is(err, segmenter.ErrTimestampBack) {
					kind = "timestamp"
				}
				var werr *segmenter.OutputError
				if errors.As(err, &werr) {
					// The spool cannot take the data: stop this publisher
					// rather than pretend to record.
					p.s.m.errors.WithLabelValues("rtsp", "write").Inc()
					p.s.log.Error("spooling failed, closing publisher", "stream", p.stream, "err", err)
					go ss.Close()
					return
				}
				p.s.m.errors.WithLabelValues("rtsp", kind).Inc()
				p.warnLocked(kind, err)
			}
		})
	}
}

func (p *publisher) warn(kind string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.warnLocked(kind, err)
}

// warnLocked logs at most one warning of a kind per publisher every 10 s.
func (p *publisher) warnLocked(kind string, err error) {
	now := time.Now()
	if now.Sub(p.lastWarn[kind]) < 10*time.Second {
		return
	}
	p.lastWarn[kind] = now
	p.s.log.Warn("rtsp media problem", "stream", p.stream, "kind", kind, "err", err)
}

// close ends the session's segmenter once; it reports whether it did.
func (p *publisher) close() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.closed = true
	if err := p.seg.Close(); err != nil {
		p.s.log.Error("closing last segment", "stream", p.stream, "err", err)
	}
	return true
}
