package index_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
)

// countingIndexer is a BatchIndexer that records batch sizes and is slow
// enough for requests to pile up.
type countingIndexer struct {
	mu      sync.Mutex
	batches []int
	seen    map[string]bool
}

func (c *countingIndexer) IndexSegments(_ context.Context, evs []*events.SegmentClosed) ([]bool, []error, error) {
	time.Sleep(20 * time.Millisecond) // a database round trip
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches = append(c.batches, len(evs))
	ins, errs := make([]bool, len(evs)), make([]error, len(evs))
	for i, e := range evs {
		if e.Sequence < 0 {
			errs[i] = fmt.Errorf("%w: negative", store.ErrInvalid)
			continue
		}
		ins[i] = !c.seen[e.SegmentID]
		c.seen[e.SegmentID] = true
	}
	return ins, errs, nil
}

// TestBatcher: handlers running side by side share batches, each gets its
// own outcome, and a poison event is still dead-lettered alone.
func TestBatcher(t *testing.T) {
	t.Parallel()
	ci := &countingIndexer{seen: map[string]bool{}}
	b := index.NewBatcher(ci, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	h := index.Handler(b, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var wg sync.WaitGroup
	results := make([]error, 40)
	const poison = 17 // refused by the store: a negative sequence
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := events.SegmentClosed{SegmentID: fmt.Sprintf("seg-%d", i), StreamID: "site1/cam1", Site: "site1", Device: "cam1",
				Sequence: int64(i), Start: time.Now(), Duration: 6, SHA256: fmt.Sprintf("%064d", i), Chain: fmt.Sprintf("%064d", i),
				ObjectKey: "k", InitKey: "i"}
			if i == poison {
				ev.Sequence = -1
			}
			v, _ := json.Marshal(ev)
			results[i] = h(ctx, bus.Message{Topic: events.TopicSegments, Value: v})
		}()
	}
	wg.Wait()
	for i, err := range results {
		switch {
		case i == poison && !bus.IsPermanent(err):
			t.Errorf("poison event %d: %v, want a permanent error (dead-lettered)", i, err)
		case i != poison && err != nil:
			t.Errorf("event %d, batched with a poison event: %v", i, err)
		}
	}
	ci.mu.Lock()
	defer ci.mu.Unlock()
	if len(ci.batches) >= 40 || len(ci.seen) != 39 || ci.seen[fmt.Sprintf("seg-%d", poison)] {
		t.Errorf("40 concurrent events, one poison, took %d batches (%v), %d stored, want 39", len(ci.batches), ci.batches, len(ci.seen))
	}
}
