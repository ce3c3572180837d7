package rtsp_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/ingest/access"
	"github.com/nokstream/nokstream/ingest/rtsp"
	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/ingest/spool"
	"github.com/nokstream/nokstream/internal/evidence/chain"
	"github.com/nokstream/nokstream/internal/testenv"
)

// checker accepts user == device with secret "s3cret-<device>" for devices
// it knows.
type checker struct{ devices map[string]bool }

func (c checker) CheckPublisher(_ context.Context, site, device, user, secret string) (access.Publisher, error) {
	if !c.devices[site+"/"+device] {
		return access.Publisher{}, access.ErrUnknownStream
	}
	if user != device || secret != "s3cret-"+device {
		return access.Publisher{}, access.ErrBadCredentials
	}
	return access.Publisher{Site: site, Device: device, Source: "room"}, nil
}

type env struct {
	addr  string
	spool *spool.Spool
	dir   string
}

func start(t *testing.T, devices ...string) *env {
	t.Helper()
	return startWith(t, nil, devices...)
}

// startWith is start with the configuration adjusted by tweak (nil: the
// defaults).
func startWith(t *testing.T, tweak func(*rtsp.Config), devices ...string) *env {
	t.Helper()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	sp, err := spool.Open(dir, "test", log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := rtsp.DefaultConfig()
	cfg.Addr = "127.0.0.1:0"
	cfg.UDPRTPAddr, cfg.UDPRTCPAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Segment.SegmentDuration = 2 * time.Second
	if tweak != nil {
		tweak(&cfg)
	}
	known := map[string]bool{}
	for _, d := range devices {
		known[d] = true
	}
	out := func(site, device, source string) segmenter.Output { return sp.Stream(site, device, source) }
	srv, err := rtsp.New(cfg, checker{known}, out, log, rtsp.NewMetrics(prometheus.NewRegistry()), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server run: %v", err)
		}
	})
	return &env{addr: srv.Addr(), spool: sp, dir: dir}
}

func publish(t *testing.T, url string, seconds int, audio, transport string) (string, error) {
	return publishVideo(t, url, seconds, audio, transport, "libx264")
}

// publishVideo publishes with the given ffmpeg video encoder (libx264 or
// libx265).
func publishVideo(t *testing.T, url string, seconds int, audio, transport, encoder string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+30)*time.Second)
	defer cancel()
	args := testenv.PublishArgs(url, seconds, "320x240", 25, audio, transport)
	for i, a := range args {
		if a == "libx264" {
			args[i] = encoder
		}
	}
	cmd := exec.CommandContext(ctx, testenv.Tool(t, "ffmpeg"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return stderr.String(), err
}

// joined writes the init and every pending segment of a stream, in order,
// into one file that ffprobe can read.
func joined(t *testing.T, e *env, stream string) (string, []spool.Pending) {
	t.Helper()
	pend, err := e.spool.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var mine []spool.Pending
	var buf bytes.Buffer
	for _, p := range pend {
		if p.Event.StreamID != stream {
			continue
		}
		if len(mine) == 0 {
			b, err := os.ReadFile(p.InitPath)
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(b)
		}
		b, err := os.ReadFile(p.SegmentPath)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		mine = append(mine, p)
	}
	path := filepath.Join(t.TempDir(), "joined.mp4")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, mine
}

func TestPublishIsSegmented(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, audio, transport string
		codecs                 []string
		encoder                string
	}{
		{"tcp_aac", "aac", "tcp", []string{"video:h264", "audio:aac"}, "libx264"},
		{"udp_opus", "opus", "udp", []string{"video:h264", "audio:opus"}, "libx264"},
		{"tcp_video_only", "", "tcp", []string{"video:h264"}, "libx264"},
		// Many IP cameras send H.265.
		{"tcp_hevc_aac", "aac", "tcp", []string{"video:hevc", "audio:aac"}, "libx265"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, "site1/cam1")
			stderr, err := publishVideo(t, "rtsp://cam1:s3cret-cam1@"+e.addr+"/site1/cam1", 7, tc.audio, tc.transport, tc.encoder)
			if err != nil {
				t.Fatalf("ffmpeg publish: %v: %s", err, stderr)
			}
			var pend []spool.Pending
			var path string
			testenv.WaitFor(t, 10*time.Second, "the last segment to close", func() bool {
				path, pend = joined(t, e, "site1/cam1")
				total := 0.0
				for _, p := range pend {
					total += p.Event.Duration
				}
				return total > 6.5
			})
			if len(pend) < 3 {
				t.Fatalf("got %d segments for 7 s at 2 s segments, want at least 3", len(pend))
			}
			total := 0.0
			for i, p := range pend {
				if p.Event.Sequence != int64(i) {
					t.Errorf("segment %d has sequence %d", i, p.Event.Sequence)
				}
				if i == 0 && !p.Event.Discontinuity {
					t.Errorf("first segment of a session is not marked as a discontinuity")
				}
				if i > 0 && p.Event.PrevChain != pend[i-1].Event.Chain {
					t.Errorf("segment %d does not chain to the previous one", i)
				}
				want, _ := chain.Next(p.Event.PrevChain, p.Event.SHA256)
				if p.Event.Chain != want {
					t.Errorf("segment %d chain value is wrong", i)
				}
				if i < len(pend)-1 && (p.Event.Duration < 1.9 || p.Event.Duration > 2.6) {
					t.Errorf("segment %d lasts %.3f s, want about 2 s (keyframe every 2 s)", i, p.Event.Duration)
				}
				total += p.Event.Duration
			}
			if total < 6.5 || total > 7.5 {
				t.Errorf("segments add up to %.3f s, want 7 ± 0.5", total)
			}
			probe := testenv.FFprobe(t, path)
			if got := probe.Codecs(); strings.Join(got, ",") != strings.Join(tc.codecs, ",") {
				t.Errorf("ffprobe sees streams %v, want %v", got, tc.codecs)
			}
			// A fragmented MP4 keeps the session's decode time, so ffprobe
			// reports the end time; the span is end minus start, from the
			// earlier track's start to the later one's end. Audio and video
			// are placed on one clock from the publisher's RTCP sender
			// reports; on a loaded machine ffmpeg sends those late and the
			// tracks' starts differ by up to a second (seen: 8.0 s).
			if d := probe.DurationSeconds() - probe.StartSeconds(); d < 6.5 || d > 8.5 {
				t.Errorf("ffprobe duration %.3f s, want about 7", d)
			}
		})
	}
}

