package bus_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/bus"
)

func TestBatchConformance(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, b bus.Bus)
	}{
		{"batches keep key order, lose nothing and respect max", testBatchOrder},
		{"a poison message dead-letters alone, the rest of its batch is handled", testBatchPoison},
		{"a transient error retries the whole batch", testBatchRetry},
		{"a consumer stopped mid-batch: the batch is delivered again, committed ones are not", testBatchRestart},
	}
	for _, impl := range impls() {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, impl.open(t))
				})
			}
		})
	}
}

func TestBatchOptionsInvalid(t *testing.T) {
	t.Parallel()
	l, err := bus.NewLocal("", testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer closeBus(t, l)
	err = l.ConsumeBatch(t.Context(), topic, "g", bus.BatchOptions{Max: -1}, func(context.Context, []bus.Message) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "batch max -1 is negative") {
		t.Errorf("ConsumeBatch with Max -1: %v, want a clear error", err)
	}
}

// batchRecorder records the batches a handler accepted.
type batchRecorder struct {
	mu      sync.Mutex
	batches [][]bus.Message
}

func (r *batchRecorder) ok(_ context.Context, ms []bus.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, slices.Clone(ms))
	return nil
}

func (r *batchRecorder) all() []bus.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Concat(r.batches...)
}

func (r *batchRecorder) len() int { return len(r.all()) }

func (r *batchRecorder) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []int
	for _, b := range r.batches {
		s = append(s, len(b))
	}
	return s
}

func startBatchConsumer(t *testing.T, b bus.Bus, topic, group string, o bus.BatchOptions, h bus.BatchHandler) (stop func()) {
	t.Helper()
	bc, ok := b.(bus.BatchConsumer)
	if !ok {
		t.Fatalf("%T does not consume in batches", b)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bc.ConsumeBatch(ctx, topic, group, o, h) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("consume %s in %s: %v", topic, group, err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("consume %s in %s: still running 30s after cancel", topic, group)
		}
	})
	t.Cleanup(stop)
	return stop
}

// testBatchOrder: a backlog is handed out in batches of more than one and
// at most Max, every message once, each key's in order.
func testBatchOrder(t *testing.T, b bus.Bus) {
	const keys, perKey, max = 4, 50, 32
	publishKeyed(t, b, keys, perKey)
	rec := &batchRecorder{}
	startBatchConsumer(t, b, topic, "batch-order", bus.BatchOptions{Max: max, Linger: 20 * time.Millisecond}, rec.ok)
	waitFor(t, 30*time.Second, func() bool { return rec.len() >= keys*perKey }, "all messages consumed")

	if got := distinct(rec.all()); got != keys*perKey || rec.len() != keys*perKey {
		t.Errorf("handled %d messages, %d distinct, want %d once each", rec.len(), got, keys*perKey)
	}
	sizes := rec.sizes()
	if slices.Max(sizes) > max {
		t.Errorf("batch sizes %v: one above max %d", sizes, max)
	}
	if len(sizes) >= keys*perKey {
		t.Errorf("batch sizes %v: a backlog of %d was handed out one at a time", sizes, keys*perKey)
	}
	byKey := map[string][]int{}
	for _, m := range rec.all() {
		byKey[m.Key] = append(byKey[m.Key], seqOf(t, m))
	}
	for key, seq := range byKey {
		if want := countTo(perKey); !slices.Equal(seq, want) {
			t.Errorf("key %s: got sequence %v, want %v", key, seq, want)
		}
	}
}

