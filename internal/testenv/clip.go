package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtpmpeg4audio"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
	"github.com/pion/rtp"
)

// ClipSpec describes a test clip that ffmpeg encodes once: test pattern in
// H.264 (B-frames, a keyframe every 2 s) and, with Audio, a 48 kHz AAC tone.
type ClipSpec struct {
	Size    string // e.g. "320x240"
	FPS     int
	Seconds int
	Bitrate string // e.g. "2M"; empty lets x264 choose
	Audio   bool
}

// EncodeClip encodes spec into a fragmented MP4 file in dir with ffmpeg and
// returns its path.
func EncodeClip(t testing.TB, dir string, spec ClipSpec) string {
	t.Helper()
	path := filepath.Join(dir, fmt.Sprintf("clip-%s-%d-%ds-%s-%v.mp4", spec.Size, spec.FPS, spec.Seconds, spec.Bitrate, spec.Audio))
	if _, err := os.Stat(path); err == nil {
		return path
	}
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%s:rate=%d", spec.Size, spec.FPS)}
	if spec.Audio {
		args = append(args, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000")
	}
	args = append(args, "-t", strconv.Itoa(spec.Seconds),
		"-c:v", "libx264", "-preset", "veryfast", "-profile:v", "main", "-bf", "2", "-g", strconv.Itoa(spec.FPS*2),
		"-keyint_min", strconv.Itoa(spec.FPS*2), "-sc_threshold", "0", "-pix_fmt", "yuv420p")
	if spec.Bitrate != "" {
		args = append(args, "-b:v", spec.Bitrate, "-maxrate", spec.Bitrate, "-bufsize", spec.Bitrate)
	}
	if spec.Audio {
		args = append(args, "-c:a", "aac", "-b:a", "64k")
	}
	args = append(args, "-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-f", "mp4", path)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Tool(t, "ffmpeg"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("encode clip: %v: %s", err, stderr.String())
	}
	return path
}

// ClipFrame is one access unit of a clip.
type ClipFrame struct {
	Video bool
	PTS   time.Duration // presentation time from the clip start
	DTS   time.Duration
	AU    [][]byte // H.264 NAL units, or one AAC access unit
}

// Clip is a clip read into memory, ready to be sent over RTP in a loop.
type Clip struct {
	SPS, PPS []byte
	AAC      *mp4.CodecMPEG4Audio // nil without audio
	Frames   []ClipFrame          // in decode order, video and audio interleaved
	Duration time.Duration        // of one loop

	// The RTP payloads of each frame, made once and shared by every
	// sender: packetizing is then no cost per stream.
	once     sync.Once
	payloads [][]rtpPayload
	err      error
}

type rtpPayload struct {
	b      []byte
	marker bool
}

func (c *Clip) packetize(desc *description.Session) ([][]rtpPayload, error) {
	c.once.Do(func() {
		h, err := desc.Medias[0].Formats[0].(*format.H264).CreateEncoder()
		if err != nil {
			c.err = err
			return
		}
		var a *rtpmpeg4audio.Encoder
		if c.AAC != nil {
			if a, err = desc.Medias[1].Formats[0].(*format.MPEG4Audio).CreateEncoder(); err != nil {
				c.err = err
				return
			}
		}
		for _, f := range c.Frames {
			var pkts []*rtp.Packet
			if f.Video {
				pkts, err = h.Encode(f.AU)
			} else if a != nil {
				pkts, err = a.Encode(f.AU)
			}
			if err != nil {
				c.err = err
				return
			}
			var ps []rtpPayload
			for _, p := range pkts {
				ps = append(ps, rtpPayload{b: p.Payload, marker: p.Marker})
			}
			c.payloads = append(c.payloads, ps)
		}
	})
	return c.payloads, c.err
}

// ReadClip reads a fragmented MP4 from EncodeClip.
func ReadClip(path string) (*Clip, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	// Split the init segment (ftyp+moov) from the fragments.
	pos, initEnd := 0, 0
	for pos+8 <= len(b) {
		size := int(binary.BigEndian.Uint32(b[pos:]))
		if size < 8 || pos+size > len(b) {
			break
		}
		if string(b[pos+4:pos+8]) == "moov" {
			initEnd = pos + size
		}
		pos += size
	}
	if initEnd == 0 {
		return nil, fmt.Errorf("clip %s: no moov", path)
	}
	var in fmp4.Init
	if err := in.Unmarshal(bytes.NewReader(b[:initEnd])); err != nil {
		return nil, fmt.Errorf("clip init: %w", err)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b[initEnd:]); err != nil {
		return nil, fmt.Errorf("clip fragments: %w", err)
	}
	c := &Clip{}
	scales := map[int]uint32{}
	video := map[int]bool{}
	for _, tr := range in.Tracks {
		scales[tr.ID] = tr.TimeScale
		switch codec := tr.Codec.(type) {
		case *mp4.CodecH264:
			c.SPS, c.PPS = codec.SPS, codec.PPS
			video[tr.ID] = true
		case *mp4.CodecMPEG4Audio:
			c.AAC = codec
		}
	}
	if c.SPS == nil {
		return nil, fmt.Errorf("clip %s: no H.264 track", path)
	}
	ticks := func(v int64, scale uint32) time.Duration {
		return time.Duration(v) * time.Second / time.Duration(scale)
	}
	for _, p := range parts {
		for _, pt := range p.Tracks {
			scale := scales[pt.ID]
			dts := int64(pt.BaseTime)
			for _, s := range pt.Samples {
				f := ClipFrame{Video: video[pt.ID], DTS: ticks(dts, scale), PTS: ticks(dts+int64(s.PTSOffset), scale)}
				if f.Video {
					var avcc h264.AVCC
					if err := avcc.Unmarshal(s.Payload); err != nil {
						return nil, fmt.Errorf("clip sample: %w", err)
					}
					f.AU = avcc
				} else {
					f.AU = [][]byte{s.Payload}
				}
				c.Frames = append(c.Frames, f)
				dts += int64(s.Duration)
				if end := ticks(dts, scale); end > c.Duration {
					c.Duration = end
				}
			}
		}
	}
	sort.SliceStable(c.Frames, func(i, j int) bool { return c.Frames[i].DTS < c.Frames[j].DTS })
	return c, nil
}

// Description returns the RTSP description of the clip's media.
func (c *Clip) Description() *description.Session {
	d := &description.Session{Medias: []*description.Media{{
		Type:    description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: c.SPS, PPS: c.PPS}},
	}}}
	if c.AAC != nil {
		conf := c.AAC.Config
		d.Medias = append(d.Medias, &description.Media{
			Type: description.MediaTypeAudio,
			Formats: []format.Format{&format.MPEG4Audio{PayloadTyp: 97, Config: &conf,
				SizeLength: 13, IndexLength: 3, IndexDeltaLength: 3}},
		})
	}
	return d
}