func TestRefusedPublishersDoNotDisturbOthers(t *testing.T) {
	t.Parallel()
	e := start(t, "site1/cam1", "site1/cam2")
	var wg sync.WaitGroup
	var goodErr error
	var goodStderr string
	wg.Add(1)
	go func() {
		defer wg.Done()
		goodStderr, goodErr = publish(t, "rtsp://cam1:s3cret-cam1@"+e.addr+"/site1/cam1", 6, "aac", "tcp")
	}()
	for _, tc := range []struct{ name, url, want string }{
		{"wrong secret", "rtsp://cam2:wrong@" + e.addr + "/site1/cam2", "401"},
		{"no credentials", "rtsp://" + e.addr + "/site1/cam2", "401"},
		// Before authentication an unknown device answers as a known one.
		{"unknown device", "rtsp://cam9:s3cret-cam9@" + e.addr + "/site1/cam9", "401"},
		{"bad path", "rtsp://cam2:s3cret-cam2@" + e.addr + "/../etc", "404"},
	} {
		stderr, err := publish(t, tc.url, 2, "aac", "tcp")
		if err == nil {
			t.Errorf("%s: publisher was accepted", tc.name)
		}
		if !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: ffmpeg says %q, want a %s", tc.name, stderr, tc.want)
		}
	}
	wg.Wait()
	if goodErr != nil {
		t.Fatalf("the valid publisher beside them failed: %v: %s", goodErr, goodStderr)
	}
	testenv.WaitFor(t, 10*time.Second, "the valid stream's segments", func() bool {
		_, pend := joined(t, e, "site1/cam1")
		total := 0.0
		for _, p := range pend {
			total += p.Event.Duration
		}
		return total > 5.5
	})
	pend, _ := e.spool.Pending()
	for _, p := range pend {
		if p.Event.StreamID != "site1/cam1" {
			t.Errorf("a refused publisher left segment %s of %s", p.Event.SegmentID, p.Event.StreamID)
		}
	}
}

// TestLivePublisherCannotBeCutOff: while a camera is live, a second
// publisher of its stream (a leaked secret) is refused with 453 and the
// camera records on; once it has ended, the stream takes a new publisher.
func TestLivePublisherCannotBeCutOff(t *testing.T) {
	t.Parallel()
	e := start(t, "site1/cam1")
	url := "rtsp://cam1:s3cret-cam1@" + e.addr + "/site1/cam1"
	var liveErr error
	var liveStderr string
	done := make(chan struct{})
	go func() {
		defer close(done)
		liveStderr, liveErr = publish(t, url, 10, "aac", "tcp")
	}()
	testenv.WaitFor(t, 20*time.Second, "the live camera's first segment", func() bool {
		_, pend := joined(t, e, "site1/cam1")
		return len(pend) > 0
	})
	stderr, err := publish(t, url, 2, "aac", "tcp")
	if err == nil || !strings.Contains(stderr, "453") {
		t.Errorf("a second publisher of the live stream: %v, ffmpeg says %q, want a 453", err, lastLine(stderr))
	}
	<-done
	if liveErr != nil {
		t.Fatalf("the live camera was cut off: %v: %s", liveErr, lastLine(liveStderr))
	}
	testenv.WaitFor(t, 20*time.Second, "the live camera's 10 s recorded", func() bool {
		_, pend := joined(t, e, "site1/cam1")
		total := 0.0
		for _, p := range pend {
			total += p.Event.Duration
		}
		return total > 9.5
	})
	if _, err := publish(t, url, 2, "aac", "tcp"); err != nil {
		t.Errorf("a new publisher after the camera ended: %v", err)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestSessionLimit: beyond MaxSessionsPerAddress publishers from one
// address, an ANNOUNCE is refused with 503 and the live one records on.
func TestSessionLimit(t *testing.T) {
	t.Parallel()
	e := startWith(t, func(c *rtsp.Config) { c.MaxSessionsPerAddress = 1 }, "site1/cam1", "site1/cam2")
	var liveErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, liveErr = publish(t, "rtsp://cam1:s3cret-cam1@"+e.addr+"/site1/cam1", 6, "aac", "tcp")
	}()
	testenv.WaitFor(t, 20*time.Second, "the first camera's first segment", func() bool {
		_, pend := joined(t, e, "site1/cam1")
		return len(pend) > 0
	})
	stderr, err := publish(t, "rtsp://cam2:s3cret-cam2@"+e.addr+"/site1/cam2", 2, "aac", "tcp")
	if err == nil || !strings.Contains(stderr, "503") {
		t.Errorf("a second publisher from one address: %v, ffmpeg says %q, want a 503", err, lastLine(stderr))
	}
	<-done
	if liveErr != nil {
		t.Errorf("the first camera was disturbed: %v", liveErr)
	}
}
