package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/nokstream/nokstream/ingest"
	"github.com/nokstream/nokstream/ingest/access"
	"github.com/nokstream/nokstream/internal/httpserver"
	"github.com/nokstream/nokstream/internal/nodeapi"
	"github.com/nokstream/nokstream/internal/secrets"
)

type ingestFlags struct {
	rtspAddr string
	rtpAddr  string
	rtcpAddr string
	segment  time.Duration
	bitrate  int64
	node     string

	rtspsAddr     string
	tlsCert       string
	tlsKey        string
	spoolMaxBytes int64
	gap           time.Duration
	pullRefresh   time.Duration
	pullRetryMax  time.Duration
	secretsKey    string

	webrtcUDPAddr  string
	webrtcUDPPorts string
	webrtcTCPAddr  string
	webrtcNATIPs   []string

	trustedProxies        string
	takeoverAfter         time.Duration
	maxSessions           int
	maxSessionsPerAddress int
}

func (f *ingestFlags) register(cmd *cobra.Command) {
	def := ingest.DefaultConfig("")
	cmd.Flags().StringVar(&f.rtspAddr, "rtsp-addr", def.RTSP.Addr, "RTSP listen address (TCP)")
	cmd.Flags().StringVar(&f.rtpAddr, "rtp-addr", def.RTSP.UDPRTPAddr, "RTSP over UDP: RTP listen address (even port; empty disables UDP)")
	cmd.Flags().StringVar(&f.rtcpAddr, "rtcp-addr", def.RTSP.UDPRTCPAddr, "RTSP over UDP: RTCP listen address (RTP port + 1)")
	cmd.Flags().DurationVar(&f.segment, "segment-duration", def.RTSP.Segment.SegmentDuration, "target segment duration (cut on the next keyframe after it)")
	cmd.Flags().Int64Var(&f.bitrate, "max-bitrate", def.RTSP.Segment.MaxBitrate,
		"the most a publisher session may send, in bits per second over 5 s; a session above it is ended with an observation (-1: no cap)")
	cmd.Flags().StringVar(&f.node, "node", def.Node, "name of this ingest node in events")
	cmd.Flags().StringVar(&f.rtspsAddr, "rtsps-addr", def.RTSP.TLSAddr, "RTSPS (TLS) listen address, served when --rtsp-tls-cert and --rtsp-tls-key are given")
	cmd.Flags().StringVar(&f.tlsCert, "rtsp-tls-cert", "", "PEM certificate (chain) for RTSPS")
	cmd.Flags().StringVar(&f.tlsKey, "rtsp-tls-key", "", "PEM private key for RTSPS")
	cmd.Flags().Int64Var(&f.spoolMaxBytes, "spool-max-bytes", 0, "spool quota in bytes; at 90% new publishers are refused (default: 90% of the free disk at start)")
	cmd.Flags().DurationVar(&f.gap, "gap", def.Gap, "no media for longer than this is reported as a gap observation")
	cmd.Flags().DurationVar(&f.pullRefresh, "pull-refresh", def.Pull.Refresh, "how often the list of pulled cameras is reloaded from the registry")
	cmd.Flags().DurationVar(&f.pullRetryMax, "pull-retry-max", def.Pull.RetryMax, "longest wait between attempts to reach a pulled camera (backoff starts at 1s)")
	cmd.Flags().StringVar(&f.webrtcUDPAddr, "webrtc-udp-addr", def.WHIP.UDPAddr, "WHIP: the one UDP address for the media of every WebRTC session (empty: a port per session from --webrtc-udp-ports)")
	cmd.Flags().StringVar(&f.webrtcUDPPorts, "webrtc-udp-ports", fmt.Sprintf("%d-%d", def.WHIP.UDPPortMin, def.WHIP.UDPPortMax), "WHIP: UDP port range MIN-MAX used when --webrtc-udp-addr is empty")
	cmd.Flags().StringVar(&f.webrtcTCPAddr, "webrtc-tcp-addr", def.WHIP.TCPAddr, "WHIP: also take WebRTC media over ICE-TCP on this address (empty: UDP only)")
	cmd.Flags().StringSliceVar(&f.webrtcNATIPs, "webrtc-nat-ips", nil, "WHIP: public IPs that map 1:1 to this host, offered as extra host candidates (comma-separated)")
	trustedProxiesFlag(cmd, &f.trustedProxies)
	cmd.Flags().DurationVar(&f.takeoverAfter, "takeover-after", def.RTSP.TakeoverAfter,
		"a second publisher of a live stream is refused (RTSP 453, WHIP 409) unless the first has sent nothing this long")
	cmd.Flags().IntVar(&f.maxSessions, "max-sessions", def.RTSP.MaxSessions, "most publishers at once, per protocol (RTSP, WHIP); beyond, 503")
	cmd.Flags().IntVar(&f.maxSessionsPerAddress, "max-sessions-per-address", def.RTSP.MaxSessionsPerAddress,
		"most publishers at once from one client address, per protocol; beyond, 503")
	cmd.Flags().StringVar(&f.secretsKey, "secrets-key", "", "file with the key that seals camera URLs (default: <data>/keys/secrets.key, created if missing); device add --pull must use the same file")
}