// clipSender sends the clip's frames as RTP packets of one stream.
type clipSender struct {
	clip     *Clip
	desc     *description.Session
	payloads [][]rtpPayload
	vBase    uint32
	aBase    uint32
	vSeq     uint16
	aSeq     uint16
	vSSRC    uint32
	aSSRC    uint32
	aRate    int
	packets  func(m *description.Media, pkts []*rtp.Packet) error
}

func newClipSender(c *Clip, desc *description.Session, packets func(*description.Media, []*rtp.Packet) error) (*clipSender, error) {
	s := &clipSender{clip: c, desc: desc, packets: packets}
	var err error
	if s.payloads, err = c.packetize(desc); err != nil {
		return nil, err
	}
	if c.AAC != nil {
		s.aRate = desc.Medias[1].Formats[0].ClockRate()
	}
	var rb [20]byte
	_, _ = rand.Read(rb[:])
	s.vBase, s.aBase = binary.BigEndian.Uint32(rb[:4]), binary.BigEndian.Uint32(rb[4:])
	s.vSSRC, s.aSSRC = binary.BigEndian.Uint32(rb[8:]), binary.BigEndian.Uint32(rb[12:])
	s.vSeq, s.aSeq = binary.BigEndian.Uint16(rb[16:]), binary.BigEndian.Uint16(rb[18:])
	return s, nil
}

func (s *clipSender) send(i int, video bool, ts uint32) error {
	ps := s.payloads[i]
	pkts := make([]*rtp.Packet, len(ps))
	for j, p := range ps {
		h := rtp.Header{Version: 2, Marker: p.marker, Timestamp: ts}
		if video {
			h.PayloadType, h.SSRC, h.SequenceNumber = 96, s.vSSRC, s.vSeq
			s.vSeq++
		} else {
			h.PayloadType, h.SSRC, h.SequenceNumber = 97, s.aSSRC, s.aSeq
			s.aSeq++
		}
		pkts[j] = &rtp.Packet{Header: h, Payload: p.b}
	}
	m := s.desc.Medias[0]
	if !video {
		m = s.desc.Medias[1]
	}
	return s.packets(m, pkts)
}

