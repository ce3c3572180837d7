package whip_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/nokstream/nokstream/ingest/access"
	"github.com/nokstream/nokstream/ingest/observe"
	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/ingest/spool"
	"github.com/nokstream/nokstream/ingest/whip"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Started once per process by pion's and the HTTP stack's packages.
		goleak.IgnoreTopFunction("github.com/pion/ice/v4.(*Agent).startOnConnectionStateChangeRoutine.func1"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
	)
}

// checker knows devices by "site/device"; each device's secret is
// "s3cret-<device>".
type checker struct{ devices map[string]string } // stream → source kind

func (c checker) CheckPublisher(_ context.Context, site, device, user, secret string) (access.Publisher, error) {
	source, ok := c.devices[site+"/"+device]
	if !ok {
		return access.Publisher{}, access.ErrUnknownStream
	}
	if user != device || secret != "s3cret-"+device {
		return access.Publisher{}, access.ErrBadCredentials
	}
	return access.Publisher{Site: site, Device: device, Source: source}, nil
}

type env struct {
	url   string // base URL of the HTTP server
	spool *spool.Spool
	reg   *prometheus.Registry
	srv   *whip.Server
}

func logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// start runs a WHIP server with 2 s segments on loopback; devices are
// "site/device" → source kind.
func start(t testing.TB, devices map[string]string, tweak ...func(*whip.Config)) *env {
	t.Helper()
	log := logger()
	sp, err := spool.Open(t.TempDir(), "test", log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := whip.DefaultConfig()
	cfg.UDPAddr = "127.0.0.1:0"
	cfg.Segment.SegmentDuration = 2 * time.Second
	for _, f := range tweak {
		f(&cfg)
	}
	reg := prometheus.NewRegistry()
	out := func(site, device, source string) segmenter.Output { return sp.Stream(site, device, source) }
	// The sessions' observations (start, stop, gaps) go to the spool, as
	// ingest wires them.
	cont := observe.New(sp, 0, log, nil, time.Now)
	srv, err := whip.New(cfg, checker{devices}, out, log, whip.NewMetrics(reg), time.Now, whip.Options{Continuity: cont})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("whip server: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("whip server run: %v", err)
		}
	})
	return &env{url: hs.URL, spool: sp, reg: reg, srv: srv}
}

// segments returns the stream's closed segments and a file of its init and
// segments in order, for ffprobe.
// observations returns the spooled observations of a stream of a kind.
func (e *env) observations(t *testing.T, stream, kind string) []events.Observation {
	t.Helper()
	pend, err := e.spool.PendingObservations()
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Observation
	for _, p := range pend {
		if p.Observation.StreamID == stream && p.Observation.Kind == kind {
			out = append(out, p.Observation)
		}
	}
	return out
}

func (e *env) segments(t *testing.T, stream string) ([]spool.Pending, string) {
	t.Helper()
	pend, err := e.spool.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var mine []spool.Pending
	var buf bytes.Buffer
	var init string
	for _, p := range pend {
		if p.Event.StreamID != stream {
			continue
		}
		if p.InitPath != init {
			b, err := os.ReadFile(p.InitPath)
			if err != nil {
				t.Fatal(err)
			}
			buf.Write(b)
			init = p.InitPath
		}
		b, err := os.ReadFile(p.SegmentPath)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
		mine = append(mine, p)
	}
	path := filepath.Join(t.TempDir(), "joined.mp4")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return mine, path
}

// metric returns the value of the series of name whose label has value.
func metric(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					if c := m.GetCounter(); c != nil {
						return c.GetValue()
					}
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

func total(segs []spool.Pending) float64 {
	s := 0.0
	for _, p := range segs {
		s += p.Event.Duration
	}
	return s
}

// publish runs a pion client through a whole session: POST, stream the
// media in real time, DELETE.
func publish(t *testing.T, e *env, stream string, m testenv.WHIPMedia) *testenv.WHIPClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := testenv.NewWHIPClient(t, m)
	device := stream[strings.Index(stream, "/")+1:]
	status, body, err := c.Publish(ctx, e.url+"/whip/"+stream, "s3cret-"+device)
	if err != nil || status != http.StatusCreated {
		t.Fatalf("POST offer: status %d, err %v: %s", status, err, body)
	}
	if !strings.HasPrefix(c.Location, e.url+"/whip/"+stream+"/") {
		t.Errorf("Location %q is not under the endpoint", c.Location)
	}
	if err := c.Stream(ctx); err != nil {
		t.Fatalf("streaming: %v", err)
	}
	if status, err := c.Delete(ctx); err != nil || status != http.StatusOK {
		t.Fatalf("DELETE session: status %d, err %v", status, err)
	}
	return c
}

