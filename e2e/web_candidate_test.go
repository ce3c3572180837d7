package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
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
// again publishes the screen again. Then network blips: for 8 s, then 14 s,
// the server answers no packet; the page says the connection is lost,
// reconnects by itself (in the same WHIP sessions, or in new ones after the
// longer blip) and records again, the same two streams go on (contiguous
// and chained), and each blip is on their timelines.
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
	confirmIdentity(site, ep, cand.ID)
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
	// playlist plays as long as it was published (± 2 s), less at most
	// lost (a blip's media); it returns the segments.
	playable := func(stream string, published, lost time.Duration, codecs string) []segment {
		t.Helper()
		secs, least := published.Seconds(), (published-lost).Seconds()-2
		segs := in.waitIndexed(stream, least, 30*time.Second)
		playlist := in.api.link("/api/v1/streams/" + stream + "/playlist.m3u8")
		probe := testenv.FFprobe(t, playlist)
		var plays float64
		if lost > 0 { // a blip may have started new sessions of the stream
			plays = testenv.PlaysAcrossSessions(t, playlist)
		} else {
			plays = testenv.Plays(t, playlist)
		}
		if plays < least || plays > secs+2 {
			t.Errorf("%s: the playlist, read whole, plays %.2f s, published %.2f s (of which up to %.1f s may be lost)", stream, plays, secs, lost.Seconds())
		}
		if got := strings.Join(probe.Codecs(), ","); got != codecs {
			t.Errorf("%s: playlist streams %s, want %s", stream, got, codecs)
		}
		t.Logf("%s: %d segments, published %.1f s, plays %.2f s", stream, len(segs), secs, plays)
		return segs
	}
	playable(screenStream, screenTo.Sub(screenFrom), 0, "video:h264")
	// The stop is on the screen's timeline as the candidate's own, not as
	// a lost connection.
	const ended = "the publisher ended the WHIP session"
	var stop observation
	testenv.WaitFor(t, 20*time.Second, "the screen's stop observed", func() bool {
		obs := in.api.observations(screenStream)
		for _, o := range append(kinds(obs, "stop"), kinds(obs, "screen_stopped")...) {
			if d := o.Start.Sub(screenTo); d > -3*time.Second && d < 3*time.Second {
				stop = o
				return true
			}
		}
		return false
	})
	if stop.Kind == "stop" && !strings.HasPrefix(stop.Detail, ended) {
		t.Errorf("the candidate's stop of the screen is on the timeline as %q, want %q", stop.Detail, ended)
	}

	// Five seconds without the screen, then the candidate shares it again.
	run("without the screen", chromedp.Sleep(5*time.Second))
	run("share again", chromedp.Click("#screen-again"))
	screenAgain := live("screen again", "#screen-state")
	if visible("#screen-stopped") {
		t.Error("the screen-stopped notice still shown after sharing again")
	}
	screenshot(t, ctx, "exam-screen-again")
	testenv.WaitFor(t, 20*time.Second, "the screen's gap observed", func() bool {
		return len(kinds(in.api.observations(screenStream), "gap")) > 0
	})

	// Network blips while both publish: for some seconds the server
	// answers no packet — the `nokstream all` process is stopped, then
	// continued: no restart, no socket closed, as when the candidate's
	// network drops for a moment. The page says the connection is lost
	// (when it notices within the blip), reconnects by itself and says it
	// records again. Chromium notices after 6 to 8 s: a blip of 8 s heals
	// in the same WHIP sessions; one of 14 s outlasts the page's patience
	// (3 s after it noticed) and the page starts new sessions of the same
	// streams.
	type pageState struct {
		Cam, Screen       string
		CamGen, ScreenGen int // WHIP sessions each Publisher has started
	}
	page := func() pageState {
		t.Helper()
		return value(t, ctx, "read the page state", chromedp.Evaluate[pageState](`({cam: document.getElementById('cam-state').textContent,
  screen: document.getElementById('screen-state').textContent, camGen: cam.gen, screenGen: screen.gen})`))
	}
	const recording, reconnecting = "идёт запись", "связь прервалась, переподключение…"
	srv := in.procs["all"].cmd.Process
	frozen := false
	defer func() {
		if frozen {
			_ = srv.Signal(syscall.SIGCONT)
		}
	}()
	type blipped struct {
		from, to            time.Time // the server stopped and continued
		camLost, screenLost time.Time // the page said the connection was lost
		camBack, screenBack time.Time // the page said it records again
		camNew, screenNew   int       // WHIP sessions the page started
		after               pageState // when the page recorded both again
	}
	// blip stops the server for d, continues it and waits until the page
	// records both again (30 s at most).
	blip := func(d time.Duration) blipped {
		t.Helper()
		var b blipped
		var states []string // the page's changes of state, for the log
		last := ""
		watch := func() {
			st, now := page(), time.Now()
			if s := st.Cam + " / " + st.Screen; s != last {
				states = append(states, fmt.Sprintf("%s @%.1f s", s, now.Sub(b.from).Seconds()))
				last = s
			}
			for _, x := range []struct {
				state      string
				lost, back *time.Time
			}{{st.Cam, &b.camLost, &b.camBack}, {st.Screen, &b.screenLost, &b.screenBack}} {
				if x.state == reconnecting && x.lost.IsZero() {
					*x.lost = now
				}
				if x.state == recording && !b.to.IsZero() && x.back.IsZero() {
					*x.back = now
				}
			}
		}
		before := page()
		b.from = time.Now()
		if err := srv.Signal(syscall.SIGSTOP); err != nil {
			t.Fatalf("stop the server: %v", err)
		}
		frozen = true
		for time.Since(b.from) < d {
			watch()
			time.Sleep(200 * time.Millisecond)
		}
		if err := srv.Signal(syscall.SIGCONT); err != nil {
			t.Fatalf("continue the server: %v", err)
		}
		frozen = false
		b.to = time.Now()
		testenv.WaitFor(t, 30*time.Second, "the page to record both again after the blip", func() bool {
			watch()
			return !b.camBack.IsZero() && !b.screenBack.IsZero()
		})
		b.after = page()
		b.camNew, b.screenNew = b.after.CamGen-before.CamGen, b.after.ScreenGen-before.ScreenGen
		since := func(from, tm time.Time) string {
			if tm.IsZero() {
				return "never"
			}
			return fmt.Sprintf("%.1f s", tm.Sub(from).Seconds())
		}
		t.Logf("blip of %.1f s: the page said the connection was lost %s (webcam) / %s (screen) into it, recorded again %s / %s after it; "+
			"new WHIP sessions: webcam %d, screen %d; page states: %s",
			b.to.Sub(b.from).Seconds(), since(b.from, b.camLost), since(b.from, b.screenLost), since(b.to, b.camBack), since(b.to, b.screenBack),
			b.camNew, b.screenNew, strings.Join(states, ", "))
		return b
	}
	// stillRecording checks that the page records both in the sessions
	// it recorded in when it came back after b: one that came back is not
	// replaced.
	stillRecording := func(when string, b blipped) {
		t.Helper()
		st := page()
		if st.Cam != recording || st.Screen != recording {
			t.Errorf("%s the page says webcam %q, screen %q, want both recording", when, st.Cam, st.Screen)
		}
		if st.CamGen != b.after.CamGen || st.ScreenGen != b.after.ScreenGen {
			t.Errorf("%s the page has started %d (webcam) and %d (screen) more WHIP sessions since it recorded again", when,
				st.CamGen-b.after.CamGen, st.ScreenGen-b.after.ScreenGen)
		}
	}
	run("publish before the blips", chromedp.Sleep(4*time.Second))
	blips := []blipped{blip(8 * time.Second)}
	screenshot(t, ctx, "exam-after-blip")
	run("publish between the blips", chromedp.Sleep(10*time.Second))
	stillRecording("10 s after the 8 s blip", blips[0])
	blips = append(blips, blip(14*time.Second))
	// The page starts a new session 3 + 1 s after it said the connection
	// was lost; a browser that noticed late (a loaded machine) may have
	// healed in the old one.
	for _, x := range []struct {
		what    string
		lost    time.Time
		started int
	}{{"webcam", blips[1].camLost, blips[1].camNew}, {"screen", blips[1].screenLost, blips[1].screenNew}} {
		if b := blips[1]; !x.lost.IsZero() && b.to.Sub(x.lost) > 5*time.Second && x.started == 0 {
			t.Errorf("%s: the page said the connection was lost %.1f s before the end of the blip but started no new WHIP session",
				x.what, b.to.Sub(x.lost).Seconds())
		}
	}
	run("publish after the blips", chromedp.Sleep(10*time.Second))
	stillRecording("10 s after the 14 s blip", blips[1])

	// End the page's sessions as leaving it would.
	value(t, ctx, "end the sessions", chromedp.Evaluate[bool](`cam.stop(); screen.stop(); true`))
	camTo := time.Now()
	// All that was published is indexed on the same two streams, contiguous
	// and chained across the blips, but for the blips and a few seconds of
	// reconnecting after each; from when the page says it records again
	// until the next blip (or the end) most of the media is there: up to a
	// few seconds go missing after a blip while the browser's bandwidth
	// estimate recovers (it holds video back, and what it holds when the
	// next blip or the end cuts the connection is lost) and ingest waits
	// for the keyframe it asked for (seen: up to 2.6 s of 8).
	var lost time.Duration
	for _, b := range blips {
		lost += b.to.Sub(b.from) + 5*time.Second
	}
	camSegs := playable(camStream, camTo.Sub(camFrom), lost, "video:h264,audio:opus")
	screenSegs := playable(screenStream, screenTo.Sub(screenFrom)+camTo.Sub(screenAgain), lost, "video:h264")
	for _, x := range []struct {
		stream string
		segs   []segment
	}{{camStream, camSegs}, {screenStream, screenSegs}} {
		in.checkSegments(x.segs)
		for i, b := range blips {
			back, next := b.camBack, camTo
			if x.stream == screenStream {
				back = b.screenBack
			}
			if i+1 < len(blips) {
				next = blips[i+1].from
			}
			// The indexed media between back and next.
			var covered time.Duration
			for _, sg := range x.segs {
				from, to := sg.Start, sg.Start.Add(time.Duration(sg.Duration*float64(time.Second)))
				if from.Before(back) {
					from = back
				}
				if to.After(next) {
					to = next
				}
				if to.After(from) {
					covered += to.Sub(from)
				}
			}
			if want := next.Sub(back) / 2; covered < want {
				t.Errorf("%s: %.1f s indexed of the %.1f s from recording again after blip %d to the next blip or the end", x.stream, covered.Seconds(), next.Sub(back).Seconds(), i+1)
			}
			t.Logf("%s: %.1f s indexed of the %.1f s from recording again after blip %d to the next blip or the end", x.stream, covered.Seconds(), next.Sub(back).Seconds(), i+1)
			// The blip is on the stream's timeline: a gap over it, or the
			// session it cut stopped and a new one started.
			testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("blip %d on the timeline of %s", i+1, x.stream), func() bool {
				obs := in.api.observations(x.stream)
				for _, o := range kinds(obs, "gap") {
					if o.Start.Before(b.to) && o.End.After(b.from) {
						return true
					}
				}
				var stopped bool
				for _, o := range obs {
					within := !o.Start.Before(b.from) && o.Start.Before(b.to.Add(15*time.Second))
					stopped = stopped || (within && o.Kind == "stop")
					if within && o.Kind == "start" && stopped {
						return true
					}
				}
				return false
			})
		}
	}

	// Leaving the page ended both sessions: the candidate's end, not a lost
	// connection.
	for _, stream := range []string{camStream, screenStream} {
		testenv.WaitFor(t, 20*time.Second, "the end of "+stream+" observed", func() bool {
			for _, o := range kinds(in.api.observations(stream), "stop") {
				if !o.Start.Before(camTo.Add(-time.Second)) {
					stop = o
					return true
				}
			}
			return false
		})
		if !strings.HasPrefix(stop.Detail, ended) {
			t.Errorf("%s: leaving the page is on the timeline as %q, want %q", stream, stop.Detail, ended)
		}
	}

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
