package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/store"
	"github.com/nokstream/nokstream/registry/store/storetest"
)

// service is a nokstream service run in the test's process, as its command
// would run it, with every address on port 0.
type service struct {
	t      *testing.T
	name   string
	addrs  map[string]string
	cancel context.CancelFunc
	done   chan error
	err    error
	exited bool
}

// startService runs `nokstream ARGS` with its admin address on port 0 and
// --addr-file, and waits until it has written its bound addresses and its
// /readyz answers 200.
func startService(t *testing.T, args ...string) *service {
	t.Helper()
	file := filepath.Join(t.TempDir(), "addrs.json")
	root := rootCommand()
	root.SetArgs(append(args, "--admin-addr", "127.0.0.1:0", "--addr-file", file, "--log-level", "warn", "--shutdown-timeout", "5s"))
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{t: t, name: args[0], cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() { _ = s.stop() })
	testenv.WaitFor(t, 60*time.Second, s.name+" to write its bound addresses", func() bool {
		s.failIfExited()
		b, err := os.ReadFile(file)
		return err == nil && json.Unmarshal(b, &s.addrs) == nil
	})
	for name, a := range s.addrs {
		if strings.HasSuffix(a, ":0") {
			t.Fatalf("%s: %s is bound to %s, not to the port the kernel picked", s.name, name, a)
		}
	}
	testenv.WaitFor(t, 60*time.Second, s.name+" to be ready", func() bool {
		s.failIfExited()
		code, _, err := get("http://" + s.addrs["admin"] + "/readyz")
		return err == nil && code == http.StatusOK
	})
	return s
}

func (s *service) failIfExited() {
	s.t.Helper()
	select {
	case err := <-s.done:
		s.exited, s.err = true, err
		s.t.Fatalf("%s exited: %v", s.name, err)
	default:
	}
}

// stop cancels the service (its SIGTERM) and returns how it ended.
func (s *service) stop() error {
	s.cancel()
	if !s.exited {
		s.err, s.exited = <-s.done, true
	}
	return s.err
}

// heldRequest is an HTTP request whose handler is reading its body: the
// test sent the header with "Expect: 100-continue" and the server said
// "100 Continue", which Go's server does only once a handler reads the
// body. The body is sent by finish.
type heldRequest struct {
	conn net.Conn
	r    *bufio.Reader
	body string
	// what names the request; answered says whether its answer is the
	// whole one expected.
	what     string
	answered func(code int, body string) bool
}

// holdRequest sends the header of a request with a body to addr and waits
// for the handler to read its body; answered checks the answer once the
// body is sent.
func holdRequest(t *testing.T, addr, method, path string, header map[string]string, body string,
	answered func(code int, body string) bool) *heldRequest {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\nConnection: close\r\n", method, path, addr, len(body))
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	h := &heldRequest{conn: c, r: bufio.NewReader(c), body: body, what: method + " " + path, answered: answered}
	line, err := h.r.ReadString('\n')
	if err != nil || !strings.Contains(line, " 100 ") {
		t.Fatalf("%s %s: %q %v, want 100 Continue (the handler reading the body)", method, path, line, err)
	}
	if blank, err := h.r.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("%s %s: after 100 Continue %q %v", method, path, blank, err)
	}
	return h
}

