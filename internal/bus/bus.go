// Package bus carries events between services: Kafka (kafka-go) when scaled
// out, and a durable in-process log on one machine. Both implement Bus.
//
// Delivery is at-least-once: a consumer group commits a message only after its
// handler returned nil, so every handler must be idempotent.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Message is one event as delivered to a handler.
type Message struct {
	Topic     string
	Key       string
	Value     []byte
	Partition int
	Offset    int64
	// Time is when the event was published.
	Time time.Time
	// Headers carries metadata the bus adds: a dead-lettered message has
	// the error that rejected it under HeaderError, and the topic, group,
	// partition and offset it came from. Nil for ordinary events.
	Headers map[string]string
}

// Headers set on a dead-lettered message.
const (
	HeaderError     = "error"
	HeaderTopic     = "topic"
	HeaderGroup     = "group"
	HeaderPartition = "partition"
	HeaderOffset    = "offset"
)

// Handler processes one message. Returning nil commits it. Returning an error
// wrapped with Permanent sends the message to the dead-letter topic
// (<topic>.dlq) and commits it; any other error is retried with backoff and
// the partition does not advance.
type Handler func(ctx context.Context, m Message) error

// Publisher publishes events. Publish returns only once the event is durably
// accepted (acks=all on Kafka, fsync'd on the in-process log).
type Publisher interface {
	Publish(ctx context.Context, topic, key string, value []byte) error
}

// Bus publishes and consumes events.
type Bus interface {
	Publisher
	// Consume runs a consumer of topic in the named group until ctx ends.
	// Messages with the same key are handled in order.
	Consume(ctx context.Context, topic, group string, h Handler) error
	// Close releases connections. It does not stop running consumers.
	Close() error
}

// ParallelConsumer is a bus that can handle the messages of different
// partitions side by side.
type ParallelConsumer interface {
	// ConsumeParallel is Consume with up to lanes messages handled at
	// once, each from a different partition: a partition's messages are
	// still handled one after the other, in order, and each is committed
	// once handled. Messages with the same key are in one partition, so
	// they keep their order; h must allow calls for different keys at
	// once.
	ConsumeParallel(ctx context.Context, topic, group string, lanes int, h Handler) error
}

// ConsumeParallel runs h with b's ConsumeParallel when it has one, else
// with Consume (one message at a time).
func ConsumeParallel(ctx context.Context, b Bus, topic, group string, lanes int, h Handler) error {
	if pc, ok := b.(ParallelConsumer); ok && lanes > 1 {
		return pc.ConsumeParallel(ctx, topic, group, lanes, h)
	}
	return b.Consume(ctx, topic, group, h)
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

// Permanent marks err as not worth retrying: the message is dead-lettered.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// DeadLetterTopic is where poison messages of topic go.
func DeadLetterTopic(topic string) string { return fmt.Sprintf("%s.dlq", topic) }

// checkName accepts the topic names Kafka accepts. Group names are held to the
// same rule, because the in-process bus uses both as file names.
func checkName(kind, name string) error {
	ok := len(name) > 0 && len(name) <= 200 && name != "." && name != ".."
	for _, c := range name {
		if !ok {
			break
		}
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
	}
	if !ok {
		return fmt.Errorf("invalid %s name %q: want 1-200 of [A-Za-z0-9._-]", kind, name)
	}
	return nil
}

// Retry delays for a handler that failed with a retryable error.
const (
	retryFirst = 100 * time.Millisecond
	retryMax   = 10 * time.Second
)

// backoff doubles a delay from retryFirst up to retryMax.
type backoff struct{ d time.Duration }

// wait sleeps for the next delay. It returns false if ctx ended first.
func (b *backoff) wait(ctx context.Context) bool {
	switch {
	case b.d == 0:
		b.d = retryFirst
	case b.d < retryMax:
		b.d = min(2*b.d, retryMax)
	}
	t := time.NewTimer(b.d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// deadLetterFunc publishes m, with cause, to the dead-letter topic of m.Topic.
type deadLetterFunc func(ctx context.Context, m Message, group string, cause error) error

// deliver hands m to h until h succeeds or rejects m as Permanent, in which
// case m is dead-lettered. Other errors are retried with backoff, so a
// partition never advances past a message that was not handled. deliver
// reports whether m may now be committed: false means ctx ended first.
func deliver(ctx context.Context, log *slog.Logger, met *Metrics, group string, m Message, h Handler, dl deadLetterFunc) bool {
	var b backoff
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := h(ctx, m)
		met.handleDone(m.Topic, group, time.Since(start))
		if err == nil {
			met.handled(m.Topic, group, resultOK)
			return true
		}
		if ctx.Err() != nil {
			// Shutting down: whatever the handler said, the message
			// stays uncommitted and is handled again after a restart.
			return false
		}
		if IsPermanent(err) {
			return deadLetter(ctx, log, met, group, m, err, dl)
		}
		met.handled(m.Topic, group, resultRetry)
		log.Warn("handler failed, will retry", "topic", m.Topic, "group", group, "key", m.Key,
			"partition", m.Partition, "offset", m.Offset, "attempt", attempt, "err", err)
		if !b.wait(ctx) {
			return false
		}
	}
}

// deadLetter publishes m to the dead-letter topic, retrying until it is
// accepted, because committing a poison message that is not in the
// dead-letter topic would lose it.
func deadLetter(ctx context.Context, log *slog.Logger, met *Metrics, group string, m Message, cause error, dl deadLetterFunc) bool {
	var b backoff
	for {
		err := dl(ctx, m, group, cause)
		if err == nil {
			met.handled(m.Topic, group, resultDeadLetter)
			log.Error("message dead-lettered", "topic", m.Topic, "group", group, "key", m.Key,
				"partition", m.Partition, "offset", m.Offset, "dead_letter_topic", DeadLetterTopic(m.Topic), "err", cause)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		log.Warn("dead-letter publish failed, will retry", "topic", m.Topic, "group", group,
			"partition", m.Partition, "offset", m.Offset, "err", err)
		if !b.wait(ctx) {
			return false
		}
	}
}
