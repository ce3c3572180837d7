// Package ingest receives exam-site streams and turns them into spooled,
// uploaded and announced fMP4 segments. It wires the transports (RTSP, WHIP),
// the spool and the uploader; the pieces live in the subpackages.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/nokstream/nokstream/ingest/access"
	"github.com/nokstream/nokstream/ingest/observe"
	"github.com/nokstream/nokstream/ingest/rtsp"
	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/ingest/spool"
	"github.com/nokstream/nokstream/ingest/uploader"
	"github.com/nokstream/nokstream/ingest/whip"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/obs"
)

// Config of the ingest service.
type Config struct {
	SpoolDir string      `yaml:"spool_dir"`
	Node     string      `yaml:"node"` // name of this ingest node in events; default the host name
	RTSP     rtsp.Config `yaml:"rtsp"`
	// Pull configures the pulling of cameras registered with a URL.
	Pull rtsp.PullConfig `yaml:"pull"`
	// Gap is the longest stretch without media that is not reported as a
	// gap observation.
	Gap time.Duration `yaml:"gap"`
	// SpoolMaxBytes is the spool quota; 0 means 90% of the free disk space
	// at start. At 90% of it new publishers are refused.
	SpoolMaxBytes int64 `yaml:"spool_max_bytes"`
	// AuthCacheTTL is how long a device's successful authentication lets
	// it publish again while the registry (PostgreSQL) is unreachable.
	AuthCacheTTL time.Duration `yaml:"auth_cache_ttl"`
	// WHIP is the WebRTC endpoint; its segment durations are RTSP's.
	WHIP whip.Config `yaml:"whip"`
}

// DefaultConfig returns the defaults for a data directory.
func DefaultConfig(dataDir string) Config {
	host, _ := os.Hostname()
	return Config{SpoolDir: filepath.Join(dataDir, "spool"), Node: host, RTSP: rtsp.DefaultConfig(),
		Pull: rtsp.DefaultPullConfig(), Gap: 2 * time.Second, AuthCacheTTL: access.DefaultCacheTTL, WHIP: whip.DefaultConfig()}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.SpoolDir == "" {
		return fmt.Errorf("ingest: spool_dir is empty")
	}
	if c.Gap <= 0 {
		return fmt.Errorf("ingest: gap %s is not positive", c.Gap)
	}
	if c.SpoolMaxBytes < 0 {
		return fmt.Errorf("ingest: spool_max_bytes %d is negative", c.SpoolMaxBytes)
	}
	if err := c.Pull.Validate(); err != nil {
		return err
	}
	if err := c.WHIP.Validate(); err != nil {
		return err
	}
	return c.RTSP.Validate()
}

// Deps are what ingest talks to.
type Deps struct {
	Checker   access.Checker
	Blob      blob.Store
	Publisher bus.Publisher
	Log       *slog.Logger
	Registry  prometheus.Registerer
	Health    *obs.Health
	Now       func() time.Time
	// Pull lists the cameras to pull; nil pulls none.
	Pull rtsp.PullSource
}

// Service is the ingest service.
type Service struct {
	cfg      Config
	spool    *spool.Spool
	uploader *uploader.Uploader
	rtsp     *rtsp.Server
	puller   *rtsp.Puller
	whip     *whip.Server
	cont     *observe.Continuity
	checker  access.Checker
	quota    *quota
	log      *slog.Logger
}

