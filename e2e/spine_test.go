package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	astore "github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/chain"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/store"
)

// installation is one running nokstream under test.
type installation struct {
	t        *testing.T
	env      []string
	dsn      string
	ports    ports
	api      *api
	publish  map[string]string // device → publish URL
	kafka    []string          // brokers, when scaled out
	prefix   string            // Kafka topic prefix
	procs    map[string]*proc
	startFns map[string]func() *proc
	addrs    map[string]string // admin address (metrics, readiness) of each service, in split mode
	http     map[string]string // public address of each service, in split mode
	nodes    map[string]ports  // ports of each ingest, in split mode (ingest's are ports)
	dirs     map[string]string // data directory of each service that has one (all's is ingest's)
	readers  int               // Kafka reader groups used by readEvents
	db       *testenv.TCPProxy // between the services and PostgreSQL, with options.proxyDB
}

func (in *installation) rtspHost() string { return fmt.Sprintf("127.0.0.1:%d", in.ports.rtsp) }

// register creates the organisation chain of site1 (council1 → center1 →
// site1), the devices of site1 and a NARK user with the CLI.
func (in *installation) register(devices ...string) string {
	in.publish = map[string]string{}
	cli(in.t, in.env, "org", "add", "council", "council1", "--name", "Council 1")
	cli(in.t, in.env, "org", "add", "center", "center1", "--council", "council1", "--name", "Center 1")
	cli(in.t, in.env, "org", "add", "site", "site1", "--center", "center1", "--name", "Site 1")
	for _, d := range devices {
		in.publish[d] = cli(in.t, in.env, "device", "add", "site1/"+d, "--host", in.rtspHost())
	}
	return cli(in.t, in.env, "user", "add", "--role", "nark", "auditor")
}

// options change an installation under test.
type options struct {
	env  []string            // more environment for every command
	args map[string][]string // more flags per service: "all", "ingest", "transcoder", "archiver", "registry"
	// s3 and kafka replace the test's MinIO bucket and Kafka cluster in
	// split mode (s3 as an s3:// URL), for tests that stop them.
	s3    string
	kafka []string
	// proxyDB puts a proxy between the services and PostgreSQL
	// (installation.db), for tests that take the database away.
	proxyDB bool
	// replicas runs that many processes of each service in split mode
	// (default 1). The first of a service is named as the service
	// ("ingest"), the others with their number ("ingest2"), in procs,
	// startFns, addrs, http and dirs. Each ingest has its own ports
	// (nodes), spool and node token, and is given every registry's URL;
	// the registries share the first one's signing and seal keys.
	replicas int
}

// replica names the i-th (from 0) process of a service.
func replica(service string, i int) string {
	if i == 0 {
		return service
	}
	return fmt.Sprintf("%s%d", service, i+1)
}

// startAll runs `nokstream all` with its embedded defaults: a directory blob
// store and the in-process bus.
func startAll(t *testing.T, segment time.Duration, devices ...string) *installation {
	return startAllWith(t, segment, options{}, devices...)
}

// startAllWith is startAll with options.
func startAllWith(t *testing.T, segment time.Duration, o options, devices ...string) *installation {
	dsn := testenv.Postgres(t)
	in := &installation{t: t, env: append([]string{"NOKSTREAM_DB=" + runtimeDSN(t, dsn)}, o.env...), dsn: dsn, ports: newPorts(t),
		procs: map[string]*proc{}, startFns: map[string]func() *proc{}}
	cli(t, in.env, "migrate")
	pw := in.register(devices...)
	data := t.TempDir()
	httpAddr := fmt.Sprintf("127.0.0.1:%d", in.ports.http)
	in.startFns["all"] = func() *proc {
		args := append([]string{"all", "--data", data, "--http-addr", httpAddr, "--segment-duration", segment.String()}, in.ports.ingestFlags()...)
		args = append(args, o.args["all"]...)
		p := startProc(t, "all", in.env, args...)
		waitReady(t, p, httpAddr)
		return p
	}
	in.procs["all"] = in.startFns["all"]()
	in.dirs = map[string]string{"ingest": data}
	in.api = login(t, "http://"+httpAddr, "auditor", pw)
	return in
}

// startSplit runs ingest, transcoder, archiver and registry as separate processes over
// the Kafka protocol and MinIO.
func startSplit(t *testing.T, segment time.Duration, devices ...string) *installation {
	return startSplitWith(t, segment, options{}, devices...)
}

