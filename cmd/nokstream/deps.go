package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	astore "github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/ingest"
	"github.com/nokstream/nokstream/ingest/access"
	"github.com/nokstream/nokstream/ingest/rtsp"
	"github.com/nokstream/nokstream/internal/atomicfile"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/httpserver"
	"github.com/nokstream/nokstream/internal/nodeapi"
	"github.com/nokstream/nokstream/internal/obs"
	"github.com/nokstream/nokstream/internal/secrets"
	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/store"
)

// deps holds the flags that name the shared dependencies.
type deps struct {
	data    string
	db      string
	blobURL string
	// blobSecretFile holds the S3 secret key of blobURL (--blob-secret-file).
	blobSecretFile string
	kafka          string
	// passwordHash is the argon2id cost of new password hashes
	// (--password-hash), empty for the default.
	passwordHash string
}

func (d *deps) dataFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&d.data, "data", "./var", "data directory (spool, local blob store, local bus, keys)")
}

func (d *deps) dbFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&d.db, "db", "", "PostgreSQL URL (or NOKSTREAM_DB); `make run` starts a private one")
	cmd.Flags().StringVar(&d.passwordHash, "password-hash", "",
		"argon2id cost of new password hashes, m=KiB,t=passes,p=threads (default "+store.DefaultPasswordHashing().String()+
			"; at least OWASP's minimum, m=7168,t=5,p=1); existing hashes keep theirs")
}

func (d *deps) blobFlag(cmd *cobra.Command, def string) {
	cmd.Flags().StringVar(&d.blobURL, "blob", def,
		"blob store: a directory, or s3://ACCESS[:SECRET]@host:port/bucket?ssl=false (default: <data>/blob); give the secret with --blob-secret-file or NOKSTREAM_BLOB, not here")
	cmd.Flags().StringVar(&d.blobSecretFile, "blob-secret-file", "",
		"file holding the S3 secret key of --blob (its first line), so that it shows in no command line")
}

func (d *deps) kafkaFlag(cmd *cobra.Command, def string) {
	cmd.Flags().StringVar(&d.kafka, "kafka", def, "Kafka brokers, comma-separated (default: the in-process bus under <data>)")
}

func (d *deps) requireDB() error {
	if d.db == "" {
		return errors.New("no database: give --db postgres://… or set NOKSTREAM_DB, or run `make run`, which starts a private PostgreSQL")
	}
	return nil
}