func TestPublishIsRecorded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		video  string
		audio  bool
		codecs string
	}{
		{"h264", true, "video:h264,audio:opus"},
		{"vp9", true, "video:vp9,audio:opus"},
		{"av1", false, "video:av1"},
	} {
		t.Run(tc.video, func(t *testing.T) {
			t.Parallel()
			const seconds = 8
			e := start(t, map[string]string{"site1/cam-ws01": "webcam"})
			publish(t, e, "site1/cam-ws01", testenv.MakeWHIPMedia(t, seconds, tc.video, tc.audio))
			// DELETE answers once the last segment is closed.
			segs, path := e.segments(t, "site1/cam-ws01")
			if len(segs) < 3 {
				t.Fatalf("%d segments for %d s at 2 s segments, want at least 3", len(segs), seconds)
			}
			for i, p := range segs {
				if p.Event.Sequence != int64(i) {
					t.Errorf("segment %d has sequence %d", i, p.Event.Sequence)
				}
				if p.Event.Source != "webcam" {
					t.Errorf("segment %d has source %q, want webcam", i, p.Event.Source)
				}
				if i < len(segs)-1 && (p.Event.Duration < 1.9 || p.Event.Duration > 2.6) {
					t.Errorf("segment %d lasts %.3f s, want about 2 s", i, p.Event.Duration)
				}
			}
			if !segs[0].Event.Discontinuity {
				t.Errorf("the first segment of the session is not a discontinuity")
			}
			// The session records from the first keyframe after the
			// connection: the media loses at most its first second.
			if d := total(segs); d < seconds-1.2 || d > seconds+0.2 {
				t.Errorf("segments add up to %.2f s, want %d s less at most the first second", d, seconds)
			}
			probe := testenv.FFprobe(t, path)
			if got := strings.Join(probe.Codecs(), ","); got != tc.codecs {
				t.Errorf("ffprobe sees %s, want %s", got, tc.codecs)
			}
			// The span runs from the earlier track's start to the later
			// one's end. The tracks are placed on one clock by the
			// publisher's RTCP sender reports; on a loaded machine those
			// come late and audio may start up to a second before the
			// first keyframe (seen: 9.3 s of an 8 s session whose video
			// adds up right, above).
			if d := probe.DurationSeconds() - probe.StartSeconds(); d < seconds-1.2 || d > seconds+1.5 {
				t.Errorf("ffprobe duration %.2f s, want about %d", d, seconds)
			}
			if len(probe.Streams) > 0 && (probe.Streams[0].Width != 320 || probe.Streams[0].Height != 240) {
				t.Errorf("video is %dx%d, want 320x240", probe.Streams[0].Width, probe.Streams[0].Height)
			}
			if v := metric(t, e.reg, "nokstream_ingest_whip_sessions_ended_total", "reason", "deleted"); v != 1 {
				t.Errorf("sessions ended by DELETE: %v, want 1", v)
			}
		})
	}
}

// A browser sends a keyframe only when asked: the endpoint asks when the
// first one is late and whenever a segment is due.
func TestKeyframesAreRequested(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"site1/cam-ws01": "webcam"})
	// One keyframe at the start, none after: the file cannot answer.
	c := publish(t, e, "site1/cam-ws01", testenv.MakeWHIPMedia(t, 6, "h264", false, 1000))
	// The segment is due after 2 s, then a request every second.
	if n := c.KeyframeRequests.Load(); n < 3 {
		t.Errorf("the endpoint sent %d keyframe requests in 6 s with 2 s segments, want at least 3", n)
	}
	segs, _ := e.segments(t, "site1/cam-ws01")
	if len(segs) != 1 {
		t.Errorf("%d segments without keyframes to cut at, want 1", len(segs))
	}
}

