// Package ingest receives exam-site streams and turns them into spooled,
// uploaded and announced fMP4 segments. It wires the transports (RTSP today),
// the spool and the uploader; the pieces live in the subpackages.
package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/nokstream/nokstream/ingest/access"
	"github.com/nokstream/nokstream/ingest/rtsp"
	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/ingest/spool"
	"github.com/nokstream/nokstream/ingest/uploader"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/obs"
)

// Config of the ingest service.
type Config struct {
	SpoolDir string      `yaml:"spool_dir"`
	Node     string      `yaml:"node"` // name of this ingest node in events; default the host name
	RTSP     rtsp.Config `yaml:"rtsp"`
}

// DefaultConfig returns the defaults for a data directory.
func DefaultConfig(dataDir string) Config {
	host, _ := os.Hostname()
	return Config{SpoolDir: filepath.Join(dataDir, "spool"), Node: host, RTSP: rtsp.DefaultConfig()}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.SpoolDir == "" {
		return fmt.Errorf("ingest: spool_dir is empty")
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
}

// Service is the ingest service.
type Service struct {
	cfg      Config
	spool    *spool.Spool
	uploader *uploader.Uploader
	rtsp     *rtsp.Server
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
	up := uploader.New(sp, d.Blob, d.Publisher, d.Log, uploader.NewMetrics(d.Registry))
	outputs := func(site, device, source string) segmenter.Output { return sp.Stream(site, device, source) }
	rs, err := rtsp.New(cfg.RTSP, d.Checker, outputs, d.Log, rtsp.NewMetrics(d.Registry), d.Now)
	if err != nil {
		return nil, err
	}
	if d.Health != nil {
		d.Health.Add("ingest_shipping", func(context.Context) error { return up.Err() })
	}
	return &Service{cfg: cfg, spool: sp, uploader: up, rtsp: rs, log: d.Log}, nil
}

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
