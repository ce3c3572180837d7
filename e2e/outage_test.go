package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/testenv"
)

// publishers runs one ffmpeg per URL, each publishing the small clip in a
// loop (stream copy, so ten of them cost little CPU) until stop is called
// or ffmpeg ends by itself (its server went away).
type publishers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	ended  map[string]time.Time // url → when its ffmpeg exited
	stderr map[string]*bytes.Buffer
}

func startPublishers(t *testing.T, clip string, urls []string) *publishers {
	ctx, cancel := context.WithCancel(context.Background())
	p := &publishers{cancel: cancel, ended: map[string]time.Time{}, stderr: map[string]*bytes.Buffer{}}
	for _, u := range urls {
		var stderr bytes.Buffer
		p.stderr[u] = &stderr
		cmd := exec.CommandContext(ctx, testenv.Tool(t, "ffmpeg"), "-hide_banner", "-loglevel", "error",
			"-re", "-stream_loop", "-1", "-i", clip, "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", u)
		cmd.Stderr = &stderr
		exited, err := testenv.Spawn(cmd)
		if err != nil {
			t.Fatal(err)
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			<-exited
			p.mu.Lock()
			p.ended[u] = time.Now()
			p.mu.Unlock()
		}()
	}
	t.Cleanup(p.stop)
	return p
}

func (p *publishers) stop() {
	p.cancel()
	p.wg.Wait()
}

func (p *publishers) running() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.stderr) - len(p.ended)
}

// waitAllClosed waits until every segment that ingest closed for a stream
// (as its spool counts them: the next sequence number it would give) is in
// the index, and returns them.
func (in *installation) waitAllClosed(stream string, timeout time.Duration) []segment {
	in.t.Helper()
	return in.waitAllClosedOn("ingest", stream, timeout)
}

// waitAllClosedOn is waitAllClosed for a stream published to the ingest
// process named node (in split mode with replicas).
func (in *installation) waitAllClosedOn(node, stream string, timeout time.Duration) []segment {
	in.t.Helper()
	site, device, _ := strings.Cut(stream, "/")
	path := filepath.Join(in.dirs[node], "spool", "streams", site+"~"+device+".json")
	var segs []segment
	testenv.WaitFor(in.t, timeout, "every closed segment of "+stream+" indexed", func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		var st struct {
			NextSequence int `json:"next_sequence"`
		}
		if json.Unmarshal(b, &st) != nil || st.NextSequence == 0 {
			return false
		}
		segs = in.api.segments(stream)
		return len(segs) >= st.NextSequence
	})
	return segs
}

// metric returns the value of a metric of a service, summed over its
// labels, or -1 if the service does not answer or has no such metric.
func metric(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sum, found := 0.0, false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
			found = true
		}
	}
	if !found {
		return -1
	}
	return sum
}

func ready(addr string) bool {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func devices(n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, fmt.Sprintf("cam%d", i))
	}
	return out
}

// TestIngestKill9TenStreams kills ingest with SIGKILL while ten streams
// publish. After the restart every closed segment of every stream is in
// the index with contiguous sequence numbers and a valid hash chain, the
// segment open at the cut is salvaged (and observed as such), and at most
// about a second of media per stream is missing at the cut.
func TestIngestKill9TenStreams(t *testing.T) {
	t.Parallel()
	devs := devices(10)
	in := startSplit(t, 2*time.Second, devs...)
	var urls []string
	for _, d := range devs {
		urls = append(urls, in.publish[d])
	}
	pubs := startPublishers(t, smallClipPath(t), urls)
	for _, d := range devs {
		in.waitIndexed("site1/"+d, 4, 30*time.Second)
	}
	// Kill while open segments hold parts already written: the streams
	// started together and are cut together, so a fixed delay may land
	// just after every one began a new segment (seen on a loaded machine:
	// all 10 open segments empty, nothing to salvage).
	open := filepath.Join(in.dirs["ingest"], "spool", "open")
	testenv.WaitFor(t, 20*time.Second, "open segments with a part written", func() bool {
		paths, _ := filepath.Glob(filepath.Join(open, "*.m4s"))
		n := 0
		for _, p := range paths {
			if fi, err := os.Stat(p); err == nil && fi.Size() > 0 {
				n++
			}
		}
		return n >= len(devs)/2
	})
	in.procs["ingest"].stop(syscall.SIGKILL)
	killed := time.Now()
	testenv.WaitFor(t, 20*time.Second, "the publishers to notice", func() bool { return pubs.running() == 0 })
	in.procs["ingest"] = in.startFns["ingest"]()

	worst := 0.0
	salvaged := 0
	for _, d := range devs {
		stream := "site1/" + d
		segs := in.waitAllClosed(stream, 30*time.Second)
		last := segs[len(segs)-1]
		end := last.Start.Add(time.Duration(last.Duration * float64(time.Second)))
		missing := killed.Sub(end).Seconds()
		worst = max(worst, missing)
		t.Logf("%s: %.2f s of media missing at the cut", stream, missing)
		// The media of the last ~second before the kill was not yet
		// fsync'd (parts are fsync'd every second); scheduling on a busy
		// machine adds a little.
		if missing > 1.5 {
			t.Errorf("%s: %.2f s missing at the cut (media ends %s, killed %s), want at most about 1 s",
				stream, missing, end.Format(time.RFC3339Nano), killed.Format(time.RFC3339Nano))
		}
		in.checkSegments(segs)
		obs := in.api.observations(stream)
		// The open segment is salvaged unless the kill came before its
		// first part was written; then it is discarded and said so in the log.
		salvaged += len(kinds(obs, "salvaged"))
		if len(kinds(obs, "salvaged")) > 1 {
			t.Errorf("%s: %d salvaged observations, want at most 1: %+v", stream, len(kinds(obs, "salvaged")), obs)
		}
	}
	if salvaged == 0 {
		// Observations are indexed by their own consumer: give it time.
		testenv.WaitFor(t, 30*time.Second, "a salvaged segment observed", func() bool {
			for _, d := range devs {
				salvaged += len(kinds(in.api.observations("site1/"+d), "salvaged"))
			}
			return salvaged > 0
		})
	}
	t.Logf("at most %.2f s of media missing per stream at the kill -9 cut; %d of %d open segments salvaged", worst, salvaged, len(devs))
}