// A publisher whose network blocks UDP reaches ingest over ICE-TCP.
func TestICETCP(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"site1/cam-ws01": "webcam"}, func(c *whip.Config) {
		c.TCPAddr = "127.0.0.1:0"
	})
	m := testenv.MakeWHIPMedia(t, 4, "h264", true)
	m.TCP = true
	publish(t, e, "site1/cam-ws01", m)
	segs, path := e.segments(t, "site1/cam-ws01")
	if d := total(segs); d < 3 || d > 4.2 {
		t.Errorf("recorded %.2f s over ICE-TCP, want about 4", d)
	}
	if got := strings.Join(testenv.FFprobe(t, path).Codecs(), ","); got != "video:h264,audio:opus" {
		t.Errorf("ffprobe sees %s", got)
	}
}

// untilChecker gives every publisher an exam window that ends a while
// after its credentials are checked, and remembers when that is: the
// window is the session's, however long the test took to get there.
type untilChecker struct {
	checker
	after time.Duration
	mu    sync.Mutex
	until time.Time
}

func (c *untilChecker) CheckPublisher(ctx context.Context, site, device, user, secret string) (access.Publisher, error) {
	p, err := c.checker.CheckPublisher(ctx, site, device, user, secret)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.until = time.Now().Add(c.after)
	p.Until = c.until
	return p, err
}

