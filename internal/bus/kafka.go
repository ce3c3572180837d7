package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// KafkaConfig configures the Kafka bus.
type KafkaConfig struct {
	// Brokers are the bootstrap brokers, host:port.
	Brokers []string `yaml:"brokers"`
	// ClientID names this process to the brokers.
	ClientID string `yaml:"client_id"`
	// TopicPrefix is prepended to every topic and consumer group name, so
	// that several installations or tests can share one cluster.
	TopicPrefix string `yaml:"topic_prefix"`
	// Partitions is the partition count of topics the bus creates.
	// Default 6.
	Partitions int `yaml:"partitions"`
	// ReplicationFactor of topics the bus creates. Default 1.
	ReplicationFactor int `yaml:"replication_factor"`
}

// DefaultKafkaConfig returns the configuration for a local single-broker
// Kafka.
func DefaultKafkaConfig() KafkaConfig {
	return KafkaConfig{
		Brokers:           []string{"localhost:9092"},
		ClientID:          "nokstream",
		Partitions:        6,
		ReplicationFactor: 1,
	}
}

// Validate reports what is wrong with cfg.
func (c KafkaConfig) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: none given"))
	}
	for _, b := range c.Brokers {
		if b == "" {
			errs = append(errs, errors.New("brokers: empty address"))
		}
	}
	if c.TopicPrefix != "" {
		if err := checkName("topic prefix", c.TopicPrefix); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Partitions < 0 {
		errs = append(errs, fmt.Errorf("partitions: %d is negative", c.Partitions))
	}
	if c.ReplicationFactor < 0 {
		errs = append(errs, fmt.Errorf("replication_factor: %d is negative", c.ReplicationFactor))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kafka config: %w", err)
	}
	return nil
}

// Kafka is the bus of scaled-out mode, on Kafka through kafka-go.
//
// Events are keyed, and the key picks the partition (kafka.Hash, FNV-1a: not
// the murmur2 of the Java client), so the events of one key stay in order.
// Publish waits for acks from all in-sync replicas. Topics, and their
// dead-letter topics, are created when first used if they do not exist.
type Kafka struct {
	cfg       KafkaConfig
	log       *slog.Logger
	m         *Metrics
	stop      context.CancelFunc // ends the transport's goroutines
	transport *kafka.Transport
	client    *kafka.Client
	writer    *kafka.Writer
	dialer    *kafka.Dialer

	mu      sync.Mutex
	ensured map[string]bool // prefixed topic names known to exist
}

var _ Bus = (*Kafka)(nil)

// Timeouts for requests that do not take the caller's context.
const (
	kafkaDialTimeout   = 10 * time.Second
	kafkaCommitTimeout = 10 * time.Second
)

// NewKafka returns a Kafka bus. It connects lazily: use Ping to check the
// brokers. log and m may be nil.
func NewKafka(cfg KafkaConfig, log *slog.Logger, m *Metrics) (*Kafka, error) {
	if cfg.Partitions == 0 {
		cfg.Partitions = 6
	}
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = 1
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	transport := &kafka.Transport{
		ClientID:    cfg.ClientID,
		DialTimeout: kafkaDialTimeout,
		Context:     ctx,
	}
	addr := kafka.TCP(cfg.Brokers...)
	k := &Kafka{
		cfg:       cfg,
		log:       log,
		m:         m,
		stop:      stop,
		transport: transport,
		client:    &kafka.Client{Addr: addr, Transport: transport},
		writer: &kafka.Writer{
			Addr:         addr,
			Balancer:     &kafka.Hash{},
			RequiredAcks: kafka.RequireAll,
			// A synchronous write waits for its batch to close:
			// the default BatchTimeout would add a second to
			// every Publish.
			BatchTimeout: 5 * time.Millisecond,
			Transport:    transport,
			Logger:       kafkaLogger(log, slog.LevelDebug),
			ErrorLogger:  kafkaLogger(log, slog.LevelWarn),
		},
		dialer:  &kafka.Dialer{ClientID: cfg.ClientID, Timeout: kafkaDialTimeout, DualStack: true},
		ensured: map[string]bool{},
	}
	return k, nil
}

func kafkaLogger(log *slog.Logger, level slog.Level) kafka.Logger {
	return kafka.LoggerFunc(func(msg string, args ...any) {
		log.Log(context.Background(), level, fmt.Sprintf(msg, args...), "component", "kafka-go")
	})
}

func (k *Kafka) name(s string) string { return k.cfg.TopicPrefix + s }

