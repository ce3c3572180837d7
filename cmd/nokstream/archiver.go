package main

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/nokstream/nokstream/archiver"
	astore "github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/evidence/retention"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// retentionFlags are the default retention periods, in days; councils and
// qualifications override them in the registry.
type retentionFlags struct {
	appealWindow, appealMargin, provisional, unlinked int
	floors                                            floorFlags
	// day is how long one day of these flags lasts: 24 h, except in the
	// end-to-end tests that watch a period run out (hidden --retention-day).
	day time.Duration
}

// floorFlags are the legal floors: no retention period, the archiver's or a
// council's, may be below them. The archiver and the registry take the same.
type floorFlags struct {
	window, margin, provisional, unlinked int
}

func (f *floorFlags) register(cmd *cobra.Command) {
	fl := retention.DefaultFloors()
	cmd.Flags().IntVar(&f.window, "floor-appeal-window-days", int(fl.AppealWindow/retention.Day),
		"legal floor of the appeal window, in days: a shorter setting is refused and never applied")
	cmd.Flags().IntVar(&f.margin, "floor-appeal-margin-days", int(fl.AppealMargin/retention.Day),
		"legal floor of the appeal margin, in days")
	cmd.Flags().IntVar(&f.provisional, "floor-provisional-days", int(fl.Provisional/retention.Day),
		"legal floor of the provisional period, in days")
	cmd.Flags().IntVar(&f.unlinked, "floor-unlinked-days", int(fl.Unlinked/retention.Day),
		"legal floor of the period of footage of no exam, in days")
}

func (f *floorFlags) floors() retention.Floors {
	return retention.Floors{
		AppealWindow: time.Duration(f.window) * retention.Day,
		AppealMargin: time.Duration(f.margin) * retention.Day,
		Provisional:  time.Duration(f.provisional) * retention.Day,
		Unlinked:     time.Duration(f.unlinked) * retention.Day,
	}
}

func (f *retentionFlags) register(cmd *cobra.Command) {
	d := retention.DefaultSettings()
	cmd.Flags().IntVar(&f.appealWindow, "appeal-window-days", int(d.Default.AppealWindow/retention.Day),
		"default appeal window after a result, in days (a council's setting wins)")
	cmd.Flags().IntVar(&f.appealMargin, "appeal-margin-days", int(d.Default.AppealMargin/retention.Day),
		"days kept beyond the appeal window and beyond the closing of an appeal")
	cmd.Flags().IntVar(&f.provisional, "provisional-days", int(d.Default.Provisional/retention.Day),
		"default days an exam's footage is kept while it has no result (a council's setting wins)")
	cmd.Flags().IntVar(&f.unlinked, "unlinked-days", int(d.Unlinked/retention.Day),
		"default days footage of no exam is kept (a council's setting wins)")
	f.floors.register(cmd)
	cmd.Flags().DurationVar(&f.day, "retention-day", retention.Day,
		"how long a day of the retention flags lasts (for tests that watch a period end)")
	_ = cmd.Flags().MarkHidden("retention-day")
}

func (f *retentionFlags) settings() retention.Settings {
	day := f.day
	if day <= 0 {
		day = retention.Day
	}
	fl := f.floors
	return retention.Settings{
		Default: retention.Policy{
			AppealWindow: time.Duration(f.appealWindow) * day,
			AppealMargin: time.Duration(f.appealMargin) * day,
			Provisional:  time.Duration(f.provisional) * day,
		},
		Unlinked: time.Duration(f.unlinked) * day,
		Floors: retention.Floors{
			AppealWindow: time.Duration(fl.window) * day,
			AppealMargin: time.Duration(fl.margin) * day,
			Provisional:  time.Duration(fl.provisional) * day,
			Unlinked:     time.Duration(fl.unlinked) * day,
		},
	}
}

// archiverFlags configure the archiver.
type archiverFlags struct {
	retention     retentionFlags
	sealKey       string
	sweepInterval time.Duration
	sweepDelay    time.Duration
	factsMaxAge   time.Duration
	docInterval   time.Duration
	leaseRetry    time.Duration
}

