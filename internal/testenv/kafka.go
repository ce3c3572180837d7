package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka returns the addresses of Kafka brokers for t. With
// NOKSTREAM_TEST_KAFKA set (comma-separated host:port) they are that
// cluster's, shared by every test: give each test its own topics and groups
// with TopicPrefix. Otherwise Kafka starts an in-process kfake cluster for t
// alone and stops it when t ends.
//
// The kfake cluster has three brokers, so that partition leaders and the
// group coordinator are spread as on a real cluster, and creates topics on
// first use as Kafka does by default (auto.create.topics.enable), with 6
// partitions.
func Kafka(t testing.TB) []string {
	t.Helper()
	if env := os.Getenv("NOKSTREAM_TEST_KAFKA"); env != "" {
		brokers := envBrokers()
		if len(brokers) == 0 {
			t.Fatalf("NOKSTREAM_TEST_KAFKA=%q names no brokers", env)
		}
		return brokers
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(3),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(6),
	)
	if err != nil {
		t.Fatalf("start kfake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// TopicPrefix returns a prefix for the topic and group names of t, unique to
// this run of t, such as "test.TestBus-local.3f9a1c2e.": tests sharing one
// Kafka cluster then never see each other's events. On a cluster named by
// NOKSTREAM_TEST_KAFKA, the topics under the prefix are deleted when t ends
// (after the cleanups registered later, such as closing the bus).
func TopicPrefix(t testing.TB) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("random topic prefix: %v", err)
	}
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '_', r == '-':
			return r
		}
		return '-'
	}, t.Name())
	// Kafka allows 249 characters; leave room for the topic name.
	if len(name) > 100 {
		name = name[:100]
	}
	prefix := "test." + name + "." + hex.EncodeToString(b[:]) + "."
	if brokers := envBrokers(); len(brokers) > 0 {
		t.Cleanup(func() { deleteTopics(t, brokers, prefix) })
	}
	return prefix
}

func envBrokers() []string {
	var brokers []string
	for b := range strings.SplitSeq(os.Getenv("NOKSTREAM_TEST_KAFKA"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	return brokers
}

// deleteTopics deletes the topics whose names start with prefix. Failing to
// is logged, not fatal: a cluster may forbid deleting topics.
func deleteTopics(t testing.TB, brokers []string, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Transport: transport}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{})
	if err != nil {
		t.Logf("list topics to delete: %v", err)
		return
	}
	var names []string
	for _, tp := range meta.Topics {
		if strings.HasPrefix(tp.Name, prefix) {
			names = append(names, tp.Name)
		}
	}
	if len(names) == 0 {
		return
	}
	resp, err := client.DeleteTopics(ctx, &kafka.DeleteTopicsRequest{Topics: names})
	if err != nil {
		t.Logf("delete topics %v: %v", names, err)
		return
	}
	for name, err := range resp.Errors {
		if err != nil {
			t.Logf("delete topic %s: %v", name, err)
		}
	}
}

// KafkaCluster is a kfake cluster that one test may stop and start again on
// the same addresses with the same data, to play a Kafka outage. Its data
// is kept on disk (kfake.DataDir, fsync'd writes), so events and committed
// offsets survive the restart as on a real cluster.
type KafkaCluster struct {
	ports []int
	dir   string

	mu sync.Mutex
	c  *kfake.Cluster
}

// RestartableKafka starts a three-broker kfake cluster for t alone. It is
// closed when t ends.
func RestartableKafka(t testing.TB) *KafkaCluster {
	t.Helper()
	k := &KafkaCluster{dir: t.TempDir()}
	for range 3 {
		k.ports = append(k.ports, FreePort(t))
	}
	if err := k.Start(); err != nil {
		t.Fatalf("start kfake cluster: %v", err)
	}
	t.Cleanup(k.Stop)
	return k
}

// Addrs returns the brokers' addresses.
func (k *KafkaCluster) Addrs() []string {
	out := make([]string, len(k.ports))
	for i, p := range k.ports {
		out[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(p))
	}
	return out
}

// Start starts the cluster if it is stopped.
func (k *KafkaCluster) Start() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c != nil {
		return nil
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(len(k.ports)),
		kfake.Ports(k.ports...),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(6),
		kfake.DataDir(k.dir),
		kfake.SyncWrites(),
	)
	if err != nil {
		return err
	}
	k.c = c
	return nil
}

// Stop closes the cluster: every connection is cut and nothing answers on
// its addresses until Start.
func (k *KafkaCluster) Stop() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c == nil {
		return
	}
	k.c.Close()
	k.c = nil
}