// testBatchPoison: the handler rejects every batch holding key0/2 as
// Permanent. Every other message is handled once, key0/2 is dead-lettered
// with the handler's error, and nothing is lost.
func testBatchPoison(t *testing.T, b bus.Bus) {
	const perKey = 10
	publishKeyed(t, b, 2, perKey)
	rec := &batchRecorder{}
	startBatchConsumer(t, b, topic, "batch-poison", bus.BatchOptions{Max: 100, Linger: 20 * time.Millisecond},
		func(ctx context.Context, ms []bus.Message) error {
			for _, m := range ms {
				if string(m.Value) == "key0/2" {
					return fmt.Errorf("decode event: %w", bus.Permanent(errors.New("bad payload")))
				}
			}
			return rec.ok(ctx, ms)
		})
	dlq := &recorder{}
	startConsumer(t, b, bus.DeadLetterTopic(topic), "dlq-reader", dlq.ok)
	waitFor(t, 30*time.Second, func() bool { return rec.len() >= 2*perKey-1 && dlq.len() >= 1 }, "messages handled and dead-lettered")

	seen := map[string]int{}
	for _, m := range rec.all() {
		seen[string(m.Value)]++
	}
	for k := range 2 {
		for i := range perKey {
			v := fmt.Sprintf("key%d/%d", k, i)
			want := 1
			if v == "key0/2" {
				want = 0
			}
			if seen[v] != want {
				t.Errorf("%s handled %d times, want %d", v, seen[v], want)
			}
		}
	}
	var key0 []int
	for _, m := range rec.all() {
		if m.Key == "key0" {
			key0 = append(key0, seqOf(t, m))
		}
	}
	if want := []int{0, 1, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(key0, want) {
		t.Errorf("key0 handled in order %v, want %v", key0, want)
	}
	d := dlq.all()
	if len(d) != 1 || string(d[0].Value) != "key0/2" {
		t.Fatalf("dead-letter topic holds %v, want key0/2 alone", d)
	}
	if e := d[0].Headers[bus.HeaderError]; !strings.Contains(e, "decode event: bad payload") {
		t.Errorf("dead letter error header %q, want the handler's error", e)
	}
	if d[0].Headers[bus.HeaderGroup] != "batch-poison" {
		t.Errorf("dead letter headers %v, want group batch-poison", d[0].Headers)
	}
}

// testBatchRetry: a batch failing with a retryable error is handed out again
// whole, and nothing after it is handled meanwhile.
func testBatchRetry(t *testing.T, b bus.Bus) {
	publishKeyed(t, b, 1, 10)
	var (
		mu       sync.Mutex
		failures int
		calls    [][]int
	)
	rec := &batchRecorder{}
	startBatchConsumer(t, b, topic, "batch-retry", bus.BatchOptions{Max: 100, Linger: 20 * time.Millisecond},
		func(ctx context.Context, ms []bus.Message) error {
			var seq []int
			for _, m := range ms {
				seq = append(seq, seqOf(t, m))
			}
			mu.Lock()
			calls = append(calls, seq)
			fail := failures < 2
			if fail {
				failures++
			}
			mu.Unlock()
			if fail {
				return errors.New("registry unavailable")
			}
			return rec.ok(ctx, ms)
		})
	waitFor(t, 30*time.Second, func() bool { return rec.len() >= 10 }, "all messages consumed")
	mu.Lock()
	defer mu.Unlock()
	if len(calls) < 3 || !slices.Equal(calls[0], calls[1]) || !slices.Equal(calls[1], calls[2]) {
		t.Errorf("handler calls %v: want the failed batch handed out again whole, twice", calls)
	}
	if got := distinct(rec.all()); got != 10 || rec.len() != 10 {
		t.Errorf("handled %d messages, %d distinct, want 10 once each", rec.len(), got)
	}
}

// testBatchRestart stops a consumer while a batch is in its handler, and
// starts another in the group: it gets that batch's messages again, and none
// of the batches committed before.
func testBatchRestart(t *testing.T, b bus.Bus) {
	const total = 40
	o := bus.BatchOptions{Max: 5, Linger: 20 * time.Millisecond}
	publishKeyed(t, b, 4, total/4)
	first := &batchRecorder{}
	var inFlight []bus.Message
	blocked := make(chan struct{})
	stop := startBatchConsumer(t, b, topic, "batch-restart", o, func(ctx context.Context, ms []bus.Message) error {
		if first.len() < 15 {
			return first.ok(ctx, ms)
		}
		inFlight = slices.Clone(ms)
		close(blocked)
		<-ctx.Done()
		return ctx.Err()
	})
	waitClosed(t, blocked, "a batch after the 15th message to be handed out")
	stop()

	second := &batchRecorder{}
	startBatchConsumer(t, b, topic, "batch-restart", o, second.ok)
	want := total - first.len()
	waitFor(t, 60*time.Second, func() bool { return second.len() >= want }, "the remaining messages")

	seen := map[string]bool{}
	for _, m := range first.all() {
		seen[string(m.Value)] = true
	}
	again := map[string]bool{}
	for _, m := range second.all() {
		if seen[string(m.Value)] {
			t.Errorf("%s handled again after its batch was committed", m.Value)
		}
		seen[string(m.Value)] = true
		again[string(m.Value)] = true
	}
	for _, m := range inFlight {
		if !again[string(m.Value)] {
			t.Errorf("%s, in the batch cut short, was not delivered again", m.Value)
		}
	}
	if len(seen) != total {
		t.Errorf("handled %d distinct messages, want %d", len(seen), total)
	}
}
