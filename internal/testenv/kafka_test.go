package testenv_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nokstream/nokstream/internal/testenv"
)

// topics lists the topics of the cluster at brokers, asking a broker rather
// than a cache.
func topics(t *testing.T, brokers []string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tp := range meta.Topics {
		names = append(names, tp.Name)
	}
	return names
}

func createTopics(t *testing.T, brokers []string, names ...string) {
	t.Helper()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
	var cfgs []kafka.TopicConfig
	for _, n := range names {
		cfgs = append(cfgs, kafka.TopicConfig{Topic: n, NumPartitions: 1, ReplicationFactor: 1})
	}
	resp, err := client.CreateTopics(t.Context(), &kafka.CreateTopicsRequest{Topics: cfgs})
	if err != nil {
		t.Fatal(err)
	}
	for n, err := range resp.Errors {
		if err != nil {
			t.Fatalf("create %s: %v", n, err)
		}
	}
}

// TestKafkaInProcess starts a kfake cluster that kafka-go can use.
func TestKafkaInProcess(t *testing.T) {
	t.Setenv("NOKSTREAM_TEST_KAFKA", "")
	brokers := testenv.Kafka(t)
	if len(brokers) == 0 {
		t.Fatal("no brokers")
	}
	createTopics(t, brokers, "a")
	if got := topics(t, brokers); !slices.Contains(got, "a") {
		t.Errorf("topics %v, want a", got)
	}
}

// TestKafkaFromEnv uses the cluster NOKSTREAM_TEST_KAFKA names, and deletes
// the topics under a test's prefix when the test ends.
func TestKafkaFromEnv(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	t.Setenv("NOKSTREAM_TEST_KAFKA", " "+strings.Join(c.ListenAddrs(), " , ")+",")

	var prefix string
	t.Run("user/of a cluster", func(t *testing.T) {
		brokers := testenv.Kafka(t)
		if !slices.Equal(brokers, c.ListenAddrs()) {
			t.Fatalf("brokers %v, want %v", brokers, c.ListenAddrs())
		}
		prefix = testenv.TopicPrefix(t)
		if other := testenv.TopicPrefix(t); other == prefix {
			t.Errorf("two prefixes for one test are both %q", prefix)
		}
		if !strings.HasPrefix(prefix, "test.TestKafkaFromEnv-user-of_a_cluster.") {
			t.Errorf("prefix %q does not name the test", prefix)
		}
		createTopics(t, brokers, prefix+"segments", prefix+"segments.dlq", "kept")
	})
	got := topics(t, c.ListenAddrs())
	if !slices.Contains(got, "kept") {
		t.Errorf("topic outside the prefix was deleted: %v", got)
	}
	for _, name := range got {
		if strings.HasPrefix(name, prefix) {
			t.Errorf("topic %s left behind", name)
		}
	}
}
