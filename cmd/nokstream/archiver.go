package main

import (
	"context"
	"net/http"

	"github.com/spf13/cobra"

	"github.com/nokstream/nokstream/archiver"
	"github.com/nokstream/nokstream/internal/obs"
)

func archiverCommand(g *globalFlags) *cobra.Command {
	var d deps
	var httpAddr string
	cmd := &cobra.Command{
		Use:   "archiver",
		Short: "Run the archiver: checks every announced segment against the blob store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := g.logger().With("service", "archiver")
			reg := obs.NewRegistry()
			health := obs.NewHealth()
			st, err := d.openStore(ctx, false)
			if err != nil {
				return err
			}
			defer st.Close()
			store, blobPing, err := d.openBlob(ctx)
			if err != nil {
				return err
			}
			b, busPing, err := d.openBus(log, reg, true)
			if err != nil {
				return err
			}
			defer b.Close()
			health.Add("blob", blobPing.Ping)
			health.Add("kafka", busPing.Ping)
			health.Add("postgres", st.Ping)
			svc := archiver.New(archiver.Deps{Bus: b, Blob: store, Recorder: st, Log: log, Registry: reg})
			mux := http.NewServeMux()
			obs.Register(mux, reg, health)
			return runAll(ctx, svc.Run, func(ctx context.Context) error { return serveHTTP(ctx, log, "archiver", httpAddr, mux) })
		},
	}
	d.dataFlag(cmd)
	d.dbFlag(cmd)
	d.blobFlag(cmd, "")
	d.kafkaFlag(cmd, "")
	cmd.Flags().StringVar(&httpAddr, "http-addr", ":9102", "metrics and health listen address")
	return cmd
}