// startSplitWith is startSplit with options.
func startSplitWith(t *testing.T, segment time.Duration, o options, devices ...string) *installation {
	dsn := testenv.Postgres(t)
	s3, brokers := o.s3, o.kafka
	if s3 == "" {
		m := testenv.MinIO(t)
		s3 = fmt.Sprintf("s3://%s:%s@%s/%s?ssl=false", url.QueryEscape(m.AccessKey), url.QueryEscape(m.SecretKey), m.Endpoint, m.Bucket)
	}
	if len(brokers) == 0 {
		brokers = testenv.Kafka(t)
	}
	prefix := testenv.TopicPrefix(t)
	svcDSN := runtimeDSN(t, dsn)
	var db *testenv.TCPProxy
	// The archiver runs as its own role (nothing of the registry's), the
	// other services as the runtime role (nothing of the archiver's);
	// behind the proxy, all as the runtime role, so that one proxy stops
	// them all.
	var arcEnv []string
	if o.proxyDB {
		db, svcDSN = testenv.PostgresProxy(t, svcDSN)
	} else {
		arcEnv = []string{"NOKSTREAM_DB=" + archiverDSN(t, dsn)}
	}
	in := &installation{t: t, dsn: dsn, ports: newPorts(t), kafka: brokers, prefix: prefix, db: db,
		procs: map[string]*proc{}, startFns: map[string]func() *proc{},
		env: append([]string{"NOKSTREAM_DB=" + svcDSN, "NOKSTREAM_BLOB=" + s3, "NOKSTREAM_KAFKA=" + strings.Join(brokers, ","),
			"NOKSTREAM_KAFKA_TOPIC_PREFIX=" + prefix}, o.env...)}
	cli(t, in.env, "migrate")
	pw := in.register(devices...)
	n := max(o.replicas, 1)
	in.addrs, in.http, in.dirs, in.nodes = map[string]string{}, map[string]string{}, map[string]string{}, map[string]ports{}
	// run starts a service. The first time, its admin and public
	// addresses (and ingest's media ports) are on port 0, and it reports
	// the ports it got (--addr-file): no port is picked ahead and taken by
	// another test meanwhile. A restarted service keeps its addresses.
	run := func(name string, env, args, extra []string) *proc {
		admin, public := in.addrs[name], in.http[name]
		if public == "" {
			public = "127.0.0.1:0"
		}
		args = append(args, "--http-addr", public)
		if admin != "" {
			args = append(args, "--admin-addr", admin)
		}
		p := startProc(t, name, env, append(args, extra...)...)
		in.addrs[name], in.http[name] = p.adminAddr(), p.boundAddr("http")
		waitReady(t, p, in.http[name])
		return p
	}
	var names []string
	for _, svc := range []string{"registry", "archiver", "transcoder", "ingest"} {
		for i := range n {
			name := replica(svc, i)
			names = append(names, name)
			switch svc {
			case "registry", "ingest":
				in.dirs[name] = t.TempDir()
			}
		}
	}
	for _, name := range names {
		switch svc := strings.TrimRight(name, "0123456789"); svc {
		case "registry":
			in.startFns[name] = func() *proc {
				args := []string{"registry", "--data", in.dirs[name]}
				if name != "registry" {
					// The keys every registry shares: the first one's,
					// which made them when it started.
					keys := filepath.Join(in.dirs["registry"], "keys")
					args = append(args, "--signing-key", filepath.Join(keys, "signing.key"), "--seal-key", filepath.Join(keys, "seal.ed25519"))
				}
				p := run(name, in.env, args, o.args["registry"])
				if name == "registry" {
					// The API and WHIP of the first registry, as in all mode.
					_, port, _ := net.SplitHostPort(in.http[name])
					in.ports.http, _ = strconv.Atoi(port)
				}
				return p
			}
		case "archiver":
			env := append(append([]string{}, in.env...), arcEnv...)
			in.startFns[name] = func() *proc { return run(name, env, []string{svc}, o.args[svc]) }
		case "transcoder":
			in.startFns[name] = func() *proc { return run(name, in.env, []string{svc}, o.args[svc]) }
		case "ingest":
			// Ingest holds no database: it asks the registry's node API
			// with a node token (NOKSTREAM_DB is emptied in its
			// environment, or it would refuse to start).
			tokenFile := filepath.Join(t.TempDir(), "node.token")
			if err := os.WriteFile(tokenFile, []byte(lastWord(cli(t, in.env, "node", "add", "e2e-"+name))+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			ingEnv := append(append([]string{}, in.env...), "NOKSTREAM_DB=")
			in.startFns[name] = func() *proc {
				var regURLs []string
				for i := range n {
					regURLs = append(regURLs, "http://"+in.http[replica("registry", i)])
				}
				// The first time on port 0 (ports{}), then on the ports
				// it got.
				args := append([]string{"ingest", "--data", in.dirs[name], "--registry", strings.Join(regURLs, ","),
					"--registry-token-file", tokenFile, "--segment-duration", segment.String()}, in.nodes[name].ingestFlags()...)
				if name != "ingest" {
					args = append(args, "--node", "e2e-"+name)
				}
				p := run(name, ingEnv, args, o.args["ingest"])
				if _, ok := in.nodes[name]; !ok {
					in.nodes[name] = in.boundPorts(p)
					if name == "ingest" {
						in.moveCameras(in.nodes[name])
					}
				}
				return p
			}
		default:
			t.Fatalf("no service %q", svc)
		}
		in.procs[name] = in.startFns[name]()
	}
	// At the end, every service is stopped at once rather than one after
	// the other (this cleanup runs before each process's own).
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, p := range in.procs {
			wg.Add(1)
			go func() { defer wg.Done(); p.stop(syscall.SIGTERM) }()
		}
		wg.Wait()
	})
	in.api = login(t, "http://"+in.http["registry"], "auditor", pw)
	return in
}

