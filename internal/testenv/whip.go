package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"

	"github.com/nokstream/nokstream/internal/oggopus"
)

// FreeUDPPort returns a free UDP port on loopback.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free udp port: %v", err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// WHIPMedia is media a WHIP test client publishes: a video file (H.264
// Annex-B, or IVF for VP9 and AV1) and an Ogg/Opus file, encoded by ffmpeg
// from a test pattern and a tone, without B-frames (WebRTC has none).
type WHIPMedia struct {
	Video     string // "h264", "vp9", "av1" or "" for none
	VideoPath string
	Audio     bool
	AudioPath string
	FPS       int
	// TCP makes the client use ICE over TCP only (active candidates).
	TCP bool
}

// MakeWHIPMedia encodes seconds of media. The video has a keyframe every
// second (a file cannot answer keyframe requests), or every gop frames.
func MakeWHIPMedia(t testing.TB, seconds int, video string, audio bool, gop ...int) WHIPMedia {
	t.Helper()
	dir := t.TempDir()
	m := WHIPMedia{Video: video, Audio: audio, FPS: 25}
	ffmpeg := func(args ...string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		base := []string{"-hide_banner", "-loglevel", "error", "-y"}
		if out, err := exec.CommandContext(ctx, Tool(t, "ffmpeg"), append(base, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ffmpeg %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	dur := strconv.Itoa(seconds)
	g := 25
	if len(gop) > 0 {
		g = gop[0]
	}
	src := []string{"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", dur, "-pix_fmt", "yuv420p", "-g", strconv.Itoa(g)}
	switch video {
	case "h264":
		m.VideoPath = filepath.Join(dir, "video.h264")
		ffmpeg(append(src, "-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline", "-x264-params", "keyint_min="+strconv.Itoa(g)+":scenecut=0",
			"-bf", "0", "-f", "h264", m.VideoPath)...)
	case "vp9":
		m.VideoPath = filepath.Join(dir, "video.ivf")
		ffmpeg(append(src, "-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k", "-f", "ivf", m.VideoPath)...)
	case "av1":
		m.VideoPath = filepath.Join(dir, "video.ivf")
		ffmpeg(append(src, "-c:v", "libaom-av1", "-usage", "realtime", "-cpu-used", "8", "-b:v", "300k", "-f", "ivf", m.VideoPath)...)
	case "":
	default:
		t.Fatalf("MakeWHIPMedia: unknown video codec %q", video)
	}
	if audio {
		m.AudioPath = filepath.Join(dir, "audio.ogg")
		ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", dur,
			"-c:a", "libopus", "-b:a", "48k", "-frame_duration", "20", "-page_duration", "20000", "-f", "ogg", m.AudioPath)
	}
	return m
}

// WHIPClient is a pion WebRTC publisher speaking WHIP (RFC 9725). It uses
// loopback candidates only, so that tests send nothing off this machine.
type WHIPClient struct {
	PC       *webrtc.PeerConnection
	Location string // absolute session URL after a 201
	Answer   string

	token     string
	media     WHIPMedia
	video     *webrtc.TrackLocalStaticSample
	audio     *webrtc.TrackLocalStaticSample
	connected chan struct{}
	once      sync.Once
	// KeyframeRequests counts the PLIs and FIRs the endpoint sent.
	KeyframeRequests atomic.Int64
}

// NewWHIPClient returns a client with a track for each of media's files.
// With offerOnly, the client instead offers one track for each of those
// codecs and nothing else (for offers the endpoint must refuse); it can then
// not stream.
func NewWHIPClient(t testing.TB, m WHIPMedia, offerOnly ...webrtc.RTPCodecParameters) *WHIPClient {
	t.Helper()
	c := &WHIPClient{media: m, connected: make(chan struct{})}
	me := &webrtc.MediaEngine{}
	if len(offerOnly) > 0 {
		for _, p := range offerOnly {
			kind := webrtc.RTPCodecTypeVideo
			if strings.HasPrefix(p.MimeType, "audio/") {
				kind = webrtc.RTPCodecTypeAudio
			}
			if err := me.RegisterCodec(p, kind); err != nil {
				t.Fatal(err)
			}
		}
	} else {
		// Only the codecs of the files: an endpoint answers with its
		// preferred codec among those offered, and a file has one.
		fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
		var video webrtc.RTPCodecCapability
		switch m.Video {
		case "h264":
			video = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
				SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", RTCPFeedback: fb}
		case "vp9":
			video = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0", RTCPFeedback: fb}
		case "av1":
			video = webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeAV1, ClockRate: 90000, RTCPFeedback: fb}
		}
		if video.MimeType != "" {
			if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: video, PayloadType: 102}, webrtc.RTPCodecTypeVideo); err != nil {
				t.Fatal(err)
			}
		}
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
			PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
			t.Fatal(err)
		}
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		t.Fatal(err)
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if m.TCP {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeTCP4})
	} else {
		se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	c.PC = pc
	t.Cleanup(func() { _ = pc.Close() })
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			c.once.Do(func() { close(c.connected) })
		}
	})
	add := func(caps webrtc.RTPCodecCapability, id string) *webrtc.TrackLocalStaticSample {
		tr, err := webrtc.NewTrackLocalStaticSample(caps, id, "nokstream-test")
		if err != nil {
			t.Fatal(err)
		}
		sender, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			t.Fatal(err)
		}
		go c.readRTCP(sender.Sender())
		return tr
	}
	videoMime := map[string]string{"h264": webrtc.MimeTypeH264, "vp9": webrtc.MimeTypeVP9, "av1": webrtc.MimeTypeAV1}[m.Video]
	if len(offerOnly) > 0 {
		for _, p := range offerOnly {
			add(p.RTPCodecCapability, p.MimeType)
		}
		return c
	}
	if videoMime != "" {
		c.video = add(webrtc.RTPCodecCapability{MimeType: videoMime}, "video")
	}
	if m.Audio {
		c.audio = add(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio")
	}
	return c
}