// secretsKeyPath returns the secrets key file of a data directory.
func secretsKeyPath(flag, data string) string {
	if flag != "" {
		return flag
	}
	return filepath.Join(data, "keys", "secrets.key")
}

func (f *ingestFlags) config(data string) (ingest.Config, error) {
	cfg := ingest.DefaultConfig(data)
	proxies, err := httpserver.ParseProxies(f.trustedProxies)
	if err != nil {
		return ingest.Config{}, fmt.Errorf("--trusted-proxies: %w", err)
	}
	cfg.WHIP.TrustedProxies = proxies
	cfg.RTSP.Addr = f.rtspAddr
	cfg.RTSP.UDPRTPAddr = f.rtpAddr
	cfg.RTSP.UDPRTCPAddr = f.rtcpAddr
	cfg.RTSP.Segment.SegmentDuration = f.segment
	cfg.RTSP.Segment.MaxBitrate = f.bitrate
	cfg.RTSP.TakeoverAfter, cfg.WHIP.TakeoverAfter = f.takeoverAfter, f.takeoverAfter
	cfg.RTSP.MaxSessions, cfg.WHIP.MaxSessions = f.maxSessions, f.maxSessions
	cfg.RTSP.MaxSessionsPerAddress, cfg.WHIP.MaxSessionsPerAddress = f.maxSessionsPerAddress, f.maxSessionsPerAddress
	if f.node != "" {
		cfg.Node = f.node
	}
	cfg.RTSP.TLSAddr = f.rtspsAddr
	cfg.RTSP.TLSCert = f.tlsCert
	cfg.RTSP.TLSKey = f.tlsKey
	cfg.SpoolMaxBytes = f.spoolMaxBytes
	cfg.Gap = f.gap
	cfg.WHIP.UDPAddr = f.webrtcUDPAddr
	cfg.WHIP.TCPAddr = f.webrtcTCPAddr
	cfg.WHIP.NAT1To1IPs = f.webrtcNATIPs
	// A range that does not parse leaves 0-0, which Validate refuses when
	// the range is used.
	cfg.WHIP.UDPPortMin, cfg.WHIP.UDPPortMax = 0, 0
	if lo, hi, ok := strings.Cut(f.webrtcUDPPorts, "-"); ok {
		minPort, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
		maxPort, err2 := strconv.ParseUint(strings.TrimSpace(hi), 10, 16)
		if err1 == nil && err2 == nil {
			cfg.WHIP.UDPPortMin, cfg.WHIP.UDPPortMax = uint16(minPort), uint16(maxPort)
		}
	}
	cfg.Pull.Refresh = f.pullRefresh
	cfg.Pull.RetryMax = f.pullRetryMax
	if cfg.Pull.RetryMin > cfg.Pull.RetryMax {
		cfg.Pull.RetryMin = cfg.Pull.RetryMax
	}
	return cfg, nil
}

// pullSource loads the cameras to pull from list with the secrets key of
// the data directory.
func (f *ingestFlags) pullSource(list sealedPulls, data string, log *slog.Logger) (pullSource, error) {
	key, err := secrets.LoadOrCreateKey(secretsKeyPath(f.secretsKey, data))
	if err != nil {
		return pullSource{}, err
	}
	return pullSource{list: list, key: key, log: log}, nil
}

// registryTokenEnv holds this ingest node's token when
// --registry-token-file does not name a file.
const registryTokenEnv = "NOKSTREAM_REGISTRY_TOKEN"