// boundPorts returns the ports an ingest process reports it listens on.
func (in *installation) boundPorts(p *proc) ports {
	port := func(listener string) int {
		_, v, err := net.SplitHostPort(p.boundAddr(listener))
		n, _ := strconv.Atoi(v)
		if err != nil || n == 0 {
			in.t.Fatalf("%s reports %s on %q", p.name, listener, p.boundAddr(listener))
		}
		return n
	}
	return ports{rtsp: port("rtsp"), rtp: port("rtp"), rtcp: port("rtcp"), webrtc: port("webrtc_udp")}
}

// moveCameras points the installation at the first ingest's ports, which
// it learned once ingest listened on them: its RTSP address (rtspHost, for
// cameras added from now on) and the publish URLs of the cameras
// registered before.
func (in *installation) moveCameras(p ports) {
	old := in.rtspHost()
	in.ports.rtsp, in.ports.rtp, in.ports.rtcp, in.ports.webrtc = p.rtsp, p.rtp, p.rtcp, p.webrtc
	for d, u := range in.publish {
		in.publish[d] = strings.Replace(u, old, in.rtspHost(), 1)
	}
}

func (in *installation) restart(name string, sig syscall.Signal) {
	in.procs[name].stop(sig)
	in.procs[name] = in.startFns[name]()
}

// waitIndexed waits until the stream's indexed segments add up to at least
// seconds and returns them.
func (in *installation) waitIndexed(stream string, seconds float64, timeout time.Duration) []segment {
	var segs []segment
	testenv.WaitFor(in.t, timeout, fmt.Sprintf("%.0f s of %s indexed", seconds, stream), func() bool {
		segs = in.api.segments(stream)
		total := 0.0
		for _, s := range segs {
			total += s.Duration
		}
		return total >= seconds
	})
	return segs
}

