package rtsp_test

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/ingest/rtsp"
	"github.com/nokstream/nokstream/internal/testenv"
)

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestIdleConnectionsCostLittle: connections that never authenticate (a
// scanner, or someone holding sockets open to exhaust the server) each
// cost ingest a few kilobytes of memory, not a recording publisher's read
// buffer. Not parallel: it measures the process's heap.
func TestIdleConnectionsCostLittle(t *testing.T) {
	s := startServer(t, nil)
	const conns = 200 // under the default cap of pending connections from one address
	before := liveHeap()
	var open []net.Conn
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	for i := range conns {
		c, err := net.DialTimeout("tcp", s.cfg.Addr, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		open = append(open, c)
		// One request answered: the server has taken the connection in
		// and is reading it.
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := fmt.Fprintf(c, "OPTIONS rtsp://%s/site1/cam1 RTSP/1.0\r\nCSeq: 1\r\n\r\n", s.cfg.Addr); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.Contains(line, "200") {
			t.Fatalf("connection %d: OPTIONS answered %q, %v", i, line, err)
		}
	}
	after := liveHeap()
	per := (int64(after) - int64(before)) / conns
	t.Logf("%d idle connections: %d bytes of heap each", conns, per)
	// gortsplib's own state of a connection is ~10 KB; a 64 KB read
	// buffer each would be over 70.
	if per > 32<<10 {
		t.Errorf("an idle, unauthenticated connection holds %d KB of heap; want under 32 KB", per>>10)
	}
}

// options sends an OPTIONS on c and reads the status line of its answer.
func options(t *testing.T, c net.Conn, addr string) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(c, "OPTIONS rtsp://%s/site1/cam1 RTSP/1.0\r\nCSeq: 1\r\n\r\n", addr); err != nil {
		return ""
	}
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

// TestConnectionsThatNeverRecordAreBounded: gortsplib keeps a connection
// with no session open for ever. A connection that has not started
// recording within the handshake timeout is closed, an address holding its
// maximum of such connections has the next ones closed at accept, and
// neither touches a publisher that records (longer than the timeout) from
// that same address.
func TestConnectionsThatNeverRecordAreBounded(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *rtsp.Config) {
		c.HandshakeTimeout = 3 * time.Second
		c.MaxPendingPerAddress = 3
	})
	var pubErr error
	var pubStderr string
	published := make(chan struct{})
	go func() {
		defer close(published)
		pubStderr, pubErr = publish(t, "rtsp://cam1:s3cret-cam1@"+s.cfg.Addr+"/site1/cam1", 6, "aac", "tcp")
	}()
	testenv.WaitFor(t, 20*time.Second, "the publisher to record", func() bool {
		return strings.Contains(s.log.String(), "rtsp publisher recording")
	})

	// Three idle connections are served; the fourth from the same address
	// is closed at once.
	var idle []net.Conn
	for i := range 3 {
		c, err := net.Dial("tcp", s.cfg.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if status := options(t, c, s.cfg.Addr); !strings.Contains(status, "200") {
			t.Fatalf("idle connection %d: OPTIONS answered %q, want 200", i, status)
		}
		idle = append(idle, c)
	}
	extra, err := net.Dial("tcp", s.cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if status := options(t, extra, s.cfg.Addr); status != "" {
		t.Errorf("a fourth idle connection from one address was answered %q; want it closed", status)
	}
	if n := counterSum(t, s.reg, "nokstream_ingest_publishers_refused_total", "reason", "connection_limit"); n < 1 {
		t.Errorf("refused{reason=connection_limit} = %v, want at least 1", n)
	}

	// The idle ones are closed by the handshake timeout.
	for i, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		if n, err := c.Read(make([]byte, 1)); err == nil || n > 0 || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("idle connection %d was still open after the handshake timeout (read %d bytes, %v)", i, n, err)
		}
	}
	if n := counterSum(t, s.reg, "nokstream_ingest_publishers_refused_total", "reason", "handshake_timeout"); n < 3 {
		t.Errorf("refused{reason=handshake_timeout} = %v, want at least 3", n)
	}
	// Their places are free again.
	again, err := net.Dial("tcp", s.cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if status := options(t, again, s.cfg.Addr); !strings.Contains(status, "200") {
		t.Errorf("a new connection after the idle ones were closed: %q, want 200", status)
	}

	<-published
	if pubErr != nil {
		t.Errorf("the recording publisher was cut off: %v (%s)", pubErr, lastLine(pubStderr))
	}
	if got := s.streamSeconds(t, "site1/cam1"); got < 5 {
		t.Errorf("the recording publisher's stream has %.1f s spooled, want its 6 s", got)
	}
}
