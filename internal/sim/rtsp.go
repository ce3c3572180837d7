package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/pion/rtp"

	"github.com/nokstream/nokstream/internal/secrets"
)

// CameraConfig is a room camera: a test pattern with its name and the
// wall clock burnt in, and a tone, encoded by ffmpeg as H.264 (with
// B-frames, as many IP cameras send) and AAC or Opus, published over RTSP.
type CameraConfig struct {
	// URL is the publish URL, with the device's secret: it stays in this
	// process (ffmpeg writes RTP to a socket of ours).
	URL       string
	Name      string // burnt into the picture
	Size      string // WxH
	FPS       int
	Audio     string // aac, opus or none
	Transport string // tcp or udp
	Tone      int    // Hz
	// Seconds stops the camera after this long (0: until ctx ends).
	Seconds int
	// Drops, when not nil, delivers how long to drop the connection for:
	// the camera goes away without a TEARDOWN, as on a network failure,
	// and comes back after that long.
	Drops <-chan time.Duration
}

// Camera publishes one room camera.
type Camera struct {
	cfg    CameraConfig
	ffmpeg string
	log    *slog.Logger
}

// NewCamera returns a camera; ffmpeg is the path of the ffmpeg program.
func NewCamera(cfg CameraConfig, ffmpeg string, log *slog.Logger) *Camera {
	return &Camera{cfg: cfg, ffmpeg: ffmpeg, log: log.With("camera", secrets.RedactURL(cfg.URL))}
}

// ffmpegArgs returns the arguments that encode the camera to RTP on the
// unix datagram sockets video and audio, and its SDP to sdpPath.
func (c *Camera) ffmpegArgs(video, audio, sdpPath string) []string {
	src := chain(fmt.Sprintf("testsrc2=size=%s:rate=%d", c.cfg.Size, c.cfg.FPS), label(c.cfg.Name, ""))
	// -t limits each input, so that both outputs end.
	var limit []string
	if c.cfg.Seconds > 0 {
		limit = []string{"-t", fmt.Sprint(c.cfg.Seconds)}
	}
	args := append(append([]string{"-re"}, limit...), "-f", "lavfi", "-i", src)
	if c.cfg.Audio != "none" {
		args = append(append(args, limit...), "-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:sample_rate=48000", c.cfg.Tone))
	}
	// RTP to a unix datagram socket: one packet a datagram, nothing on
	// the network, and the socket's directory is ours alone.
	rtpOut := func(sock string) []string {
		return []string{"-f", "rtp", "-type", "datagram", "-packetsize", "1200", "unix:" + sock}
	}
	args = append(args, "-map", "0:v", "-c:v", "libx264", "-preset", "veryfast", "-bf", "2",
		"-g", fmt.Sprint(c.cfg.FPS*2), "-pix_fmt", "yuv420p", "-b:v", "1500k")
	args = append(args, rtpOut(video)...)
	switch c.cfg.Audio {
	case "aac":
		args = append(args, "-map", "1:a", "-c:a", "aac", "-b:a", "64k")
		args = append(args, rtpOut(audio)...)
	case "opus":
		args = append(args, "-map", "1:a", "-c:a", "libopus", "-b:a", "64k")
		args = append(args, rtpOut(audio)...)
	}
	return append(args, "-sdp_file", sdpPath)
}