// checkSegments verifies what a user relies on: contiguous sequence
// numbers, an unbroken hash chain, each segment indexed once, and the bytes
// served equal to the SHA-256 in the index, in the announcement (the
// archiver's check) and, on Kafka, in the event itself.
func (in *installation) checkSegments(segs []segment) {
	t := in.t
	st, err := store.Open(context.Background(), in.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	arc, err := astore.Open(context.Background(), in.dsn) // the archiver's checks are its own records
	if err != nil {
		t.Fatal(err)
	}
	defer arc.Close()
	seen := map[string]bool{}
	for i, s := range segs {
		if s.Sequence != int64(i) {
			t.Errorf("segment %d has sequence %d: a segment is missing or indexed twice", i, s.Sequence)
		}
		if seen[s.SegmentID] {
			t.Errorf("segment %s listed twice", s.SegmentID)
		}
		seen[s.SegmentID] = true
		prev := chain.Zero
		if i > 0 {
			prev = segs[i-1].Chain
		}
		if want, _ := chain.Next(prev, s.SHA256); s.Chain != want {
			t.Errorf("segment %d: hash chain broken (chain %s, want %s)", i, s.Chain, want)
		}
		if got := in.api.fetchSHA(s.URL); got != s.SHA256 {
			t.Errorf("segment %d: served bytes hash to %s, index says %s", i, got, s.SHA256)
		}
	}
	// The archiver compares each stored object with its event. After an
	// outage it has a backlog of them (a minute of every stream, and their
	// renditions) to work through beside the other e2e tests: a generous
	// deadline, since only a check that never comes is a failure.
	testenv.WaitFor(t, 3*time.Minute, "the archiver to check every segment", func() bool {
		for _, s := range segs {
			checks, err := arc.SegmentChecks(context.Background(), s.SegmentID)
			if err != nil || len(checks) == 0 {
				return false
			}
		}
		return true
	})
	for _, s := range segs {
		checks, _ := arc.SegmentChecks(context.Background(), s.SegmentID)
		for _, c := range checks {
			if !c.OK {
				t.Errorf("segment %s: archiver check failed: %s", s.SegmentID, c.Detail)
			}
		}
	}
	if len(in.kafka) > 0 {
		want := map[string]bool{}
		for _, s := range segs {
			want[s.SegmentID] = true
		}
		evs := in.readEvents(want)
		for _, s := range segs {
			ev, ok := evs[s.SegmentID]
			if !ok {
				t.Errorf("segment %s indexed but its event is not on Kafka", s.SegmentID)
				continue
			}
			if ev.SHA256 != s.SHA256 || ev.Chain != s.Chain {
				t.Errorf("segment %s: event sha256/chain %s/%s, index %s/%s", s.SegmentID, ev.SHA256, ev.Chain, s.SHA256, s.Chain)
			}
		}
	}
}

// readEvents reads SegmentClosed events from Kafka with a group of its own
// until it has seen every segment in want (or 30 s passed).
func (in *installation) readEvents(want map[string]bool) map[string]*events.SegmentClosed {
	cfg := bus.DefaultKafkaConfig()
	cfg.Brokers = in.kafka
	cfg.TopicPrefix = in.prefix
	k, err := bus.NewKafka(cfg, testLogger(in.t), nil)
	if err != nil {
		in.t.Fatal(err)
	}
	defer k.Close()
	var mu sync.Mutex
	out := map[string]*events.SegmentClosed{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A group of its own per call, so that every call reads from the start.
	in.readers++
	_ = k.Consume(ctx, events.TopicSegments, fmt.Sprintf("e2e-reader-%d", in.readers), func(_ context.Context, m bus.Message) error {
		var ev events.SegmentClosed
		if err := json.Unmarshal(m.Value, &ev); err != nil {
			return bus.Permanent(err)
		}
		mu.Lock()
		if want[ev.SegmentID] {
			out[ev.SegmentID] = &ev
		}
		if len(out) >= len(want) {
			cancel()
		}
		mu.Unlock()
		return nil
	})
	return out
}

// TestSpine is the acceptance test, in both modes: 60 s of 720p25
// H.264 + AAC published with ffmpeg over RTSP is, within 10 s of the
// publisher stopping, a 60 ± 1 s playlist with video and audio whose every
// segment hashes to what the index and the event say; a publisher with a
// wrong secret beside it is refused and disturbs nothing. The transcoder's
// review playlist and thumbnails track of the recording are checked too
// (checkReview).
func TestSpine(t *testing.T) {
	for _, mode := range []string{"all", "split"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			var in *installation
			if mode == "all" {
				in = startAll(t, 6*time.Second, "cam1", "cam2")
			} else {
				in = startSplit(t, 6*time.Second, "cam1", "cam2")
			}
			var wg sync.WaitGroup
			var pubErr error
			var pubStderr string
			var stopped time.Time
			wg.Add(1)
			go func() {
				defer wg.Done()
				pubStderr, pubErr = publish(t, in.publish["cam1"], 60, "1280x720", "aac")
				stopped = time.Now()
			}()
			// A publisher with a wrong secret, while cam1 records.
			wrong := strings.Replace(in.publish["cam2"], "@", "x@", 1)
			stderr, err := publish(t, wrong, 3, "320x240", "aac")
			if err == nil || !strings.Contains(stderr, "401") {
				t.Errorf("publisher with a wrong secret: err %v, ffmpeg says %q; want refused with 401", err, stderr)
			}
			wg.Wait()
			if pubErr != nil {
				t.Fatalf("valid publisher failed beside the refused one: %v\n%s", pubErr, pubStderr)
			}
			segs := in.waitIndexed("site1/cam1", 59, 10*time.Second)
			playlist := in.api.link("/api/v1/streams/site1/cam1/playlist.m3u8")
			probe := testenv.FFprobe(t, playlist)
			if since := time.Since(stopped); since > 15*time.Second {
				t.Errorf("playlist readable %s after the publisher stopped, want within 10 s", since)
			}
			if d := testenv.Plays(t, playlist); d < 59 || d > 61 {
				t.Errorf("the playlist, read whole, plays %.2f s, want 60 ± 1", d)
			}
			if got := strings.Join(probe.Codecs(), ","); got != "video:h264,audio:aac" {
				t.Errorf("playlist streams %s, want video:h264,audio:aac", got)
			}
			in.checkSegments(segs)
			in.checkReview("site1/cam1", segs)
			if segs := in.api.segments("site1/cam2"); len(segs) != 0 {
				t.Errorf("the refused publisher has %d segments", len(segs))
			}
		})
	}
}