func (d *deps) openStore(ctx context.Context, migrate bool) (*store.Store, error) {
	if err := d.requireDB(); err != nil {
		return nil, err
	}
	if migrate {
		if err := migrateAll(ctx, d.db); err != nil {
			return nil, err
		}
	}
	cost := store.DefaultPasswordHashing()
	if d.passwordHash != "" {
		var err error
		if cost, err = store.ParsePasswordHashing(d.passwordHash); err != nil {
			return nil, fmt.Errorf("--password-hash: %w", err)
		}
	}
	st, err := store.Open(ctx, d.db)
	if err != nil {
		return nil, fmt.Errorf("open database (is PostgreSQL running? `make run` starts one): %w", err)
	}
	if err := st.SetPasswordHashing(cost); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// migrateAll applies the registry's migrations and then the archiver's
// (the archiver's first version moves tables the registry's made): every
// command that migrates on open runs both, and `nokstream migrate`.
func migrateAll(ctx context.Context, dsn string) error {
	if err := store.Migrate(ctx, dsn); err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	if err := astore.Migrate(ctx, dsn); err != nil {
		return fmt.Errorf("migrate database: %w", err)
	}
	return nil
}

// openArchiverStore opens the archiver's own schema on --db, after
// migrating it (a runtime role only checks that it is current).
func (d *deps) openArchiverStore(ctx context.Context) (*astore.Store, error) {
	if err := d.requireDB(); err != nil {
		return nil, err
	}
	if err := astore.Migrate(ctx, d.db); err != nil {
		return nil, fmt.Errorf("migrate the archiver's schema: %w", err)
	}
	st, err := astore.Open(ctx, d.db)
	if err != nil {
		return nil, fmt.Errorf("open the archiver's database: %w", err)
	}
	return st, nil
}

type pinger interface {
	Ping(ctx context.Context) error
}

func (d *deps) openBlob(ctx context.Context) (blob.Store, pinger, error) {
	u := d.blobURL
	if u == "" {
		u = filepath.Join(d.data, "blob")
	}
	if strings.HasPrefix(u, "s3://") {
		cfg, err := blob.ParseS3URL(u)
		if err != nil {
			return nil, nil, fmt.Errorf("--blob: %w", err)
		}
		if d.blobSecretFile != "" {
			if cfg.SecretKey, err = readSecretFile(d.blobSecretFile); err != nil {
				return nil, nil, fmt.Errorf("--blob-secret-file: %w", err)
			}
		}
		cfg.CreateBucket = true
		s, err := blob.NewS3(ctx, cfg)
		if err != nil {
			return nil, nil, fmt.Errorf("open S3 blob store %s: %w", cfg, err)
		}
		return s, s, nil
	}
	s, err := blob.NewDir(u)
	if err != nil {
		return nil, nil, fmt.Errorf("open blob directory %s: %w", u, err)
	}
	return s, s, nil
}

func (d *deps) openBus(log *slog.Logger, reg prometheus.Registerer, requireKafka bool) (bus.Bus, pinger, error) {
	m := bus.NewMetrics(reg)
	if d.kafka == "" {
		if requireKafka {
			return nil, nil, errors.New("no Kafka: give --kafka host:9092 (or NOKSTREAM_KAFKA); the in-process bus works only with `nokstream all`")
		}
		b, err := bus.NewLocal(filepath.Join(d.data, "bus"), log, m)
		if err != nil {
			return nil, nil, err
		}
		return b, nil, nil
	}
	cfg := bus.DefaultKafkaConfig()
	cfg.Brokers = strings.Split(d.kafka, ",")
	if p := os.Getenv("NOKSTREAM_KAFKA_TOPIC_PREFIX"); p != "" {
		cfg.TopicPrefix = p
	}
	k, err := bus.NewKafka(cfg, log, m)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to Kafka %s: %w", d.kafka, err)
	}
	return k, k, nil
}

// signingKey loads the key that signs media URLs, creating it on first use.
// Every registry replica must share it: point --signing-key at one file.
func signingKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < 32 {
			return nil, fmt.Errorf("signing key %s: shorter than 32 bytes", path)
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	b = make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	return b, nil
}

// deviceChecker lets ingest authenticate publishers against the registry.
type deviceChecker struct{ st *store.Store }

func (c deviceChecker) CheckPublisher(ctx context.Context, site, device, user, secret string) (access.Publisher, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	d, err := c.st.AuthenticateDevice(ctx, site, device, user, secret)
	switch {
	case errors.Is(err, store.ErrUnknownDevice):
		return access.Publisher{}, access.ErrUnknownStream
	case errors.Is(err, store.ErrBadCredentials):
		return access.Publisher{}, access.ErrBadCredentials
	case err != nil:
		return access.Publisher{}, err
	}
	return access.Publisher{Site: d.Site, Device: d.Name, Source: d.Kind}, nil
}

// CheckCandidate lets a candidate publish their workstation's webcam or
// screen with their exam token, inside the exam window only.
func (c deviceChecker) CheckCandidate(ctx context.Context, site, device, token string) (access.Publisher, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kind, es, err := c.st.CandidatePublisher(ctx, token, site, device, time.Now())
	switch {
	case errors.Is(err, store.ErrBadCredentials):
		return access.Publisher{}, access.ErrBadCredentials
	case err != nil:
		return access.Publisher{}, err
	}
	return access.Publisher{Site: site, Device: device, Source: kind, Candidate: es.CandidateID, Exam: es.ExamID, Until: es.End}, nil
}

