package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/h264reader"

	"github.com/nokstream/nokstream/internal/oggopus"
)

// ErrExamOver is returned by a workstation stream whose exam token no
// longer works (the exam window is over, or the token was revoked).
var ErrExamOver = errors.New("the exam token no longer works")

// StreamConfig is one of a candidate's streams: the webcam (with the
// microphone) or the screen, published over WHIP (RFC 9725) with the
// candidate's exam token, as the exam page does.
type StreamConfig struct {
	// Endpoint is the WHIP endpoint, e.g.
	// http://127.0.0.1:8080/whip/site1/ws1-webcam.
	Endpoint string
	// Token is the candidate's exam token (POST /api/v1/exam/login).
	Token string
	Kind  string // webcam or screen
	Name  string // burnt into the picture
	Size  string // WxH
	FPS   int
	Tone  int // Hz, webcam only
	// Stage stages the round's webcam cover (webcam) or freeze (screen)
	// on Schedule.
	Stage    bool
	Schedule Schedule
}

// Stream publishes one webcam or screen.
type Stream struct {
	cfg    StreamConfig
	ffmpeg string
	log    *slog.Logger
	http   *http.Client
}

// NewStream returns a stream; ffmpeg is the path of the ffmpeg program.
func NewStream(cfg StreamConfig, ffmpeg string, log *slog.Logger) *Stream {
	return &Stream{cfg: cfg, ffmpeg: ffmpeg, log: log.With("whip", cfg.Endpoint), http: &http.Client{Timeout: 15 * time.Second}}
}

// ffmpegArgs returns the arguments that encode the stream for WebRTC:
// H.264 constrained baseline without B-frames (Annex-B, standard output),
// a keyframe every second (ffmpeg cannot answer a keyframe request), and
// for the webcam Opus in Ogg on fd 3, one 20 ms frame a page.
func (s *Stream) ffmpegArgs(started time.Time) []string {
	var src string
	switch s.cfg.Kind {
	case "webcam":
		// A moving picture; covered (black) while the staged cover
		// lasts.
		cover := ""
		if s.cfg.Stage {
			cover = "drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='" + s.cfg.Schedule.during(0, started, CoverFor) + "'"
		}
		src = chain(fmt.Sprintf("testsrc2=size=%s:rate=%d", s.cfg.Size, s.cfg.FPS), label(s.cfg.Name, ""), cover)
	default:
		// A still desktop (colour bars) with a moving pointer and the
		// clock: it never looks frozen, except while the staged freeze
		// lasts, when the pointer stands and the clock is gone.
		frozen, held := "0", "0"
		if s.cfg.Stage {
			frozen = s.cfg.Schedule.during(1, started, FreezeFor)
			held = s.cfg.Schedule.sinceStart(1, started, FreezeFor)
		}
		pointer := fmt.Sprintf("drawbox=x='mod((t-%s)*160,iw-120)':y='ih/2-60+mod((t-%s)*40,120)':w=120:h=120:color=white@0.9:t=fill", held, held)
		src = chain(fmt.Sprintf("smptehdbars=size=%s:rate=%d", s.cfg.Size, s.cfg.FPS), pointer, label(s.cfg.Name, "not("+frozen+")"))
	}
	args := []string{"-re", "-f", "lavfi", "-i", src}
	if s.cfg.Kind == "webcam" {
		args = append(args, "-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=%d:sample_rate=48000", s.cfg.Tone))
	}
	args = append(args, "-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
		"-profile:v", "baseline", "-bf", "0", "-g", fmt.Sprint(s.cfg.FPS), "-keyint_min", fmt.Sprint(s.cfg.FPS),
		"-sc_threshold", "0", "-pix_fmt", "yuv420p", "-b:v", "800k", "-flush_packets", "1", "-f", "h264", "pipe:1")
	if s.cfg.Kind == "webcam" {
		args = append(args, "-map", "1:a", "-c:a", "libopus", "-b:a", "48k", "-frame_duration", "20",
			"-page_duration", "20000", "-flush_packets", "1", "-f", "ogg", "pipe:3")
	}
	return args
}

// tracks are the local tracks of the current WHIP session, if any.
type tracks struct {
	mu           sync.Mutex
	video, audio *webrtc.TrackLocalStaticSample
}

