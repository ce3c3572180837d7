package bus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/testenv"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// impls returns the buses the conformance suite runs against.
func impls() []struct {
	name string
	open func(t *testing.T) bus.Bus
} {
	return []struct {
		name string
		open func(t *testing.T) bus.Bus
	}{
		{"local-dir", func(t *testing.T) bus.Bus {
			l, err := bus.NewLocal(t.TempDir(), testLogger(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { closeBus(t, l) })
			return l
		}},
		{"local-memory", func(t *testing.T) bus.Bus {
			l, err := bus.NewLocal("", testLogger(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { closeBus(t, l) })
			return l
		}},
		{"kafka", func(t *testing.T) bus.Bus { return openKafka(t, 6) }},
	}
}

func openKafka(t *testing.T, partitions int) *bus.Kafka {
	t.Helper()
	k, err := bus.NewKafka(bus.KafkaConfig{
		Brokers:     testenv.Kafka(t),
		ClientID:    "nokstream-test",
		TopicPrefix: testenv.TopicPrefix(t),
		Partitions:  partitions,
	}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBus(t, k) })
	return k
}

func closeBus(t *testing.T, b bus.Bus) {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Errorf("close bus: %v", err)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func TestConformance(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, b bus.Bus)
	}{
		{"key order and no loss", testOrderNoLoss},
		{"transient error retries the same message", testTransientRetry},
		{"permanent error dead-letters and moves on", testPermanentDeadLetter},
		{"restarted group resumes after last commit", testRestartResumes},
		{"every group sees every message", testTwoGroups},
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

const topic = "nokstream.segments.v1"

// testOrderNoLoss publishes from one goroutine per key, then checks that a
// consumer gets every message once, each key's in publish order and from one
// partition.
func testOrderNoLoss(t *testing.T, b bus.Bus) {
	const keys, perKey = 8, 40
	publishKeyed(t, b, keys, perKey)

	rec := &recorder{}
	startConsumer(t, b, topic, "order", rec.ok)
	waitFor(t, 30*time.Second, func() bool { return rec.len() >= keys*perKey }, "all messages consumed")

	byKey := map[string][]bus.Message{}
	for _, m := range rec.all() {
		byKey[m.Key] = append(byKey[m.Key], m)
	}
	if len(byKey) != keys {
		t.Fatalf("got %d keys, want %d", len(byKey), keys)
	}
	for key, ms := range byKey {
		var seq []int
		for _, m := range ms {
			seq = append(seq, seqOf(t, m))
			if m.Partition != ms[0].Partition {
				t.Errorf("key %s: messages on partitions %d and %d", key, ms[0].Partition, m.Partition)
			}
			if m.Topic != topic {
				t.Errorf("message topic %q, want %q", m.Topic, topic)
			}
			if m.Time.IsZero() {
				t.Errorf("message without a time")
			}
		}
		if want := countTo(perKey); !slices.Equal(seq, want) {
			t.Errorf("key %s: got sequence %v, want %v", key, seq, want)
		}
	}
}

// testTransientRetry fails one message twice: it is handled again, and no
// message after it is handled before it succeeds.
func testTransientRetry(t *testing.T, b bus.Bus) {
	publishKeyed(t, b, 1, 10)
	var (
		mu       sync.Mutex
		attempts []int
		failures int
	)
	rec := &recorder{}
	startConsumer(t, b, topic, "retry", func(ctx context.Context, m bus.Message) error {
		n := seqOf(t, m)
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, n)
		if n == 3 && failures < 2 {
			failures++
			return errors.New("registry unavailable")
		}
		return rec.ok(ctx, m)
	})
	waitFor(t, 30*time.Second, func() bool { return rec.len() >= 10 }, "all messages consumed")

	mu.Lock()
	defer mu.Unlock()
	if want := []int{0, 1, 2, 3, 3, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(attempts, want) {
		t.Errorf("handler calls %v, want %v", attempts, want)
	}
}

// testPermanentDeadLetter rejects one message as Permanent: it lands in the
// dead-letter topic with the error, and the messages after it are handled.
func testPermanentDeadLetter(t *testing.T, b bus.Bus) {
	publishKeyed(t, b, 1, 5)
	var (
		mu       sync.Mutex
		attempts []int
	)
	rec := &recorder{}
	startConsumer(t, b, topic, "indexer", func(ctx context.Context, m bus.Message) error {
		n := seqOf(t, m)
		mu.Lock()
		attempts = append(attempts, n)
		mu.Unlock()
		if n == 2 {
			return fmt.Errorf("decode event: %w", bus.Permanent(errors.New("bad payload")))
		}
		return rec.ok(ctx, m)
	})
	dlq := &recorder{}
	startConsumer(t, b, bus.DeadLetterTopic(topic), "dlq-reader", dlq.ok)

	waitFor(t, 30*time.Second, func() bool { return rec.len() >= 4 && dlq.len() >= 1 }, "messages handled and dead-lettered")
	var got []int
	for _, m := range rec.all() {
		got = append(got, seqOf(t, m))
	}
	if want := []int{0, 1, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("handled %v, want %v", got, want)
	}
	mu.Lock()
	if want := []int{0, 1, 2, 3, 4}; !slices.Equal(attempts, want) {
		t.Errorf("handler calls %v, want %v: a permanent error is not retried", attempts, want)
	}
	mu.Unlock()

	d := dlq.all()
	if len(d) != 1 {
		t.Fatalf("dead-letter topic has %d messages, want 1", len(d))
	}
	m := d[0]
	if m.Key != "key0" || string(m.Value) != "key0/2" {
		t.Errorf("dead letter %q=%q, want key0=key0/2", m.Key, m.Value)
	}
	if e := m.Headers[bus.HeaderError]; !strings.Contains(e, "decode event: bad payload") {
		t.Errorf("dead letter error header %q, want the handler's error", e)
	}
	if m.Headers[bus.HeaderGroup] != "indexer" || m.Headers[bus.HeaderTopic] != topic {
		t.Errorf("dead letter headers %v, want group indexer and topic %s", m.Headers, topic)
	}
}

// testRestartResumes stops a consumer while it is handling a message and
// starts another in the same group: it gets every message the first did not
// finish, and none that the first committed.
func testRestartResumes(t *testing.T, b bus.Bus) {
	const total = 20
	publishKeyed(t, b, 4, total/4)

	first := &recorder{}
	blocked := make(chan struct{})
	stop := startConsumer(t, b, topic, "restart", func(ctx context.Context, m bus.Message) error {
		if first.len() < 7 {
			return first.ok(ctx, m)
		}
		close(blocked)
		<-ctx.Done()
		return ctx.Err()
	})
	waitClosed(t, blocked, "the 8th message to be handed out")
	stop()

	second := &recorder{}
	startConsumer(t, b, topic, "restart", second.ok)
	if err := b.Publish(t.Context(), topic, "late", []byte("late/0")); err != nil {
		t.Fatal(err)
	}
	want := total + 1 - first.len()
	waitFor(t, 60*time.Second, func() bool { return second.len() >= want }, "the remaining messages")

	seen := map[string]bool{}
	for _, m := range first.all() {
		seen[string(m.Value)] = true
	}
	for _, m := range second.all() {
		if seen[string(m.Value)] {
			t.Errorf("%s handled again after its commit", m.Value)
		}
		seen[string(m.Value)] = true
	}
	if len(seen) != total+1 {
		t.Errorf("handled %d distinct messages, want %d", len(seen), total+1)
	}
}

// testTwoGroups runs two groups at once: each gets every message.
func testTwoGroups(t *testing.T, b bus.Bus) {
	const keys, perKey = 3, 10
	a, c := &recorder{}, &recorder{}
	startConsumer(t, b, topic, "archiver", a.ok)
	startConsumer(t, b, topic, "registry", c.ok)
	publishKeyed(t, b, keys, perKey)
	waitFor(t, 30*time.Second, func() bool { return a.len() >= keys*perKey && c.len() >= keys*perKey }, "both groups done")
	for name, r := range map[string]*recorder{"archiver": a, "registry": c} {
		if got := distinct(r.all()); got != keys*perKey {
			t.Errorf("group %s got %d distinct messages, want %d", name, got, keys*perKey)
		}
	}
}

// publishKeyed publishes perKey messages "key<k>/<i>" for each of keys keys,
// one goroutine per key, so that different keys interleave.
func publishKeyed(t *testing.T, b bus.Publisher, keys, perKey int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, keys)
	for k := range keys {
		wg.Go(func() {
			key := "key" + strconv.Itoa(k)
			for i := range perKey {
				if err := b.Publish(t.Context(), topic, key, fmt.Appendf(nil, "%s/%d", key, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// startConsumer runs Consume until the returned stop is called or the test
// ends, and checks that it returns nil promptly once stopped.
func startConsumer(t *testing.T, b bus.Bus, topic, group string, h bus.Handler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Consume(ctx, topic, group, h) }()
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

// recorder collects messages from a handler.
type recorder struct {
	mu   sync.Mutex
	msgs []bus.Message
}

func (r *recorder) ok(_ context.Context, m bus.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, m)
	return nil
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.msgs)
}

func (r *recorder) all() []bus.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

func distinct(ms []bus.Message) int {
	seen := map[string]bool{}
	for _, m := range ms {
		seen[string(m.Value)] = true
	}
	return len(seen)
}

// seqOf returns i of a message "key<k>/<i>".
func seqOf(t *testing.T, m bus.Message) int {
	t.Helper()
	_, s, ok := strings.Cut(string(m.Value), "/")
	n, err := strconv.Atoi(s)
	if !ok || err != nil {
		t.Fatalf("unexpected message value %q", m.Value)
	}
	return n
}

func countTo(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
