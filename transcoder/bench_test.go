package transcoder

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
)

// benchRounds is how many times each side runs per iteration, alternating,
// so that both meet the same load of a shared machine.
const benchRounds = 5

// BenchmarkTranscoderVsFFmpeg measures, on the same 720p25 2 Mbit/s clip
// cut into 6 s segments as ingest cuts them, the CPU time per second of
// media of
//
//	(a) the ffmpeg program making only the 360p rendition, with the
//	    encoder settings of the room profile (its child process's user and
//	    system time), and
//	(b) the transcoder handling every segment as it handles a SegmentClosed
//	    event: fetching and checking the segment, the same rendition, the
//	    thumbnail sprite and WebVTT fragment, the detectors, muxing,
//	    storing and announcing (this process's getrusage).
//
// Both decode and encode with one thread. Each side runs benchRounds times,
// alternately; the figures are each side's fastest round, which other load
// on the machine disturbs least, and the mean. The goal is a ratio of at
// most 1.05.
func BenchmarkTranscoderVsFFmpeg(b *testing.B) {
	const seconds = 30
	clip := ffmpegFMP4(b, clipSpec{video: "testsrc2=size=1280x720:rate=25", audio: "sine=frequency=440:sample_rate=48000",
		seconds: seconds, bitrate: "2M", bframes: 2})
	segs := cutClip(b, clip, "cam1", events.SourceRoom, 6*time.Second, t0)
	var media float64
	var raw bytes.Buffer
	raw.Write(segs[0].init)
	for _, s := range segs {
		media += s.event.Duration
		raw.Write(s.data)
	}
	dir := b.TempDir()
	input := filepath.Join(dir, "raw.mp4")
	if err := os.WriteFile(input, raw.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}

	cfg := DefaultConfig()
	cfg.Workers, cfg.Threads = 1, 1
	profile := cfg.Profiles[events.SourceRoom]
	st, err := blob.NewDir(filepath.Join(dir, "blob"))
	if err != nil {
		b.Fatal(err)
	}
	storeSegments(b, st, segs)
	bs, err := bus.NewLocal("", testLogger(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer bs.Close()
	msgs := make([]bus.Message, len(segs))
	for i, s := range segs {
		v, _ := json.Marshal(s.event)
		msgs[i] = bus.Message{Topic: events.TopicSegments, Key: s.event.StreamID, Value: v}
	}

	// (a) The ffmpeg program.
	ffmpeg := func() time.Duration {
		args := append([]string{"-hide_banner", "-loglevel", "error", "-threads", "1", "-filter_threads", "1", "-i", input},
			profile.FFmpegArgs(1280, 720, 25, 1)...)
		args = append(args, "-c:a", "copy", "-f", "mp4", "-y", filepath.Join(dir, "ffmpeg.mp4"))
		cmd := exec.Command(testenv.Tool(b, "ffmpeg"), args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
		}
		return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	// (b) The transcoder, a fresh one each time, with nothing done yet.
	transcoder := func() time.Duration {
		if err := os.RemoveAll(filepath.Join(dir, "blob", "review")); err != nil {
			b.Fatal(err)
		}
		svc, err := New(cfg, Deps{Bus: bs, Blob: st, Log: testLogger(b), Registry: prometheus.NewRegistry()})
		if err != nil {
			b.Fatal(err)
		}
		before := cpuTime(b)
		for _, m := range msgs {
			if err := svc.Handle(context.Background(), m); err != nil {
				b.Fatal(err)
			}
		}
		return cpuTime(b) - before
	}

	var theirs, ours []float64
	for b.Loop() {
		for i := range benchRounds {
			if i%2 == 0 {
				theirs = append(theirs, ffmpeg().Seconds()/media)
				ours = append(ours, transcoder().Seconds()/media)
			} else {
				ours = append(ours, transcoder().Seconds()/media)
				theirs = append(theirs, ffmpeg().Seconds()/media)
			}
		}
	}
	a, t := slices.Min(theirs), slices.Min(ours)
	b.ReportMetric(a, "ffmpeg-cpu-s/media-s")
	b.ReportMetric(t, "transcoder-cpu-s/media-s")
	b.ReportMetric(t/a, "ratio")
	b.Logf("%.0f s of 720p25 2 Mbit/s, %d rounds each: CPU s per media s, fastest (mean): ffmpeg (360p rendition only) %.4f (%.4f), "+
		"transcoder (rendition, thumbnails, observations) %.4f (%.4f); ratio %.3f (%.3f), goal ≤ 1.05",
		media, len(ours), a, mean(theirs), t, mean(ours), t/a, mean(ours)/mean(theirs))
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// cpuTime returns the user and system time this process has used.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
