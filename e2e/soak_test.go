package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/testenv"
)

// Soak settings, from the environment (make soak sets the long ones).
const (
	soakCamerasEnv = "NOKSTREAM_SOAK_CAMERAS" // default 4
	soakMinutesEnv = "NOKSTREAM_SOAK_MINUTES" // default 2
	soakModesEnv   = "NOKSTREAM_SOAK_MODES"   // "all", "split" or "all,split"; default "all"
	soakReportEnv  = "NOKSTREAM_SOAK_REPORT"  // a file to append the figures to
)

// soakInterval is how often each process is sampled: every 15 s, or often
// enough for 24 samples in a shorter run. The resident size of a process
// moving segments swings by tens of MiB from one moment to the next (frames
// and segments in flight), and a third of a 2-minute run at 15 s is two
// samples: too few to average that out.
func soakInterval(length time.Duration) time.Duration {
	return min(15*time.Second, length/24)
}

// TestSoak runs the pipeline under a steady load of RTSP cameras (640×360
// 25 fps 600 kbit/s + AAC, as a room camera's second stream) and samples
// each process every 15 s: its resident memory (/proc) and its live Go heap
// (a heap profile taken after a collection, from the admin address); a
// short run samples every 5 s (soakInterval). It
// fails when, for any process, the last third of the run averages more than
// 10% above the middle third (plus 4 MiB for small heaps, whose sampling
// jitter is a larger share), or when a segment is lost. make test runs the
// short version (4 cameras, 2 minutes, one process), enough to catch a
// process that keeps a megabyte per segment; make soak runs 8 cameras for
// 10 minutes in both shapes, settable to hours.
func TestSoak(t *testing.T) {
	t.Parallel()
	cameras, minutes := envInt(t, soakCamerasEnv, 4), envInt(t, soakMinutesEnv, 2)
	modes := strings.Split(envString(soakModesEnv, "all"), ",")
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			soak(t, mode, cameras, time.Duration(minutes)*time.Minute)
		})
	}
}

func soak(t *testing.T, mode string, cameras int, length time.Duration) {
	devs := devices(cameras)
	services := []string{"all"}
	if mode == "split" {
		services = []string{"ingest", "transcoder", "archiver", "registry"}
	} else if mode != "all" {
		t.Fatalf("%s %q: want all or split", soakModesEnv, mode)
	}
	admin := map[string]string{}
	o := options{args: map[string][]string{}}
	for _, s := range services {
		admin[s] = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		o.args[s] = []string{"--admin-addr", admin[s], "--pprof"}
	}
	var in *installation
	if mode == "all" {
		in = startAllWith(t, 6*time.Second, o, devs...)
	} else {
		in = startSplitWith(t, 6*time.Second, o, devs...)
	}
	clip := testenv.EncodeClip(t, filepath.Dir(binary), testenv.ClipSpec{Size: "640x360", FPS: 25, Seconds: 30, Bitrate: "600k", Audio: true})
	var urls []string
	for _, d := range devs {
		urls = append(urls, in.publish[d])
	}
	pubs := startPublishers(t, clip, urls)
	testenv.WaitFor(t, 60*time.Second, "a segment of every camera indexed", func() bool {
		for _, d := range devs {
			if len(in.api.segments("site1/"+d)) == 0 {
				return false
			}
		}
		return true
	})

	type sample struct{ rss, heap float64 }
	samples := map[string][]sample{}
	interval := soakInterval(length)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	end := time.Now().Add(length)
	for now := time.Now(); now.Before(end); now = <-tick.C {
		for _, s := range services {
			p := in.procs[s]
			if ok, err := p.exited(); ok {
				t.Fatalf("%s exited during the soak: %v", s, err)
			}
			samples[s] = append(samples[s], sample{rss: residentOf(t, p.cmd.Process.Pid), heap: liveHeap(t, admin[s])})
		}
		if n := pubs.running(); n != cameras {
			t.Fatalf("%d of %d publishers still running", n, cameras)
		}
	}
	pubs.stop()

	// Nothing lost: every segment ingest closed is indexed, in order, once.
	total := 0
	for _, d := range devs {
		segs := in.waitAllClosed("site1/"+d, 2*time.Minute)
		for i, s := range segs {
			if s.Sequence != int64(i) {
				t.Errorf("site1/%s: segment %d has sequence %d: one is missing or indexed twice", d, i, s.Sequence)
				break
			}
		}
		total += len(segs)
	}

	var report strings.Builder
	fmt.Fprintf(&report, "soak %s: %d cameras, %v, %d segments, sampled every %v\n", mode, cameras, length, total, interval)
	for _, s := range services {
		ss := samples[s]
		if len(ss) < 3 {
			t.Fatalf("%s: %d samples, want at least 3 (a longer soak)", s, len(ss))
		}
		var series strings.Builder
		for _, x := range ss {
			fmt.Fprintf(&series, " %.0f/%.1f", x.rss/(1<<20), x.heap/(1<<20))
		}
		fmt.Fprintf(&report, "  %-10s samples (resident/go heap, MiB):%s\n", s, series.String())
		third := len(ss) / 3
		mid, last := ss[third:2*third], ss[len(ss)-third:]
		avg := func(xs []sample, f func(sample) float64) float64 {
			sum := 0.0
			for _, x := range xs {
				sum += f(x)
			}
			return sum / float64(len(xs))
		}
		for _, m := range []struct {
			name string
			f    func(sample) float64
		}{{"resident", func(x sample) float64 { return x.rss }}, {"go heap", func(x sample) float64 { return x.heap }}} {
			a, b := avg(mid, m.f), avg(last, m.f)
			fmt.Fprintf(&report, "  %-10s %-8s middle third %6.1f MiB, last third %6.1f MiB (%+.1f%%), %.1f MiB a camera\n",
				s, m.name, a/(1<<20), b/(1<<20), 100*(b-a)/a, b/float64(cameras)/(1<<20))
			if b > a*1.10+4<<20 {
				t.Errorf("%s: %s grows: the last third of the run averages %.1f MiB, more than 10%% above the middle third's %.1f MiB",
					s, m.name, b/(1<<20), a/(1<<20))
			}
		}
	}
	t.Log(report.String())
	if path := os.Getenv(soakReportEnv); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(report.String()); err != nil {
			t.Fatal(err)
		}
	}
}

// residentOf returns the resident memory of a process, from /proc.
func residentOf(t *testing.T, pid int) float64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				t.Fatalf("VmRSS of %d: %v", pid, err)
			}
			return kb * 1024
		}
	}
	t.Fatalf("no VmRSS for process %d", pid)
	return 0
}

// liveHeap returns the live Go heap of a service: the HeapAlloc of a heap
// profile taken right after a collection (gc=1), from its admin address.
func liveHeap(t *testing.T, admin string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		t.Fatalf("heap profile from %s: %v", admin, err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# HeapAlloc = "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("heap profile from %s: %v", admin, err)
			}
			return n
		}
	}
	t.Fatalf("heap profile from %s (%s) has no HeapAlloc", admin, resp.Status)
	return 0
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
