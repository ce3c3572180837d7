package ingest_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/ingest"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/events"
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
	cfg.RTSP.Addr = "127.0.0.1:0"
	cfg.RTSP.UDPRTPAddr, cfg.RTSP.UDPRTCPAddr = "", ""
	cfg.WHIP.UDPAddr = "127.0.0.1:0"
	cfg.RTSP.Segment.SegmentDuration = 2 * time.Second
	cfg.SpoolMaxBytes = 300 << 10
	health := obs.NewHealth()
	reg := prometheus.NewRegistry()
	svc, err := ingest.New(cfg, ingest.Deps{Checker: anyDevice{}, Blob: downStore{store}, Publisher: nopPublisher{},
		Log: log, Registry: reg, Health: health, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	cfg.RTSP.Addr = svc.Addrs().RTSP
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
	// Nothing deleted: every segment of the running publisher is in the
	// spool, waiting for the blob store, whole and in sequence.
	testenv.WaitFor(t, 20*time.Second, "the last segment of cam1 closed", func() bool {
		return len(spooled(t, cfg.SpoolDir)) > 0 && gather(reg, "nokstream_ingest_streams_active") == 0
	})
	evs := spooled(t, cfg.SpoolDir)
	if len(evs) < 4 {
		t.Errorf("%d segments of 10 s at 2 s a segment in the spool, want at least 4", len(evs))
	}
	for i, ev := range evs {
		if ev.StreamID != "site1/cam1" || ev.Sequence != int64(i) {
			t.Errorf("spooled segment %d: %s sequence %d, want site1/cam1 %d: one is missing", i, ev.StreamID, ev.Sequence, i)
		}
		fi, err := os.Stat(filepath.Join(cfg.SpoolDir, "ready", ev.SegmentID+".m4s"))
		if err != nil || fi.Size() != ev.Bytes {
			t.Errorf("spooled segment %d: %v, want its %d bytes", i, err, ev.Bytes)
		}
	}
}

// spooled returns the SegmentClosed events of the segments waiting in a
// spool, by stream and sequence.
func spooled(t *testing.T, dir string) []*events.SegmentClosed {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "ready", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*events.SegmentClosed
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var pf struct {
			Event *events.SegmentClosed `json:"event"`
		}
		if err := json.Unmarshal(b, &pf); err != nil || pf.Event == nil {
			t.Fatalf("spool file %s: %v", p, err)
		}
		out = append(out, pf.Event)
	}
	slices.SortFunc(out, func(a, b *events.SegmentClosed) int {
		return cmp.Or(cmp.Compare(a.StreamID, b.StreamID), cmp.Compare(a.Sequence, b.Sequence))
	})
	return out
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