func (c *WHIPClient) readRTCP(s *webrtc.RTPSender) {
	for {
		pkts, _, err := s.ReadRTCP()
		if err != nil {
			return
		}
		for _, p := range pkts {
			switch p.(type) {
			case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
				c.KeyframeRequests.Add(1)
			}
		}
	}
}

// Offer creates the offer with every local candidate.
func (c *WHIPClient) Offer() (string, error) {
	offer, err := c.PC.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(c.PC)
	if err := c.PC.SetLocalDescription(offer); err != nil {
		return "", err
	}
	<-gathered
	return c.PC.LocalDescription().SDP, nil
}

// Publish POSTs the offer to endpoint with token as bearer. On 201 it applies
// the answer and keeps the session URL. It returns the status and body.
func (c *WHIPClient) Publish(ctx context.Context, endpoint, token string) (int, string, error) {
	offer, err := c.Offer()
	if err != nil {
		return 0, "", err
	}
	status, body, hdr, err := WHIPPost(ctx, endpoint, token, "application/sdp", offer)
	if err != nil || status != http.StatusCreated {
		return status, body, err
	}
	loc, err := url.Parse(endpoint)
	if err != nil {
		return status, body, err
	}
	ref, err := loc.Parse(hdr.Get("Location"))
	if err != nil {
		return status, body, fmt.Errorf("location %q: %w", hdr.Get("Location"), err)
	}
	c.Location, c.Answer, c.token = ref.String(), body, token
	if err := c.PC.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: body}); err != nil {
		return status, body, fmt.Errorf("apply answer: %w", err)
	}
	return status, body, nil
}

// WHIPPost sends one POST to a WHIP endpoint.
func WHIPPost(ctx context.Context, endpoint, token, contentType, body string) (int, string, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
	if err != nil {
		return 0, "", nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header, err
}

// Stream waits for the connection and sends the media files in real time
// until they end or ctx does.
func (c *WHIPClient) Stream(ctx context.Context) error {
	select {
	case <-c.connected:
	case <-ctx.Done():
		return fmt.Errorf("waiting for the connection: %w", ctx.Err())
	case <-time.After(20 * time.Second):
		return errors.New("no connection within 20 s")
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	if c.video != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- c.streamVideo(ctx) }()
	}
	if c.audio != nil {
		wg.Add(1)
		go func() { defer wg.Done(); errs <- c.streamAudio(ctx) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *WHIPClient) streamVideo(ctx context.Context) error {
	f, err := os.Open(c.media.VideoPath)
	if err != nil {
		return err
	}
	defer f.Close()
	frameDur := time.Second / time.Duration(c.media.FPS)
	tick := time.NewTicker(frameDur)
	defer tick.Stop()
	wait := func() error {
		select {
		case <-tick.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if c.media.Video != "h264" {
		r, _, err := ivfreader.NewWith(f)
		if err != nil {
			return err
		}
		for {
			frame, _, err := r.ParseNextFrame()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := c.video.WriteSample(media.Sample{Data: frame, Duration: frameDur}); err != nil {
				return err
			}
			if err := wait(); err != nil {
				return err
			}
		}
	}
	r, err := h264reader.NewReader(f)
	if err != nil {
		return err
	}
	// One sample per access unit (ITU-T H.264 Section 7.4.1.2.3): a unit
	// ends before parameter sets, SEI or a delimiter that follow its
	// slices, or before a slice whose first_mb_in_slice is 0 (its first
	// header bit is 1). Every sample lasts one frame.
	var au bytes.Buffer
	hasSlice := false
	flush := func() error {
		if !hasSlice {
			return nil
		}
		if err := c.video.WriteSample(media.Sample{Data: bytes.Clone(au.Bytes()), Duration: frameDur}); err != nil {
			return err
		}
		au.Reset()
		hasSlice = false
		return wait()
	}
	for {
		nal, err := r.NextNAL()
		if errors.Is(err, io.EOF) {
			return flush()
		}
		if err != nil {
			return err
		}
		slice := nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr
		if !slice || (len(nal.Data) > 1 && nal.Data[1]&0x80 != 0) {
			if err := flush(); err != nil {
				return err
			}
		}
		au.Write([]byte{0, 0, 0, 1})
		au.Write(nal.Data)
		hasSlice = hasSlice || slice
	}
}

func (c *WHIPClient) streamAudio(ctx context.Context) error {
	f, err := os.Open(c.media.AudioPath)
	if err != nil {
		return err
	}
	defer f.Close()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	return oggopus.Samples(f, func(smp media.Sample) error {
		if err := c.audio.WriteSample(smp); err != nil {
			return err
		}
		select {
		case <-tick.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// Delete ends the session with DELETE on its URL and returns the status.
func (c *WHIPClient) Delete(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.Location, nil)
	if err != nil {
		return 0, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// H264Frame encodes one picture of size (e.g. "320x240") as a browser's
// encoder would (baseline, no B-frames): an IDR access unit with its SPS
// and PPS, in Annex-B.
func H264Frame(t testing.TB, size string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), size+".h264")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, Tool(t, "ffmpeg"), "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size="+size+":rate=25", "-frames:v", "1", "-pix_fmt", "yuv420p",
		"-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "baseline", "-bf", "0", "-f", "h264", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %s frame: %v: %s", size, err, out)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
