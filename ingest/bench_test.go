package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/nokstream/nokstream/ingest"
	"github.com/nokstream/nokstream/ingest/access"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/testenv"
)

// envPublish makes the test binary a publisher process for the benchmark:
// "addr;streams;clip;seconds".
const envPublish = "NOKSTREAM_BENCH_PUBLISH"

type anyDevice struct{}

func (anyDevice) CheckPublisher(_ context.Context, site, device, _, _ string) (access.Publisher, error) {
	return access.Publisher{Site: site, Device: device, Source: "room"}, nil
}

// publishResult is what the publisher process reports.
type publishResult struct {
	Failed int     `json:"failed"`  // publishers whose connection failed
	MaxLag float64 `json:"max_lag"` // seconds behind real time, worst of all
	Errors []string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(envPublish); spec != "" {
		os.Exit(benchPublisher(spec))
	}
	// Every goroutine of ingest has ended when the tests have.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction(testenv.ChildSupervisor))
}

// benchPublisher is the publisher process of BenchmarkIngestRTSP, which runs
// the test binary with NOKSTREAM_BENCH_PUBLISH set (TestMain), so that the
// publishers' CPU is not counted as ingest's. It prints its result.
func benchPublisher(spec string) int {
	parts := strings.Split(spec, ";")
	if len(parts) != 4 {
		fmt.Fprintf(os.Stderr, "%s=%q: want addr;streams;clip;seconds\n", envPublish, spec)
		return 2
	}
	n, _ := strconv.Atoi(parts[1])
	secs, _ := strconv.Atoi(parts[3])
	clip, err := testenv.ReadClip(parts[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "publisher:", err)
		return 1
	}
	var mu sync.Mutex
	var res publishResult
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
			defer cancel()
			url := fmt.Sprintf("rtsp://dev%d:x@%s/bench/dev%d", i, parts[0], i)
			err := testenv.Publish(ctx, clip, url, func(lag time.Duration) {
				mu.Lock()
				res.MaxLag = max(res.MaxLag, lag.Seconds())
				mu.Unlock()
			})
			if err != nil {
				mu.Lock()
				res.Failed++
				res.Errors = append(res.Errors, err.Error())
				mu.Unlock()
			}
		}()
		time.Sleep(20 * time.Millisecond) // stagger the keyframes of the streams
	}
	wg.Wait()
	b, _ := json.Marshal(res)
	fmt.Println("RESULT " + string(b))
	return 0
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkIngestRTSP publishes N streams of 720p25 H.264 at 2 Mbit/s with
// AAC (one clip, encoded once by ffmpeg, sent in a loop by gortsplib
// clients in a separate process) into one in-process ingest that spools,
// uploads to a directory blob store and announces on the in-process bus.
// For each N it reports ingest's CPU seconds per stream-minute and whether
// ingest held: every publisher kept real time (lag under 1 s), every
// segment it closed was shipped, and each stream has all its segments.
// N steps up until ingest no longer holds.
func BenchmarkIngestRTSP(b *testing.B) {
	secs := 30
	if v, err := strconv.Atoi(os.Getenv("NOKSTREAM_BENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	steps := []int{10, 25, 50, 100, 150, 200, 250, 300}
	if v := os.Getenv("NOKSTREAM_BENCH_STREAMS"); v != "" {
		steps = nil
		for _, f := range strings.Split(v, ",") {
			n, _ := strconv.Atoi(f)
			steps = append(steps, n)
		}
	}
	clip := testenv.EncodeClip(b, b.TempDir(), testenv.ClipSpec{Size: "1280x720", FPS: 25, Seconds: 10, Bitrate: "2M", Audio: true})
	best := 0
	for b.Loop() {
		for _, n := range steps {
			r := runIngestBench(b, clip, n, secs)
			b.Logf("N=%d: %.3f CPU-s per stream-minute, max publisher lag %.2f s, segments %.0f in / %.0f shipped, short streams %d, failed publishers %d, held=%v",
				n, r.cpuPerStreamMinute, r.lag, r.in, r.shipped, r.short, r.failed, r.held)
			b.ReportMetric(r.cpuPerStreamMinute, fmt.Sprintf("cpu-s/stream-min@N=%d", n))
			if !r.held {
				break
			}
			best = n
		}
	}
	b.ReportMetric(float64(best), "max-streams-held")
}

type benchResult struct {
	cpuPerStreamMinute float64
	lag                float64
	in, shipped        float64
	short, failed      int
	held               bool
}

func runIngestBench(b *testing.B, clip string, n, secs int) benchResult {
	dir := b.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	store, err := blob.NewDir(filepath.Join(dir, "blob"))
	if err != nil {
		b.Fatal(err)
	}
	bs, err := bus.NewLocal(filepath.Join(dir, "bus"), log, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	cfg := ingest.DefaultConfig(dir)
	cfg.RTSP.Addr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(b))
	cfg.RTSP.UDPRTPAddr, cfg.RTSP.UDPRTCPAddr = "", ""
	cfg.Node = "bench"
	svc, err := ingest.New(cfg, ingest.Deps{Checker: anyDevice{}, Blob: store, Publisher: bs, Log: log, Registry: reg, Now: time.Now})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	time.Sleep(200 * time.Millisecond) // the listener is up well before

	cpu0 := cpuSeconds()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s;%d;%s;%d", envPublish, cfg.RTSP.Addr, n, clip, secs))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		b.Logf("publisher process: %v\n%s", err, out.String())
	}
	cpu := cpuSeconds() - cpu0
	var res publishResult
	if i := strings.Index(out.String(), "RESULT "); i >= 0 {
		line, _, _ := strings.Cut(out.String()[i+7:], "\n")
		_ = json.Unmarshal([]byte(line), &res)
	} else {
		res.Failed = n
	}
	// Let ingest close and ship the last segments.
	var in, shipped float64
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		in, shipped = gather(reg, "nokstream_ingest_segments_total"), gather(reg, "nokstream_ingest_segments_shipped_total")
		if gather(reg, "nokstream_ingest_streams_active") == 0 && in == shipped {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Each stream is cut every 6 s on a keyframe (every 2 s in the clip).
	want := secs/6 - 1
	short := 0
	for i := range n {
		count := 0
		_ = store.List(context.Background(), fmt.Sprintf("raw/bench/dev%d/", i), func(key string) error {
			if strings.HasSuffix(key, ".m4s") {
				count++
			}
			return nil
		})
		if count < want {
			short++
		}
	}
	r := benchResult{
		cpuPerStreamMinute: cpu / (float64(n) * float64(secs) / 60),
		lag:                res.MaxLag, in: in, shipped: shipped, short: short, failed: res.Failed,
	}
	r.held = res.Failed == 0 && res.MaxLag < 1 && in == shipped && short == 0 &&
		gather(reg, "nokstream_ingest_media_errors_total") <= 0
	if res.Failed > 0 {
		b.Logf("N=%d: publisher errors: %v", n, res.Errors[:min(3, len(res.Errors))])
	}
	return r
}

// gather sums a metric over its labels; -1 if absent.
func gather(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		sum := 0.0
		for _, m := range mf.GetMetric() {
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
		return sum
	}
	return -1
}