// sealedPulls lists the cameras ingest pulls, their URLs sealed: from the
// registry's database (nokstream all) or its node API (nokstream ingest).
type sealedPulls func(ctx context.Context) ([]nodeapi.PullDevice, error)

// storePulls lists the cameras to pull from the registry's database.
func storePulls(st *store.Store) sealedPulls {
	return func(ctx context.Context) ([]nodeapi.PullDevice, error) {
		devs, err := st.PullDevices(ctx)
		if err != nil {
			return nil, err
		}
		out := make([]nodeapi.PullDevice, 0, len(devs))
		for _, d := range devs {
			out = append(out, nodeapi.PullDevice{Site: d.Site, Device: d.Name, Source: d.Kind, URLSealed: d.URLSealed})
		}
		return out, nil
	}
}

// pullSource lets ingest load the cameras it pulls, opening their sealed
// URLs with the secrets key.
type pullSource struct {
	list sealedPulls
	key  secrets.Key
	log  *slog.Logger
}

func (p pullSource) PullDevices(ctx context.Context) ([]rtsp.PullDevice, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	devs, err := p.list(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]rtsp.PullDevice, 0, len(devs))
	for _, d := range devs {
		stream := d.Site + "/" + d.Device
		u, err := p.key.Open(d.URLSealed, []byte(stream))
		if err != nil {
			// Another key (a wrong --secrets-key): say so, pull the others.
			p.log.Error("cannot open the camera url of a pull device; is --secrets-key the file `device add --pull` used?",
				"stream", stream, "err", err)
			continue
		}
		out = append(out, rtsp.PullDevice{Site: d.Site, Device: d.Device, Source: d.Source, URL: string(u)})
	}
	return out, nil
}

// defaultShutdownTimeout is --shutdown-timeout's default.
const defaultShutdownTimeout = 10 * time.Second

// defaultStopGrace is how long a service's loops may take beyond
// --shutdown-timeout to return once what was still in flight was cut; after
// it the process exits without them.
const defaultStopGrace = 10 * time.Second

// serveHTTP serves h on ln until ctx ends, then shuts down gracefully: it
// stops accepting, lets the requests in flight finish for at most
// --shutdown-timeout, and cuts what is left.
func (p *process) serveHTTP(ctx context.Context, name string, ln net.Listener, h http.Handler) error {
	// Deadlines against slow clients; media and evidence bundles stream.
	srv := httpserver.New(h, httpserver.DefaultConfig(), api.Streaming)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), p.shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			p.log.Warn("requests still in flight at the shutdown timeout were cut", "listener", name, "timeout", p.shutdownTimeout)
			_ = srv.Close()
		}
		<-errc
		return nil
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", name, err)
	}
}

// process is what a service process opens before it runs: its metrics,
// readiness checks, the shared dependencies, each with its check, and its
// listeners.
type process struct {
	// adminLoop serves the admin address (--admin-addr).
	adminLoop func(context.Context) error
	reg       *prometheus.Registry
	health    *obs.Health
	st        *store.Store // nil unless asked for
	blob      blob.Store
	bus       bus.Bus

	log *slog.Logger
	// shutdownTimeout is --shutdown-timeout; stopGrace is how long the
	// loops have beyond it (defaultStopGrace); addrFile is --addr-file.
	shutdownTimeout, stopGrace time.Duration
	addrFile                   string
	// addrs are the bound addresses of the listeners, by name ("admin",
	// "http", "rtsp", …), in the order they were opened.
	addrs []boundAddr
	// closers release the listeners if the process never runs (each is
	// closed again, harmlessly, after it was served).
	closers []io.Closer
}

// boundAddr is a listener's name and the address it is bound to.
type boundAddr struct{ name, addr string }

// openOpts says what a process needs.
type openOpts struct {
	store        bool // open the registry database
	migrate      bool // and apply migrations first
	requireKafka bool // refuse the in-process bus (a service on its own)
}

