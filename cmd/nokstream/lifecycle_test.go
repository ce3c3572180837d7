package main

import (
	"bytes"
	"context"
	"fmt"
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
// --shutdown-timeout is cut, and the shutdown still ends.
func TestGracefulShutdown(t *testing.T) {
	was := shutdownTimeout
	shutdownTimeout = 2 * time.Second
	t.Cleanup(func() { shutdownTimeout = was })

	adminAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	publicAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	g := &globalFlags{adminAddrFlag: adminAddr}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p := &process{reg: obs.NewRegistry(), health: obs.NewHealth()}
	p.adminLoop = g.admin(log, "test", p.reg, p.health)

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

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- p.run(ctx, func(ctx context.Context) error { return serveHTTP(ctx, log, "test", publicAddr, public) })
	}()
	get := func(url string) (int, string, error) {
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		r, err := c.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, string(b), nil
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
		c, err := net.DialTimeout("tcp", publicAddr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
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
	if _, _, err := get("http://" + adminAddr + "/readyz"); err == nil {
		t.Errorf("the admin address still answers after the shutdown")
	}

	// A request that never finishes is cut at the timeout.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	p2 := &process{reg: obs.NewRegistry(), health: obs.NewHealth()}
	p2.adminLoop = g.admin(log, "test", p2.reg, p2.health)
	stuck := http.NewServeMux()
	unstick := make(chan struct{})
	t.Cleanup(func() { close(unstick) })
	stuck.HandleFunc("GET /stuck", func(http.ResponseWriter, *http.Request) {
		entered <- struct{}{}
		<-unstick // a handler that ignores its context
	})
	obs.RegisterLiveness(stuck)
	go func() {
		done <- p2.run(ctx2, func(ctx context.Context) error { return serveHTTP(ctx, log, "test", publicAddr, stuck) })
	}()
	testenv.WaitFor(t, 30*time.Second, "the second service ready", func() bool {
		code, _, err := get("http://" + publicAddr + "/healthz")
		return err == nil && code == 200
	})
	go func() { _, _, _ = get("http://" + publicAddr + "/stuck") }()
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