// New opens the spool (recovering what a crash left) and wires the service.
func New(cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sp, err := spool.Open(cfg.SpoolDir, cfg.Node, d.Log, d.Now)
	if err != nil {
		return nil, err
	}
	sp.Instrument(spool.NewMetrics(d.Registry))
	maxBytes := cfg.SpoolMaxBytes
	if maxBytes == 0 {
		maxBytes = autoQuota(cfg.SpoolDir, sp.Used())
	}
	q := newQuota(sp, maxBytes, d.Log, d.Registry)
	up := uploader.New(sp, d.Blob, d.Publisher, d.Log, uploader.NewMetrics(d.Registry))
	outputs := func(site, device, source string) segmenter.Output { return sp.Stream(site, device, source) }
	cont := observe.New(sp, cfg.Gap, d.Log, observe.NewMetrics(d.Registry), d.Now)
	checker := access.NewCache(d.Checker, cfg.AuthCacheTTL, d.Now)
	m := rtsp.NewMetrics(d.Registry)
	// The transports open their sockets here: a port in use fails New,
	// and Addrs knows every bound address before Run.
	rs, err := rtsp.New(cfg.RTSP, checker, outputs, d.Log, m, d.Now, rtsp.Options{Continuity: cont, Gate: q.err})
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, spool: sp, uploader: up, rtsp: rs, cont: cont, checker: checker, quota: q, log: d.Log}
	wc := cfg.WHIP
	wc.Segment = cfg.RTSP.Segment
	s.whip, err = whip.New(wc, checker, outputs, d.Log, whip.NewMetrics(d.Registry), d.Now, whip.Options{Continuity: cont, Gate: q.err})
	if err != nil {
		_ = rs.Close()
		return nil, err
	}
	if d.Pull != nil {
		pc := cfg.Pull
		pc.Segment = cfg.RTSP.Segment
		s.puller, err = rtsp.NewPuller(pc, d.Pull, outputs, cont, d.Log, m, d.Now)
		if err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	if d.Health != nil {
		d.Health.Add("ingest_shipping", func(context.Context) error { return up.Err() })
		d.Health.Add("ingest_spool_quota", func(context.Context) error { return q.err() })
	}
	return s, nil
}

// Addrs are the addresses the service's sockets are bound to; "" where a
// socket is not configured.
type Addrs struct {
	RTSP, RTSPS string
	// RTP and RTCP are RTSP over UDP's pair.
	RTP, RTCP string
	// WebRTCUDP is WHIP's one UDP media socket ("" with a port per
	// session); WebRTCTCP its ICE-TCP listener.
	WebRTCUDP, WebRTCTCP string
}

// Addrs returns the bound addresses of the sockets New opened (a port 0 in
// the configuration is the port the kernel picked).
func (s *Service) Addrs() Addrs {
	a := Addrs{RTSP: s.rtsp.Addr(), RTSPS: s.rtsp.TLSAddr()}
	a.RTP, a.RTCP = s.rtsp.UDPAddrs()
	if u := s.whip.UDPAddr(); u != nil {
		a.WebRTCUDP = u.String()
	}
	if t := s.whip.TCPAddr(); t != nil {
		a.WebRTCTCP = t.String()
	}
	return a
}

// Close releases the sockets of a service whose Run was not called (Run
// closes them itself on its way out).
func (s *Service) Close() error {
	return errors.Join(s.rtsp.Close(), s.whip.Close())
}

// Continuity returns the reporter of stream observations (start, stop,
// gaps), for transports wired beside RTSP.
func (s *Service) Continuity() *observe.Continuity { return s.cont }

// Checker returns the publisher check with the authentication cache that
// keeps devices publishing while the registry is down.
func (s *Service) Checker() access.Checker { return s.checker }

// Handler serves the WHIP endpoint (RFC 9725); mount it at /whip/.
func (s *Service) Handler() http.Handler { return s.whip.Handler() }

// Run serves until ctx ends. On the way out the transports close their open
// segments into the spool; the uploader ships what it can before ctx ended
// and the rest stays spooled for the next start.
func (s *Service) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	upCtx, upCancel := context.WithCancel(context.Background())
	defer upCancel()
	upDone := make(chan error, 1)
	go func() { upDone <- s.uploader.Run(upCtx) }()
	g.Go(func() error { return s.rtsp.Run(gctx) })
	g.Go(func() error { return s.whip.Run(gctx) })
	if s.puller != nil {
		g.Go(func() error { return s.puller.Run(gctx) })
	}
	g.Go(func() error { s.quota.run(gctx); return nil })
	err := g.Wait()
	upCancel()
	<-upDone
	// Give the uploader a moment to ship the segments the transports just
	// closed; whatever remains stays in the spool for the next start.
	drainCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if derr := s.uploader.Drain(drainCtx); derr != nil {
		s.log.Warn("segments left in spool at shutdown", "err", derr)
	}
	cancel()
	return err
}
