package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"go/build"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nokstream/nokstream/internal/testenv"
)

// axeVersion is the axe-core that deploy/local/deps.sh installs.
const axeVersion = "4.14.1"

var axeSource = sync.OnceValues(func() (string, error) {
	path := os.Getenv("NOKSTREAM_AXE")
	if path == "" {
		path = filepath.Join(build.Default.GOPATH, "axe-core@"+axeVersion, "axe.min.js")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("axe-core %s not found (%w): run `make test-deps`, which fetches it from npm", axeVersion, err)
	}
	return string(b), nil
})

// axeViolation is what axe-core reports of one rule a page breaks.
type axeViolation struct {
	ID     string   `json:"id"`
	Impact string   `json:"impact"`
	Help   string   `json:"help"`
	Nodes  []string `json:"nodes"`
}

// cabinet is one running nokstream, its exam of newWebExam, and one
// browser tab, shared by the cabinets' subtests.
type cabinet struct {
	t   *testing.T
	in  *installation
	w   *webExam
	ctx context.Context
	// nark is the NARK operator "auditor" through the API.
	nark *api
	// operatorPW is the password of the NARK operator "operator" who
	// signs in on the pages (cabinetNARK adds them).
	operatorPW string
}

// upload sends body of type contentType with a's session and fails the
// test unless the answer is a success.
func upload(t *testing.T, a *api, method, path, contentType string, body []byte) {
	t.Helper()
	req, err := http.NewRequest(method, a.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
}

// run runs browser actions, failing the test with what was being done.
func (c *cabinet) run(t *testing.T, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	// No step of a person's takes long: a step that waits 20 s for what it
	// expects fails there, not at the test's deadline.
	ctx, cancel := context.WithTimeout(c.ctx, 20*time.Second)
	defer cancel()
	for _, a := range actions {
		if _, err := chromedp.Run(ctx, a); err != nil {
			page, _ := chromedp.Run(c.ctx, chromedp.Evaluate[string](`location.href + ' | ' + document.body.innerText.slice(0, 2000)`))
			t.Fatalf("%s: %v\npage: %s", what, err, page)
		}
	}
}

// text returns the visible text of the first element sel matches.
func (c *cabinet) text(t *testing.T, sel string) string {
	t.Helper()
	return value(t, c.ctx, "text of "+sel, chromedp.Text(sel))
}

// eval returns the value of a JavaScript expression in the page.
func eval[T any](t *testing.T, c *cabinet, expr string) T {
	t.Helper()
	return value(t, c.ctx, expr, chromedp.Evaluate[T](expr))
}

// signIn signs user in on the login page (its password changed by
// newWebExam or login) and waits for the landing page.
func (c *cabinet) signIn(t *testing.T, user, password string) {
	t.Helper()
	c.run(t, "sign in as "+user, chromedp.Navigate(c.w.base+"/ui/"), chromedp.WaitVisible("#login-name"),
		chromedp.SendKeys("#login-name", user), chromedp.SendKeys("#login-password", password), chromedp.Click("#login-submit"),
		chromedp.WaitVisible("#nav-home"), chromedp.WaitVisible(`body[data-loaded="true"]`))
}

// open follows the navigation link id and waits for the page to load.
func (c *cabinet) open(t *testing.T, id string) {
	t.Helper()
	c.run(t, "open "+id, chromedp.Click("#"+id), chromedp.WaitVisible(`body[data-loaded="true"]`))
}

// accessible runs axe-core in the page and fails the test for every
// serious or critical violation of WCAG 2.1 A/AA and of axe's best
// practices.
func (c *cabinet) accessible(t *testing.T, page string) {
	t.Helper()
	src, err := axeSource()
	if err != nil {
		t.Fatal(err)
	}
	// Evaluated through DevTools, not as a page script: the pages' CSP
	// allows only their own scripts.
	if _, err := chromedp.Run(c.ctx, chromedp.Evaluate[bool](src+"\n;true")); err != nil {
		t.Fatalf("inject axe-core into %s: %v", page, err)
	}
	const check = `axe.run(document).then((r) => JSON.stringify({passes: r.passes.length, violations: r.violations
  .filter((v) => v.impact === 'serious' || v.impact === 'critical')
  .map((v) => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 4).map((n) => n.target.join(' '))}))}))`
	out, err := chromedp.Run(c.ctx, chromedp.Evaluate[string](check, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("axe-core on %s: %v", page, err)
	}
	var res struct {
		Passes     int            `json:"passes"`
		Violations []axeViolation `json:"violations"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("axe-core on %s: %v: %s", page, err, out)
	}
	if res.Passes == 0 {
		t.Errorf("axe-core checked nothing on %s", page)
	}
	for _, v := range res.Violations {
		t.Errorf("%s: accessibility (%s) %s: %s at %s", page, v.Impact, v.ID, v.Help, strings.Join(v.Nodes, "; "))
	}
}

// TestWebCabinets drives each role's cabinet in headless Chromium on one
// nokstream and one browser: the expert's review queue, the center's
// candidates and exam groups, the council's centers and retention, the
// site's identity check at admission, NARK's
// organisations and audit trail, and the result cards through all three
// (center, council, NARK) to the register. Each does its main job through the page
// (clicks and typing) and checks the result through the API; every page
// shown passes axe-core with no serious or critical violation.
func TestWebCabinets(t *testing.T) {
	t.Parallel()
	in := startAll(t, 2*time.Second)
	cli(t, in.env, "qualification", "add", "40.00800.02", "--council", "council1", "--name", "Сварщик (4 уровень)",
		"--validity-years", "3", "--tool", "ОС-40.008-02 https://nok.example/os/2")
	w := newWebExam(t, in, 2)
	ctx := browser(t)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancel)
	if _, err := chromedp.Run(ctx, chromedp.EmulateViewport(1366, 900)); err != nil {
		t.Fatal(err)
	}
	c := &cabinet{t: t, in: in, w: w, ctx: ctx, nark: in.api}
	for _, tt := range []struct {
		name string
		run  func(*testing.T, *cabinet)
	}{
		{"expert", cabinetExpert},
		{"center", cabinetCenter},
		{"council", cabinetCouncil},
		{"site", cabinetSite},
		{"nark", cabinetNARK},
		{"results", cabinetResults},
	} {
		if !t.Run(tt.name, func(t *testing.T) { tt.run(t, c) }) {
			return // the next cabinet would start on a page left half-way
		}
		c.run(t, "sign out", chromedp.Click("#logout"), chromedp.WaitVisible("#login-name"))
	}
}

// waitText waits until the element sel shows text containing want.
func (c *cabinet) waitText(t *testing.T, sel, want string) {
	t.Helper()
	testenv.WaitFor(t, 15*time.Second, sel+" to show "+want, func() bool {
		got, err := chromedp.Run(c.ctx, chromedp.Evaluate[string](`(document.querySelector(`+jsString(sel)+`) || {innerText: ''}).innerText`))
		return err == nil && strings.Contains(got, want)
	})
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
