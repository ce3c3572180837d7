package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
)

// OutboxEvent is an event written in the transaction of the change it
// announces, waiting to be published on the bus.
type OutboxEvent struct {
	ID        int64
	Topic     string
	Key       string
	Value     []byte
	CreatedAt time.Time
}

// enqueueRetention writes a RetentionChanged event for candidate's exam
// into the outbox, in tx: it is published if and only if the change
// commits.
func enqueueRetention(ctx context.Context, tx pgx.Tx, exam, candidate, reason string, now time.Time) error {
	ev := events.RetentionChanged{EventID: NewID(), ExamID: exam, CandidateID: candidate, Reason: reason, At: now.UTC()}
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode retention event: %w", err)
	}
	_, err = tx.Exec(ctx, `INSERT INTO outbox (topic, key, value, created_at) VALUES ($1, $2, $3, $4)`,
		events.TopicRetention, exam, b, now)
	if err != nil {
		return fmt.Errorf("write retention event to the outbox: %w", err)
	}
	// And v2, the snapshot of the facts (factsnap.go).
	return enqueueFacts(ctx, tx, exam, candidate, reason, now)
}

// RelayOutbox publishes up to limit pending outbox events, oldest first,
// with publish, and marks those published at now. It returns how many it
// published, and stops at the first error of publish (those before it stay
// marked). Several relays may run at once: each takes rows the others have
// not locked. Delivery is at-least-once: a crash between publish and commit
// publishes the event again.
func (s *Store) RelayOutbox(ctx context.Context, limit int, now time.Time, publish func(context.Context, OutboxEvent) error) (int, error) {
	var n int
	var perr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id, topic, key, value, created_at FROM outbox
			WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
		if err != nil {
			return err
		}
		pending, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutboxEvent, error) {
			var e OutboxEvent
			err := r.Scan(&e.ID, &e.Topic, &e.Key, &e.Value, &e.CreatedAt)
			return e, err
		})
		if err != nil {
			return err
		}
		var done []int64
		for _, e := range pending {
			if perr = publish(ctx, e); perr != nil {
				break
			}
			done = append(done, e.ID)
		}
		n = len(done)
		if n == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE outbox SET published_at = $2 WHERE id = ANY($1)`, done, now)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("relay outbox: %w", err)
	}
	if perr != nil {
		return n, fmt.Errorf("relay outbox: publish: %w", perr)
	}
	return n, nil
}

// PendingOutbox returns how many outbox events wait to be published.
func (s *Store) PendingOutbox(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE published_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count pending outbox events: %w", err)
	}
	return n, nil
}

// PruneOutbox removes events published before before and returns how many.
func (s *Store) PruneOutbox(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM outbox WHERE published_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("prune outbox: %w", err)
	}
	return tag.RowsAffected(), nil
}