// open opens what the process needs and registers their readiness checks.
// close releases it.
func (d *deps) open(ctx context.Context, log *slog.Logger, o openOpts) (*process, error) {
	p := newProcess(log)
	if o.store {
		st, err := d.openStore(ctx, o.migrate)
		if err != nil {
			return nil, err
		}
		p.st = st
		p.health.Add("postgres", st.Ping)
	}
	blobStore, blobPing, err := d.openBlob(ctx)
	if err != nil {
		p.close()
		return nil, err
	}
	p.blob = blobStore
	p.health.Add("blob", blobPing.Ping)
	b, busPing, err := d.openBus(log, p.reg, o.requireKafka)
	if err != nil {
		p.close()
		return nil, err
	}
	p.bus = b
	if busPing != nil {
		p.health.Add("kafka", busPing.Ping)
	}
	return p, nil
}

// newProcess returns a process with its metrics registry and readiness
// checks, and nothing opened.
func newProcess(log *slog.Logger) *process {
	return &process{reg: obs.NewRegistry(), health: obs.NewHealth(), log: log, shutdownTimeout: defaultShutdownTimeout,
		stopGrace: defaultStopGrace}
}

func (p *process) close() {
	for _, c := range p.closers {
		_ = c.Close()
	}
	if p.bus != nil {
		_ = p.bus.Close()
	}
	if p.st != nil {
		p.st.Close()
	}
}

// listen opens a TCP listener now, before the process runs, so that a port
// in use fails the start and port 0 gets a port the kernel picks, which
// --addr-file and the log report.
func (p *process) listen(name, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s on %s: %w", name, addr, err)
	}
	p.bound(name, ln.Addr().String())
	p.closers = append(p.closers, ln)
	return ln, nil
}

// bound records a listener's bound address ("" is not recorded).
func (p *process) bound(name, addr string) {
	if addr != "" {
		p.addrs = append(p.addrs, boundAddr{name, addr})
	}
}

// boundIngest records the sockets ingest opened, and releases them with the
// process if it never runs.
func (p *process) boundIngest(ing *ingest.Service) {
	a := ing.Addrs()
	p.bound("rtsp", a.RTSP)
	p.bound("rtsps", a.RTSPS)
	p.bound("rtp", a.RTP)
	p.bound("rtcp", a.RTCP)
	p.bound("webrtc_udp", a.WebRTCUDP)
	p.bound("webrtc_tcp", a.WebRTCTCP)
	p.closers = append(p.closers, ing)
}

