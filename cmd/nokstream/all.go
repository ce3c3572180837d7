package main

import (
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/nokstream/nokstream/ingest"
	"github.com/nokstream/nokstream/transcoder"
)

func allCommand(g *globalFlags) *cobra.Command {
	var d deps
	var fi ingestFlags
	var fr registryFlags
	var fa archiverFlags
	var ft transcoderFlags
	cmd := &cobra.Command{
		Use:   "all",
		Short: "Run every service in one process (single machine)",
		Long: `Run ingest, transcoder, archiver and registry in one process.

By default the blob store is a directory and the bus is a durable in-process
log, both under --data; --blob s3://… and --kafka brokers use the scaled-out
adapters instead. Migrations are applied at start.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := g.logger()
			p, err := d.open(ctx, log, openOpts{store: true, migrate: true})
			if err != nil {
				return err
			}
			defer p.close()
			if err := p.openAdmin(g, "all"); err != nil {
				return err
			}
			st, blobStore, b, reg, health := p.st, p.blob, p.bus, p.reg, p.health
			pulls, err := fi.pullSource(storePulls(st), d.data, log.With("service", "ingest"))
			if err != nil {
				return err
			}
			// One --trusted-proxies for WHIP and the API (ingest registers it).
			fr.trustedProxies = fi.trustedProxies
			icfg, err := fi.config(d.data)
			if err != nil {
				return err
			}
			ing, err := ingest.New(icfg, ingest.Deps{Checker: deviceChecker{st}, Blob: blobStore, Publisher: b,
				Log: log.With("service", "ingest"), Registry: reg, Health: health, Now: time.Now, Pull: pulls})
			if err != nil {
				return err
			}
			tcfg, err := ft.config(d.kafka == "")
			if err != nil {
				return err
			}
			tc, err := transcoder.New(tcfg, transcoder.Deps{Bus: b, Blob: blobStore, Log: log.With("service", "transcoder"), Registry: reg, Now: time.Now})
			if err != nil {
				return err
			}
			fa.sealKey = fr.sealKey         // one --seal-key flag for both
			fr.floors = fa.retention.floors // one set of --floor-* flags for both
			ast, err := d.openArchiverStore(ctx)
			if err != nil {
				return err
			}
			defer ast.Close()
			arc, err := archiverService(&fa, d.data, ast, blobStore, b, log.With("service", "archiver"), reg)
			if err != nil {
				return err
			}
			h, consume, err := registryParts(&fr, d.data, st, blobStore, b, log.With("service", "registry"), reg, health)
			if err != nil {
				return err
			}
			p.boundIngest(ing)
			return p.serve(ctx, fr.httpAddr, map[string]http.Handler{"/whip/": ing.Handler(), "/": h},
				ing.Run, tc.Run, arc.Run, consume)
		},
	}
	d.dataFlag(cmd)
	d.dbFlag(cmd)
	d.blobFlag(cmd, "")
	d.kafkaFlag(cmd, "")
	fi.register(cmd)
	fr.register(cmd)
	fa.register(cmd)
	ft.register(cmd)
	return cmd
}
