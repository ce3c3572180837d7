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
)

// Message is one event as delivered to a handler.
type Message struct {
	Topic     string
	Key       string
	Value     []byte
	Partition int
	Offset    int64
}

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
