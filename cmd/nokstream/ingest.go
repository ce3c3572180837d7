package main

import (
	"context"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/nokstream/nokstream/ingest"
	"github.com/nokstream/nokstream/internal/obs"
)

type ingestFlags struct {
	rtspAddr string
	rtpAddr  string
	rtcpAddr string
	segment  time.Duration
	node     string
}

func (f *ingestFlags) register(cmd *cobra.Command) {
	def := ingest.DefaultConfig("")
	cmd.Flags().StringVar(&f.rtspAddr, "rtsp-addr", def.RTSP.Addr, "RTSP listen address (TCP)")
	cmd.Flags().StringVar(&f.rtpAddr, "rtp-addr", def.RTSP.UDPRTPAddr, "RTSP over UDP: RTP listen address (even port; empty disables UDP)")
	cmd.Flags().StringVar(&f.rtcpAddr, "rtcp-addr", def.RTSP.UDPRTCPAddr, "RTSP over UDP: RTCP listen address (RTP port + 1)")
	cmd.Flags().DurationVar(&f.segment, "segment-duration", def.RTSP.Segment.SegmentDuration, "target segment duration (cut on the next keyframe after it)")
	cmd.Flags().StringVar(&f.node, "node", def.Node, "name of this ingest node in events")
}

func (f *ingestFlags) config(data string) ingest.Config {
	cfg := ingest.DefaultConfig(data)
	cfg.RTSP.Addr = f.rtspAddr
	cfg.RTSP.UDPRTPAddr = f.rtpAddr
	cfg.RTSP.UDPRTCPAddr = f.rtcpAddr
	cfg.RTSP.Segment.SegmentDuration = f.segment
	if f.node != "" {
		cfg.Node = f.node
	}
	return cfg
}

func ingestCommand(g *globalFlags) *cobra.Command {
	var d deps
	var f ingestFlags
	var httpAddr string
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Run the ingest service: RTSP publishers in, segments to the blob store and Kafka",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := g.logger().With("service", "ingest")
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
			svc, err := ingest.New(f.config(d.data), ingest.Deps{Checker: deviceChecker{st}, Blob: store, Publisher: b,
				Log: log, Registry: reg, Health: health, Now: time.Now})
			if err != nil {
				return err
			}
			mux := http.NewServeMux()
			obs.Register(mux, reg, health)
			return runAll(ctx, svc.Run, func(ctx context.Context) error { return serveHTTP(ctx, log, "ingest", httpAddr, mux) })
		},
	}
	d.dataFlag(cmd)
	d.dbFlag(cmd)
	d.blobFlag(cmd, "")
	d.kafkaFlag(cmd, "")
	f.register(cmd)
	cmd.Flags().StringVar(&httpAddr, "http-addr", ":9101", "metrics and health listen address")
	return cmd
}

// runAll runs the functions until ctx ends or one fails.
func runAll(ctx context.Context, fns ...func(context.Context) error) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, fn := range fns {
		g.Go(func() error { return fn(gctx) })
	}
	return g.Wait()
}
