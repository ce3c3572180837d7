package sim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"
)

// Schedule says when the staged events happen: the first round First
// after the simulation starts, then one every Every; in a round, the
// webcam of candidate 1 is covered, then (Spacing later) their screen
// freezes, then (Spacing later) room camera 2 drops.
type Schedule struct {
	First, Every, Spacing time.Duration
	// Epoch is when the first round starts (the start of the simulation
	// plus First); Run sets it.
	Epoch time.Time
}

// How long each staged event lasts.
const (
	CoverFor  = 10 * time.Second
	FreezeFor = 15 * time.Second
	DropFor   = 15 * time.Second
)

// Validate reports a schedule that cannot run.
func (s Schedule) Validate() error {
	switch {
	case s.First < 0 || s.Spacing < 0:
		return fmt.Errorf("staged events: --stage-first %v and --stage-spacing %v must not be negative", s.First, s.Spacing)
	case s.Every < 2*s.Spacing+DropFor+5*time.Second:
		return fmt.Errorf("staged events: --stage-every %v is shorter than a round (2 × --stage-spacing %v + %v, and 5 s of rest)", s.Every, s.Spacing, DropFor)
	}
	return nil
}

// offset returns, for the event of round position i and a process started
// at started, the seconds from its start to the occurrence in progress or
// the next one: negative (down to -Every) when the last one started
// before the process. Later occurrences follow every s.Every.
func (s Schedule) offset(i int, started time.Time) float64 {
	d := s.Epoch.Add(time.Duration(i) * s.Spacing).Sub(started)
	if d < 0 {
		d %= s.Every // in (-Every, 0]
	}
	return d.Seconds()
}

// next returns when the event of round position i, lasting length, next
// starts at or after now; now itself while one is in progress.
func (s Schedule) next(i int, now time.Time, length time.Duration) time.Time {
	d := time.Duration(s.offset(i, now) * float64(time.Second))
	switch {
	case d >= 0:
		return now.Add(d)
	case -d < length:
		return now
	}
	return now.Add(d + s.Every)
}

// during returns an FFmpeg expression of t (seconds since the process
// started at started) that is 1 while the event of round position i lasts
// (for length) and 0 otherwise.
func (s Schedule) during(i int, started time.Time, length time.Duration) string {
	d := s.offset(i, started)
	return fmt.Sprintf("gte(t,%.3f)*lt(mod(t-(%.3f),%.3f),%.3f)", d, d, s.Every.Seconds(), length.Seconds())
}

// sinceStart returns an FFmpeg expression of how long the event of round
// position i has lasted at t, 0 outside it.
func (s Schedule) sinceStart(i int, started time.Time, length time.Duration) string {
	d := s.offset(i, started)
	return fmt.Sprintf("(%s)*mod(t-(%.3f),%.3f)", s.during(i, started, length), d, s.Every.Seconds())
}

// fontFile is a font for the burnt-in text, if Debian's DejaVu is present.
func fontFile() string {
	for _, p := range []string{"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// label returns a drawtext filter writing text and the wall clock at the
// top left, enabled by enable ("" for always), or "" without a font.
func label(text, enable string) string {
	f := fontFile()
	if f == "" {
		return ""
	}
	s := fmt.Sprintf("drawtext=fontfile=%s:fontsize=28:fontcolor=white:box=1:boxcolor=black@0.6:x=20:y=30:text='%s  %%{localtime\\:%%Y-%%m-%%d %%X}'", f, text)
	if enable != "" {
		s += ":enable='" + enable + "'"
	}
	return s
}

// chain joins the filters that are not empty.
func chain(filters ...string) string {
	var out []string
	for _, f := range filters {
		if f != "" {
			out = append(out, f)
		}
	}
	return strings.Join(out, ",")
}

// ffmpegEnv is the whole environment of an ffmpeg child: nothing of ours
// (the database URL, secrets) is passed on.
func ffmpegEnv() []string {
	env := []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	for _, k := range []string{"HOME", "LANG", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// startFFmpeg starts ffmpeg with args and the extra files (fd 3 on), its
// standard error logged line by line.
func startFFmpeg(ctx context.Context, ffmpeg string, args []string, stdout io.Writer, extra []*os.File, log *slog.Logger) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, ffmpeg, append([]string{"-hide_banner", "-nostdin", "-loglevel", "error"}, args...)...)
	cmd.Env = ffmpegEnv()
	cmd.Stdout = stdout
	cmd.ExtraFiles = extra
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 3 * time.Second
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start ffmpeg: %w", err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			// What it says while it is told to stop is noise.
			if ctx.Err() == nil {
				log.Warn("ffmpeg", "said", sc.Text())
			}
		}
	}()
	return cmd, nil
}