// run sends the clip in a loop at real time until ctx ends or sending fails.
// lag, if not nil, receives how far behind schedule the sender is.
func (s *clipSender) run(ctx context.Context, lag func(time.Duration)) error {
	start := time.Now()
	for loop := 0; ; loop++ {
		off := time.Duration(loop) * s.clip.Duration
		for i, f := range s.clip.Frames {
			at := start.Add(off + f.DTS)
			if d := time.Until(at); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return nil
				case <-t.C:
				}
			} else if lag != nil {
				lag(-d)
			}
			if ctx.Err() != nil {
				return nil
			}
			pts := off + f.PTS
			var err error
			if f.Video {
				err = s.send(i, true, s.vBase+uint32(int64(pts)*90000/int64(time.Second)))
			} else if s.aRate > 0 {
				err = s.send(i, false, s.aBase+uint32(int64(pts)*int64(s.aRate)/int64(time.Second)))
			}
			if err != nil {
				return err
			}
		}
	}
}

// Camera is an IP camera for tests: an RTSP server (gortsplib) that serves
// a clip in a loop at rtsp://user:pass@Addr/stream. Stop and Start take it
// off and back on the same address, like a camera losing power.
type Camera struct {
	Addr     string
	User     string
	Password string
	clip     *Clip

	mu     sync.Mutex
	srv    *gortsplib.Server
	stream *gortsplib.ServerStream
	cancel context.CancelFunc
	done   chan struct{}
}

// URL returns the camera's URL with its credentials.
func (c *Camera) URL() string {
	return fmt.Sprintf("rtsp://%s:%s@%s/stream", c.User, c.Password, c.Addr)
}

// NewCamera starts a camera serving clip on a free loopback port. It is
// stopped when t ends.
func NewCamera(t testing.TB, clip *Clip) *Camera {
	t.Helper()
	c := &Camera{Addr: fmt.Sprintf("127.0.0.1:%d", FreePort(t)), User: "admin", Password: "cam-" + rand.Text()[:8], clip: clip}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// Start starts serving.
func (c *Camera) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv != nil {
		return nil
	}
	h := &cameraHandler{c: c}
	srv := &gortsplib.Server{Handler: h, RTSPAddress: c.Addr}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("start camera on %s: %w", c.Addr, err)
	}
	desc := c.clip.Description()
	st := &gortsplib.ServerStream{Server: srv, Desc: desc}
	if err := st.Initialize(); err != nil {
		srv.Close()
		return err
	}
	h.stream = st
	sender, err := newClipSender(c.clip, desc, func(m *description.Media, pkts []*rtp.Packet) error {
		for _, p := range pkts {
			if err := st.WritePacketRTP(m, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		st.Close()
		srv.Close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sender.run(ctx, nil)
	}()
	c.srv, c.stream, c.cancel, c.done = srv, st, cancel, done
	return nil
}

// Stop stops serving and closes every connection.
func (c *Camera) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv == nil {
		return
	}
	c.cancel()
	<-c.done
	c.stream.Close()
	c.srv.Close()
	c.srv = nil
}

type cameraHandler struct {
	c      *Camera
	stream *gortsplib.ServerStream
}

func (h *cameraHandler) auth(req *base.Request, conn *gortsplib.ServerConn) (*base.Response, error) {
	if !conn.VerifyCredentials(req, h.c.User, h.c.Password) {
		return &base.Response{StatusCode: base.StatusUnauthorized}, liberrors.ErrServerAuth{}
	}
	return nil, nil
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (h *cameraHandler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if r, err := h.auth(ctx.Request, ctx.Conn); r != nil {
		return r, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, h.stream, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (h *cameraHandler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if r, err := h.auth(ctx.Request, ctx.Conn); r != nil {
		return r, nil, err
	}
	return &base.Response{StatusCode: base.StatusOK}, h.stream, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (h *cameraHandler) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// Publish publishes clip in a loop to an RTSP URL (ANNOUNCE + RECORD over
// TCP, gortsplib) until ctx ends or the connection fails. lag, if not nil,
// receives how far behind real time the sending is (a server that cannot
// keep up pushes back over TCP).
func Publish(ctx context.Context, clip *Clip, rawURL string, lag func(time.Duration)) error {
	u, err := base.ParseURL(rawURL)
	if err != nil {
		return err
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host, Transport: &tcp, WriteQueueSize: 4096}
	desc := clip.Description()
	if err := c.StartRecording(rawURL, desc); err != nil {
		return fmt.Errorf("start recording to %s: %w", u.Host, err)
	}
	defer c.Close()
	sender, err := newClipSender(clip, desc, func(m *description.Media, pkts []*rtp.Packet) error {
		for _, p := range pkts {
			if err := c.WritePacketRTP(m, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	go func() { errc <- c.Wait() }()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-errc:
			cancel()
		case <-sctx.Done():
		}
	}()
	return sender.run(sctx, lag)
}