func (t *tracks) set(video, audio *webrtc.TrackLocalStaticSample) {
	t.mu.Lock()
	t.video, t.audio = video, audio
	t.mu.Unlock()
}

func (t *tracks) write(audio bool, s media.Sample) {
	t.mu.Lock()
	tr := t.video
	if audio {
		tr = t.audio
	}
	t.mu.Unlock()
	if tr != nil {
		_ = tr.WriteSample(s) // an ended session drops it
	}
}

// Run publishes until ctx ends, starting a new WHIP session when one is
// lost, and ffmpeg again if it ends. It returns ErrExamOver when the
// endpoint refuses the token (401, 403).
func (s *Stream) Run(ctx context.Context) error {
	for {
		err := s.runEncoder(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrExamOver) {
			return err
		}
		s.log.Warn("stream stopped, restarting in 2s", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
}

// runEncoder runs one ffmpeg and WHIP sessions of what it encodes.
func (s *Stream) runEncoder(ctx context.Context) error {
	ectx, cancel := context.WithCancel(ctx)
	defer cancel()
	vr, vw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer vr.Close()
	var extra []*os.File
	var ar *os.File
	if s.cfg.Kind == "webcam" {
		var aw *os.File
		if ar, aw, err = os.Pipe(); err != nil {
			vw.Close()
			return err
		}
		defer ar.Close()
		extra = []*os.File{aw}
		defer aw.Close()
	}
	cmd, err := startFFmpeg(ectx, s.ffmpeg, s.ffmpegArgs(time.Now()), vw, extra, s.log)
	vw.Close()
	for _, f := range extra {
		f.Close()
	}
	if err != nil {
		return err
	}
	var werr error
	done := make(chan struct{})
	go func() { werr = cmd.Wait(); close(done) }()

	tr := &tracks{}
	readers := make(chan error, 2)
	frame := time.Second / time.Duration(s.cfg.FPS)
	go func() { readers <- readH264(vr, frame, func(smp media.Sample) { tr.write(false, smp) }) }()
	if ar != nil {
		go func() {
			readers <- oggopus.Samples(ar, func(smp media.Sample) error { tr.write(true, smp); return nil })
		}()
	}

	var sessErr error
	for ectx.Err() == nil {
		sessErr = s.session(ectx, tr, done)
		if errors.Is(sessErr, ErrExamOver) || errors.Is(sessErr, errEncoderEnded) {
			break
		}
		if ectx.Err() != nil {
			break
		}
		s.log.Warn("WHIP session ended, a new one in 1s", "err", sessErr)
		select {
		case <-ectx.Done():
		case <-done:
		case <-time.After(time.Second):
		}
	}
	cancel()
	<-done
	if errors.Is(sessErr, ErrExamOver) {
		return sessErr
	}
	if ctx.Err() != nil {
		return nil
	}
	select {
	case err := <-readers:
		if err != nil {
			return fmt.Errorf("ffmpeg ended (%v): read its output: %w", werr, err)
		}
	default:
	}
	return fmt.Errorf("ffmpeg ended: %v", werr)
}

// newPeerConnection returns a peer connection that sends H.264 (and Opus),
// with host candidates only, loopback included (an ingest on this
// machine).
func newPeerConnection() (*webrtc.PeerConnection, error) {
	me := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000, RTCPFeedback: fb,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, PayloadType: 102}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, ir); err != nil {
		return nil, err
	}
	var se webrtc.SettingEngine
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	return api.NewPeerConnection(webrtc.Configuration{})
}