// TestIngestRestart restarts ingest between publisher sessions, gracefully
// and with kill -9 in the middle of a segment, and shows that nothing
// announced is lost, nothing is indexed twice, and the hash chain runs on.
// Then the registry is killed: the camera ingest has seen publishes a new
// session from ingest's cache, one it has not seen is refused, and the
// session is indexed once the registry is back.
func TestIngestRestart(t *testing.T) {
	t.Parallel()
	in := startSplit(t, 2*time.Second, "cam1", "cam2")
	// Session 1, then a graceful restart between segments.
	if stderr, err := publish(t, in.publish["cam1"], 6, "320x240", "aac"); err != nil {
		t.Fatalf("publish: %v\n%s", err, stderr)
	}
	first := in.waitIndexed("site1/cam1", 5.5, 15*time.Second)
	in.restart("ingest", syscall.SIGTERM)

	// Session 2, killed with -9 while publishing.
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = publish(t, in.publish["cam1"], 20, "320x240", "aac")
	}()
	in.waitIndexed("site1/cam1", 5.5+4, 20*time.Second)
	in.procs["ingest"].stop(syscall.SIGKILL)
	<-done
	in.procs["ingest"] = in.startFns["ingest"]()

	// Session 3 after recovery.
	if stderr, err := publish(t, in.publish["cam1"], 4, "320x240", "aac"); err != nil {
		t.Fatalf("publish after kill -9: %v\n%s", err, stderr)
	}
	testenv.WaitFor(t, 20*time.Second, "the session after the restart to be indexed", func() bool {
		segs := in.api.segments("site1/cam1")
		last := segs[len(segs)-1]
		return last.Start.After(first[len(first)-1].Start.Add(8 * time.Second))
	})

	// Session 4 while no registry answers: ingest holds no database, and
	// admits cam1 (checked in session 3) from its cache; cam2, never seen,
	// is refused.
	in.procs["registry"].stop(syscall.SIGKILL)
	before := time.Now()
	if stderr, err := publish(t, in.publish["cam1"], 4, "320x240", "aac"); err != nil {
		t.Fatalf("publish a known camera while the registry is down: %v\n%s", err, stderr)
	}
	if _, err := publish(t, in.publish["cam2"], 2, "320x240", "aac"); err == nil {
		t.Error("a camera ingest never saw published while no registry could check it")
	}
	in.procs["registry"] = in.startFns["registry"]()
	testenv.WaitFor(t, 30*time.Second, "the session recorded without the registry to be indexed", func() bool {
		segs := in.api.segments("site1/cam1")
		return segs[len(segs)-1].Start.After(before)
	})
	if n := len(in.api.segments("site1/cam2")); n != 0 {
		t.Errorf("cam2 has %d segments, want none", n)
	}
	segs := in.api.segments("site1/cam1")
	in.checkSegments(segs)
	for i := 1; i < len(segs); i++ {
		if segs[i].Sequence != segs[i-1].Sequence+1 {
			t.Errorf("sequence jumps from %d to %d", segs[i-1].Sequence, segs[i].Sequence)
		}
	}
	discontinuities := 0
	for _, s := range segs {
		if s.Discontinuity {
			discontinuities++
		}
	}
	if discontinuities < 4 {
		t.Errorf("%d segments start a session, want at least 4 (one per publisher session)", discontinuities)
	}
}
