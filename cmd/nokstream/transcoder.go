package main

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/transcoder"
)

// transcoderFlags are the transcoder's settings that flags reach; the rest
// keep their defaults (transcoder.DefaultConfig).
type transcoderFlags struct {
	workers    int
	threads    int
	profiles   map[string]*string
	crf        int
	preset     string
	thumbs     time.Duration
	blackMin   time.Duration
	frozenMin  time.Duration
	silentMin  time.Duration
	scene      float64
	node       string
	inflight   int64
	keepCodecs int
}

func (f *transcoderFlags) register(cmd *cobra.Command) {
	def := transcoder.DefaultConfig()
	fl := cmd.Flags()
	fl.IntVar(&f.workers, "transcode-workers", 0, "segments transcoded at once (0: one per CPU with Kafka, one with the in-process bus)")
	fl.IntVar(&f.threads, "transcode-threads", 0, "threads per decoder and encoder (0: 1 with several workers, FFmpeg's choice with one)")
	f.profiles = map[string]*string{}
	for _, kind := range []string{events.SourceRoom, events.SourceWebcam, events.SourceScreen} {
		p := def.Profiles[kind]
		v := fmt.Sprintf("%dx%d", p.Width, p.Height)
		if p.MaxFPS > 0 {
			v += "@" + strconv.FormatFloat(p.MaxFPS, 'f', -1, 64)
		}
		f.profiles[kind] = fl.String("review-"+kind, v,
			fmt.Sprintf("review rendition of %s sources: WIDTHxHEIGHT[@FPS], the box the picture fits in (0: unbounded side), the highest frame rate (none: the source's)", kind))
	}
	fl.IntVar(&f.crf, "review-crf", def.Profiles[events.SourceRoom].CRF, "libx264 quality of review renditions (CRF, lower is better)")
	fl.StringVar(&f.preset, "review-preset", def.Profiles[events.SourceRoom].Preset, "libx264 preset of review renditions")
	fl.DurationVar(&f.thumbs, "thumbnail-interval", def.Thumbnails.Interval, "media time between two scrubbing thumbnails (0 disables them)")
	fl.DurationVar(&f.blackMin, "black-min", def.Detect.BlackMin, "report a black or covered picture that lasts this long")
	fl.DurationVar(&f.frozenMin, "frozen-min", def.Detect.FrozenMin, "report a picture that does not change for this long")
	fl.DurationVar(&f.silentMin, "silent-min", def.Detect.SilenceMin, "report audio that stays silent this long")
	fl.Float64Var(&f.scene, "scene-score", def.Detect.SceneScore, "report a change of scene with at least this score (0-1)")
	fl.StringVar(&f.node, "transcoder-node", def.Node, "name of this transcoder in events")
	fl.Int64Var(&f.inflight, "transcode-inflight-mib", def.InflightBytes>>20,
		"MiB of raw segments handled at once over all workers; more waits on the bus, not in memory")
	fl.IntVar(&f.keepCodecs, "transcode-keep-codecs", def.KeepCodecs,
		"streams that keep their video decoder and encoder open from one segment to the next (up to ~25 MB each for 1080p); 0 opens them for every segment")
}

// config returns the transcoder configuration; inProcess says whether the
// bus is the in-process one, whose single partition is consumed by one
// worker at a time.
func (f *transcoderFlags) config(inProcess bool) (transcoder.Config, error) {
	cfg := transcoder.DefaultConfig()
	switch {
	case f.workers > 0:
		cfg.Workers = f.workers
	case inProcess:
		cfg.Workers = 1
	default:
		cfg.Workers = runtime.NumCPU()
	}
	cfg.Threads = f.threads
	if f.threads == 0 && cfg.Workers > 1 {
		cfg.Threads = 1
	}
	for kind, v := range f.profiles {
		p := cfg.Profiles[kind]
		size, fps, hasFPS := strings.Cut(*v, "@")
		w, h, ok := strings.Cut(size, "x")
		var err error
		if p.Width, err = strconv.Atoi(w); err != nil || !ok {
			return cfg, fmt.Errorf("--review-%s %q: want WIDTHxHEIGHT[@FPS]", kind, *v)
		}
		if p.Height, err = strconv.Atoi(h); err != nil {
			return cfg, fmt.Errorf("--review-%s %q: want WIDTHxHEIGHT[@FPS]", kind, *v)
		}
		p.MaxFPS = 0
		if hasFPS {
			if p.MaxFPS, err = strconv.ParseFloat(fps, 64); err != nil {
				return cfg, fmt.Errorf("--review-%s %q: want WIDTHxHEIGHT[@FPS]", kind, *v)
			}
		}
		p.CRF, p.Preset = f.crf, f.preset
		cfg.Profiles[kind] = p
	}
	cfg.Thumbnails.Interval = f.thumbs
	cfg.Detect.BlackMin, cfg.Detect.FrozenMin, cfg.Detect.SilenceMin = f.blackMin, f.frozenMin, f.silentMin
	cfg.Detect.SceneScore = f.scene
	cfg.Node = f.node
	cfg.InflightBytes = f.inflight << 20
	cfg.KeepCodecs = f.keepCodecs
	return cfg, cfg.Validate()
}

func transcoderCommand(g *globalFlags) *cobra.Command {
	var d deps
	var f transcoderFlags
	var httpAddr string
	cmd := &cobra.Command{
		Use:   "transcoder",
		Short: "Run the transcoder: review renditions, thumbnails and observations of every segment",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := g.logger().With("service", "transcoder")
			cfg, err := f.config(false)
			if err != nil {
				return err
			}
			p, err := d.open(ctx, log, openOpts{requireKafka: true})
			if err != nil {
				return err
			}
			defer p.close()
			if err := p.openAdmin(g, "transcoder"); err != nil {
				return err
			}
			svc, err := transcoder.New(cfg, transcoder.Deps{Bus: p.bus, Blob: p.blob, Log: log, Registry: p.reg, Now: time.Now})
			if err != nil {
				return err
			}
			return p.serve(ctx, httpAddr, nil, svc.Run)
		},
	}
	d.dataFlag(cmd)
	d.blobFlag(cmd, "")
	d.kafkaFlag(cmd, "")
	f.register(cmd)
	cmd.Flags().StringVar(&httpAddr, "http-addr", ":9103", "metrics and health listen address")
	return cmd
}