// A candidate's session ends with the exam window its token was issued for.
func TestSessionEndsWithTheExamWindow(t *testing.T) {
	t.Parallel()
	log := logger()
	sp, err := spool.Open(t.TempDir(), "test", log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := whip.DefaultConfig()
	cfg.UDPAddr = "127.0.0.1:0"
	reg := prometheus.NewRegistry()
	out := func(site, device, source string) segmenter.Output { return sp.Stream(site, device, source) }
	chk := &untilChecker{checker: checker{map[string]string{"site1/cam-ws01": "webcam"}}, after: 4 * time.Second}
	srv, err := whip.New(cfg, chk, out, log, whip.NewMetrics(reg), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	<-srv.Ready()
	hs := httptest.NewServer(srv.Handler())
	defer func() {
		hs.Close()
		cancel()
		<-done
	}()
	c := testenv.NewWHIPClient(t, testenv.MakeWHIPMedia(t, 6, "h264", false))
	if status, body, err := c.Publish(ctx, hs.URL+"/whip/site1/cam-ws01", "s3cret-cam-ws01"); err != nil || status != http.StatusCreated {
		t.Fatalf("POST: %d %v %s", status, err, body)
	}
	_ = c.Stream(ctx) // the server closes the connection on the way
	e := &env{spool: sp, reg: reg}
	testenv.WaitFor(t, 10*time.Second, "the session to end with the exam window", func() bool {
		return metric(t, reg, "nokstream_ingest_whip_sessions_ended_total", "reason", "exam_over") == 1
	})
	segs, _ := e.segments(t, "site1/cam-ws01")
	if len(segs) == 0 || total(segs) < 0.5 {
		t.Fatalf("recorded %.2f s of a session that streamed until its window closed", total(segs))
	}
	// Nothing after the window is recorded (the picture in progress when
	// it closed may end a frame later).
	chk.mu.Lock()
	until := chk.until
	chk.mu.Unlock()
	last := segs[len(segs)-1].Event
	if end := last.Start.Add(time.Duration(last.Duration * float64(time.Second))); end.After(until.Add(500 * time.Millisecond)) {
		t.Errorf("the recording ends at %s, after the exam window closed at %s", end.Format(time.StampMilli), until.Format(time.StampMilli))
	}
}

// rawOffer returns an offer of a pion client that offers only the given
// codecs.
func rawOffer(t *testing.T, codecs ...webrtc.RTPCodecParameters) string {
	t.Helper()
	c := testenv.NewWHIPClient(t, testenv.WHIPMedia{}, codecs...)
	sdp, err := c.Offer()
	if err != nil {
		t.Fatal(err)
	}
	return sdp
}

func TestRefusalsDoNotDisturbARunningSession(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"site1/cam-ws01": "webcam", "site1/cam-ws02": "webcam"})
	m := testenv.MakeWHIPMedia(t, 6, "h264", true)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		publish(t, e, "site1/cam-ws01", m)
	}()

	good := rawOffer(t, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000, SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, PayloadType: 102})
	pcmu := rawOffer(t, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypePCMU, ClockRate: 8000}, PayloadType: 0})
	h265 := rawOffer(t, webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH265, ClockRate: 90000}, PayloadType: 104})
	twoVideos := rawOffer(t,
		webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0"}, PayloadType: 98},
		webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP9, ClockRate: 90000, SDPFmtpLine: "profile-id=0"}, PayloadType: 98})
	ep := e.url + "/whip/site1/cam-ws02"
	for _, tc := range []struct {
		name, url, token, ctype, body string
		want                          int
		says                          string
	}{
		{"wrong bearer", ep, "wrong", "application/sdp", good, http.StatusUnauthorized, "wrong credentials"},
		{"no bearer", ep, "", "application/sdp", good, http.StatusUnauthorized, "missing credentials"},
		// Before authentication an unknown stream answers as a known one.
		{"unknown stream", e.url + "/whip/site1/cam-ws09", "s3cret-cam-ws09", "application/sdp", good, http.StatusUnauthorized, "wrong credentials"},
		{"bad path", e.url + "/whip/Site1/cam-ws02", "s3cret-cam-ws02", "application/sdp", good, http.StatusNotFound, "is not /whip/"},
		{"garbage SDP", ep, "s3cret-cam-ws02", "application/sdp", "this is not SDP\x00\xff", http.StatusBadRequest, "malformed SDP"},
		{"not SDP content type", ep, "s3cret-cam-ws02", "application/json", good, http.StatusUnsupportedMediaType, "application/sdp"},
		{"oversized SDP", ep, "s3cret-cam-ws02", "application/sdp", good + strings.Repeat("a=x-padding:0123456789\r\n", 4000), http.StatusRequestEntityTooLarge, "larger than"},
		{"only PCMU audio", ep, "s3cret-cam-ws02", "application/sdp", pcmu, http.StatusUnsupportedMediaType, "offered: PCMU"},
		{"only H.265 video", ep, "s3cret-cam-ws02", "application/sdp", h265, http.StatusUnsupportedMediaType, "offered: H265"},
		{"two video tracks", ep, "s3cret-cam-ws02", "application/sdp", twoVideos, http.StatusNotAcceptable, "at most one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _, err := testenv.WHIPPost(context.Background(), tc.url, tc.token, tc.ctype, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if status != tc.want || !strings.Contains(body, tc.says) {
				t.Errorf("status %d %q, want %d saying %q", status, strings.TrimSpace(body), tc.want, tc.says)
			}
		})
	}
	t.Run("GET is not allowed", func(t *testing.T) {
		resp, err := http.Get(ep)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET: status %d, want 405", resp.StatusCode)
		}
	})
	t.Run("CORS preflight", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, ep, nil)
		req.Header.Set("Origin", "http://exam.example")
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "Authorization") {
			t.Errorf("preflight: %d %v", resp.StatusCode, h)
		}
	})
	t.Run("DELETE of an unknown session", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodDelete, ep+"/0123456789abcdef0123456789abcdef", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("DELETE: status %d, want 404", resp.StatusCode)
		}
	})
	wg.Wait()
	segs, path := e.segments(t, "site1/cam-ws01")
	if d := total(segs); d < 4.8 || d > 6.2 {
		t.Errorf("the healthy session beside the refusals recorded %.2f s, want about 6", d)
	}
	if got := strings.Join(testenv.FFprobe(t, path).Codecs(), ","); got != "video:h264,audio:opus" {
		t.Errorf("the healthy session has %s, want video:h264,audio:opus", got)
	}
	if segs, _ := e.segments(t, "site1/cam-ws02"); len(segs) != 0 {
		t.Errorf("refused publishers left %d segments", len(segs))
	}
	if v := metric(t, e.reg, "nokstream_ingest_publishers_refused_total", "reason", "unsupported_codec"); v != 2 {
		t.Errorf("refused for unsupported codec: %v, want 2", v)
	}
}