// finish sends the body and returns the answer.
func (h *heldRequest) finish() (int, string, error) {
	if _, err := io.WriteString(h.conn, h.body); err != nil {
		return 0, "", err
	}
	resp, err := http.ReadResponse(h.r, nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// shutDown checks a service's SIGTERM: with requests held in flight on its
// public port, /readyz answers 503 "shutdown" on the admin address and the
// public port refuses new connections while each request finishes with its
// whole answer; the service then returns no error, and every socket it
// opened is released.
func (s *service) shutDown(held ...*heldRequest) {
	t := s.t
	t.Helper()
	s.cancel()
	if len(held) > 0 {
		testenv.WaitFor(t, 30*time.Second, s.name+" not ready on its admin address while draining", func() bool {
			code, body, err := get("http://" + s.addrs["admin"] + "/readyz")
			return err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "shutdown")
		})
		testenv.WaitFor(t, 30*time.Second, s.name+"'s public port refusing new connections", func() bool {
			return refuses(s.addrs["http"])
		})
	}
	for _, h := range held {
		code, body, err := h.finish()
		if err != nil || !h.answered(code, body) {
			t.Errorf("%s: %s in flight at the shutdown: %d %q %v, want its whole answer", s.name, h.what, code, body, err)
		}
	}
	select {
	case err := <-s.done:
		s.exited, s.err = true, err
		if err != nil {
			t.Errorf("%s: shutdown: %v", s.name, err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s did not stop", s.name)
	}
	for name, a := range s.addrs {
		switch name {
		case "rtp", "rtcp", "webrtc_udp":
			c, err := net.ListenPacket("udp", a)
			if err != nil {
				t.Errorf("%s: %s socket %s still open after the shutdown: %v", s.name, name, a, err)
				continue
			}
			c.Close()
		default:
			if !refuses(a) {
				t.Errorf("%s: %s address %s still takes connections after the shutdown", s.name, name, a)
			}
		}
	}
}

// TestServicesShutDown runs every service as its command does, on the real
// PostgreSQL, a Kafka-protocol broker and a blob directory, each with every
// address on port 0 (the test learns them from --addr-file), and stops each
// as SIGTERM does. The registry keeps a login in flight and ingest a WHIP
// offer: each is answered whole while the service already says it is not
// ready and refuses new connections. Every service returns no error and
// releases every socket it opened, TCP and UDP.
func TestServicesShutDown(t *testing.T) {
	// The commands read NOKSTREAM_* from the environment; ingest refuses a
	// database.
	t.Setenv("NOKSTREAM_DB", "")
	t.Setenv("NOKSTREAM_KAFKA_TOPIC_PREFIX", testenv.TopicPrefix(t))
	dsn := testenv.Postgres(t)
	kafka := strings.Join(testenv.Kafka(t), ",")
	dir := t.TempDir()
	blobDir := filepath.Join(dir, "blob")
	common := func(name string) []string {
		return []string{"--data", filepath.Join(dir, name), "--blob", blobDir, "--kafka", kafka, "--http-addr", "127.0.0.1:0"}
	}

	registry := startService(t, append([]string{"registry", "--db", dsn}, common("registry")...)...)

	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	storetest.Org(t, st, "council1", "center1", "site1")
	secret, err := st.AddDevice(ctx, "site1", "webcam1", store.KindWebcam)
	if err != nil {
		t.Fatal(err)
	}
	out, err := runNode(t, dsn, "add", "edge1")
	if err != nil {
		t.Fatalf("node add: %v", err)
	}
	tokenFile := filepath.Join(dir, "node.token")
	if err := os.WriteFile(tokenFile, []byte(lastWord(out)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	ingest := startService(t, append(append([]string{"ingest"}, common("ingest")...),
		"--registry", "http://"+registry.addrs["http"], "--registry-token-file", tokenFile, "--node", "edge1",
		"--rtsp-addr", "127.0.0.1:0", "--rtp-addr", "127.0.0.1:0", "--rtcp-addr", "127.0.0.1:0",
		"--webrtc-udp-addr", "127.0.0.1:0", "--webrtc-tcp-addr", "127.0.0.1:0")...)
	archiver := startService(t, append([]string{"archiver", "--db", dsn}, common("archiver")...)...)
	transcoder := startService(t, append([]string{"transcoder"}, common("transcoder")...)...)

	for _, name := range []string{"admin", "http", "rtsp", "rtp", "rtcp", "webrtc_udp", "webrtc_tcp"} {
		if ingest.addrs[name] == "" {
			t.Errorf("ingest's --addr-file has no %s address: %v", name, ingest.addrs)
		}
	}
	if c, err := net.DialTimeout("tcp", ingest.addrs["rtsp"], 10*time.Second); err != nil {
		t.Errorf("ingest's rtsp address %s: %v", ingest.addrs["rtsp"], err)
	} else {
		c.Close()
	}

	ingest.shutDown(holdOffer(t, ingest.addrs["http"], secret))
	transcoder.shutDown()
	archiver.shutDown()
	registry.shutDown(holdLogin(t, registry.addrs["http"]))
}

// holdOffer holds a webcam's WHIP offer whose body is still coming: it is
// answered (400, the offer is no SDP; or 503, the endpoint stopping) rather
// than cut.
func holdOffer(t *testing.T, addr, secret string) *heldRequest {
	return holdRequest(t, addr, "POST", "/whip/site1/webcam1",
		map[string]string{"Authorization": "Bearer " + secret, "Content-Type": "application/sdp"}, "not an sdp offer",
		func(code int, body string) bool {
			return (code == http.StatusBadRequest || code == http.StatusServiceUnavailable) && body != ""
		})
}

// holdLogin holds a login whose body is still coming: it is answered 401
// with the API's JSON error.
func holdLogin(t *testing.T, addr string) *heldRequest {
	return holdRequest(t, addr, "POST", "/api/v1/auth/login",
		map[string]string{"Content-Type": "application/json"}, `{"login":"nobody","password":"not-a-password"}`,
		func(code int, body string) bool { return code == http.StatusUnauthorized && json.Valid([]byte(body)) })
}

// TestAllShutsDown is TestServicesShutDown for `nokstream all`: every
// service in one process, on the in-process bus and a blob directory, with
// a WHIP offer and a login held in flight on its one public port.
func TestAllShutsDown(t *testing.T) {
	dsn := testenv.Postgres(t)
	all := startService(t, "all", "--db", dsn, "--data", t.TempDir(), "--http-addr", "127.0.0.1:0",
		"--rtsp-addr", "127.0.0.1:0", "--rtp-addr", "127.0.0.1:0", "--rtcp-addr", "127.0.0.1:0",
		"--webrtc-udp-addr", "127.0.0.1:0")
	for _, name := range []string{"admin", "http", "rtsp", "rtp", "rtcp", "webrtc_udp"} {
		if all.addrs[name] == "" {
			t.Errorf("all's --addr-file has no %s address: %v", name, all.addrs)
		}
	}
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	storetest.Org(t, st, "council1", "center1", "site1")
	secret, err := st.AddDevice(ctx, "site1", "webcam1", store.KindWebcam)
	if err != nil {
		t.Fatal(err)
	}
	all.shutDown(holdOffer(t, all.addrs["http"], secret), holdLogin(t, all.addrs["http"]))
}
