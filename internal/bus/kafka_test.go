package bus_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/testenv"
)

func TestKafkaPing(t *testing.T) {
	t.Parallel()
	k := openKafka(t, 6)
	if err := k.Ping(t.Context()); err != nil {
		t.Errorf("ping: %v", err)
	}

	// A port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	down, err := bus.NewKafka(bus.KafkaConfig{Brokers: []string{addr}}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBus(t, down) })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := down.Ping(ctx); err == nil {
		t.Error("ping of a broker that is down succeeded")
	}
}

// TestKafkaCreatesTopics checks that the bus creates a topic and its
// dead-letter topic, under the prefix and with the configured partitions.
func TestKafkaCreatesTopics(t *testing.T) {
	t.Parallel()
	brokers := testenv.Kafka(t)
	prefix := testenv.TopicPrefix(t)
	k, err := bus.NewKafka(bus.KafkaConfig{Brokers: brokers, TopicPrefix: prefix, Partitions: 3}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBus(t, k) })
	rec := &recorder{}
	startConsumer(t, k, topic, "g", rec.ok)
	if err := k.Publish(t.Context(), topic, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool { return rec.len() >= 1 }, "the message")

	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
	meta, err := client.Metadata(t.Context(), &kafka.MetadataRequest{Topics: []string{prefix + topic, prefix + bus.DeadLetterTopic(topic)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range meta.Topics {
		if tp.Error != nil {
			t.Errorf("topic %s: %v", tp.Name, tp.Error)
			continue
		}
		if len(tp.Partitions) != 3 {
			t.Errorf("topic %s has %d partitions, want 3", tp.Name, len(tp.Partitions))
		}
	}
}

func TestKafkaConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  bus.KafkaConfig
		bad  string
	}{
		{"default", bus.DefaultKafkaConfig(), ""},
		{"no brokers", bus.KafkaConfig{}, "brokers"},
		{"bad prefix", bus.KafkaConfig{Brokers: []string{"k:9092"}, TopicPrefix: "a/b"}, "topic prefix"},
		{"negative partitions", bus.KafkaConfig{Brokers: []string{"k:9092"}, Partitions: -1}, "partitions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			switch {
			case c.bad == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad)):
				t.Errorf("Validate = %v, want an error about %s", err, c.bad)
			}
		})
	}
}

// TestKafkaGroupMembersShare runs two members of one group: after the
// rebalance both handle messages, nothing is lost, and no message is handled
// before every earlier message of its key was. A message may be handled
// twice around a rebalance (a commit racing the new member's offset fetch):
// that is at-least-once, and allowed.
func TestKafkaGroupMembersShare(t *testing.T) {
	t.Parallel()
	k := openKafka(t, 6)
	var (
		mu      sync.Mutex
		next    = map[string]int{} // per key, how many are handled
		handled = map[string]int{} // per member
		dups    int
	)
	member := func(name string) bus.Handler {
		return func(_ context.Context, m bus.Message) error {
			n := seqOf(t, m)
			mu.Lock()
			defer mu.Unlock()
			handled[name]++
			switch {
			case n == next[m.Key]:
				next[m.Key]++
			case n < next[m.Key]:
				dups++
			default:
				t.Errorf("member %s: %s/%d handled before %s/%d", name, m.Key, n, m.Key, next[m.Key])
			}
			return nil
		}
	}
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return handled[name]
	}
	startConsumer(t, k, topic, "archiver", member("a"))
	startConsumer(t, k, topic, "archiver", member("b"))

	// Publish in rounds, one message per key, until both members have
	// had a share: the second gets partitions only once the group has
	// rebalanced.
	const keys = 12
	rounds := 0
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(60 * time.Second)
	for rounds < 5 || count("a") == 0 || count("b") == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d rounds, members handled %d and %d messages", rounds, count("a"), count("b"))
		}
		for i := range keys {
			key := "key" + strconv.Itoa(i)
			if err := k.Publish(t.Context(), topic, key, fmt.Appendf(nil, "%s/%d", key, rounds)); err != nil {
				t.Fatal(err)
			}
		}
		rounds++
		<-tick.C
	}
	waitFor(t, 60*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i := range keys {
			if next["key"+strconv.Itoa(i)] < rounds {
				return false
			}
		}
		return true
	}, "every message")
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d rounds; members handled %d and %d messages, %d twice", rounds, handled["a"], handled["b"], dups)
}

// TestKafkaBrokerLate starts a consumer before the broker is up: it waits,
// and handles what is published once the broker is there.
func TestKafkaBrokerLate(t *testing.T) {
	if os.Getenv("NOKSTREAM_TEST_KAFKA") != "" {
		t.Skip("needs a broker this test starts")
	}
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	k, err := bus.NewKafka(bus.KafkaConfig{Brokers: []string{"127.0.0.1:" + strconv.Itoa(port)}}, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeBus(t, k) })
	rec := &recorder{}
	stop := startConsumer(t, k, topic, "g", rec.ok)
	if err := k.Ping(t.Context()); err == nil {
		t.Fatal("ping succeeded with no broker")
	}

	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// kafka-go's transport keeps failing for a while after the broker is
	// back (it remembers the failed dial), so Publish is retried, as
	// callers do.
	start := time.Now()
	failures := 0
	waitFor(t, 30*time.Second, func() bool {
		err := k.Publish(t.Context(), topic, "k", []byte("k/0"))
		if err != nil {
			failures++
		}
		return err == nil
	}, "a publish to succeed")
	t.Logf("published after %v and %d failed attempts", time.Since(start), failures)
	waitFor(t, 30*time.Second, func() bool { return rec.len() >= 1 }, "the message")
	stop()
	t.Logf("consumed after %v", time.Since(start))
}