// TestTakeoverOnlyOfASilentSession: while a publisher is live, a second
// publisher of its stream (a leaked token, a second tab) is refused with 409
// and cannot cut it off; once the first has sent nothing for TakeoverAfter,
// a new session takes over, and the stream records both without a hole in
// its sequence.
func TestTakeoverOnlyOfASilentSession(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"site1/screen-ws01": "screen"}, func(c *whip.Config) { c.TakeoverAfter = 2 * time.Second })
	m := testenv.MakeWHIPMedia(t, 5, "h264", false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	endpoint := e.url + "/whip/site1/screen-ws01"
	first := testenv.NewWHIPClient(t, m)
	if status, body, err := first.Publish(ctx, endpoint, "s3cret-screen-ws01"); err != nil || status != http.StatusCreated {
		t.Fatalf("first POST: %d %v %s", status, err, body)
	}
	streamed := make(chan error, 1)
	go func() { streamed <- first.Stream(ctx) }()
	testenv.WaitFor(t, 30*time.Second, "the first session's media", func() bool {
		return metricValue(t, e.reg, "nokstream_ingest_whip_received_bytes_total") > 0
	})
	status, body, _, err := testenv.WHIPPost(ctx, endpoint, "s3cret-screen-ws01", "application/sdp", rawOffer(t, webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
			SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"}, PayloadType: 102}))
	if err != nil || status != http.StatusConflict || !strings.Contains(body, "is live") {
		t.Errorf("second POST while the first is live: %d %v %q, want 409", status, err, body)
	}
	if err := <-streamed; err != nil {
		t.Fatal(err)
	}
	// The first publisher went silent without ending its session (a
	// browser that froze): after TakeoverAfter a new session takes over.
	var second *testenv.WHIPClient
	testenv.WaitFor(t, 30*time.Second, "a takeover of the silent session", func() bool {
		c := testenv.NewWHIPClient(t, m)
		status, body, err := c.Publish(ctx, endpoint, "s3cret-screen-ws01")
		switch {
		case err == nil && status == http.StatusCreated:
			second = c
			return true
		case err != nil || status != http.StatusConflict:
			t.Fatalf("POST after the first went silent: %d %v %s", status, err, body)
		}
		return false
	})
	if err := second.Stream(ctx); err != nil {
		t.Fatal(err)
	}
	if status, err := second.Delete(ctx); err != nil || status != http.StatusOK {
		t.Errorf("DELETE of the new session: %d %v", status, err)
	}
	if status, _ := first.Delete(ctx); status != http.StatusNotFound {
		t.Errorf("DELETE of the session taken over: %d, want 404", status)
	}
	segs, _ := e.segments(t, "site1/screen-ws01")
	starts := 0
	for i, p := range segs {
		if p.Event.Sequence != int64(i) {
			t.Errorf("segment %d has sequence %d", i, p.Event.Sequence)
		}
		if p.Event.Discontinuity {
			starts++
		}
	}
	if starts != 2 {
		t.Errorf("%d segments start a session, want 2", starts)
	}
	if v := metric(t, e.reg, "nokstream_ingest_whip_sessions_ended_total", "reason", "replaced"); v != 1 {
		t.Errorf("sessions taken over: %v, want 1", v)
	}
	if v := metric(t, e.reg, "nokstream_ingest_publishers_refused_total", "reason", "stream_busy"); v < 1 {
		t.Errorf("refusals of a busy stream counted: %v", v)
	}
}

// TestSessionLimits: beyond MaxSessionsPerAddress sessions from one
// address an offer is refused with 503 and counted.
func TestSessionLimits(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"site1/cam-ws01": "webcam", "site1/cam-ws02": "webcam"},
		func(c *whip.Config) { c.MaxSessionsPerAddress = 1 })
	m := testenv.MakeWHIPMedia(t, 3, "h264", false)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first := testenv.NewWHIPClient(t, m)
	if status, body, err := first.Publish(ctx, e.url+"/whip/site1/cam-ws01", "s3cret-cam-ws01"); err != nil || status != http.StatusCreated {
		t.Fatalf("first POST: %d %v %s", status, err, body)
	}
	second := testenv.NewWHIPClient(t, m)
	status, body, err := second.Publish(ctx, e.url+"/whip/site1/cam-ws02", "s3cret-cam-ws02")
	if err != nil || status != http.StatusServiceUnavailable || !strings.Contains(body, "maximum") {
		t.Errorf("a second session from one address: %d %v %q, want 503", status, err, body)
	}
	if v := metric(t, e.reg, "nokstream_ingest_publishers_refused_total", "reason", "session_limit"); v != 1 {
		t.Errorf("session-limit refusals counted: %v, want 1", v)
	}
	if status, err := first.Delete(ctx); err != nil || status != http.StatusOK {
		t.Errorf("DELETE: %d %v", status, err)
	}
}

