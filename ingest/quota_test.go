package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/ingest"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/obs"
	"github.com/nokstream/nokstream/internal/testenv"
)

// downStore is a blob store that is down: nothing leaves the spool.
type downStore struct{ blob.Store }

func (downStore) Put(context.Context, string, io.Reader, int64) error {
	return fmt.Errorf("blob store down")
}

// TestSpoolQuotaRefusesNewPublishers: with the blob store down the spool
// fills; near its quota ingest reports not ready and refuses a new
// publisher with 503, while the running one goes on recording and nothing
// is deleted.
func TestSpoolQuotaRefusesNewPublishers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var logBuf bytes.Buffer
	lw := &syncWriter{b: &logBuf}
	log := slog.New(slog.NewTextHandler(lw, nil))
	store, err := blob.NewDir(filepath.Join(dir, "blob"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := ingest.DefaultConfig(dir)
	cfg.RTSP.Addr = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg.RTSP.UDPRTPAddr, cfg.RTSP.UDPRTCPAddr = "", ""
	cfg.RTSP.Segment.SegmentDuration = 2 * time.Second
	cfg.SpoolMaxBytes = 300 << 10
	health := obs.NewHealth()
	svc, err := ingest.New(cfg, ingest.Deps{Checker: anyDevice{}, Blob: downStore{store}, Publisher: nopPublisher{},
		Log: log, Registry: prometheus.NewRegistry(), Health: health, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	first := make(chan error, 1)
	var firstErr bytes.Buffer
	go func() {
		cmd := exec.Command(testenv.Tool(t, "ffmpeg"), testenv.PublishArgs("rtsp://a:b@"+cfg.RTSP.Addr+"/site1/cam1", 10, "640x360", 25, "aac", "tcp")...)
		cmd.Stderr = &firstErr
		first <- cmd.Run()
	}()
	testenv.WaitFor(t, 20*time.Second, "the spool to reach 90% of its quota", func() bool {
		_, failed := health.Ready(context.Background())["ingest_spool_quota"]
		return failed
	})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	cmd := exec.CommandContext(ctx2, testenv.Tool(t, "ffmpeg"), testenv.PublishArgs("rtsp://a:b@"+cfg.RTSP.Addr+"/site1/cam2", 2, "320x240", 25, "", "tcp")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil || !strings.Contains(stderr.String(), "503") {
		t.Errorf("new publisher with the spool near its quota: err %v, ffmpeg says %q; want 503", err, stderr.String())
	}
	if err := <-first; err != nil {
		t.Errorf("the running publisher was cut off: %v: %s", err, firstErr.String())
	}
	lw.mu.Lock()
	logged := logBuf.String()
	lw.mu.Unlock()
	if !strings.Contains(logged, "ALERT spool near its quota") {
		t.Errorf("no alarm in the log")
	}
}

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, string, string, []byte) error { return nil }

type syncWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}
