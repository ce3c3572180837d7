package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tool returns the path of a command the tests need (ffmpeg, ffprobe), or
// fails the test saying how to get it.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: run `make test`, which installs it (apt-get install ffmpeg)", name)
	}
	return p
}

// FreePort returns a free TCP port on loopback.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeUDPPair returns an even UDP port p such that p and p+1 are free, for
// RTP and RTCP.
func FreeUDPPair(t testing.TB) (int, int) {
	t.Helper()
	for range 50 {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free udp port: %v", err)
		}
		p := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if p%2 == 1 {
			p--
		}
		a, err1 := net.ListenPacket("udp", ":"+strconv.Itoa(p))
		b, err2 := net.ListenPacket("udp", ":"+strconv.Itoa(p+1))
		if a != nil {
			a.Close()
		}
		if b != nil {
			b.Close()
		}
		if err1 == nil && err2 == nil {
			return p, p + 1
		}
	}
	t.Fatalf("no free even UDP port pair")
	return 0, 0
}

// PublishArgs returns ffmpeg arguments that publish a synthetic stream (test
// pattern with B-frames, and a tone unless audio is "") of the given
// duration to an RTSP URL. audio is "aac", "opus" or "".
func PublishArgs(url string, seconds int, size string, fps int, audio, transport string) []string {
	args := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%s:rate=%d", size, fps)}
	if audio != "" {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000")
	}
	args = append(args, "-t", strconv.Itoa(seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "main", "-bf", "2", "-g", strconv.Itoa(fps*2),
		"-pix_fmt", "yuv420p")
	switch audio {
	case "aac":
		args = append(args, "-c:a", "aac", "-b:a", "64k")
	case "opus":
		args = append(args, "-c:a", "libopus", "-b:a", "64k")
	}
	return append(args, "-f", "rtsp", "-rtsp_transport", transport, url)
}

// Probe is what ffprobe reports of a file or playlist.
type Probe struct {
	Format struct {
		Duration  string `json:"duration"`
		StartTime string `json:"start_time"`
	} `json:"format"`
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
	} `json:"streams"`
}

// DurationSeconds parses the format duration.
func (p Probe) DurationSeconds() float64 {
	f, _ := strconv.ParseFloat(p.Format.Duration, 64)
	return f
}

// StartSeconds parses the format start time.
func (p Probe) StartSeconds() float64 {
	f, _ := strconv.ParseFloat(p.Format.StartTime, 64)
	return f
}

// Codecs returns codec_type:codec_name of each stream.
func (p Probe) Codecs() []string {
	var out []string
	for _, s := range p.Streams {
		out = append(out, s.CodecType+":"+s.CodecName)
	}
	return out
}

// FFprobe runs ffprobe on a file or URL with extra input options.
func FFprobe(t testing.TB, target string, extra ...string) Probe {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"-v", "error", "-print_format", "json", "-show_format", "-show_streams"}, extra...)
	args = append(args, target)
	cmd := exec.CommandContext(ctx, Tool(t, "ffprobe"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v: %s", target, err, stderr.String())
	}
	var p Probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output: %v", err)
	}
	return p
}

// Plays demuxes a file or playlist whole, every packet of every segment,
// with the ffmpeg program (copying to the null muxer, no decoding), and
// returns how long it plays: the time of the last packet it read. It fails
// the test if ffmpeg reports any error, a segment it could not fetch or
// demux among them, which ffprobe's duration (the playlist's EXTINFs
// added up) would not notice.
func Plays(t testing.TB, target string) float64 {
	t.Helper()
	return plays(t, target, false)
}

// PlaysAcrossSessions is Plays for a playlist of several publisher
// sessions: ffmpeg's HLS demuxer ignores EXT-X-DISCONTINUITY, so it reports
// the timestamps of the new session going back as an error, which this
// tolerates (and only this).
func PlaysAcrossSessions(t testing.TB, target string) float64 {
	t.Helper()
	return plays(t, target, true)
}

func plays(t testing.TB, target string, sessions bool) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	// repeat+: every message on a line of its own, never collapsed into
	// "Last message repeated n times", which would hide what it repeats
	// from the filter below.
	cmd := exec.CommandContext(ctx, Tool(t, "ffmpeg"), "-hide_banner", "-nostdin", "-v", "repeat+error", "-xerror",
		"-i", target, "-map", "0", "-c", "copy", "-f", "null", "-progress", "pipe:1", "-nostats", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	errs := stderr.String()
	if sessions {
		var kept []string
		for _, line := range strings.Split(strings.TrimSpace(errs), "\n") {
			if line != "" && !strings.Contains(line, "non monotonically increasing dts") {
				kept = append(kept, line)
			}
		}
		errs = strings.Join(kept, "\n")
	}
	if err != nil || errs != "" {
		t.Fatalf("ffmpeg reading %s whole: %v: %s", target, err, errs)
	}
	last := -1.0
	for _, line := range bytes.Split(out, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("out_time_us=")); ok {
			if us, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64); err == nil {
				last = float64(us) / 1e6
			}
		}
	}
	if last < 0 {
		t.Fatalf("ffmpeg reading %s whole reported no progress:\n%s", target, out)
	}
	return last
}

// WaitFor polls cond every 50 ms until it returns true or the deadline
// passes, then fails the test with what.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
