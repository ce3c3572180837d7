package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/obs"
	"github.com/nokstream/nokstream/internal/testenv"
)

// TestSecondSignalExits: the first signal starts the graceful shutdown and
// nothing more; the second exits at once with 130.
func TestSecondSignalExits(t *testing.T) {
	sigs := make(chan os.Signal, 2)
	cancelled := make(chan struct{})
	exited := make(chan int, 1)
	var stderr syncBuffer
	go onSignals(sigs, func() { close(cancelled) }, &stderr, func(code int) { exited <- code })
	sigs <- syscall.SIGTERM
	<-cancelled
	select {
	case code := <-exited:
		t.Fatalf("exited with %d on the first signal", code)
	default:
	}
	sigs <- syscall.SIGINT
	if code := <-exited; code != 130 {
		t.Errorf("second signal: exit %d, want 130", code)
	}
	if out := stderr.String(); !strings.Contains(out, "shutting down") || !strings.Contains(out, "exiting now") {
		t.Errorf("stderr %q does not say what happens", out)
	}
}

// TestGracefulShutdown: on shutdown the service says it is not ready on
// its admin address at once, its public port stops taking connections,
// the request in flight finishes with its full answer, and only then does
// the admin address close. A request that does not finish within
// --shutdown-timeout is cut, and the shutdown still ends. Both addresses
// are opened on port 0 before the service runs, and the test uses the
// ports the kernel picked.
func TestGracefulShutdown(t *testing.T) {
	g := &globalFlags{adminAddrFlag: "127.0.0.1:0", shutdownTimeout: 2 * time.Second}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func(h http.Handler) (p *process, adminAddr, publicAddr string, serve func(context.Context) error) {
		t.Helper()
		p = newProcess(log)
		if err := p.openAdmin(g, "test"); err != nil {
			t.Fatal(err)
		}
		ln, err := p.listen("http", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.close)
		adminAddr, publicAddr = boundAddrOf(t, p, "admin"), ln.Addr().String()
		if publicAddr == "127.0.0.1:0" || adminAddr == "127.0.0.1:0" {
			t.Fatalf("listeners report %s and %s, not the ports they are bound to", adminAddr, publicAddr)
		}
		serve = func(ctx context.Context) error { return p.serveHTTP(ctx, "http", ln, h) }
		return p, adminAddr, publicAddr, serve
	}

	entered, release := make(chan struct{}, 4), make(chan struct{})
	public := http.NewServeMux()
	public.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-release:
			_, _ = w.Write([]byte("the whole answer"))
		case <-r.Context().Done():
		}
	})
	obs.RegisterLiveness(public)
	p, adminAddr, publicAddr, serve := start(public)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.run(ctx, serve) }()
	// The ports answer at once: they were open before run.
	if code, _, err := get("http://" + adminAddr + "/healthz"); err != nil || code != 200 {
		t.Fatalf("admin /healthz right after run started: %d %v", code, err)
	}
	testenv.WaitFor(t, 30*time.Second, "the service ready", func() bool {
		code, _, err := get("http://" + adminAddr + "/readyz")
		code2, _, err2 := get("http://" + publicAddr + "/healthz")
		return err == nil && code == 200 && err2 == nil && code2 == 200
	})

	type answer struct {
		code int
		body string
		err  error
	}
	inflight := make(chan answer, 1)
	go func() {
		code, body, err := get("http://" + publicAddr + "/slow")
		inflight <- answer{code, body, err}
	}()
	<-entered
	cancel() // SIGTERM

	testenv.WaitFor(t, 30*time.Second, "not ready on the admin address while draining", func() bool {
		code, body, err := get("http://" + adminAddr + "/readyz")
		return err == nil && code == http.StatusServiceUnavailable && strings.Contains(body, "shutdown")
	})
	testenv.WaitFor(t, 30*time.Second, "the public port refusing new connections", func() bool {
		return refuses(publicAddr)
	})
	select {
	case a := <-inflight:
		t.Fatalf("the request in flight ended before it was answered: %+v", a)
	default:
	}
	close(release)
	if a := <-inflight; a.err != nil || a.code != 200 || a.body != "the whole answer" {
		t.Errorf("the request in flight: %+v, want its whole answer", a)
	}
	if err := <-done; err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if !refuses(adminAddr) {
		t.Errorf("the admin address still answers after the shutdown")
	}

	// A request that never finishes is cut at the timeout.
	stuck := http.NewServeMux()
	unstick := make(chan struct{})
	t.Cleanup(func() { close(unstick) })
	stuck.HandleFunc("GET /stuck", func(http.ResponseWriter, *http.Request) {
		entered <- struct{}{}
		<-unstick // a handler that ignores its context
	})
	obs.RegisterLiveness(stuck)
	p2, _, publicAddr2, serve2 := start(stuck)
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go func() { done <- p2.run(ctx2, serve2) }()
	go func() { _, _, _ = get("http://" + publicAddr2 + "/stuck") }()
	<-entered
	cancel2()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("shutdown with a stuck request: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the shutdown waited for a stuck request beyond --shutdown-timeout")
	}
}

// TestLoopsOutlivingTheTimeout: a service loop that ignores the shutdown is
// left behind once --shutdown-timeout and the grace have passed, and run
// says so, so that the process exits rather than hanging.
func TestLoopsOutlivingTheTimeout(t *testing.T) {
	p := newProcess(slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.shutdownTimeout, p.stopGrace = time.Millisecond, 100*time.Millisecond
	unstick := make(chan struct{})
	defer close(unstick)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.run(ctx, func(context.Context) error { <-unstick; return nil }) }()
	cancel()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "did not stop") {
			t.Errorf("run: %v, want an error saying the service did not stop", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("run waited for a loop that ignores the shutdown")
	}
}

// get answers a GET on a new connection.
func get(url string) (int, string, error) {
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	r, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return r.StatusCode, string(b), nil
}

// refuses reports whether a TCP address refuses connections.
func refuses(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err != nil
}

// boundAddrOf returns the address the process's listener called name is
// bound to.
func boundAddrOf(t *testing.T, p *process, name string) string {
	t.Helper()
	for _, a := range p.addrs {
		if a.name == name {
			return a.addr
		}
	}
	t.Fatalf("no listener %s in %v", name, p.addrs)
	return ""
}

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
