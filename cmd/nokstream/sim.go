package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/nokstream/nokstream/internal/sim"
)

func simCommand(g *globalFlags) *cobra.Command {
	var d deps
	var urls []string
	var urlFile string
	var size, audio, transport string
	var fps, seconds int
	var demo, worldOnly bool
	var registryURL, rtspHost, whipURL, webcamSize, screenSize string
	var streamFPS int
	var examLength, examLead time.Duration
	var sched sim.Schedule
	cmd := &cobra.Command{
		Use:   "sim (--demo | --url rtsp://dev:secret@host:8554/site/dev [--url …])",
		Short: "Simulate an exam site: a demo exam in progress, or room cameras publishing to ingest",
		Long: `Simulate an exam site.

With --demo, stand up (or find) a demo world through the CLI and the
registry's API: council demo-council with its appeals commission, center
demo-center, site site1 with two room cameras and two workstations, a
qualification with assessment tools, an exam whose window is now, two
admitted candidates with exam passwords, an appointed expert, and one user of
every role (nark, council, center, site, expert), each with the temporary
password changed. Then publish the room cameras over RTSP and each
candidate's webcam (with sound) and screen over WHIP with the candidate's
exam token, as the exam page does, and stage what a reviewer must see: a
webcam covered for 10 s, a frozen screen, a room camera that drops for 15 s.
The passwords are kept in <data>/demo-credentials.json (mode 0600): a
restart reuses the world, and starts a new exam once the last one is over.
The database comes from --db or NOKSTREAM_DB (for the CLI steps).

With --url or --url-file, publish one synthetic room camera per URL (get
them from 'nokstream device add <site>/<device>'). A URL holds the device's
secret: give it in a file (--url-file, one a line) or NOKSTREAM_URL rather
than on the command line, where ps shows it to every local user.

Each camera is a test pattern with the wall clock burnt in and a tone,
encoded by ffmpeg as H.264 (with B-frames) and AAC; ffmpeg only encodes, to
a socket of this process, which publishes: no secret is on ffmpeg's command
line. A connection that fails is retried after a pause, like a real camera.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if urlFile != "" {
				b, err := os.ReadFile(urlFile)
				if err != nil {
					return fmt.Errorf("--url-file: %w", err)
				}
				for _, line := range strings.Split(string(b), "\n") {
					if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
						urls = append(urls, line)
					}
				}
				if len(urls) == 0 {
					return fmt.Errorf("--url-file %s holds no URL: one rtsp://… a line (from 'nokstream device add')", urlFile)
				}
			}
			if demo == (len(urls) > 0) {
				return errors.New("give either --demo (the whole demo exam) or --url rtsp://… (from 'nokstream device add'), not both or neither")
			}
			ffmpeg, err := exec.LookPath("ffmpeg")
			if err != nil && !worldOnly {
				return errors.New("ffmpeg not found: install it (apt-get install ffmpeg, or `make run`)")
			}
			switch audio {
			case "aac", "opus", "none":
			default:
				return fmt.Errorf("--audio %q: want aac, opus or none", audio)
			}
			if transport != "tcp" && transport != "udp" {
				return fmt.Errorf("--transport %q: want tcp or udp", transport)
			}
			log := g.logger().With("service", "sim")
			ctx := cmd.Context()
			if !demo {
				var wg sync.WaitGroup
				for i, u := range urls {
					c := sim.NewCamera(sim.CameraConfig{URL: u, Name: fmt.Sprintf("camera %d", i+1), Size: size, FPS: fps,
						Audio: audio, Transport: transport, Tone: 440 + 110*i, Seconds: seconds}, ffmpeg, log)
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := c.Run(ctx); err != nil {
							log.Error("camera stopped", "camera", i+1, "err", err)
						}
					}()
				}
				wg.Wait()
				return nil
			}

			if err := sched.Validate(); err != nil {
				return err
			}
			if examLength <= examLead || examLength > 24*time.Hour {
				return fmt.Errorf("--exam-length %v: want more than --exam-lead %v and at most 24h", examLength, examLead)
			}
			if whipURL == "" {
				whipURL = registryURL
			}
			wcfg := sim.WorldConfig{Registry: registryURL, RTSPHost: rtspHost, Credentials: filepath.Join(d.data, "demo-credentials.json"),
				ExamLength: examLength, ExamLead: examLead}
			media := sim.MediaConfig{WHIP: whipURL, RoomSize: size, RoomFPS: fps, Audio: audio, Transport: transport,
				WebcamSize: webcamSize, ScreenSize: screenSize, StreamFPS: streamFPS, Schedule: sched}
			for {
				w, err := sim.Setup(ctx, wcfg, cliRunner(d.db), log, time.Now)
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				if media.Schedule.Epoch.IsZero() {
					// The first round counts from when the world is
					// ready, and keeps its rhythm across exams.
					media.Schedule.Epoch = time.Now().Add(sched.First)
				}
				sim.PrintSummary(os.Stdout, w, registryURL, wcfg.Credentials, media.Schedule, time.Now())
				if worldOnly {
					return nil
				}
				log.Info("demo world ready; publishing", "exam", w.Exam, "rooms", len(w.Rooms), "candidates", len(w.Candidates))
				err = sim.RunDemo(ctx, w, media, ffmpeg, log, time.Now)
				if ctx.Err() != nil {
					return nil
				}
				if !errors.Is(err, sim.ErrExamOver) {
					return err
				}
				if time.Now().Before(w.End) {
					// Not the end of the exam: log the candidates in again
					// (never a new exam), after a pause.
					log.Warn("a candidate's exam token was refused before the end of the exam; logging in again in 10s",
						"exam", w.Exam, "ends", w.End, "err", err)
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(10 * time.Second):
					}
					continue
				}
				log.Info("the demo exam is over; setting up the next one", "exam", w.Exam)
			}
		},
	}
	d.dbFlag(cmd)
	d.dataFlag(cmd)
	f := cmd.Flags()
	f.StringArrayVar(&urls, "url", nil, "publish URL of a room camera (repeat for more cameras); it shows in ps: prefer --url-file")
	f.StringVar(&urlFile, "url-file", "", "file of publish URLs of room cameras, one a line, so that their secrets show in no command line")
	f.StringVar(&size, "size", "1280x720", "picture size of the room cameras")
	f.IntVar(&fps, "fps", 25, "frame rate of the room cameras")
	f.IntVar(&seconds, "seconds", 0, "--url: stop after this many seconds (0: run until interrupted)")
	f.StringVar(&audio, "audio", "aac", "sound of the room cameras: aac, opus or none")
	f.StringVar(&transport, "transport", "tcp", "RTSP transport: tcp or udp")
	f.BoolVar(&demo, "demo", false, "stand up the demo world and publish every stream of its exam")
	f.BoolVar(&worldOnly, "world-only", false, "--demo: set up (or find) the demo world, print it and exit without publishing")
	f.StringVar(&registryURL, "registry-url", "http://127.0.0.1:8080", "--demo: base URL of the registry's API (all, registry: --http-addr)")
	f.StringVar(&rtspHost, "rtsp-host", "127.0.0.1:8554", "--demo: host:port of ingest's RTSP server (all, ingest: --rtsp-addr)")
	f.StringVar(&whipURL, "whip-url", "", "--demo: base URL of the HTTP server that serves /whip/ (default: --registry-url, as in all)")
	f.StringVar(&webcamSize, "webcam-size", "640x480", "--demo: picture size of the candidates' webcams")
	f.StringVar(&screenSize, "screen-size", "1280x720", "--demo: picture size of the candidates' screens")
	f.IntVar(&streamFPS, "stream-fps", 15, "--demo: frame rate of the candidates' webcams and screens (the exam page asks for 15)")
	f.DurationVar(&examLength, "exam-length", 3*time.Hour, "--demo: how long a new demo exam lasts")
	f.DurationVar(&examLead, "exam-lead", 5*time.Minute, "--demo: how long before now a new demo exam starts")
	f.DurationVar(&sched.First, "stage-first", 2*time.Minute, "--demo: when the first round of staged events starts")
	f.DurationVar(&sched.Every, "stage-every", 5*time.Minute, "--demo: time between rounds of staged events")
	f.DurationVar(&sched.Spacing, "stage-spacing", time.Minute, "--demo: time between the cover, the freeze and the drop of a round")
	return cmd
}

// cliRunner returns a sim.CLI that runs this binary's subcommands, with
// the database from db (or the environment) in the child's environment,
// never on its command line.
func cliRunner(db string) sim.CLI {
	return func(ctx context.Context, args ...string) (string, error) {
		self, err := os.Executable()
		if err != nil {
			return "", err
		}
		c := exec.CommandContext(ctx, self, args...)
		c.Env = os.Environ()
		if db != "" {
			c.Env = append(c.Env, "NOKSTREAM_DB="+db)
		}
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		if err := c.Run(); err != nil {
			msg := strings.TrimSpace(stderr.String())
			msg = strings.TrimPrefix(msg, "nokstream: ")
			return "", fmt.Errorf("%s (%w)", msg, err)
		}
		return stdout.String(), nil
	}
}
