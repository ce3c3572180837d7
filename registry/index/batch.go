package index

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
)

// BatchIndexer stores a batch of segments in one round trip;
// *store.Store is one.
type BatchIndexer interface {
	// IndexSegments reports for each event whether it was new, and an
	// error wrapping store.ErrInvalid or store.ErrConflict for those that
	// can never be indexed; err fails the whole batch.
	IndexSegments(ctx context.Context, evs []*events.SegmentClosed) (inserted []bool, errs []error, err error)
}

// Batcher indexes segments in batches by group commit: the events that
// arrive while a batch is being written go together into the next one. So
// consumers of the segment topic running side by side (one per partition)
// share round trips and transactions, while a lone consumer waits for no
// timer. It is an Indexer: Handler(batcher, log) is the batching handler,
// which still returns only when its event is stored, so the bus commits
// nothing that is not indexed.
type Batcher struct {
	idx  BatchIndexer
	max  int
	reqs chan batchReq
}

type batchReq struct {
	ev   *events.SegmentClosed
	done chan batchRes
}

type batchRes struct {
	inserted bool
	err      error
}

// NewBatcher returns a Batcher writing at most max events at a time. Run
// must be running for IndexSegment to return.
func NewBatcher(idx BatchIndexer, max int) *Batcher {
	return &Batcher{idx: idx, max: max, reqs: make(chan batchReq, max)}
}

// IndexSegment queues e for the next batch and returns its outcome.
func (b *Batcher) IndexSegment(ctx context.Context, e *events.SegmentClosed) (bool, error) {
	req := batchReq{ev: e, done: make(chan batchRes, 1)}
	select {
	case b.reqs <- req:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	select {
	case res := <-req.done:
		return res.inserted, res.err
	case <-ctx.Done():
		// The batch may still store it: indexing is idempotent.
		return false, ctx.Err()
	}
}

// Run writes batches until ctx ends.
func (b *Batcher) Run(ctx context.Context) error {
	batch := make([]batchReq, 0, b.max)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case r := <-b.reqs:
			batch = append(batch, r)
		}
	drain:
		for len(batch) < b.max {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		evs := make([]*events.SegmentClosed, len(batch))
		for i, r := range batch {
			evs[i] = r.ev
		}
		inserted, errs, err := b.idx.IndexSegments(ctx, evs)
		for i, r := range batch {
			if err != nil {
				r.done <- batchRes{err: fmt.Errorf("index batch of %d: %w", len(batch), err)}
				continue
			}
			r.done <- batchRes{inserted: inserted[i], err: errs[i]}
		}
	}
}

// BatchHandler returns the bus batch handler that indexes a batch of
// SegmentClosed events into idx in one round trip and one transaction. If an
// event of the batch can never be indexed (malformed, invalid, conflicting),
// the batch is rejected as Permanent after its good events were stored, and
// the bus hands its events one at a time again: the good ones are found
// already indexed, and the poison one is dead-lettered. A database error
// fails the batch, which the bus retries whole.
func BatchHandler(idx BatchIndexer, log *slog.Logger) bus.BatchHandler {
	return func(ctx context.Context, ms []bus.Message) error {
		evs := make([]*events.SegmentClosed, 0, len(ms))
		var bad []error
		for _, m := range ms {
			e, err := events.DecodeSegmentClosed(m.Value)
			if err != nil {
				log.Error("reject malformed segment event", "topic", m.Topic, "partition", m.Partition, "offset", m.Offset, "err", err)
				bad = append(bad, fmt.Errorf("index segment at %s/%d/%d: %w", m.Topic, m.Partition, m.Offset, err))
				continue
			}
			evs = append(evs, e)
		}
		inserted, errs, err := idx.IndexSegments(ctx, evs)
		if err != nil {
			return fmt.Errorf("index batch of %d: %w", len(evs), err)
		}
		fresh := 0
		for i, e := range evs {
			switch {
			case errs[i] != nil:
				log.Error("reject segment event", "segment_id", e.SegmentID, "stream", e.StreamID, "sequence", e.Sequence, "err", errs[i])
				bad = append(bad, errs[i])
			case inserted[i]:
				fresh++
			}
		}
		if len(bad) > 0 {
			return bus.Permanent(errors.Join(bad...))
		}
		log.Debug("indexed segment batch", "events", len(ms), "new", fresh)
		return nil
	}
}
