package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
)

func simCommand(g *globalFlags) *cobra.Command {
	var urls []string
	var size string
	var fps, seconds int
	var audio, transport string
	cmd := &cobra.Command{
		Use:   "sim --url rtsp://dev:secret@host:8554/site/dev [--url …]",
		Short: "Simulate an exam site: publish synthetic room cameras to ingest",
		Long: `Simulate an exam site: publish one synthetic room camera per --url.

Each camera is a test pattern with the wall clock burnt in and a tone,
encoded as H.264 (with B-frames) and AAC by ffmpeg, and published over RTSP.
A camera whose connection fails is restarted after a pause, like a real one.
Get publish URLs with 'nokstream device add <site>/<device>'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(urls) == 0 {
				return fmt.Errorf("no camera: give --url rtsp://… (from 'nokstream device add')")
			}
			ffmpeg, err := exec.LookPath("ffmpeg")
			if err != nil {
				return fmt.Errorf("ffmpeg not found: install it (apt-get install ffmpeg, or `make run`)")
			}
			log := g.logger().With("service", "sim")
			ctx := cmd.Context()
			var wg sync.WaitGroup
			for i, u := range urls {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for ctx.Err() == nil {
						args := simArgs(u, i, size, fps, seconds, audio, transport)
						c := exec.CommandContext(ctx, ffmpeg, args...)
						c.Stderr = os.Stderr
						log.Info("camera publishing", "camera", i+1, "target", redactURL(u))
						err := c.Run()
						if seconds > 0 {
							if err != nil && ctx.Err() == nil {
								log.Error("camera stopped", "camera", i+1, "err", err)
							}
							return
						}
						if ctx.Err() != nil {
							return
						}
						log.Warn("camera disconnected, retrying in 2s", "camera", i+1, "err", err)
						select {
						case <-ctx.Done():
						case <-time.After(2 * time.Second):
						}
					}
				}()
			}
			wg.Wait()
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&urls, "url", nil, "publish URL of a camera (repeat for more cameras)")
	cmd.Flags().StringVar(&size, "size", "1280x720", "picture size")
	cmd.Flags().IntVar(&fps, "fps", 25, "frame rate")
	cmd.Flags().IntVar(&seconds, "seconds", 0, "stop after this many seconds (0: run until interrupted)")
	cmd.Flags().StringVar(&audio, "audio", "aac", "audio codec: aac, opus or none")
	cmd.Flags().StringVar(&transport, "transport", "tcp", "RTSP transport: tcp or udp")
	return cmd
}

// fontFile is a font for the burnt-in clock, if Debian's DejaVu is present.
func fontFile() string {
	for _, p := range []string{"/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func simArgs(url string, camera int, size string, fps, seconds int, audio, transport string) []string {
	src := fmt.Sprintf("testsrc2=size=%s:rate=%d", size, fps)
	if f := fontFile(); f != "" {
		src += fmt.Sprintf(",drawtext=fontfile=%s:fontsize=32:fontcolor=white:box=1:boxcolor=black@0.6:x=20:y=40:text='camera %d  %%{localtime\\:%%Y-%%m-%%d %%X}'", f, camera+1)
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", src}
	if audio != "none" {
		args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:sample_rate=48000", 440+110*camera))
	}
	if seconds > 0 {
		args = append(args, "-t", fmt.Sprint(seconds))
	}
	args = append(args, "-c:v", "libx264", "-preset", "veryfast", "-bf", "2",
		"-g", fmt.Sprint(fps*2), "-pix_fmt", "yuv420p", "-b:v", "1500k")
	switch audio {
	case "aac":
		args = append(args, "-c:a", "aac", "-b:a", "64k")
	case "opus":
		args = append(args, "-c:a", "libopus", "-b:a", "64k")
	}
	return append(args, "-f", "rtsp", "-rtsp_transport", transport, url)
}

// redactURL hides the secret of a publish URL in logs.
func redactURL(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	userinfo := u[scheme+3 : at]
	user, _, _ := strings.Cut(userinfo, ":")
	return u[:scheme+3] + user + ":<redacted>" + u[at:]
}
