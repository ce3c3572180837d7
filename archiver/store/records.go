package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
)

// The archiver's records towards the registry (table archiver.records):
// every change to an archived object, every seal and every segment check
// queues its event (events.ObjectArchived, SealWritten, SegmentChecked) in
// the transaction of the change, numbered by the table's id (the event's
// seq). ReportRecords publishes them and records that it did; one left
// unreported by a crash or an outage is published at the next pass. The
// registry keeps its copies from them (its archived_objects, evidence_seals
// and segment_integrity), idempotently, and for an object only the newest.

// querier is a transaction: what recording an event needs.
type querier interface {
	execer
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// recordObjects queues an events.ObjectArchived of each of keys as it is
// now in the transaction q, which has written them. The rows are locked
// first, so that an object's events are numbered in the order of its
// changes: a concurrent change commits before this one reads the row, or
// waits for it.
func recordObjects(ctx context.Context, q querier, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	rows, err := q.Query(ctx, `SELECT `+archiveColumns+` FROM archiver.archive_objects WHERE object_key = ANY($1)
		ORDER BY object_key FOR UPDATE`, keys)
	if err != nil {
		return fmt.Errorf("record archived objects: %w", err)
	}
	objs, err := collectArchiveObjects(rows)
	if err != nil {
		return fmt.Errorf("record archived objects: %w", err)
	}
	for _, o := range objs {
		err := recordEvent(ctx, q, o.Key, func(seq int64) any {
			return &events.ObjectArchived{Type: events.ArchiveObjectArchived, Seq: seq, ObjectKey: o.Key, Kind: o.Kind,
				StreamID: o.StreamID, Site: o.Site, Device: o.Device, Source: o.Source, Sequence: o.Sequence,
				Start: o.Start.UTC(), End: o.End.UTC(), Bytes: o.Bytes, SHA256: o.SHA256, PrevChain: o.PrevChain,
				Chain: o.Chain, InitKey: o.InitKey, SegmentID: o.SegmentID, ExamID: o.ExamID, CandidateID: o.CandidateID,
				Verified: o.Verified, RetainUntil: o.RetainUntil.UTC(), LegalHold: o.LegalHold, Rule: o.Rule,
				DecidedAt: o.DecidedAt.UTC(), DeletedAt: utcOrNil(o.DeletedAt)}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func utcOrNil(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// recordEvent queues the event ev(seq), published under key, in q: seq is
// the record's number, taken now.
func recordEvent(ctx context.Context, q querier, key string, ev func(seq int64) any) error {
	var seq int64
	if err := q.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('archiver.records', 'id'))`).Scan(&seq); err != nil {
		return fmt.Errorf("record event of %s: %w", key, err)
	}
	b, err := json.Marshal(ev(seq))
	if err != nil {
		return fmt.Errorf("record event of %s: %w", key, err)
	}
	if _, err := q.Exec(ctx, `INSERT INTO archiver.records (id, key, value) VALUES ($1, $2, $3)`, seq, key, b); err != nil {
		return fmt.Errorf("record event of %s: %w", key, err)
	}
	return nil
}

// ReportRecords publishes up to limit records not reported yet, oldest
// first, and records them as reported at now; it returns how many it
// published. Records another replica is publishing are skipped, not waited
// for. It stops at the first that publish refuses: the rest stay for the
// next pass.
func (s *Store) ReportRecords(ctx context.Context, limit int, now time.Time,
	publish func(ctx context.Context, key string, value []byte) error) (int, error) {
	var done []int64
	var perr error
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		done = done[:0]
		rows, err := tx.Query(ctx, `SELECT id, key, value FROM archiver.records WHERE reported_at IS NULL
			ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`, limit)
		if err != nil {
			return err
		}
		type record struct {
			id    int64
			key   string
			value []byte
		}
		pending, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (record, error) {
			var rec record
			err := r.Scan(&rec.id, &rec.key, &rec.value)
			return rec, err
		})
		if err != nil {
			return err
		}
		for _, r := range pending {
			if perr = publish(ctx, r.key, r.value); perr != nil {
				break
			}
			done = append(done, r.id)
		}
		if len(done) == 0 {
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE archiver.records SET reported_at = $2 WHERE id = ANY($1)`, done, now)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("report records: %w", err)
	}
	if perr != nil {
		return len(done), fmt.Errorf("report records: publish: %w", perr)
	}
	return len(done), nil
}

// UnreportedRecords returns how many records wait to be published.
func (s *Store) UnreportedRecords(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM archiver.records WHERE reported_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count unreported records: %w", err)
	}
	return n, nil
}

// PruneRecords removes the records reported before before, and returns
// how many: the registry has them, and the archiver's own tables keep
// what they say.
func (s *Store) PruneRecords(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM archiver.records WHERE reported_at < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("prune reported records: %w", err)
	}
	return tag.RowsAffected(), nil
}
