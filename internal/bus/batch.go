package bus

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// BatchHandler processes a batch of messages, in the order the bus
// delivered them (a key's messages in order). Returning nil commits the
// whole batch. Returning an error wrapped with Permanent says that some
// message in the batch can never be handled: the bus then hands the batch's
// messages to the handler one at a time (a batch of one each), with the
// rules of Handler for each, so the poison one is dead-lettered and the
// others are handled. Any other error retries the whole batch with backoff,
// and nothing of it is committed meanwhile. A handler must be idempotent:
// after a crash or a retry, a batch is delivered again, whole or in part.
type BatchHandler func(ctx context.Context, ms []Message) error

// BatchOptions bound a batch.
type BatchOptions struct {
	// Max is the most messages in a batch. Default 500.
	Max int
	// Linger is how long a batch waits for more messages after its first
	// one arrived, unless it is full sooner. Default 50ms; negative: no
	// waiting, a batch is what has already arrived.
	Linger time.Duration
}

// Default batch bounds.
const (
	DefaultBatchMax    = 500
	DefaultBatchLinger = 50 * time.Millisecond
)

func (o BatchOptions) withDefaults() (BatchOptions, error) {
	if o.Max < 0 {
		return o, fmt.Errorf("batch max %d is negative", o.Max)
	}
	if o.Max == 0 {
		o.Max = DefaultBatchMax
	}
	if o.Linger == 0 {
		o.Linger = DefaultBatchLinger
	}
	if o.Linger < 0 {
		o.Linger = 0
	}
	return o, nil
}

// BatchConsumer consumes in batches. Both Kafka and Local are.
type BatchConsumer interface {
	// ConsumeBatch runs a consumer of topic in the named group until ctx
	// ends, handing h batches of messages. Offsets are committed only
	// after the whole batch was handled (or its poison messages
	// dead-lettered), so nothing past an unhandled message is committed.
	ConsumeBatch(ctx context.Context, topic, group string, o BatchOptions, h BatchHandler) error
}

var (
	_ BatchConsumer = (*Kafka)(nil)
	_ BatchConsumer = (*Local)(nil)
)

// deliverBatch hands ms to h until h succeeds; a retryable error retries the
// batch with backoff, and a permanent one falls back to delivering each
// message alone (see BatchHandler). It reports whether the batch may now be
// committed: false means ctx ended first.
func deliverBatch(ctx context.Context, log *slog.Logger, met *Metrics, group string, ms []Message, h BatchHandler, dl deadLetterFunc) bool {
	if len(ms) == 0 {
		return true
	}
	topic := ms[0].Topic
	var b backoff
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := h(ctx, ms)
		met.handleDone(topic, group, time.Since(start))
		if err == nil {
			for range ms {
				met.handled(topic, group, resultOK)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if IsPermanent(err) && len(ms) > 1 {
			log.Warn("batch rejected, handling its messages one at a time", "topic", topic, "group", group,
				"messages", len(ms), "first_offset", ms[0].Offset, "err", err)
			one := func(ctx context.Context, m Message) error { return h(ctx, []Message{m}) }
			for _, m := range ms {
				if !deliver(ctx, log, met, group, m, one, dl) {
					return false
				}
			}
			return true
		}
		if IsPermanent(err) {
			return deadLetter(ctx, log, met, group, ms[0], err, dl)
		}
		for range ms {
			met.handled(topic, group, resultRetry)
		}
		log.Warn("batch handler failed, will retry", "topic", topic, "group", group, "messages", len(ms),
			"first_offset", ms[0].Offset, "attempt", attempt, "err", err)
		if !b.wait(ctx) {
			return false
		}
	}
}