// announce logs every bound address and writes them to --addr-file: a JSON
// object of listener name to address, written to a temporary file and
// renamed, so that a reader never sees half of it. A harness that starts the
// service with port 0 reads its ports there.
func (p *process) announce() error {
	m := make(map[string]string, len(p.addrs))
	for _, a := range p.addrs {
		p.log.Info("listening", "listener", a.name, "addr", a.addr)
		m[a.name] = a.addr
	}
	if p.addrFile == "" {
		return nil
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(p.addrFile, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("--addr-file: %w", err)
	}
	return nil
}

// defaultAdminAddrs are the admin addresses of the services without
// --admin-addr: loopback, one port per service, so that the services of one
// machine do not collide. `all` has the registry's.
var defaultAdminAddrs = map[string]string{
	"all": "127.0.0.1:9190", "registry": "127.0.0.1:9190", "ingest": "127.0.0.1:9191",
	"transcoder": "127.0.0.1:9192", "archiver": "127.0.0.1:9193",
}

// adminAddr returns the admin address of the service called name.
func (g *globalFlags) adminAddr(name string) string {
	if g.adminAddrFlag != "" {
		return g.adminAddrFlag
	}
	return defaultAdminAddrs[name]
}

// openAdmin opens the admin address (--admin-addr, by default on loopback)
// and sets the loop that serves it: /metrics, /healthz, /readyz and, with
// --pprof, Go's profiles. The public ports serve /healthz only. It also
// takes the process's other global settings (--shutdown-timeout,
// --addr-file).
func (p *process) openAdmin(g *globalFlags, name string) error {
	p.shutdownTimeout, p.addrFile = g.shutdownTimeout, g.addrFile
	ln, err := p.listen("admin", g.adminAddr(name))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	obs.Register(mux, p.reg, p.health)
	if g.pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	p.adminLoop = func(ctx context.Context) error { return p.serveHTTP(ctx, "admin", ln, mux) }
	return nil
}

// setMemoryLimit sets the Go runtime's soft memory limit (GOMEMLIMIT) to 70%
// of the cgroup's memory limit, when there is one and GOMEMLIMIT is not set:
// the garbage collector then works harder before the kernel's OOM killer
// would. The rest is left to memory the Go runtime does not manage, FFmpeg's
// in the transcoder. AUTOMEMLIMIT=off or a ratio overrides it.
func setMemoryLimit(log *slog.Logger) {
	limit, err := memlimit.Set(memlimit.WithRatio(0.7), memlimit.WithProvider(memlimit.FromCgroup))
	switch {
	case err != nil:
		log.Debug("no memory limit from the cgroup", "err", err)
	case limit > 0 && limit < math.MaxInt64:
		log.Debug("go memory limit", "bytes", limit)
	}
}

// serve runs the service loops, the admin address and an HTTP server on
// the listener opened on addr (named "http") with /healthz and the extra
// handlers, until ctx ends or one fails.
func (p *process) serve(ctx context.Context, addr string, extra map[string]http.Handler,
	loops ...func(context.Context) error) error {
	ln, err := p.listen("http", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	obs.RegisterLiveness(mux)
	for pattern, h := range extra {
		mux.Handle(pattern, h)
	}
	return p.run(ctx, append(loops, func(ctx context.Context) error { return p.serveHTTP(ctx, "http", ln, mux) })...)
}

// run announces the bound addresses, then runs the service's loops until
// ctx ends or one fails, and the admin address until they have all
// returned. On shutdown the process reports not ready at once (/readyz 503,
// "shutdown") while its loops stop accepting and drain, so that probes and
// load balancers see it leave before its admin port closes. Loops that have
// not returned --shutdown-timeout and a grace after the shutdown began are
// left behind: run returns an error and the process exits without them. An
// admin address that cannot be served stops the service.
func (p *process) run(ctx context.Context, loops ...func(context.Context) error) error {
	if err := p.announce(); err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	adone := make(chan error, 1)
	actx, acancel := context.WithCancel(context.Background())
	defer acancel()
	if p.adminLoop == nil {
		adone <- nil
	} else {
		go func() {
			err := p.adminLoop(actx)
			if err != nil {
				cancel()
			}
			adone <- err
		}()
	}
	stop := context.AfterFunc(lctx, p.health.Drain)
	defer stop()
	readyLogged := make(chan struct{})
	go func() { p.logReady(lctx); close(readyLogged) }()
	defer func() { cancel(); <-readyLogged }()
	done := make(chan error, 1)
	go func() { done <- runAll(lctx, loops...) }()
	var err error
	select {
	case err = <-done:
	case <-lctx.Done():
		bound := time.NewTimer(p.shutdownTimeout + p.stopGrace)
		select {
		case err = <-done:
		case <-bound.C:
			err = fmt.Errorf("the service did not stop within --shutdown-timeout %v and %v more: exiting without it", p.shutdownTimeout, p.stopGrace)
		}
		bound.Stop()
	}
	acancel()
	if aerr := <-adone; err == nil {
		err = aerr
	}
	return err
}

// logReady logs once when the process is first ready (every check of
// /readyz passes), checking every half second until then or until ctx
// ends.
func (p *process) logReady(ctx context.Context) {
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		if failed := p.health.Ready(ctx); len(failed) == 0 {
			if ctx.Err() == nil {
				p.log.Info("ready")
			}
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// readSecretFile returns the first line of the file at path, a secret kept
// off the command line.
func readSecretFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if line = strings.TrimSpace(line); line == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return line, nil
}
