package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nokstream/nokstream/internal/testenv"
)

// TestWebCandidate drives the candidate's exam page in headless Chromium
// with fake camera, microphone and screen: an admitted candidate logs in
// with the exam password the site generated, consents, and the page
// publishes webcam + mic and screen over WHIP and says it is recording;
// both streams are indexed and play as long as they were published; the
// candidate stops sharing the screen, the page says so and offers to share
// again, and the stop is an observation on the screen's timeline; sharing
// again publishes the screen again.
func TestWebCandidate(t *testing.T) {
	t.Parallel()
	in := startAll(t, 2*time.Second)
	base := fmt.Sprintf("http://127.0.0.1:%d", in.ports.http)
	cli(t, in.env, "qualification", "add", "40.00800.01", "--council", "council1", "--name", "Сварщик (3 уровень)",
		"--validity-years", "3", "--tool", "ОС-40.008-01 https://nok.example/os/1")
	cli(t, in.env, "org", "add", "center", "center1", "--qualification", "40.00800.01")
	for _, d := range []struct{ name, kind string }{{"ws2-cam", "webcam"}, {"ws2-screen", "screen"}} {
		cli(t, in.env, "device", "add", "site1/"+d.name, "--kind", d.kind, "--host", in.rtspHost())
	}
	center := login(t, base, "center1", cli(t, in.env, "user", "add", "--role", "center", "--org", "center1", "center1"))
	site := login(t, base, "site1", cli(t, in.env, "user", "add", "--role", "site", "--org", "site1", "site1"))

	var cand, exam struct{ ID string }
	center.do("POST", "/api/v1/candidates", map[string]string{"last_name": "Белов", "first_name": "Игорь", "snils": "112-233-445 95"}, http.StatusCreated, &cand)
	start := time.Now().Add(-5 * time.Second).UTC().Truncate(time.Second)
	end := start.Add(20 * time.Minute)
	center.do("POST", "/api/v1/exams", map[string]any{"site": "site1", "qualification": "40.00800.01", "starts_at": start, "ends_at": end,
		"parts": []map[string]any{{"kind": "theory", "starts_at": start, "ends_at": end}}}, http.StatusCreated, &exam)
	ep := "/api/v1/exams/" + exam.ID
	center.do("POST", ep+"/candidates", map[string]string{"candidate": cand.ID, "webcam": "ws2-cam", "screen": "ws2-screen"}, http.StatusCreated, nil)
	site.do("PUT", ep+"/candidates/"+cand.ID+"/admission", map[string]string{"status": "admitted"}, http.StatusOK, nil)
	var pw struct{ Password string }
	site.do("POST", ep+"/candidates/"+cand.ID+"/password", nil, http.StatusOK, &pw)
	const camStream, screenStream = "site1/ws2-cam", "site1/ws2-screen"

	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		for _, a := range actions {
			if _, err := chromedp.Run(ctx, a); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	text := func(sel string) string {
		t.Helper()
		return value(t, ctx, "read "+sel, chromedp.Evaluate[string](fmt.Sprintf(`document.querySelector(%q).textContent`, sel)))
	}
	visible := func(sel string) bool {
		t.Helper()
		return value(t, ctx, "is "+sel+" shown", chromedp.Evaluate[bool](fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.offsetParent !== null; })()`, sel)))
	}
	defer func() {
		if t.Failed() {
			d, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({start: (document.getElementById('start-error')||{}).textContent,
  login: (document.getElementById('login-error')||{}).textContent, cam: (document.getElementById('cam-state')||{}).textContent,
  screen: (document.getElementById('screen-state')||{}).textContent})`))
			t.Logf("exam page: %s", d)
		}
	}()
	// live waits until a source's state says it is recording and returns
	// when it was first seen so.
	live := func(what, sel string) time.Time {
		t.Helper()
		testenv.WaitFor(t, 30*time.Second, what+" recording", func() bool { return text(sel) == "идёт запись" })
		return time.Now()
	}

	// Login with the exam password, the consent, the permissions.
	run("open the exam page", chromedp.EmulateViewport(1366, 768), chromedp.Navigate(base+"/ui/exam.html"), chromedp.WaitVisible("#exam-password"))
	run("type the exam password", chromedp.SendKeys("#exam-password", pw.Password))
	screenshot(t, ctx, "exam-login")
	run("log in", chromedp.Click("#login-submit"), chromedp.WaitVisible("#consent"))
	if c := text("#consent-step .consent"); !strings.Contains(c, "152-ФЗ") || !strings.Contains(c, "веб-камерой") {
		t.Errorf("consent text %q does not say what is recorded and under 152-FZ", c)
	}
	if !value(t, ctx, "start disabled", chromedp.Evaluate[bool](`document.getElementById('start').disabled`)) {
		t.Error("recording can start before the consent")
	}
	run("consent and start", chromedp.Click("#consent"), chromedp.Click("#start"), chromedp.WaitVisible("#recording"))
	camFrom := live("webcam", "#cam-state")
	screenFrom := live("screen", "#screen-state")
	if visible("#screen-stopped") {
		t.Error("the screen-stopped notice is shown while sharing")
	}
	screenshot(t, ctx, "exam-recording")

	// 30 s of both; then the candidate stops sharing the screen (the
	// browser's "stop sharing": the track ends and says so).
	run("publish", chromedp.Sleep(30*time.Second))
	value(t, ctx, "stop sharing the screen", chromedp.Evaluate[bool](`(() => {
  const tr = document.getElementById('screen-preview').srcObject.getVideoTracks()[0];
  tr.stop(); tr.dispatchEvent(new Event('ended')); return true; })()`))
	screenTo := time.Now()
	testenv.WaitFor(t, 5*time.Second, "the page says the screen stopped", func() bool { return visible("#screen-stopped") })
	if n := text("#screen-stopped"); !strings.Contains(n, "остановлена") || !visible("#screen-again") {
		t.Errorf("screen stopped notice %q, share-again button shown %v", n, visible("#screen-again"))
	}
	if s := text("#screen-state"); !strings.Contains(s, "остановлена") {
		t.Errorf("screen state %q after stopping", s)
	}
	if s := text("#cam-state"); s != "идёт запись" {
		t.Errorf("webcam state %q after the screen stopped, want still recording", s)
	}
	screenshot(t, ctx, "exam-screen-stopped")

	// playable checks a stream's indexed segments and that its signed
	// playlist plays as long as it was published (± 2 s).
	playable := func(stream string, published time.Duration, codecs string) {
		t.Helper()
		secs := published.Seconds()
		segs := in.waitIndexed(stream, secs-2, 30*time.Second)
		probe := testenv.FFprobe(t, in.api.link("/api/v1/streams/"+stream+"/playlist.m3u8"))
		if d := probe.DurationSeconds(); d < secs-2 || d > secs+2 {
			t.Errorf("%s: ffprobe reads the playlist as %.2f s, published %.2f s", stream, d, secs)
		}
		if got := strings.Join(probe.Codecs(), ","); got != codecs {
			t.Errorf("%s: playlist streams %s, want %s", stream, got, codecs)
		}
		t.Logf("%s: %d segments, published %.1f s, plays %.2f s", stream, len(segs), secs, probe.DurationSeconds())
	}
	playable(screenStream, screenTo.Sub(screenFrom), "video:h264")
	testenv.WaitFor(t, 20*time.Second, "the screen's stop observed", func() bool {
		obs := in.api.observations(screenStream)
		for _, o := range append(kinds(obs, "stop"), kinds(obs, "screen_stopped")...) {
			if d := o.Start.Sub(screenTo); d > -3*time.Second && d < 3*time.Second {
				return true
			}
		}
		return false
	})

	// Five seconds without the screen, then the candidate shares it again.
	run("without the screen", chromedp.Sleep(5*time.Second))
	run("share again", chromedp.Click("#screen-again"))
	live("screen again", "#screen-state")
	if visible("#screen-stopped") {
		t.Error("the screen-stopped notice still shown after sharing again")
	}
	screenshot(t, ctx, "exam-screen-again")
	testenv.WaitFor(t, 20*time.Second, "the screen's gap observed", func() bool {
		return len(kinds(in.api.observations(screenStream), "gap")) > 0
	})

	// The webcam ran throughout; end the page's sessions as leaving it would.
	value(t, ctx, "end the sessions", chromedp.Evaluate[bool](`cam.stop(); screen.stop(); true`))
	camTo := time.Now()
	playable(camStream, camTo.Sub(camFrom), "video:h264,audio:opus")

	// The registry lists both streams as evidence of the candidate's exam.
	var media struct {
		Streams []struct {
			Stream   string `json:"stream"`
			Source   string `json:"source"`
			Segments int    `json:"segments"`
		} `json:"streams"`
	}
	in.api.do("GET", ep+"/candidates/"+cand.ID+"/media", nil, http.StatusOK, &media)
	withFootage := map[string]string{}
	for _, m := range media.Streams {
		if m.Segments > 0 {
			withFootage[m.Stream] = m.Source
		}
	}
	if withFootage[camStream] != "webcam" || withFootage[screenStream] != "screen" {
		t.Errorf("evidence of the candidate's exam lists %+v, want the webcam and the screen with footage", media.Streams)
	}
	for _, stream := range []string{camStream, screenStream} {
		var ks []string
		for _, o := range in.api.observations(stream) {
			ks = append(ks, o.Kind+"@"+o.Start.Sub(start).Round(time.Second).String())
		}
		t.Logf("%s observations: %s", stream, strings.Join(ks, " "))
	}
}
