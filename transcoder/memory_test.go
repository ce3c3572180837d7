package transcoder

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
)

// discardBus is a bus that forgets what is published, so that the memory
// measured below is the transcoder's own.
type discardBus struct{}

func (discardBus) Publish(context.Context, string, string, []byte) error { return nil }
func (discardBus) Consume(ctx context.Context, _, _ string, _ bus.Handler) error {
	<-ctx.Done()
	return nil
}

// TestMemoryFlat: handling segment after segment keeps nothing per segment.
// A transcoder that kept the bytes it decoded (go-astiav v0.16.0 keeps an
// IOContext's callbacks, and all they reach, for ever) grows by a segment's
// size, here about 100 KB, at every segment; the Go heap after a collection
// must grow by less than 8 KB a segment over 100 segments after 100 to warm
// up, and so must the C heap in use (FFmpeg's). The resident size is only
// logged: the allocators' slack makes it too noisy for a short test, and
// make soak judges it over minutes.
func TestMemoryFlat(t *testing.T) {
	clip := ffmpegFMP4(t, clipSpec{video: "testsrc2=size=480x270:rate=25", audio: "sine=frequency=440:sample_rate=48000",
		seconds: 8, bitrate: "400k"})
	segs := cutClip(t, clip, "cam1", events.SourceRoom, 2*time.Second, t0)
	st, err := blob.NewDir(filepath.Join(t.TempDir(), "blob"))
	if err != nil {
		t.Fatal(err)
	}
	storeSegments(t, st, segs)
	cfg := testConfig()
	cfg.Threads = 1
	svc, err := New(cfg, Deps{Bus: discardBus{}, Blob: st, Log: testLogger(t), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	var seq int64
	var at time.Time = t0
	handle := func(n int) {
		t.Helper()
		for range n {
			s := segs[int(seq)%len(segs)]
			ev := *s.event
			ev.SegmentID, ev.Sequence, ev.Start = ulid.Make().String(), seq, at
			seq++
			at = at.Add(seconds(ev.Duration))
			v, _ := json.Marshal(&ev)
			if err := svc.Handle(context.Background(), bus.Message{Topic: events.TopicSegments, Key: ev.StreamID, Value: v}); err != nil {
				t.Fatalf("segment %d: %v", seq-1, err)
			}
		}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	// Warm up: the C allocator's arenas (one per thread that calls into
	// FFmpeg) grow for the first hundred segments or so, then hold.
	handle(100)
	before, rssBefore, cBefore := heap(), residentBytes(t), cHeapBytes()
	const n = 100
	handle(n)

	after, rssAfter, cAfter := heap(), residentBytes(t), cHeapBytes()
	perSegment := (int64(after) - int64(before)) / n
	t.Logf("Go heap %d → %d bytes (%+d a segment); C heap %d → %d (%+d a segment); resident %d → %d (%+d a segment); segment %d bytes",
		before, after, perSegment, cBefore, cAfter, (cAfter-cBefore)/n, rssBefore, rssAfter, (rssAfter-rssBefore)/n, len(segs[1].data))
	if perSegment > 8<<10 {
		t.Errorf("the Go heap grows by %d bytes a segment transcoded (segments are %d bytes)", perSegment, len(segs[1].data))
	}
	// FFmpeg's memory: what is in use, and what the allocator keeps.
	if grow := (cAfter - cBefore) / n; grow > 8<<10 {
		t.Errorf("the C heap grows by %d bytes a segment transcoded", grow)
	}
}

// residentBytes is the process's resident memory, from /proc/self/statm.
func residentBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		t.Fatalf("parse /proc/self/statm: %v", err)
	}
	return resident * int64(os.Getpagesize())
}

// TestSegmentTooLarge: an announcement of a segment larger than the
// transcoder takes is refused for good (dead-lettered) without fetching a
// byte, whatever the store holds; one that announces fewer bytes than the
// store holds is refused without reading past the announcement.
func TestSegmentTooLarge(t *testing.T) {
	segs := cutClip(t, ffmpegFMP4(t, clipSpec{video: "testsrc2=size=160x90:rate=10", seconds: 2}), "cam1", events.SourceRoom, 2*time.Second, t0)
	st, err := blob.NewDir(filepath.Join(t.TempDir(), "blob"))
	if err != nil {
		t.Fatal(err)
	}
	storeSegments(t, st, segs)
	gets := &countingGets{Dir: st}
	svc, err := New(testConfig(), Deps{Bus: discardBus{}, Blob: gets, Log: testLogger(t), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		bytes   int64
		fetches bool
	}{{"above max_segment_bytes", 300 << 20, false}, {"fewer bytes than stored", segs[0].event.Bytes / 2, true}} {
		t.Run(tc.name, func(t *testing.T) {
			ev := *segs[0].event
			ev.SegmentID, ev.Bytes = ulid.Make().String(), tc.bytes
			v, _ := json.Marshal(&ev)
			err := svc.Handle(context.Background(), bus.Message{Topic: events.TopicSegments, Key: ev.StreamID, Value: v})
			if !bus.IsPermanent(err) {
				t.Errorf("Handle: %v, want a permanent refusal", err)
			}
			if n := gets.segmentGets.Swap(0); (n > 0) != tc.fetches {
				t.Errorf("the segment was fetched %d times, want fetched: %v", n, tc.fetches)
			}
		})
	}
}

// countingGets is a directory store that counts the reads of raw segments.
type countingGets struct {
	*blob.Dir
	segmentGets atomic.Int64
}

func (c *countingGets) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.HasSuffix(key, ".m4s") {
		c.segmentGets.Add(1)
	}
	return c.Dir.Get(ctx, key)
}