func (f *archiverFlags) register(cmd *cobra.Command) {
	f.retention.register(cmd)
	sealKeyFlag(cmd, &f.sealKey)
	d := archiver.DefaultConfig()
	cmd.Flags().DurationVar(&f.sweepInterval, "sweep-interval", d.SweepInterval, "how often the sweeper runs")
	cmd.Flags().DurationVar(&f.sweepDelay, "sweep-delay", d.SweepDelay,
		"how long an expired object stays marked before the sweeper deletes it")
	cmd.Flags().DurationVar(&f.factsMaxAge, "facts-max-age", d.FactsMaxAge,
		"how old the newest watermark of the archiver's copy of the registry's facts may be for the sweeper to delete anything")
	cmd.Flags().DurationVar(&f.docInterval, "document-interval", d.DocumentInterval,
		"how often document scans uploaded since are taken as evidence (locked, sealed)")
	cmd.Flags().DurationVar(&f.leaseRetry, "lease-retry", d.LeaseRetry,
		"how often a replica that does not run the sweeper tries to take it over")
}

// sealKeyFlag registers --seal-key, which the archiver signs seals with and
// the registry signs exports with and serves the public half of.
func sealKeyFlag(cmd *cobra.Command, p *string) {
	if cmd.Flags().Lookup("seal-key") != nil {
		return
	}
	cmd.Flags().StringVar(p, "seal-key", "",
		"Ed25519 key file (PEM) that signs seals and evidence bundles (default: <data>/keys/seal.ed25519, created if missing)")
}

func loadSealKey(path, data string) (ed25519.PrivateKey, error) {
	if path == "" {
		path = filepath.Join(data, "keys", "seal.ed25519")
	}
	k, err := seal.LoadOrCreateKey(path)
	if err != nil {
		return nil, fmt.Errorf("--seal-key %s: %w", path, err)
	}
	return k, nil
}

func (f *archiverFlags) config() archiver.Config {
	cfg := archiver.DefaultConfig()
	cfg.Retention = f.retention.settings()
	cfg.SweepInterval, cfg.SweepDelay, cfg.FactsMaxAge = f.sweepInterval, f.sweepDelay, f.factsMaxAge
	cfg.DocumentInterval, cfg.LeaseRetry = f.docInterval, f.leaseRetry
	return cfg
}

// archiverService wires the archiver. It decides from its own copy of the
// registry's facts, in its store (events.TopicRetentionV2), and reads no
// registry table.
func archiverService(f *archiverFlags, data string, ast *astore.Store, blobStore blob.Store, b bus.Bus,
	log *slog.Logger, reg prometheus.Registerer) (*archiver.Service, error) {
	rb, ok := blobStore.(archiver.Blob)
	if !ok {
		return nil, fmt.Errorf("blob store %T has no retention", blobStore)
	}
	key, err := loadSealKey(f.sealKey, data)
	if err != nil {
		return nil, err
	}
	return archiver.New(f.config(), archiver.Deps{Bus: b, Blob: rb, Store: ast, Facts: ast, SealKey: key, Log: log, Registry: reg, Now: time.Now})
}

func archiverCommand(g *globalFlags) *cobra.Command {
	var d deps
	var f archiverFlags
	var httpAddr string
	cmd := &cobra.Command{
		Use:   "archiver",
		Short: "Run the archiver: integrity, hash chains, retention (Object Lock), seals, sweeper",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := g.logger().With("service", "archiver")
			// The archiver's own store only: it reads no registry table
			// (its copy of the registry's facts is in its schema).
			if err := d.requireDB(); err != nil {
				return err
			}
			p, err := d.open(ctx, log, openOpts{requireKafka: true})
			if err != nil {
				return err
			}
			defer p.close()
			if err := p.openAdmin(g, "archiver"); err != nil {
				return err
			}
			ast, err := d.openArchiverStore(ctx)
			if err != nil {
				return err
			}
			defer ast.Close()
			p.health.Add("postgres", ast.Ping)
			svc, err := archiverService(&f, d.data, ast, p.blob, p.bus, log, p.reg)
			if err != nil {
				return err
			}
			return p.serve(ctx, httpAddr, nil, svc.Run)
		},
	}
	d.dataFlag(cmd)
	d.dbFlag(cmd)
	d.blobFlag(cmd, "")
	d.kafkaFlag(cmd, "")
	f.register(cmd)
	cmd.Flags().StringVar(&httpAddr, "http-addr", ":9102", "metrics and health listen address")
	return cmd
}