// Publish writes an event to topic and returns once every in-sync replica
// has it.
func (k *Kafka) Publish(ctx context.Context, topic, key string, value []byte) error {
	return k.publish(ctx, topic, kafka.Message{Key: []byte(key), Value: value})
}

func (k *Kafka) publish(ctx context.Context, topic string, msg kafka.Message) error {
	start := time.Now()
	err := k.write(ctx, topic, msg)
	k.m.publishDone(topic, time.Since(start), err)
	if err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

func (k *Kafka) write(ctx context.Context, topic string, msg kafka.Message) error {
	if err := checkName("topic", topic); err != nil {
		return err
	}
	if err := k.ensureTopics(ctx, topic); err != nil {
		return err
	}
	msg.Topic = k.name(topic)
	return k.writer.WriteMessages(ctx, msg)
}

// Consume handles the messages of topic in group until ctx ends. kafka-go
// merges the partitions assigned to this member into one stream, so messages
// are handled one at a time; each partition's messages arrive in order.
// An offset is committed only after its message was handled or
// dead-lettered.
func (k *Kafka) Consume(ctx context.Context, topic, group string, h Handler) error {
	return k.run(ctx, topic, group, func(ctx context.Context, r *kafka.Reader) error {
		return k.consume(ctx, r, topic, group, h)
	})
}

// ConsumeParallel is Consume handling up to lanes messages at once, from
// different partitions (bus.ParallelConsumer). kafka-go hands the messages
// of every partition this member holds in one stream; each partition gets a
// lane (a goroutine with a queue of laneQueue messages) that handles and
// commits its messages in order, and at most lanes of them run a handler at
// once. A partition whose handler retries holds up its own lane, and the
// others only once its queue is full.
func (k *Kafka) ConsumeParallel(ctx context.Context, topic, group string, lanes int, h Handler) error {
	if lanes < 1 {
		return fmt.Errorf("consume %s: %d lanes", topic, lanes)
	}
	return k.run(ctx, topic, group, func(ctx context.Context, r *kafka.Reader) error {
		return k.consumeParallel(ctx, r, topic, group, lanes, h)
	})
}

// ConsumeBatch is Consume handing h batches: up to o.Max messages, or what
// arrived within o.Linger of the first, from the partitions this member
// holds (each partition's messages in order). The batch's offsets are
// committed, the highest of each partition, once h handled all of it.
func (k *Kafka) ConsumeBatch(ctx context.Context, topic, group string, o BatchOptions, h BatchHandler) error {
	o, err := o.withDefaults()
	if err != nil {
		return fmt.Errorf("consume %s: %w", topic, err)
	}
	return k.run(ctx, topic, group, func(ctx context.Context, r *kafka.Reader) error {
		return k.consumeBatch(ctx, r, topic, group, o, h)
	})
}

// run prepares the topics of a consumer and runs consume with readers until
// ctx ends, starting a new reader after a failure.
func (k *Kafka) run(ctx context.Context, topic, group string, consume func(context.Context, *kafka.Reader) error) error {
	if err := checkName("group", group); err != nil {
		return fmt.Errorf("consume %s: %w", topic, err)
	}
	if err := checkName("topic", topic); err != nil {
		return fmt.Errorf("consume %s: %w", topic, err)
	}
	ensure := []string{topic}
	if !strings.HasSuffix(topic, DeadLetterTopic("")) {
		// A dead-letter topic has no dead-letter topic of its own
		// until something is dead-lettered from it.
		ensure = append(ensure, DeadLetterTopic(topic))
	}
	// Kafka may be down when a service starts: wait for it, as the
	// reader would, rather than fail the service.
	var b backoff
	for {
		err := k.ensureTopics(ctx, ensure...)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		var ke kafka.Error
		if errors.As(err, &ke) && !ke.Temporary() {
			// Refused by the cluster (authorization, replication
			// factor, policy): waiting will not help.
			return fmt.Errorf("consume %s: %w", topic, err)
		}
		k.log.Warn("prepare topics, will retry", "topic", topic, "group", group, "err", err)
		if !b.wait(ctx) {
			return nil
		}
	}
	// A broker outage makes the reader fail (it cannot dial the group
	// coordinator); the consumer then waits and starts a new reader from
	// the committed offsets, rather than fail the service: Kafka down for
	// minutes must not take the registry or the archiver down with it.
	var rb backoff
	for {
		r := k.newReader(topic, group)
		err := consume(ctx, r)
		// Close leaves the group, so that the partitions are reassigned at
		// once rather than after the session timeout.
		cerr := r.Close()
		if err == nil {
			if cerr != nil {
				return fmt.Errorf("consume %s: close reader: %w", topic, cerr)
			}
			return nil
		}
		k.log.Warn("kafka consumer failed, will reconnect", "topic", topic, "group", group, "err", err)
		if !rb.wait(ctx) {
			return nil
		}
	}
}

func (k *Kafka) newReader(topic, group string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:     k.cfg.Brokers,
		GroupID:     k.name(group),
		Topic:       k.name(topic),
		Dialer:      k.dialer,
		StartOffset: kafka.FirstOffset,
		// Commit synchronously, in CommitMessages.
		CommitInterval: 0,
		// Close waits for the fetches in flight, which the broker
		// holds for up to MaxWait when there is nothing to read: this
		// bounds how long Consume takes to return. kafka-go's default
		// is 10s; 500ms is the Java client's.
		MaxWait:               500 * time.Millisecond,
		ReadLagInterval:       -1,
		WatchPartitionChanges: true,
		Logger:                kafkaLogger(k.log, slog.LevelDebug),
		ErrorLogger:           kafkaLogger(k.log, slog.LevelWarn),
	})
}

