// Package e2e runs the nokstream binary as a user would: real processes,
// real PostgreSQL, MinIO and Kafka protocol, ffmpeg publishing over RTSP and
// ffprobe reading what the API serves.
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/testenv"
)

// binary is the nokstream binary built once for the package.
var binary string

func TestMain(m *testing.M) {
	// Every nokstream process started here hashes passwords at OWASP's
	// minimum argon2id cost (--password-hash from the environment): the
	// default's 64 MiB and three passes for each user added and each login
	// were a large share of make test's CPU. The default is tested in
	// registry/store.
	if err := os.Setenv("NOKSTREAM_PASSWORD_HASH", "m=7168,t=5,p=1"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "nokstream-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "nokstream")
	build := exec.Command("go", "build", "-o", binary, "../cmd/nokstream")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build nokstream:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cli runs a nokstream subcommand to completion and returns its stdout.
func cli(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("nokstream %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(stdout.String())
}

// proc is a nokstream service running in the background.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	// admin is the service's admin address (--admin-addr): /metrics and
	// /readyz are there, not on its public port. Without one in the
	// arguments it is on port 0, and adminAddr learns it from addrFile.
	admin    string
	addrFile string
	log      *bytes.Buffer
	mu       *sync.Mutex
	// stopping is set before the test stops the process on purpose.
	stopping bool
	// done is closed when the process has exited; err is how.
	done chan struct{}
	err  error
}

type syncWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// startProc starts a nokstream service. If it exits before the test stops
// it, the test fails at once with its exit status and the tail of its log,
// rather than later with "connection refused". A service given no
// --admin-addr gets one on a free loopback port (the default ports would
// collide between tests running in parallel).
func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, log: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	for i, a := range args {
		if a == "--admin-addr" && i+1 < len(args) {
			p.admin = args[i+1] // the last one wins, as with the flag
		}
	}
	// The service writes the addresses it listens on to --addr-file once
	// its listeners are open (boundAddr reads them there): without an
	// --admin-addr, its admin address is on port 0.
	p.addrFile = filepath.Join(t.TempDir(), "addrs.json")
	args = append(args, "--addr-file", p.addrFile)
	if p.admin == "" {
		args = append(args, "--admin-addr", "127.0.0.1:0")
	}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = append(os.Environ(), env...)
	w := syncWriter{p.mu, p.log}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	exited, err := testenv.Spawn(p.cmd)
	if err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		err := <-exited
		p.mu.Lock()
		p.err = err
		unexpected := !p.stopping
		p.mu.Unlock()
		if unexpected {
			t.Errorf("%s exited unexpectedly (%v); the end of its log:\n%s", name, describeExit(p.cmd, err), tail(p.output(), 40))
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, p.output())
		}
	})
	return p
}