// TestIngestOutages stops the blob store (MinIO) for 60 s, then the
// Kafka-protocol broker for 60 s, then PostgreSQL (behind a proxy) for 60 s
// while ten streams publish, in split mode.
// Ingest goes on accepting and spooling, reports not ready and its backlog,
// and drains in order when each returns: afterwards every segment is
// stored, checked by the archiver and indexed exactly once.
func TestIngestOutages(t *testing.T) {
	t.Parallel()
	minio := testenv.StartPrivateMinIO(t)
	kafka := testenv.RestartableKafka(t)
	devs := devices(10)
	in := startSplitWith(t, 2*time.Second, options{s3: minio.S3URL(), kafka: kafka.Addrs(), proxyDB: true}, devs...)
	ing := in.addrs["ingest"]
	var urls []string
	for _, d := range devs {
		urls = append(urls, in.publish[d])
	}
	pubs := startPublishers(t, smallClipPath(t), urls)
	for _, d := range devs {
		in.waitIndexed("site1/"+d, 2, 30*time.Second)
	}
	// outage stops a dependency for 60 s. Without the blob store or the bus
	// ingest spools a backlog; without PostgreSQL it still ships (the
	// registry's indexer waits instead, and commits nothing meanwhile).
	outage := func(name string, stop func(), start func() error, backlog bool) {
		stop()
		began := time.Now()
		testenv.WaitFor(t, 20*time.Second, "ingest to report not ready without "+name, func() bool { return !ready(ing) })
		if backlog {
			testenv.WaitFor(t, 30*time.Second, "ingest to report a backlog without "+name, func() bool {
				return metric(t, ing, "nokstream_ingest_spool_backlog_segments") > 0
			})
		}
		rest := time.NewTimer(time.Until(began.Add(60 * time.Second)))
		<-rest.C
		if n := pubs.running(); n != len(urls) {
			t.Fatalf("%d of %d publishers were cut off while %s was down", len(urls)-n, len(urls), name)
		}
		t.Logf("%s down for %s: backlog %.0f segments, %.0f bytes", name, time.Since(began).Round(time.Second),
			metric(t, ing, "nokstream_ingest_spool_backlog_segments"), metric(t, ing, "nokstream_ingest_spool_backlog_bytes"))
		if err := start(); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 90*time.Second, "the backlog to drain after "+name+" returned", func() bool {
			return ready(ing) && metric(t, ing, "nokstream_ingest_spool_backlog_segments") == 0
		})
		t.Logf("%s back: backlog drained in %s", name, time.Since(began.Add(60*time.Second)).Round(time.Second))
	}
	outage("MinIO", minio.Stop, minio.Start, true)
	outage("Kafka", kafka.Stop, kafka.Start, true)
	outage("PostgreSQL", in.db.Stop, in.db.Start, false)
	pubs.stop()
	testenv.WaitFor(t, 30*time.Second, "the last segments to close", func() bool {
		return metric(t, ing, "nokstream_ingest_streams_active") == 0
	})
	for _, d := range devs {
		stream := "site1/" + d
		segs := in.waitAllClosed(stream, 60*time.Second)
		total := 0.0
		for _, s := range segs {
			total += s.Duration
		}
		if total < 180 {
			t.Errorf("%s: %.1f s indexed, want the whole run of more than 180 s", stream, total)
		}
		in.checkSegments(segs)
	}
}