// metricValue sums the samples of counter name.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func TestTrickleCandidates(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"site1/cam-ws01": "webcam"})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := testenv.NewWHIPClient(t, testenv.MakeWHIPMedia(t, 1, "h264", false))
	if status, body, err := c.Publish(ctx, e.url+"/whip/site1/cam-ws01", "s3cret-cam-ws01"); err != nil || status != http.StatusCreated {
		t.Fatalf("POST: %d %v %s", status, err, body)
	}
	patch := func(ifMatch, body string) int {
		req, _ := http.NewRequest(http.MethodPatch, c.Location, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/trickle-ice-sdpfrag")
		if ifMatch != "" {
			req.Header.Set("If-Match", ifMatch)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	frag := "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\na=end-of-candidates\r\n"
	if got := patch("", frag); got != http.StatusNoContent {
		t.Errorf("PATCH with a candidate: %d, want 204", got)
	}
	if got := patch("*", "a=ice-ufrag:new\r\na=ice-pwd:newnewnewnewnewnewnewnew\r\n"); got != http.StatusUnprocessableEntity {
		t.Errorf("PATCH asking for an ICE restart: %d, want 422", got)
	}
	if got := patch(`"other"`, frag); got != http.StatusPreconditionFailed {
		t.Errorf("PATCH with a wrong ETag: %d, want 412", got)
	}
	if status, _ := c.Delete(ctx); status != http.StatusOK {
		t.Errorf("DELETE: %d", status)
	}
}

// TestSessionRate: a stream may start ten sessions in a row, then one every
// 6 s (a publisher reconnecting in a loop must not flood the stream's
// timeline and spool with sessions): the eleventh start in a row is refused
// with a 503 that says when to try again, and counted.
func TestSessionRate(t *testing.T) {
	t.Parallel()
	e := start(t, map[string]string{"site1/cam-ws01": "webcam"}, func(c *whip.Config) {
		c.HandshakeTimeout = time.Second // the sessions never connect
		c.MaxSessionsPerAddress = 100
	})
	offer, err := testenv.NewWHIPClient(t, testenv.WHIPMedia{Video: "h264", Audio: true}).Offer()
	if err != nil {
		t.Fatal(err)
	}
	h := e.srv.Handler()
	for i := range 11 {
		req := httptest.NewRequest(http.MethodPost, "/whip/site1/cam-ws01", strings.NewReader(offer))
		req.Header.Set("Content-Type", "application/sdp")
		req.Header.Set("Authorization", "Bearer s3cret-cam-ws01")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body := strings.TrimSpace(rec.Body.String())
		switch {
		case i < 10 && rec.Code != http.StatusCreated:
			t.Fatalf("start %d: %d %q, want 201", i+1, rec.Code, body)
		case i == 10 && (rec.Code != http.StatusServiceUnavailable || !strings.Contains(body, "too many sessions started") ||
			!strings.Contains(body, "try again")):
			t.Errorf("the eleventh start in a row: %d %q, want 503 saying when to try again", rec.Code, body)
		}
		if rec.Code == http.StatusCreated {
			// Ended at once, as a publisher reconnecting in a loop does:
			// a live session is not taken over (409).
			del := httptest.NewRequest(http.MethodDelete, rec.Header().Get("Location"), nil)
			del.Header.Set("Authorization", "Bearer s3cret-cam-ws01")
			drec := httptest.NewRecorder()
			h.ServeHTTP(drec, del)
			if drec.Code != http.StatusOK {
				t.Fatalf("DELETE %s: %d %q", rec.Header().Get("Location"), drec.Code, drec.Body.String())
			}
		}
	}
	if v := metric(t, e.reg, "nokstream_ingest_publishers_refused_total", "reason", "session_rate"); v != 1 {
		t.Errorf("session-rate refusals counted: %v, want 1", v)
	}
}