func (k *Kafka) consume(ctx context.Context, r *kafka.Reader, topic, group string, h Handler) error {
	for {
		km, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume %s: fetch: %w", topic, err)
		}
		m := kafkaMessage(topic, km)
		if !deliver(ctx, k.log, k.m, group, m, h, k.deadLetter) {
			return nil
		}
		k.commit(ctx, r, topic, group, km)
	}
}

func (k *Kafka) consumeParallel(ctx context.Context, r *kafka.Reader, topic, group string, lanes int, h Handler) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	queues := map[int]chan kafka.Message{}
	running := make(chan struct{}, lanes) // handlers at once
	defer func() {
		// Messages still queued are not committed: they are handled
		// again by whoever consumes the partition next.
		cancel()
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
	}()
	lane := func(q <-chan kafka.Message) {
		defer wg.Done()
		for km := range q {
			select {
			case running <- struct{}{}:
			case <-ctx.Done():
				return
			}
			handled := deliver(ctx, k.log, k.m, group, kafkaMessage(topic, km), h, k.deadLetter)
			<-running
			if !handled {
				return
			}
			k.commit(ctx, r, topic, group, km)
		}
	}
	for {
		km, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume %s: fetch: %w", topic, err)
		}
		q := queues[km.Partition]
		if q == nil {
			q = make(chan kafka.Message, laneQueue)
			queues[km.Partition] = q
			wg.Add(1)
			go lane(q)
		}
		select {
		case q <- km:
		case <-ctx.Done():
			return nil
		}
	}
}

// laneQueue is how many fetched messages a partition's lane holds before
// the fetching waits for it. A few, so that a partition whose handler
// retries does not stop the others at once; not many, because the queued
// messages of a partition taken away by a rebalance are handled here while
// its new owner handles them again.
const laneQueue = 16

// commit commits km's offset, even if ctx ended meanwhile (the message was
// handled).
func (k *Kafka) commit(ctx context.Context, r *kafka.Reader, topic, group string, km kafka.Message) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), kafkaCommitTimeout)
	err := r.CommitMessages(cctx, km)
	cancel()
	if err != nil {
		// Most likely a rebalance moved the partition: its new owner
		// handles the message again, which idempotent handlers allow.
		k.log.Warn("commit offset", "topic", topic, "group", group,
			"partition", km.Partition, "offset", km.Offset, "err", err)
	}
}

func (k *Kafka) consumeBatch(ctx context.Context, r *kafka.Reader, topic, group string, o BatchOptions, h BatchHandler) error {
	kms := make([]kafka.Message, 0, o.Max)
	ms := make([]Message, 0, o.Max)
	for {
		kms, ms = kms[:0], ms[:0]
		km, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("consume %s: fetch: %w", topic, err)
		}
		kms = append(kms, km)
		// More, until the batch is full or the linger is over. A fetch
		// cut short by its deadline takes no message from the reader.
		if o.Max > 1 {
			lctx, cancel := context.WithTimeout(ctx, o.Linger)
			for len(kms) < o.Max {
				km, err := r.FetchMessage(lctx)
				if err != nil {
					if ctx.Err() == nil && lctx.Err() == nil {
						cancel()
						return fmt.Errorf("consume %s: fetch: %w", topic, err)
					}
					break
				}
				kms = append(kms, km)
			}
			cancel()
		}
		if ctx.Err() != nil {
			return nil
		}
		for _, km := range kms {
			ms = append(ms, kafkaMessage(topic, km))
		}
		if !deliverBatch(ctx, k.log, k.m, group, ms, h, k.deadLetter) {
			return nil
		}
		// Commit even if ctx ended meanwhile: the batch was handled.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), kafkaCommitTimeout)
		err = r.CommitMessages(cctx, kms...)
		cancel()
		if err != nil {
			// Most likely a rebalance moved a partition: its new
			// owner handles the messages again, which idempotent
			// handlers allow.
			k.log.Warn("commit offsets", "topic", topic, "group", group, "messages", len(kms), "err", err)
		}
	}
}