// Run publishes until ctx ends (or, with Seconds, until the encoding
// ends). A failed connection is retried after 2 s, like a real camera.
func (c *Camera) Run(ctx context.Context) error {
	for {
		err := c.runEncoder(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if c.cfg.Seconds > 0 {
			return err
		}
		c.log.Warn("camera encoder stopped, restarting in 2s", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

// rtpSource reads the RTP packets ffmpeg writes to one socket, and hands
// them to the current publisher, if any.
type rtpSource struct {
	conn  *net.UnixConn
	media *description.Media
}

// runEncoder runs one ffmpeg and publishes what it encodes, reconnecting
// the RTSP session as needed, until ffmpeg ends or ctx does.
func (c *Camera) runEncoder(ctx context.Context) error {
	dir, err := os.MkdirTemp("", "nokstream-sim-") // mode 0700
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	listen := func(name string) (*net.UnixConn, error) {
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(dir, name), Net: "unixgram"})
		if err != nil {
			return nil, err
		}
		// Room for a moment's burst of a 1.5 Mbit/s camera.
		_ = conn.SetReadBuffer(1 << 20)
		return conn, nil
	}
	video, err := listen("video.sock")
	if err != nil {
		return err
	}
	defer video.Close()
	audio, err := listen("audio.sock")
	if err != nil {
		return err
	}
	defer audio.Close()

	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	sdpPath := filepath.Join(dir, "stream.sdp")
	cmd, err := startFFmpeg(ectx, c.ffmpeg, c.ffmpegArgs(video.LocalAddr().String(), audio.LocalAddr().String(), sdpPath), nil, nil, c.log)
	if err != nil {
		return err
	}
	// done is closed when ffmpeg has exited, werr then says how.
	var werr error
	done := make(chan struct{})
	go func() { werr = cmd.Wait(); close(done) }()

	// ffmpeg writes the SDP once every output has its header, before the
	// first packet.
	var desc *description.Session
	for desc == nil {
		select {
		case <-done:
			return fmt.Errorf("ffmpeg ended before it encoded: %w", werr)
		case <-ctx.Done():
			<-done
			return nil
		case <-time.After(50 * time.Millisecond):
		}
		b, err := os.ReadFile(sdpPath)
		if err != nil || len(b) == 0 {
			continue
		}
		if desc, err = parseSDP(b); err != nil {
			cancel()
			<-done
			return err
		}
	}
	sources := []rtpSource{{conn: video, media: desc.Medias[0]}}
	if len(desc.Medias) > 1 {
		sources = append(sources, rtpSource{conn: audio, media: desc.Medias[1]})
	}

	p := &publisher{}
	var wg sync.WaitGroup
	for _, s := range sources {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.forward(s)
		}()
	}
	defer func() {
		video.Close()
		audio.Close()
		wg.Wait()
	}()

	for {
		err := c.publish(ectx, p, desc, done)
		switch {
		case errors.Is(err, errEncoderEnded) || ctx.Err() != nil:
			cancel()
			<-done
			if ctx.Err() != nil || (c.cfg.Seconds > 0 && werr == nil) {
				return nil
			}
			return fmt.Errorf("ffmpeg ended: %w", werr)
		case errors.Is(err, errDropOver):
			continue
		}
		c.log.Warn("camera disconnected, retrying in 2s", "err", err)
		select {
		case <-ctx.Done():
		case <-done:
		case <-time.After(2 * time.Second):
		}
	}
}

var (
	errEncoderEnded = errors.New("the encoder ended")
	errDropOver     = errors.New("the staged drop is over")
)

// parseSDP returns the medias of ffmpeg's SDP as a description to
// announce: H.264 video, then the audio if any.
func parseSDP(b []byte) (*description.Session, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("ffmpeg's SDP: %w", err)
	}
	var in description.Session
	if err := in.Unmarshal(&sd); err != nil {
		return nil, fmt.Errorf("ffmpeg's SDP: %w", err)
	}
	out := &description.Session{}
	for _, m := range in.Medias {
		out.Medias = append(out.Medias, &description.Media{Type: m.Type, Formats: m.Formats})
	}
	if len(out.Medias) == 0 {
		return nil, errors.New("ffmpeg's SDP has no media")
	}
	if _, ok := out.Medias[0].Formats[0].(*format.H264); !ok {
		return nil, fmt.Errorf("ffmpeg's SDP: the first media is %T, not H.264", out.Medias[0].Formats[0])
	}
	return out, nil
}

// publisher is the current RTSP session of a camera, if any.
type publisher struct {
	mu     sync.Mutex
	client *gortsplib.Client
	medias map[*description.Media]*description.Media // ffmpeg's → the session's
}

// forward reads s until its socket is closed, writing each RTP packet to
// the current session; without one, packets are dropped (ffmpeg must
// never wait on us).
func (p *publisher) forward(s rtpSource) {
	buf := make([]byte, 2048)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			return
		}
		// RTCP from ffmpeg (payload types 200-204) is not forwarded: the
		// client sends its own sender reports.
		if n < 12 || (buf[1] >= 200 && buf[1] <= 204) {
			continue
		}
		var pkt rtp.Packet
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		p.mu.Lock()
		if p.client != nil {
			// A full write queue drops the packet, as a camera's
			// network would; a failed session ends the client's Wait.
			_ = p.client.WritePacketRTP(p.medias[s.media], &pkt)
		}
		p.mu.Unlock()
	}
}

// publish runs one RTSP session: it connects, records, and returns when
// the session fails, a drop is staged (after the drop), ffmpeg ends
// (errEncoderEnded) or ctx ends.
func (c *Camera) publish(ctx context.Context, p *publisher, desc *description.Session, encoderDone <-chan struct{}) error {
	var mu sync.Mutex
	var conn net.Conn
	client := &gortsplib.Client{
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			nc, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, address)
			mu.Lock()
			conn = nc
			mu.Unlock()
			return nc, err
		},
	}
	if c.cfg.Transport == "udp" {
		t := gortsplib.TransportUDP
		client.Transport = &t
	} else {
		t := gortsplib.TransportTCP
		client.Transport = &t
	}
	// A session of its own: the client's medias are copies.
	sess := &description.Session{}
	medias := map[*description.Media]*description.Media{}
	for _, m := range desc.Medias {
		cp := &description.Media{Type: m.Type, Formats: m.Formats}
		sess.Medias = append(sess.Medias, cp)
		medias[m] = cp
	}
	if err := client.StartRecording(c.cfg.URL, sess); err != nil {
		return fmt.Errorf("publish: %s", secrets.Scrub(err.Error(), c.cfg.URL))
	}
	c.log.Info("camera publishing")
	p.mu.Lock()
	p.client, p.medias = client, medias
	p.mu.Unlock()
	stop := func() {
		p.mu.Lock()
		p.client = nil
		p.mu.Unlock()
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- client.Wait() }()
	select {
	case <-ctx.Done():
		stop()
		client.Close()
		return ctx.Err()
	case <-encoderDone:
		stop()
		client.Close()
		return errEncoderEnded
	case err := <-waitErr:
		stop()
		client.Close()
		return fmt.Errorf("session ended: %s", secrets.Scrub(fmt.Sprint(err), c.cfg.URL))
	case d := <-c.cfg.Drops:
		// A network failure: the connection goes, with no TEARDOWN.
		stop()
		mu.Lock()
		if conn != nil {
			conn.Close()
		}
		mu.Unlock()
		client.Close()
		c.log.Info("camera dropped (staged)", "for", d)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
		return errDropOver
	}
}
