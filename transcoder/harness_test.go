package transcoder

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// harness runs a Service over a durable in-process bus and a directory
// blob store, and collects what it publishes.
type harness struct {
	t      *testing.T
	cfg    Config
	dir    string
	bus    *bus.Local
	blobs  *blob.Dir
	cancel context.CancelFunc // of the collectors
	// svcCancel stops the running Service, which sends its result on done.
	svcCancel context.CancelFunc
	done      chan error
	// met is the running Service's metrics.
	met *metrics

	mu           sync.Mutex
	renditions   map[string]*events.RenditionReady // by segment id
	announced    int
	observations []events.Observation
	dead         []bus.Message
	// barriers counts the markers settle put on the observations topic.
	barriers int
}

// barrierKey marks the harness's own messages on the observations topic.
const barrierKey = "test-barrier"

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testConfig is the default configuration with one worker.
func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Workers = 1
	return cfg
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	dir := t.TempDir()
	b, err := bus.NewLocal(filepath.Join(dir, "bus"), testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := blob.NewDir(filepath.Join(dir, "blob"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, cfg: cfg, dir: dir, bus: b, blobs: st, renditions: map[string]*events.RenditionReady{}}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	var wg sync.WaitGroup
	collect := func(topic string, fn func(m bus.Message) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = b.Consume(ctx, topic, "test", func(_ context.Context, m bus.Message) error {
				h.mu.Lock()
				defer h.mu.Unlock()
				return fn(m)
			})
		}()
	}
	collect(events.TopicRenditions, func(m bus.Message) error {
		rr, err := events.DecodeRenditionReady(m.Value)
		if err != nil {
			t.Errorf("bad rendition event: %v", err)
			return nil
		}
		h.renditions[rr.SegmentID] = rr
		h.announced++
		return nil
	})
	collect(events.TopicObservations, func(m bus.Message) error {
		if m.Key == barrierKey {
			h.barriers++
			return nil
		}
		o, err := events.DecodeObservation(m.Value)
		if err != nil {
			t.Errorf("bad observation: %v", err)
			return nil
		}
		h.observations = append(h.observations, *o)
		return nil
	})
	collect(bus.DeadLetterTopic(events.TopicSegments), func(m bus.Message) error {
		h.dead = append(h.dead, m)
		return nil
	})
	h.start()
	t.Cleanup(func() {
		h.stop()
		cancel()
		wg.Wait()
		if err := b.Close(); err != nil {
			t.Errorf("close bus: %v", err)
		}
	})
	return h
}

// start runs a new Service on the harness's bus and store.
func (h *harness) start() {
	h.t.Helper()
	svc, err := New(h.cfg, Deps{Bus: h.bus, Blob: h.blobs, Log: testLogger(h.t), Registry: prometheus.NewRegistry()})
	if err != nil {
		h.t.Fatal(err)
	}
	h.met = svc.met
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	h.svcCancel, h.done = cancel, done
}

// stop stops the running Service and waits for it.
func (h *harness) stop() {
	if h.svcCancel == nil {
		return
	}
	h.svcCancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("transcoder run: %v", err)
	}
	h.svcCancel = nil
}

// publish stores segments and publishes their events.
func (h *harness) publish(segs ...rawSegment) {
	h.t.Helper()
	storeSegments(h.t, h.blobs, segs)
	for _, s := range segs {
		b, _ := json.Marshal(s.event)
		if err := h.bus.Publish(context.Background(), events.TopicSegments, s.event.StreamID, b); err != nil {
			h.t.Fatal(err)
		}
	}
}

// wait waits until cond, called with the collected events, holds.
func (h *harness) wait(what string, cond func() bool) {
	h.t.Helper()
	testenv.WaitFor(h.t, 2*time.Minute, what, func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return cond()
	})
}

// waitDone waits until every segment has a rendition or is dead-lettered.
func (h *harness) waitDone(segs []rawSegment) {
	h.t.Helper()
	h.wait("every segment transcoded or dead-lettered", func() bool {
		for _, s := range segs {
			if _, ok := h.renditions[s.event.SegmentID]; ok {
				continue
			}
			dead := false
			for _, m := range h.dead {
				if ev, err := events.DecodeSegmentClosed(m.Value); err == nil && ev.SegmentID == s.event.SegmentID {
					dead = true
				}
			}
			if !dead {
				return false
			}
		}
		return true
	})
	h.settle()
}

// settle waits until the observations collector has read everything
// published on its topic so far. The transcoder publishes a segment's
// observations before its rendition, but the two topics are read by
// different collectors: without this, a test that saw the last rendition
// could look at the observations before they were read.
func (h *harness) settle() {
	h.t.Helper()
	h.mu.Lock()
	want := h.barriers + 1
	h.mu.Unlock()
	if err := h.bus.Publish(context.Background(), events.TopicObservations, barrierKey, []byte("{}")); err != nil {
		h.t.Fatal(err)
	}
	h.wait("the observations read", func() bool { return h.barriers >= want })
}

func (h *harness) get(key string) []byte {
	h.t.Helper()
	rc, err := h.blobs.Get(context.Background(), key)
	if err != nil {
		h.t.Fatalf("get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// file writes the concatenation of objects to a file for ffprobe.
func (h *harness) file(name string, parts ...[]byte) string {
	h.t.Helper()
	p := filepath.Join(h.t.TempDir(), name)
	if err := os.WriteFile(p, bytes.Join(parts, nil), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return p
}

// observed returns the observations of the kinds given, or of every kind.
func (h *harness) observed(kinds ...string) []events.Observation {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []events.Observation
	for _, o := range h.observations {
		if len(kinds) == 0 {
			out = append(out, o)
			continue
		}
		for _, k := range kinds {
			if o.Kind == k {
				out = append(out, o)
			}
		}
	}
	return out
}