// kafkaMessage is km as handed to a handler.
func kafkaMessage(topic string, km kafka.Message) Message {
	m := Message{
		Topic:     topic,
		Key:       string(km.Key),
		Value:     km.Value,
		Partition: km.Partition,
		Offset:    km.Offset,
		Time:      km.Time,
	}
	if len(km.Headers) > 0 {
		m.Headers = make(map[string]string, len(km.Headers))
		for _, hd := range km.Headers {
			m.Headers[hd.Key] = string(hd.Value)
		}
	}
	return m
}

func (k *Kafka) deadLetter(ctx context.Context, m Message, group string, cause error) error {
	return k.publish(ctx, DeadLetterTopic(m.Topic), kafka.Message{
		Key:   []byte(m.Key),
		Value: m.Value,
		Headers: []kafka.Header{
			{Key: HeaderError, Value: []byte(cause.Error())},
			{Key: HeaderTopic, Value: []byte(m.Topic)},
			{Key: HeaderGroup, Value: []byte(group)},
			{Key: HeaderPartition, Value: []byte(strconv.Itoa(m.Partition))},
			{Key: HeaderOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
		},
	})
}

// ensureTopics creates the topics (unprefixed names) that do not exist yet.
func (k *Kafka) ensureTopics(ctx context.Context, topics ...string) error {
	var missing []string
	k.mu.Lock()
	for _, t := range topics {
		if !k.ensured[k.name(t)] {
			missing = append(missing, k.name(t))
		}
	}
	k.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}

	// Ask first, and create only what is missing: a cluster may let us
	// use topics an operator created but not create any.
	meta, err := k.client.Metadata(ctx, &kafka.MetadataRequest{Topics: missing})
	if err != nil {
		return fmt.Errorf("read metadata of %v: %w", missing, err)
	}
	exists := map[string]bool{}
	for _, t := range meta.Topics {
		if t.Error == nil && len(t.Partitions) > 0 {
			exists[t.Name] = true
		}
	}
	var create []kafka.TopicConfig
	for _, name := range missing {
		if !exists[name] {
			create = append(create, kafka.TopicConfig{
				Topic:             name,
				NumPartitions:     k.cfg.Partitions,
				ReplicationFactor: k.cfg.ReplicationFactor,
			})
		}
	}
	if len(create) > 0 {
		resp, err := k.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: create})
		if err != nil {
			return fmt.Errorf("create topics: %w", err)
		}
		var errs []error
		for _, tc := range create {
			err := resp.Errors[tc.Topic]
			switch {
			case err == nil:
				k.log.Info("created topic", "topic", tc.Topic, "partitions", tc.NumPartitions,
					"replication_factor", tc.ReplicationFactor)
				exists[tc.Topic] = true
			case errors.Is(err, kafka.TopicAlreadyExists):
				exists[tc.Topic] = true
			default:
				errs = append(errs, fmt.Errorf("create topic %s: %w", tc.Topic, err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	k.mu.Lock()
	for name := range exists {
		k.ensured[name] = true
	}
	k.mu.Unlock()
	return nil
}

// Ping checks that a broker answers a metadata request, for readiness
// checks. It dials afresh rather than ask the transport, which serves
// metadata, and its last error, from a cache refreshed every few seconds.
func (k *Kafka) Ping(ctx context.Context) error {
	var errs []error
	for _, addr := range k.cfg.Brokers {
		err := k.ping(ctx, addr)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("ping kafka: %w", errors.Join(errs...))
}

func (k *Kafka) ping(ctx context.Context, addr string) error {
	conn, err := k.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(kafkaDialTimeout)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		_ = conn.Close()
		return err
	}
	brokers, err := conn.Brokers()
	if cerr := conn.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("metadata from %s: %w", addr, err)
	}
	if len(brokers) == 0 {
		return fmt.Errorf("metadata from %s lists no brokers", addr)
	}
	return nil
}

// Close flushes the producer and closes its connections. Consumers must
// have returned first.
func (k *Kafka) Close() error {
	err := k.writer.Close()
	k.transport.CloseIdleConnections()
	k.stop()
	if err != nil {
		return fmt.Errorf("close kafka writer: %w", err)
	}
	return nil
}