// describeExit says how a child ended: its exit status or the signal.
func describeExit(cmd *exec.Cmd, err error) string {
	st := cmd.ProcessState
	if st == nil {
		return fmt.Sprintf("wait: %v", err)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", st.ExitCode())
}

// lastWord returns the last word of the last line of s (where `node add`
// prints its token).
func lastWord(s string) string {
	f := strings.Fields(tail(s, 1))
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// exited reports whether the process has exited, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends sig and waits for the process to exit.
func (p *proc) stop(sig syscall.Signal) {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	if ok, _ := p.exited(); ok {
		return
	}
	began := time.Now()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Logf("%s did not exit within 20 s of %s: killed", p.name, sig)
	}
	if d := time.Since(began); d > 5*time.Second {
		p.t.Logf("%s took %s to exit on %s", p.name, d.Round(100*time.Millisecond), sig)
	}
}

// adminAddr returns the service's admin address, once the service has
// written it to its --addr-file (the test fails if it exits first).
func (p *proc) adminAddr() string {
	p.t.Helper()
	if p.admin == "" {
		p.admin = p.boundAddr("admin")
	}
	return p.admin
}

// boundAddr returns the address the service listens on for a listener
// ("admin", "http", "rtsp", …), once it has written them to its
// --addr-file (the test fails if it exits first).
func (p *proc) boundAddr(listener string) string {
	p.t.Helper()
	var addr string
	testenv.WaitFor(p.t, 60*time.Second, p.name+" to write its addresses", func() bool {
		if ok, err := p.exited(); ok {
			p.t.Fatalf("%s exited: %v\n%s", p.name, err, p.output())
		}
		b, err := os.ReadFile(p.addrFile)
		var addrs map[string]string
		if err != nil || json.Unmarshal(b, &addrs) != nil || addrs[listener] == "" {
			return false
		}
		addr = addrs[listener]
		return true
	})
	return addr
}

// waitReady waits until a service's /readyz answers 200 on its admin
// address, then checks what each address serves: the public port (addr)
// answers /healthz and nothing of the service's insides (/metrics, /readyz:
// 404), and the admin address serves the metrics.
func waitReady(t *testing.T, p *proc, addr string) {
	t.Helper()
	admin := p.adminAddr()
	testenv.WaitFor(t, 30*time.Second, p.name+" to be ready", func() bool {
		if ok, err := p.exited(); ok {
			t.Fatalf("%s exited: %v\n%s", p.name, err, p.output())
		}
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	for _, c := range []struct {
		addr, path string
		want       int
	}{
		{addr, "/healthz", http.StatusOK},
		{addr, "/metrics", http.StatusNotFound},
		{addr, "/readyz", http.StatusNotFound},
		{addr, "/debug/pprof/", http.StatusNotFound},
		{admin, "/metrics", http.StatusOK},
		{admin, "/healthz", http.StatusOK},
	} {
		resp, err := http.Get("http://" + c.addr + c.path)
		if err != nil {
			t.Fatalf("%s: GET %s%s: %v", p.name, c.addr, c.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: GET %s%s: %d, want %d", p.name, c.addr, c.path, resp.StatusCode, c.want)
		}
		if c.path == "/metrics" && c.want == http.StatusOK && !bytes.Contains(b, []byte("\nnokstream_")) {
			t.Errorf("%s: the admin address's /metrics has no nokstream_ metric", p.name)
		}
	}
}

// api is a logged-in client of the registry API.
type api struct {
	t     *testing.T
	base  string
	token string
}

func login(t *testing.T, base, user, tempPassword string) *api {
	t.Helper()
	a := &api{t: t, base: base}
	var lr struct {
		Token              string `json:"token"`
		MustChangePassword bool   `json:"must_change_password"`
	}
	a.do("POST", "/api/v1/auth/login", map[string]string{"login": user, "password": tempPassword}, http.StatusOK, &lr)
	a.token = lr.Token
	if lr.MustChangePassword {
		newPW := "e2e-" + tempPassword + "-changed"
		a.do("POST", "/api/v1/auth/password", map[string]string{"old_password": tempPassword, "new_password": newPW}, 0, nil)
		a.do("POST", "/api/v1/auth/login", map[string]string{"login": user, "password": newPW}, http.StatusOK, &lr)
		a.token = lr.Token
	}
	// The person accepts the privacy policy, as the pages ask them to
	// before anything else (TestWeb does it on the page).
	var me struct {
		PrivacyPolicy struct {
			Current  string `json:"current"`
			Required bool   `json:"required"`
		} `json:"privacy_policy"`
	}
	a.do("GET", "/api/v1/auth/me", nil, http.StatusOK, &me)
	if me.PrivacyPolicy.Required {
		a.do("POST", "/api/v1/auth/privacy-policy", map[string]string{"version": me.PrivacyPolicy.Current}, http.StatusOK, nil)
	}
	return a
}

// do sends a JSON request; want 0 accepts any 2xx.
func (a *api) do(method, path string, body any, want int, out any) {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if (want == 0 && resp.StatusCode/100 != 2) || (want != 0 && resp.StatusCode != want) {
		a.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			a.t.Fatalf("%s %s: decode %q: %v", method, path, b, err)
		}
	}
}

// segment is one element of the segments endpoint.
type segment struct {
	SegmentID     string    `json:"segment_id"`
	Sequence      int64     `json:"sequence"`
	Start         time.Time `json:"start"`
	Duration      float64   `json:"duration"`
	Bytes         int64     `json:"bytes"`
	SHA256        string    `json:"sha256"`
	URL           string    `json:"url"`
	Chain         string    `json:"chain"`
	Discontinuity bool      `json:"discontinuity"`
	InitKey       string    `json:"init_key"`
}

func (a *api) segments(stream string) []segment {
	a.t.Helper()
	var segs []segment
	q := "?from=" + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339) + "&to=" + time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	a.do("GET", "/api/v1/streams/"+stream+"/segments"+q, nil, http.StatusOK, &segs)
	return segs
}

// fetchSHA fetches a media URL without the bearer token (it is signed) and
// returns the SHA-256 of the body.
func (a *api) fetchSHA(url string) string {
	a.t.Helper()
	if strings.HasPrefix(url, "/") {
		url = a.base + url
	}
	resp, err := http.Get(url)
	if err != nil {
		a.t.Fatalf("get %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		a.t.Fatalf("get %s: status %d: %s", url, resp.StatusCode, b)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		a.t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// link returns a signed URL for a path under /api/v1/streams.
func (a *api) link(path string) string {
	a.t.Helper()
	var out struct {
		URL string `json:"url"`
	}
	a.do("POST", "/api/v1/links", map[string]string{"path": path}, 0, &out)
	if strings.HasPrefix(out.URL, "/") {
		return a.base + out.URL
	}
	return out.URL
}

// publish runs ffmpeg publishing a synthetic stream of size (25 fps,
// H.264 in 2 s GOPs, and AAC when audio is "aac") for seconds over RTSP
// (TCP); it returns ffmpeg's stderr and error.
func publish(t *testing.T, url string, seconds int, size string, audio string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+60)*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Tool(t, "ffmpeg"), publishArgs(t, url, seconds, size, audio)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return stderr.String(), err
}

// publishArgs are ffmpeg's arguments to publish a synthetic stream in real
// time. With AAC audio (every publisher here) they send a clip encoded
// once, in a loop, with stream copy: a camera sends what it encoded, and
// encoding every publisher live (1280x720 for a minute in TestSpine) was a
// large share of make test's CPU. Otherwise the stream is encoded live.
func publishArgs(t *testing.T, url string, seconds int, size string, audio string) []string {
	t.Helper()
	if audio != "aac" {
		return testenv.PublishArgs(url, seconds, size, 25, audio, "tcp")
	}
	return []string{"-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", clipPath(t, size),
		"-t", strconv.Itoa(seconds), "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", url}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// ports of one nokstream installation under test.
type ports struct {
	rtsp, rtp, rtcp, http int
	webrtc                int // WHIP media (UDP), on loopback
}

func newPorts(t *testing.T) ports {
	rtp, rtcp := testenv.FreeUDPPair(t)
	return ports{rtsp: testenv.FreePort(t), rtp: rtp, rtcp: rtcp, http: testenv.FreePort(t), webrtc: testenv.FreeUDPPort(t)}
}

func (p ports) ingestFlags() []string {
	return []string{"--rtsp-addr", fmt.Sprintf("127.0.0.1:%d", p.rtsp), "--rtp-addr", fmt.Sprintf(":%d", p.rtp),
		"--rtcp-addr", fmt.Sprintf(":%d", p.rtcp), "--webrtc-udp-addr", fmt.Sprintf("127.0.0.1:%d", p.webrtc), "--node", "e2e"}
}

// confirmIdentity does the site's identity check of candidate cand of the
// exam at path ep ("/api/v1/exams/<id>"), which admission requires: it
// uploads a passport scan and confirms the identity against it.
// TestWebCabinets does the same through the site's page.
func confirmIdentity(site *api, ep, cand string) {
	site.t.Helper()
	ec := ep + "/candidates/" + cand
	doc := site.upload(ec+"/identity/documents?filename=passport.pdf", "application/pdf", "%PDF-1.4 паспорт "+cand, http.StatusCreated)
	site.do("PUT", ec+"/identity", map[string]any{"confirmed": true, "document": doc}, http.StatusOK, nil)
}