// session runs one WHIP session: offer, answer, media until the
// connection fails (or stays disconnected for 5 s), then DELETE.
func (s *Stream) session(ctx context.Context, tr *tracks, encoderDone <-chan struct{}) error {
	pc, err := newPeerConnection()
	if err != nil {
		return err
	}
	defer pc.Close()
	add := func(mime, id string) (*webrtc.TrackLocalStaticSample, error) {
		t, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: mime}, id, "nokstream-sim")
		if err != nil {
			return nil, err
		}
		sender, err := pc.AddTransceiverFromTrack(t, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
		if err != nil {
			return nil, err
		}
		// RTCP must be read for the interceptors (NACK, reports) to work.
		go func() {
			for {
				if _, _, err := sender.Sender().ReadRTCP(); err != nil {
					return
				}
			}
		}()
		return t, nil
	}
	video, err := add(webrtc.MimeTypeH264, "video")
	if err != nil {
		return err
	}
	var audio *webrtc.TrackLocalStaticSample
	if s.cfg.Kind == "webcam" {
		if audio, err = add(webrtc.MimeTypeOpus, "audio"); err != nil {
			return err
		}
	}
	state := make(chan webrtc.PeerConnectionState, 16)
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		select {
		case state <- st:
		default:
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return ctx.Err()
	}
	answer, location, err := s.post(ctx, pc.LocalDescription().SDP)
	if err != nil {
		return err
	}
	defer s.delete(location)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return fmt.Errorf("apply the answer: %w", err)
	}
	tr.set(video, audio)
	defer tr.set(nil, nil)

	var lost <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-encoderDone:
			return errEncoderEnded
		case <-lost:
			return errors.New("the connection stayed lost for 5 s")
		case st := <-state:
			switch st {
			case webrtc.PeerConnectionStateConnected:
				s.log.Info("stream publishing")
				lost = nil
			case webrtc.PeerConnectionStateDisconnected:
				// A short blip may heal by itself, as the page waits.
				if lost == nil {
					lost = time.After(5 * time.Second)
				}
			case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
				return fmt.Errorf("connection %s", st)
			}
		}
	}
}

// post sends the offer and returns the answer and the session URL.
func (s *Stream) post(ctx context.Context, offer string) (string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.Endpoint, strings.NewReader(offer))
	if err != nil {
		return "", "", err
	}
	req.Header.Set("Content-Type", "application/sdp")
	req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
	resp, err := s.http.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("WHIP POST: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", "", fmt.Errorf("WHIP POST: read the answer: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusCreated:
	case http.StatusUnauthorized, http.StatusForbidden:
		return "", "", fmt.Errorf("%w: WHIP POST: %d %s", ErrExamOver, resp.StatusCode, bytes.TrimSpace(b))
	default:
		return "", "", fmt.Errorf("WHIP POST: %d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	base, err := url.Parse(s.cfg.Endpoint)
	if err != nil {
		return "", "", err
	}
	loc, err := base.Parse(resp.Header.Get("Location"))
	if err != nil || resp.Header.Get("Location") == "" {
		return "", "", fmt.Errorf("WHIP POST: 201 without a usable Location %q", resp.Header.Get("Location"))
	}
	return string(b), loc.String(), nil
}

// delete ends the session at location, so that ingest records a
// deliberate end (RFC 9725 section 4.2). It waits 2 s at most.
func (s *Stream) delete(location string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, location, nil)
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.Token)
	if resp, err := s.http.Do(req); err == nil {
		resp.Body.Close()
	}
}

// readH264 reads H.264 Annex-B from r and calls write with one sample per
// access unit, each lasting frame, until r ends.
func readH264(r io.Reader, frame time.Duration, write func(media.Sample)) error {
	hr, err := h264reader.NewReader(r)
	if err != nil {
		return err
	}
	// An access unit ends before parameter sets, SEI or a delimiter that
	// follow its slices, or before a slice whose first_mb_in_slice is 0
	// (its first header bit is 1): ITU-T H.264 section 7.4.1.2.3.
	var au bytes.Buffer
	hasSlice := false
	flush := func() {
		if hasSlice {
			write(media.Sample{Data: bytes.Clone(au.Bytes()), Duration: frame})
		}
		au.Reset()
		hasSlice = false
	}
	for {
		nal, err := hr.NextNAL()
		if errors.Is(err, io.EOF) {
			flush()
			return nil
		}
		if err != nil {
			return err
		}
		slice := nal.UnitType == h264reader.NalUnitTypeCodedSliceNonIdr || nal.UnitType == h264reader.NalUnitTypeCodedSliceIdr
		if hasSlice && (!slice || (len(nal.Data) > 1 && nal.Data[1]&0x80 != 0)) {
			flush()
		}
		au.Write([]byte{0, 0, 0, 1})
		au.Write(nal.Data)
		hasSlice = hasSlice || slice
	}
}
