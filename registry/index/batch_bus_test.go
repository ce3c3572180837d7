package index_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
)

// Both tests below run the registry's batch consumer on real parts: Kafka
// (kfake, through testenv) or the in-process bus, and PostgreSQL.

func batchBuses(t *testing.T) map[string]func(t *testing.T) bus.Bus {
	return map[string]func(t *testing.T) bus.Bus{
		"kafka": func(t *testing.T) bus.Bus {
			k, err := bus.NewKafka(bus.KafkaConfig{Brokers: testenv.Kafka(t), ClientID: "index-test",
				TopicPrefix: testenv.TopicPrefix(t), Partitions: 3}, discard(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = k.Close() })
			return k
		},
		"local": func(t *testing.T) bus.Bus {
			l, err := bus.NewLocal(t.TempDir(), discard(), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Close() })
			return l
		},
	}
}

func openStore(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	if err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// insertCounter is the store, counting for each segment id how often it was
// handed to IndexSegments and how often it was new. block, if set, is called
// after each batch is stored, before the handler returns.
type insertCounter struct {
	s     *store.Store
	block func(ctx context.Context, evs []*events.SegmentClosed) error

	mu       sync.Mutex
	inserted map[string]int
	offered  map[string]int
}

func (c *insertCounter) IndexSegments(ctx context.Context, evs []*events.SegmentClosed) ([]bool, []error, error) {
	ins, errs, err := c.s.IndexSegments(ctx, evs)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	for i, e := range evs {
		c.offered[e.SegmentID]++
		if ins[i] {
			c.inserted[e.SegmentID]++
		}
	}
	c.mu.Unlock()
	if c.block != nil {
		if err := c.block(ctx, evs); err != nil {
			return nil, nil, err
		}
	}
	return ins, errs, nil
}

func (c *insertCounter) counts() (inserted, offered map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cloneCounts(c.inserted), cloneCounts(c.offered)
}

func cloneCounts(m map[string]int) map[string]int {
	c := make(map[string]int, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func consumeBatches(t *testing.T, b bus.Bus, h bus.BatchHandler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.(bus.BatchConsumer).ConsumeBatch(ctx, events.TopicSegments, "registry", bus.BatchOptions{Max: 500, Linger: 50 * time.Millisecond}, h)
	}()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("consume: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("consumer still running 30s after cancel")
		}
	})
	t.Cleanup(stop)
	return stop
}

func publish(t *testing.T, b bus.Bus, v []byte) {
	t.Helper()
	if err := b.Publish(t.Context(), events.TopicSegments, "site1/cam1", v); err != nil {
		t.Fatal(err)
	}
}