// registryConfig returns how to reach the registry's node API: the URLs of
// --registry and the node token.
func registryConfig(urls, tokenFile string) (access.RegistryConfig, error) {
	const howTo = "register this node on the registry with `nokstream node add NAME` and give ingest the token it prints " +
		"in --registry-token-file (or " + registryTokenEnv + ")"
	if strings.TrimSpace(urls) == "" {
		return access.RegistryConfig{}, errors.New("no registry: give --registry https://registry:8080[,https://…] (or NOKSTREAM_REGISTRY), and " + howTo)
	}
	list, err := access.ParseRegistryURLs(urls)
	if err != nil {
		return access.RegistryConfig{}, fmt.Errorf("--registry: %w", err)
	}
	token := os.Getenv(registryTokenEnv)
	if tokenFile != "" {
		if token, err = readSecretFile(tokenFile); err != nil {
			return access.RegistryConfig{}, fmt.Errorf("--registry-token-file: %w", err)
		}
	}
	if token == "" {
		return access.RegistryConfig{}, errors.New("no node token: " + howTo)
	}
	if _, ok := nodeapi.ParseToken(token); !ok {
		return access.RegistryConfig{}, errors.New("the node token is not one `nokstream node add` prints (nkn.<node>.<secret>): " + howTo)
	}
	return access.RegistryConfig{URLs: list, Token: token}, nil
}

// errIngestDB refuses a database for ingest.
var errIngestDB = errors.New("ingest holds no database: an exam-site node must not hold the credentials of the registry's " +
	"personal data. Remove --db (and NOKSTREAM_DB from its environment) and give --registry URL[,URL…] with a node token " +
	"from `nokstream node add NAME` (--registry-token-file or " + registryTokenEnv + ")")

func ingestCommand(g *globalFlags) *cobra.Command {
	var d deps
	var f ingestFlags
	var httpAddr, registryURLs, registryTokenFile string
	cmd := &cobra.Command{
		Use:   "ingest",
		Short: "Run the ingest service: RTSP and WHIP publishers in, segments to the blob store and Kafka",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			log := g.logger().With("service", "ingest")
			if d.db != "" {
				return errIngestDB
			}
			rcfg, err := registryConfig(registryURLs, registryTokenFile)
			if err != nil {
				return err
			}
			cfg, err := f.config(d.data)
			if err != nil {
				return err
			}
			p, err := d.open(ctx, log, openOpts{requireKafka: true})
			if err != nil {
				return err
			}
			defer p.close()
			rcfg.Metrics = p.reg
			reg, err := access.NewRegistry(rcfg, log)
			if err != nil {
				return err
			}
			p.health.Add("registry", reg.Ping)
			if err := p.openAdmin(g, "ingest"); err != nil {
				return err
			}
			pulls, err := f.pullSource(reg.PullDevices, d.data, log)
			if err != nil {
				return err
			}
			svc, err := ingest.New(cfg, ingest.Deps{Checker: reg, Blob: p.blob, Publisher: p.bus,
				Log: log, Registry: p.reg, Health: p.health, Now: time.Now, Pull: pulls})
			if err != nil {
				return err
			}
			p.boundIngest(svc)
			return p.serve(ctx, httpAddr, map[string]http.Handler{"/whip/": svc.Handler()}, svc.Run)
		},
	}
	d.dataFlag(cmd)
	// --db only to refuse it (and NOKSTREAM_DB) with the way forward.
	cmd.Flags().StringVar(&d.db, "db", "", "refused: ingest asks the registry (--registry), it holds no database")
	_ = cmd.Flags().MarkHidden("db")
	d.blobFlag(cmd, "")
	d.kafkaFlag(cmd, "")
	f.register(cmd)
	cmd.Flags().StringVar(&registryURLs, "registry", "",
		"the registry's base URLs, comma-separated (https://registry-a:8080,https://registry-b:8080): ingest checks publishers and "+
			"loads the cameras to pull there, failing over between them, and answers from what it learned while none answers")
	cmd.Flags().StringVar(&registryTokenFile, "registry-token-file", "",
		"file holding this node's token, as \"nokstream node add NAME\" printed it (its first line); or set "+registryTokenEnv)
	cmd.Flags().StringVar(&httpAddr, "http-addr", ":9101", "HTTP listen address: WHIP (/whip/) and /healthz")
	return cmd
}

// runAll runs the functions until ctx ends or one fails; nil ones are
// skipped.
func runAll(ctx context.Context, fns ...func(context.Context) error) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, fn := range fns {
		if fn != nil {
			g.Go(func() error { return fn(gctx) })
		}
	}
	return g.Wait()
}
