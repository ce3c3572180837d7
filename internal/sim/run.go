package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// MediaConfig is how the demo site's streams look.
type MediaConfig struct {
	// WHIP is the base URL of the HTTP server that serves /whip/.
	WHIP string
	// RoomSize and RoomFPS are the room cameras' picture; Audio their
	// sound (aac, opus, none) and Transport their RTSP transport.
	RoomSize         string
	RoomFPS          int
	Audio, Transport string
	// WebcamSize, ScreenSize and StreamFPS are the candidates' streams.
	WebcamSize, ScreenSize string
	StreamFPS              int
	Schedule               Schedule
}

// RunDemo publishes the demo world's streams until ctx ends: the room
// cameras over RTSP, each candidate's webcam and screen over WHIP with
// their exam token, and the staged events of m.Schedule (its Epoch set
// here, from now). It returns ErrExamOver when a candidate's exam token
// stops working: the caller sets up a new exam and runs again.
func RunDemo(ctx context.Context, w *World, m MediaConfig, ffmpeg string, log *slog.Logger, now func() time.Time) error {
	if m.Schedule.Epoch.IsZero() {
		m.Schedule.Epoch = now().Add(m.Schedule.First)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, len(w.Rooms)+2*len(w.Candidates))
	run := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	drops := make(chan time.Duration)
	for i, r := range w.Rooms {
		cfg := CameraConfig{URL: r.URL, Name: DemoSite + "/" + r.Device, Size: m.RoomSize, FPS: m.RoomFPS,
			Audio: m.Audio, Transport: m.Transport, Tone: 440 + 110*i}
		if i == len(w.Rooms)-1 {
			cfg.Drops = drops
		}
		run(NewCamera(cfg, ffmpeg, log).Run)
	}
	base := strings.TrimRight(m.WHIP, "/")
	for i, c := range w.Candidates {
		for _, kind := range []string{"webcam", "screen"} {
			size := m.WebcamSize
			if kind == "screen" {
				size = m.ScreenSize
			}
			cfg := StreamConfig{Endpoint: base + c.WHIP[kind], Token: c.Token, Kind: kind,
				Name: fmt.Sprintf("%s %s", c.ID, kind), Size: size, FPS: m.StreamFPS, Tone: 660 + 110*i,
				Stage: i == 0, Schedule: m.Schedule}
			run(NewStream(cfg, ffmpeg, log).Run)
		}
	}
	// The staged drops of the last room camera.
	if len(w.Rooms) > 0 {
		run(func(ctx context.Context) error {
			for {
				at := m.Schedule.next(2, now(), DropFor)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(at.Sub(now())):
				}
				select {
				case drops <- DropFor:
				case <-ctx.Done():
					return nil
				}
				// Past this round's drop.
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(DropFor + time.Second):
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		if errors.Is(err, ErrExamOver) {
			return err
		}
		all = append(all, err)
	}
	return errors.Join(all...)
}

// PrintSummary writes what a person needs to look at the demo: the exam,
// each role's login, password and cabinet, the candidates' exam passwords,
// the review page of candidate 1 and the site console.
func PrintSummary(out io.Writer, w *World, registry, credsPath string, s Schedule, now time.Time) {
	base := strings.TrimRight(registry, "/")
	state := "in progress"
	if w.ExamCreated {
		state = "new, in progress"
	}
	fmt.Fprintf(out, "  Demo exam %s at site %s (qualification %s), %s – %s UTC, %s.\n",
		w.Exam, w.Site, w.Qualification, w.Start.UTC().Format("2006-01-02 15:04"), w.End.UTC().Format("15:04"), state)
	fmt.Fprintf(out, "  Sign in at %s/ui/ as one of these; each role opens its own cabinet:\n", base)
	for _, r := range w.Roles {
		of := ""
		if r.Org != "" {
			of = "   (" + r.Role + " of " + r.Org + ")"
		}
		fmt.Fprintf(out, "    %-8s %s / %s%s\n             opens %s/ui/%s: %s\n", r.Role, r.Login, r.Password, of, base, r.Cabinet, r.Does)
	}
	fmt.Fprintf(out, "  Candidates (webcam and screen published by the simulator over WHIP with their exam token):\n")
	for _, c := range w.Candidates {
		fmt.Fprintf(out, "    %-12s %-28s exam password %s  workstation %s, %s\n", c.ID, c.Name, c.Password, c.Webcam, c.Screen)
	}
	fmt.Fprintf(out, "    (the candidate's own page is %s/ui/exam.html; while the simulator publishes, it is refused as a second publisher)\n", base)
	if len(w.Candidates) > 0 {
		c := w.Candidates[0]
		fmt.Fprintf(out, "  Review of candidate 1 (sign in as expert): %s/ui/review.html?exam=%s&candidate=%s\n", base, w.Exam, c.ID)
	}
	fmt.Fprintf(out, "  Site console (sign in as site):           %s/ui/site.html\n", base)
	if s.Epoch.IsZero() {
		s.Epoch = now.Add(s.First)
	}
	fmt.Fprintf(out, "  Staged every %v from %s UTC: candidate 1's webcam covered for %v; %v later their screen frozen for %v;\n"+
		"    %v later room camera %s drops for %v (black, frozen, gap, stop and start on the timelines).\n",
		s.Every, s.Epoch.UTC().Format("15:04:05"), CoverFor, s.Spacing, FreezeFor, s.Spacing, lastRoom(w), DropFor)
	fmt.Fprintf(out, "  Passwords are kept in %s (mode 0600); a restart reuses this world.\n", credsPath)
}

func lastRoom(w *World) string {
	if len(w.Rooms) == 0 {
		return "—"
	}
	return w.Rooms[len(w.Rooms)-1].Device
}