func rows(t *testing.T, s *store.Store) []int64 {
	t.Helper()
	segs, err := s.Segments(context.Background(), "site1", "cam1", time.Time{}, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	for _, g := range segs {
		seqs = append(seqs, g.Sequence)
	}
	slices.Sort(seqs)
	return seqs
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBatchConsumerPoison: a backlog of 20 segment events with a malformed
// one and an invalid one in the middle, consumed in batches: the 18 good ones
// are indexed, each new once, and the two poison ones are in the
// dead-letter topic.
func TestBatchConsumerPoison(t *testing.T) {
	t.Parallel()
	for name, open := range batchBuses(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, s := open(t), openStore(t)
			var want []int64
			for seq := range int64(20) {
				switch seq {
				case 7:
					publish(t, b, []byte(`{"segment_id": "seg-7", not json`))
				case 12:
					e := event(seq)
					e.ObjectKey = ""
					publish(t, b, message(t, e).Value)
				default:
					publish(t, b, message(t, event(seq)).Value)
					want = append(want, seq)
				}
			}
			c := &insertCounter{s: s, inserted: map[string]int{}, offered: map[string]int{}}
			consumeBatches(t, b, index.BatchHandler(c, discard()))
			var (
				mu   sync.Mutex
				dead []bus.Message
			)
			dctx, dcancel := context.WithCancel(context.Background())
			ddone := make(chan error, 1)
			go func() {
				ddone <- b.Consume(dctx, bus.DeadLetterTopic(events.TopicSegments), "dlq-reader", func(_ context.Context, m bus.Message) error {
					mu.Lock()
					defer mu.Unlock()
					dead = append(dead, m)
					return nil
				})
			}()
			defer func() { dcancel(); <-ddone }()
			waitUntil(t, "18 rows and 2 dead letters", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(rows(t, s)) >= len(want) && len(dead) >= 2
			})
			if got := rows(t, s); !slices.Equal(got, want) {
				t.Errorf("indexed sequences %v, want %v", got, want)
			}
			inserted, _ := c.counts()
			for _, seq := range want {
				if n := inserted[event(seq).SegmentID]; n != 1 {
					t.Errorf("segment %d inserted %d times, want 1", seq, n)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(dead) != 2 {
				var errs []string
				for _, m := range dead {
					errs = append(errs, m.Headers[bus.HeaderError])
				}
				t.Fatalf("dead letters %q, want the malformed and the invalid event", errs)
			}
			if string(dead[0].Value) != `{"segment_id": "seg-7", not json` {
				t.Errorf("first dead letter %q, want the malformed event", dead[0].Value)
			}
			var e12 events.SegmentClosed
			if err := json.Unmarshal(dead[1].Value, &e12); err != nil || e12.Sequence != 12 {
				t.Errorf("second dead letter %q, want segment 12 (%v)", dead[1].Value, err)
			}
		})
	}
}

// TestBatchConsumerCrash: the consumer is stopped while a batch is stored
// but not yet acknowledged (as a crash between COMMIT and the bus commit
// would leave it); the next consumer of the group gets that batch again and
// finds it indexed: every segment is new exactly once and the index holds
// each once.
func TestBatchConsumerCrash(t *testing.T) {
	t.Parallel()
	for name, open := range batchBuses(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, s := open(t), openStore(t)
			const total = 30
			for seq := range int64(10) {
				publish(t, b, message(t, event(seq)).Value)
			}
			blocked := make(chan struct{})
			first := &insertCounter{s: s, inserted: map[string]int{}, offered: map[string]int{}}
			first.block = func(ctx context.Context, evs []*events.SegmentClosed) error {
				if !slices.ContainsFunc(evs, func(e *events.SegmentClosed) bool { return e.Sequence >= 10 }) {
					return nil
				}
				close(blocked)
				<-ctx.Done()
				return ctx.Err()
			}
			stop := consumeBatches(t, b, index.BatchHandler(first, discard()))
			waitUntil(t, "the first 10 indexed", func() bool { return len(rows(t, s)) == 10 })
			for seq := int64(10); seq < total; seq++ {
				publish(t, b, message(t, event(seq)).Value)
			}
			select {
			case <-blocked:
			case <-time.After(60 * time.Second):
				t.Fatal("timed out waiting for a batch of the later events")
			}
			stop()
			stored := rows(t, s)

			second := &insertCounter{s: s, inserted: map[string]int{}, offered: map[string]int{}}
			consumeBatches(t, b, index.BatchHandler(second, discard()))
			// Wait until the last event came through the second consumer:
			// the events of the batch cut short are already in the index.
			waitUntil(t, "all 30 through the second consumer", func() bool {
				_, off := second.counts()
				return off[event(total-1).SegmentID] > 0
			})

			var want []int64
			for seq := range int64(total) {
				want = append(want, seq)
			}
			if got := rows(t, s); !slices.Equal(got, want) {
				t.Errorf("indexed sequences %v, want 0..%d once each", got, total-1)
			}
			in1, _ := first.counts()
			in2, off2 := second.counts()
			for seq := range int64(total) {
				id := event(seq).SegmentID
				if n := in1[id] + in2[id]; n != 1 {
					t.Errorf("segment %d new %d times, want 1", seq, n)
				}
			}
			// The batch cut short was stored: it came again, and was
			// found indexed.
			again := 0
			for _, seq := range stored {
				if seq >= 10 {
					if off2[event(seq).SegmentID] == 0 {
						t.Errorf("segment %d, in the batch cut short, was not delivered again", seq)
					}
					again++
				}
			}
			if again == 0 {
				t.Errorf("no segment of the batch cut short was stored: stored %v", stored)
			}
		})
	}
}
