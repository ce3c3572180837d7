package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/httpserver"
	"github.com/nokstream/nokstream/internal/nodeapi"
	"github.com/nokstream/nokstream/internal/obs"
	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
	"github.com/nokstream/nokstream/registry/web"
)

// registryGroup is the registry's consumer group for the segment index.
const registryGroup = "registry"

// segmentConsumers is how many members of registryGroup a registry runs.
const segmentConsumers = 3

type registryFlags struct {
	httpAddr        string
	signingKey      string
	publicURL       string
	sealKey         string
	trustedProxies  string
	authConcurrency int
	// floors are the archiver's legal floors of retention periods: a
	// council's setting below one is refused. `registry` has its own
	// --floor-* flags; `all` takes the archiver's.
	floors floorFlags
}

func (f *registryFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.httpAddr, "http-addr", ":8080", "HTTP API listen address")
	trustedProxiesFlag(cmd, &f.trustedProxies)
	cmd.Flags().IntVar(&f.authConcurrency, "auth-concurrency", runtime.NumCPU(),
		"password hashes (64 MiB and a core each) computed at once; more logins wait briefly, then get 503")
	cmd.Flags().StringVar(&f.signingKey, "signing-key", "", "file with the key that signs media URLs, shared by every registry (default: <data>/keys/signing.key, created if missing)")
	sealKeyFlag(cmd, &f.sealKey)
}

// registryParts builds the registry's HTTP handler and index consumer.
func registryParts(f *registryFlags, data string, st *store.Store, blobStore blob.Store, b bus.Bus,
	log *slog.Logger, reg *prometheus.Registry, health *obs.Health) (http.Handler, func(context.Context) error, error) {
	keyPath := f.signingKey
	if keyPath == "" {
		keyPath = filepath.Join(data, "keys", "signing.key")
	}
	key, err := signingKey(keyPath)
	if err != nil {
		return nil, nil, err
	}
	cfg := api.DefaultConfig()
	cfg.SigningKey = key
	cfg.AuthConcurrency = f.authConcurrency
	cfg.RetentionFloors = f.floors.floors()
	if cfg.TrustedProxies, err = httpserver.ParseProxies(f.trustedProxies); err != nil {
		return nil, nil, fmt.Errorf("--trusted-proxies: %w", err)
	}
	sealKey, err := loadSealKey(f.sealKey, data)
	if err != nil {
		return nil, nil, err
	}
	srv, err := api.New(cfg, api.Deps{Store: st, Blob: blobStore, Log: log, Registry: reg, Health: health, Now: time.Now, Bus: b,
		SealKey: sealKey})
	if err != nil {
		return nil, nil, err
	}
	// The node API for ingest nodes (node tokens only) beside the public
	// API and pages, outside the OpenAPI document.
	node, err := api.NewNodeAPI(api.NodeDeps{Store: st, Log: log, Registry: reg, Now: time.Now, TrustedProxies: cfg.TrustedProxies})
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(nodeapi.Prefix, node.Handler())
	mux.Handle("/", web.Handler(srv.Handler()))
	consume := func(ctx context.Context) error {
		g, gctx := errgroup.WithContext(ctx)
		// The segment index: segmentConsumers members of the group (the
		// partitions shared among them on Kafka; one at a time on the
		// in-process bus), each indexing batches of up to 500 events (or
		// what arrived within 50 ms) in one transaction, committed on
		// the bus once stored.
		if bc, ok := b.(bus.BatchConsumer); ok {
			h := index.BatchHandler(st, log)
			for range segmentConsumers {
				g.Go(func() error {
					return bc.ConsumeBatch(gctx, events.TopicSegments, registryGroup, bus.BatchOptions{}, h)
				})
			}
		} else {
			batcher := index.NewBatcher(st, 500)
			g.Go(func() error { return batcher.Run(gctx) })
			for range segmentConsumers {
				g.Go(func() error { return b.Consume(gctx, events.TopicSegments, registryGroup, index.Handler(batcher, log)) })
			}
		}
		g.Go(func() error {
			return b.Consume(gctx, events.TopicObservations, index.ObservationGroup, index.ObservationHandler(st, log))
		})
		g.Go(func() error {
			return b.Consume(gctx, events.TopicRenditions, index.RenditionGroup, index.RenditionHandler(st, log))
		})
		// The archiver's deletions (the audit log, the segment index) and
		// its records (the registry's copies of its objects, seals, checks).
		g.Go(func() error {
			return b.Consume(gctx, events.TopicArchive, index.DeletionGroup, index.ArchiveHandler(st, log))
		})
		// The outbox relay: RetentionChanged and other events of changes.
		g.Go(func() error { return srv.Run(gctx) })
		// The node authentication audit.
		g.Go(func() error { return node.Run(gctx) })
		g.Go(func() error { return index.MaintainPartitions(gctx, st, time.Now, log) })
		return g.Wait()
	}
	return mux, consume, nil
}

func registryCommand(g *globalFlags) *cobra.Command {
	var d deps
	var f registryFlags
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Run the registry: segment index, HTTP API and HLS playback",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := g.logger().With("service", "registry")
			p, err := d.open(ctx, log, openOpts{store: true, migrate: true, requireKafka: true})
			if err != nil {
				return err
			}
			defer p.close()
			if err := p.openAdmin(g, "registry"); err != nil {
				return err
			}
			h, consume, err := registryParts(&f, d.data, p.st, p.blob, p.bus, log, p.reg, p.health)
			if err != nil {
				return err
			}
			return p.serve(ctx, f.httpAddr, map[string]http.Handler{"/": h}, consume)
		},
	}
	d.dataFlag(cmd)
	d.dbFlag(cmd)
	d.blobFlag(cmd, "")
	d.kafkaFlag(cmd, "")
	f.register(cmd)
	f.floors.register(cmd)
	cmd.AddCommand(retentionBackfillCommand())
	return cmd
}

// trustedProxiesFlag registers --trusted-proxies into dst, unless another
// service of the command (nokstream all) has: then that service's value is
// the one to copy.
func trustedProxiesFlag(cmd *cobra.Command, dst *string) {
	if cmd.Flags().Lookup("trusted-proxies") != nil {
		return
	}
	cmd.Flags().StringVar(dst, "trusted-proxies", "",
		"comma-separated CIDR prefixes of reverse proxies whose X-Forwarded-For is believed for limits and the audit log (default: none)")
}
