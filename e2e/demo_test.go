package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/testenv"
)

// demoCredentials is the simulator's credentials file.
type demoCredentials struct {
	Users         map[string]string `json:"users"`
	Devices       map[string]string `json:"devices"`
	ExamPasswords map[string]string `json:"exam_passwords"`
}

// secrets returns every secret in the file.
func (c demoCredentials) secrets() []string {
	var out []string
	for _, m := range []map[string]string{c.Users, c.Devices, c.ExamPasswords} {
		for _, v := range m {
			out = append(out, v)
		}
	}
	return out
}

func readDemoCredentials(t *testing.T, path string) (demoCredentials, bool) {
	t.Helper()
	var c demoCredentials
	b, err := os.ReadFile(path)
	if err != nil {
		return c, false
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("credentials file %s: %v", path, err)
	}
	return c, true
}

// children returns the command line and environment of every live child
// of pid, by pid.
func children(pid int) map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		out[child] = strings.ReplaceAll(string(cmdline), "\x00", " ") + "\n" + strings.ReplaceAll(string(environ), "\x00", " ")
	}
	return out
}

// TestDemo runs `nokstream sim --demo` against `nokstream all` as `make run`
// does, with a quick schedule of staged events, and checks through the API
// what a person would look at: both candidates have their webcam, their
// screen and the room cameras indexed as evidence, and the staged cover,
// freeze and drop are on the timelines. No secret is on a child's command
// line or in its environment, and a restart reuses the world.
func TestDemo(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	env := []string{"NOKSTREAM_DB=" + dsn}
	cli(t, env, "migrate")
	ps := newPorts(t)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", ps.http)
	base := "http://" + httpAddr
	all := startProc(t, "all", env, append([]string{"all", "--data", t.TempDir(), "--http-addr", httpAddr, "--segment-duration", "2s"},
		ps.ingestFlags()...)...)
	waitReady(t, all, httpAddr)

	data := t.TempDir()
	credsPath := filepath.Join(data, "demo-credentials.json")
	simArgs := []string{"sim", "--demo", "--data", data, "--registry-url", base, "--rtsp-host", fmt.Sprintf("127.0.0.1:%d", ps.rtsp),
		"--size", "320x240", "--fps", "15", "--webcam-size", "320x240", "--screen-size", "640x360"}
	started := time.Now()
	sim := startProc(t, "sim", env, append(simArgs, "--stage-first", "3s", "--stage-spacing", "0s", "--stage-every", "10m")...)

	// The world is ready when the credentials file has the candidates'
	// exam passwords.
	var creds demoCredentials
	testenv.WaitFor(t, 60*time.Second, "the demo world", func() bool {
		if ok, _ := sim.exited(); ok {
			t.Fatalf("the simulator exited:\n%s", sim.output())
		}
		c, ok := readDemoCredentials(t, credsPath)
		creds = c
		return ok && len(c.ExamPasswords) == 2 && len(c.Users) == 5
	})
	t.Logf("demo world ready %.0f s after the simulator started", time.Since(started).Seconds())
	fi, err := os.Stat(credsPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials file has mode %v, want 0600", fi.Mode().Perm())
	}
	for _, login := range []string{"nark", "council", "center", "site", "expert"} {
		a := &api{t: t, base: base}
		var s struct {
			MustChangePassword bool `json:"must_change_password"`
		}
		a.do("POST", "/api/v1/auth/login", map[string]string{"login": login, "password": creds.Users[login]}, http.StatusOK, &s)
		if s.MustChangePassword {
			t.Errorf("user %s still has the temporary password", login)
		}
	}
	nark := &api{t: t, base: base}
	var s struct {
		Token string `json:"token"`
	}
	nark.do("POST", "/api/v1/auth/login", map[string]string{"login": "nark", "password": creds.Users["nark"]}, http.StatusOK, &s)
	nark.token = s.Token

	type exam struct {
		ID       string    `json:"id"`
		Site     string    `json:"site"`
		StartsAt time.Time `json:"starts_at"`
		EndsAt   time.Time `json:"ends_at"`
		Experts  []struct {
			Login string `json:"login"`
		} `json:"experts"`
	}
	examsNow := func() []exam {
		var list []exam
		q := url.Values{"from": {time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)}, "to": {time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)}}
		nark.do("GET", "/api/v1/exams?"+q.Encode(), nil, http.StatusOK, &list)
		return list
	}
	exams := examsNow()
	if len(exams) != 1 {
		t.Fatalf("exams: %+v, want the demo exam alone", exams)
	}
	e := exams[0]
	if now := time.Now(); !now.After(e.StartsAt) || e.EndsAt.Sub(now) < 2*time.Hour || now.Sub(e.StartsAt) > 10*time.Minute {
		t.Errorf("demo exam %s runs %s – %s: want it started a few minutes ago and ending in about three hours", e.ID, e.StartsAt, e.EndsAt)
	}
	if len(e.Experts) != 1 || e.Experts[0].Login != "expert" {
		t.Errorf("demo exam experts: %+v, want the expert appointed", e.Experts)
	}

	// Within 60 s: three sources of evidence indexed for each candidate,
	// and the staged observations on the timelines.
	type stream struct {
		Stream   string `json:"stream"`
		Source   string `json:"source"`
		Segments int    `json:"segments"`
	}
	sources := func(cand string) map[string]int {
		var m struct {
			Streams []stream `json:"streams"`
		}
		nark.do("GET", "/api/v1/exams/"+e.ID+"/candidates/"+cand+"/media", nil, http.StatusOK, &m)
		out := map[string]int{}
		for _, st := range m.Streams {
			if st.Segments > 0 {
				out[st.Source]++
			}
		}
		return out
	}
	observed := func(stream string) map[string]bool {
		var list []struct {
			Kind string `json:"kind"`
		}
		q := url.Values{"from": {e.StartsAt.UTC().Format(time.RFC3339)}, "to": {time.Now().Add(time.Minute).UTC().Format(time.RFC3339)}}
		nark.do("GET", "/api/v1/streams/"+stream+"/observations?"+q.Encode(), nil, http.StatusOK, &list)
		out := map[string]bool{}
		for _, o := range list {
			out[o.Kind] = true
		}
		return out
	}
	seenChildren := map[int]string{}
	last := ""
	testenv.WaitFor(t, 60*time.Second, "both candidates' webcam, screen and room evidence indexed, and the staged cover, freeze and drop observed", func() bool {
		for pid, what := range children(sim.cmd.Process.Pid) {
			seenChildren[pid] = what
		}
		var missing []string
		for _, cand := range []string{"demo-cand-1", "demo-cand-2"} {
			got := sources(cand)
			if got["webcam"] != 1 || got["screen"] != 1 || got["room"] != 2 {
				missing = append(missing, fmt.Sprintf("%s has %v", cand, got))
			}
		}
		for _, w := range [][2]string{{"site1/ws1-webcam", "black"}, {"site1/ws1-screen", "frozen"}, {"site1/cam2", "gap"}} {
			if !observed(w[0])[w[1]] {
				missing = append(missing, w[0]+" has no "+w[1])
			}
		}
		if cur := strings.Join(missing, "; "); cur != last {
			t.Logf("%.0f s: %s", time.Since(started).Seconds(), cur)
			last = cur
		}
		return len(missing) == 0
	})
	t.Logf("everything indexed and observed %.0f s after the simulator started", time.Since(started).Seconds())
	cam2 := observed("site1/cam2")
	if !cam2["stop"] || !cam2["start"] {
		t.Errorf("room camera 2's drop: observations %v, want its stop and its start again", cam2)
	}

	// No secret on a child's command line or in its environment (ps and
	// /proc show them to every local user), nor in the log.
	ffmpegs := 0
	for pid, what := range seenChildren {
		if strings.Contains(what, "ffmpeg") {
			ffmpegs++
		}
		for _, secret := range creds.secrets() {
			if strings.Contains(what, secret) {
				t.Errorf("child %d of the simulator shows a secret:\n%s", pid, what)
			}
		}
	}
	if ffmpegs < 6 {
		t.Errorf("saw %d ffmpeg children of the simulator, want one per stream (6): the check above proves nothing", ffmpegs)
	}
	// Its standard output is the summary for the person who started it,
	// with the passwords; the log lines must hold none.
	for _, line := range strings.Split(sim.output(), "\n") {
		if !strings.HasPrefix(line, "time=") {
			continue
		}
		for _, secret := range creds.secrets() {
			if strings.Contains(line, secret) {
				t.Errorf("the simulator's log holds a secret: %s", line)
			}
		}
	}

	// Ctrl-C stops the simulator cleanly.
	sim.stop(syscall.SIGINT)
	if _, err := sim.exited(); err != nil {
		t.Errorf("sim after SIGINT: %s, want exit status 0", describeExit(sim.cmd, err))
	}

	// A restart reuses the world: the same exam, users and candidates,
	// the kept passwords.
	out := cli(t, env, append(simArgs, "--world-only")...)
	if !strings.Contains(out, e.ID) {
		t.Errorf("after a restart the simulator printed:\n%s\nwant the same exam %s", out, e.ID)
	}
	for _, want := range []string{"/ui/review.html?exam=" + e.ID + "&candidate=demo-cand-1", "/ui/site.html", "/ui/appeals.html"} {
		if !strings.Contains(out, want) {
			t.Errorf("the simulator's summary lacks %s:\n%s", want, out)
		}
	}
	after, _ := readDemoCredentials(t, credsPath)
	for login, pw := range creds.Users {
		if after.Users[login] != pw {
			t.Errorf("after a restart user %s has another password", login)
		}
	}
	for k, pw := range creds.ExamPasswords {
		if after.ExamPasswords[k] != pw {
			t.Errorf("after a restart exam password %s changed", k)
		}
	}
	if n := len(examsNow()); n != 1 {
		t.Errorf("after a restart there are %d exams, want the one demo exam", n)
	}
	var cands []struct {
		ID string `json:"id"`
	}
	nark.do("GET", "/api/v1/candidates", nil, http.StatusOK, &cands)
	if len(cands) != 2 {
		t.Errorf("after a restart there are %d candidates, want 2", len(cands))
	}
}
