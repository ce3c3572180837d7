package e2e

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/nokstream/nokstream/internal/testenv"
)

// TestWebDesk drives the exam site's console and the council's appeal desk
// in headless Chromium: the site admits one candidate and refuses another
// with a reason, and its health grid shows the room camera live; killed
// (its connection lost), not live within 10 s and reconnecting; published
// again and stopped on purpose, silent; the council opens an appeal (the
// page shows the legal hold), exports the evidence bundle, the page shows
// that the registry verified it, and `nokstream verify` accepts the
// downloaded file; the commission's decision recorded on the page shows as
// the appeal's state after a reload, the hold still on.
func TestWebDesk(t *testing.T) {
	t.Parallel()
	in := startAll(t, 2*time.Second, "room1")
	w := newWebExam(t, in, 2)
	ep := "/api/v1/exams/" + w.exam

	// The room camera publishes until it is killed.
	camera := exec.Command(testenv.Tool(t, "ffmpeg"), publishArgs(t, in.publish["room1"], 300, "320x240", "aac")...)
	if err := camera.Start(); err != nil {
		t.Fatalf("room camera: %v", err)
	}
	cameraDone := make(chan struct{})
	go func() {
		_ = camera.Wait()
		close(cameraDone)
	}()
	t.Cleanup(func() {
		_ = camera.Process.Kill()
		<-cameraDone
	})

	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	defer func() {
		if t.Failed() {
			d, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + ' | ' + document.body.innerText`))
			t.Logf("page: %s", d)
		}
	}()
	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		for _, a := range actions {
			if _, err := chromedp.Run(ctx, a); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
	}
	signIn := func(user string, link string) {
		t.Helper()
		run("sign in as "+user, chromedp.EmulateViewport(1366, 768), chromedp.Navigate(w.base+"/ui/"), chromedp.WaitVisible("#login-name"),
			chromedp.SendKeys("#login-name", user), chromedp.SendKeys("#login-password", w.passwords[user]), chromedp.Click("#login-submit"),
			chromedp.WaitVisible(link), chromedp.Click(link))
	}

	// The site console: admit the first candidate, refuse the second.
	signIn("site1", "#site-link")
	row := func(i int) string { return `tr[data-candidate="` + w.cands[i] + `"]` }
	// Admission requires the identity check (TestWebCabinets does it on
	// the page).
	confirmIdentity(w.site, ep, w.cands[0])
	run("admit", chromedp.WaitVisible(row(0)+" button.admit"), chromedp.Click(row(0)+" button.admit"),
		chromedp.WaitVisible(row(0)+" .admission.admitted"))
	run("refuse", chromedp.SendKeys(row(1)+" input.reason", "нет документа, удостоверяющего личность"), chromedp.Click(row(1)+" button.refuse"),
		chromedp.WaitVisible(row(1)+" .admission.refused"))
	var cands []struct {
		Candidate     struct{ ID string }
		Admission     string
		RefusalReason string `json:"refusal_reason"`
	}
	w.site.do("GET", ep+"/candidates", nil, http.StatusOK, &cands)
	got := map[string]string{}
	for _, c := range cands {
		got[c.Candidate.ID] = c.Admission + ":" + c.RefusalReason
	}
	if got[w.cands[0]] != "admitted:" || got[w.cands[1]] != "refused:нет документа, удостоверяющего личность" {
		t.Errorf("admissions through the API: %v", got)
	}
	run("passwords", chromedp.Click(`#passwords-`+w.exam), chromedp.WaitVisible("#print-rows td.password"))
	pws := value(t, ctx, "passwords", chromedp.Evaluate[int](`document.querySelectorAll('#print-rows td.password').length`))
	if pws != 1 {
		t.Errorf("%d passwords printed, want 1 (the admitted candidate)", pws)
	}

	// The health grid: the room camera live; killed (a lost connection, as
	// when a camera loses power), not live within 10 s and reconnecting.
	cell := `.hcell[data-stream="site1/room1"]`
	state := func() string {
		return value(t, ctx, "room camera cell", chromedp.Evaluate[string](`(document.querySelector('`+cell+`') || {dataset: {}}).dataset.state || ''`))
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		var devices []struct {
			Name    string
			Session any
		}
		w.site.do("GET", "/api/v1/sites/site1/devices", nil, http.StatusOK, &devices)
		t.Logf("devices of the site: %+v", devices)
	})
	testenv.WaitFor(t, 25*time.Second, "the room camera live in the grid", func() bool { return state() == "live" })
	if n := value(t, ctx, "grid", chromedp.Evaluate[int](`document.querySelectorAll('.hcell').length`)); n != 5 {
		t.Errorf("health grid has %d sources, want 5 (room camera, two webcams, two screens)", n)
	}
	screenshot(t, ctx, "site-console")
	if err := camera.Process.Kill(); err != nil {
		t.Fatalf("kill the room camera: %v", err)
	}
	<-cameraDone
	stop := time.Now()
	for state() == "live" {
		if time.Since(stop) > 10*time.Second {
			t.Fatalf("the room camera still live in the grid %v after it was killed", time.Since(stop))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("room camera shown not live %v after it was killed", time.Since(stop).Round(100*time.Millisecond))
	testenv.WaitFor(t, 10*time.Second, "the killed room camera shown reconnecting", func() bool { return state() == "reconnecting" })
	if s := value(t, ctx, "cell", chromedp.Text(cell+" .hstate")); !strings.Contains(s, "переподключение… с") {
		t.Errorf("killed camera's cell says %q", s)
	}
	screenshot(t, ctx, "site-console-reconnecting")

	// Published again and stopped on purpose (ffmpeg ends its session with
	// a TEARDOWN): live, then silent.
	stopped := make(chan time.Time, 1)
	go func() {
		out, err := publish(t, in.publish["room1"], 10, "320x240", "aac")
		if err != nil {
			t.Errorf("room camera: %v\n%s", err, out)
		}
		stopped <- time.Now()
	}()
	testenv.WaitFor(t, 25*time.Second, "the room camera live again", func() bool { return state() == "live" })
	select {
	case stop = <-stopped:
	case <-time.After(60 * time.Second):
		t.Fatal("the room camera did not stop")
	}
	testenv.WaitFor(t, 10*time.Second, "the stopped room camera shown silent", func() bool { return state() == "silent" })
	t.Logf("room camera shown silent %v after it stopped", time.Since(stop).Round(100*time.Millisecond))
	if s := value(t, ctx, "cell", chromedp.Text(cell+" .hstate")); !strings.Contains(s, "молчит с") {
		t.Errorf("stopped camera's cell says %q", s)
	}
	screenshot(t, ctx, "site-console-stopped")

	// The council's appeal desk: open an appeal, see the hold, export.
	run("sign out", chromedp.Click("#logout"))
	signIn("council1", "#appeals-link")
	run("open an appeal", chromedp.WaitReady(`#open-target option`),
		chromedp.SetValue("#open-target", w.exam+"/"+w.cands[0]),
		chromedp.SendKeys("#open-reason", "кандидат не согласен с результатом"), chromedp.Click("#open-submit"),
		chromedp.WaitVisible(`#appeals tr[data-hold="true"] .hold`))
	var appeals []struct {
		ID        string
		Candidate string
		Status    string
		LegalHold bool `json:"legal_hold"`
	}
	w.council.do("GET", "/api/v1/appeals?exam="+w.exam, nil, http.StatusOK, &appeals)
	if len(appeals) != 1 || appeals[0].Candidate != w.cands[0] || !appeals[0].LegalHold {
		t.Fatalf("appeals through the API: %+v", appeals)
	}

	dl := t.TempDir()
	if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dl}); err != nil {
		t.Fatalf("download behavior: %v", err)
	}
	run("export", chromedp.Click(`#appeals tr[data-appeal="`+appeals[0].ID+`"] button.export`), chromedp.WaitVisible("#purpose"),
		chromedp.SendKeys("#purpose", "рассмотрение апелляции"), chromedp.Click("#purpose-submit"))
	name := "evidence-" + w.exam + "-" + w.cands[0] + ".tar"
	testenv.WaitFor(t, 60*time.Second, "the bundle downloaded", func() bool {
		done := value(t, ctx, "export state", chromedp.Evaluate[string](`document.getElementById('export-state').dataset.done || ''`))
		_, err := os.Stat(filepath.Join(dl, name))
		return done == name && err == nil
	})
	// The page sends the bundle back to the registry, which verifies it
	// with the archive's key.
	verified := func() string {
		return value(t, ctx, "verify state", chromedp.Evaluate[string](`document.getElementById('verify-state').dataset.valid || ''`))
	}
	testenv.WaitFor(t, 60*time.Second, "the page to show the bundle's verification", func() bool { return verified() != "" })
	shown := value(t, ctx, "verify state", chromedp.Text("#verify-state"))
	if verified() != "true" || !strings.Contains(shown, "Пакет проверен: подписи верны") {
		t.Errorf("the page shows the bundle %s: %q", verified(), shown)
	}
	screenshot(t, ctx, "appeal-desk")
	// Checked, as the page says, with the archive's key it links to (exit
	// 0: intact and from this archive), and no key pinned by whoever runs
	// the tests.
	keyLink := value(t, ctx, "key link", chromedp.Evaluate[string](
		`(document.querySelector('#export-state a[download="seal.pub"]') || {getAttribute: () => ''}).getAttribute('href')`))
	if keyLink != "/api/v1/keys/seal?format=pem" {
		t.Errorf("the page links the key to check with as %q", keyLink)
	}
	keyFile := filepath.Join(t.TempDir(), "seal.pub")
	if err := os.WriteFile(keyFile, []byte(in.api.getText("/api/v1/keys/seal?format=pem")), 0o644); err != nil {
		t.Fatal(err)
	}
	check := exec.Command(binary, "verify", filepath.Join(dl, name), "--pubkey", keyFile)
	check.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir())
	out, err := check.CombinedOutput()
	if err != nil {
		t.Errorf("nokstream verify of the downloaded bundle: %v\n%s", err, out)
	}
	t.Logf("page: %s; verify: %s", shown, strings.TrimSpace(string(out)))

	// The commission's decision, recorded on the page, is the appeal's
	// state after a reload; the hold stays until the appeal is closed.
	appeal := `#appeals tr[data-appeal="` + appeals[0].ID + `"]`
	decide := `#appeals tr[data-decide="` + appeals[0].ID + `"]`
	run("decide", chromedp.WaitVisible(decide+" select.outcome"), chromedp.SetValue(decide+" select.outcome", "rejected"),
		chromedp.SendKeys(decide+" input.decision", "оснований для пересмотра результата нет"), chromedp.Click(decide+" button.decide"),
		chromedp.WaitVisible(appeal+`[data-status="decided"]`))
	run("reload", chromedp.Reload(), chromedp.WaitVisible(appeal+" .status .state"))
	if s := value(t, ctx, "appeal state", chromedp.Text(appeal+" .status .state")); !strings.Contains(s, "решена") {
		t.Errorf("the decided appeal's state on the page: %q, want решена", s)
	}
	if hold := value(t, ctx, "appeal hold", chromedp.Evaluate[string](`document.querySelector('`+appeal+`').dataset.hold`)); hold != "true" {
		t.Errorf("the decided appeal's hold on the page: %q, want true", hold)
	}
	if n := value(t, ctx, "decision form", chromedp.Evaluate[int](`document.querySelectorAll('`+decide+`').length`)); n != 0 {
		t.Errorf("the decided appeal still offers a decision form")
	}
	var decided struct {
		Status, Outcome, Decision string
		LegalHold                 bool `json:"legal_hold"`
	}
	w.council.do("GET", "/api/v1/appeals/"+appeals[0].ID, nil, http.StatusOK, &decided)
	if decided.Status != "decided" || decided.Outcome != "rejected" || decided.Decision != "оснований для пересмотра результата нет" || !decided.LegalHold {
		t.Errorf("the decided appeal through the API: %+v", decided)
	}
	screenshot(t, ctx, "appeal-desk-decided")
}
