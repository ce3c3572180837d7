package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
)

// SegmentCheck is one check of a stored segment against its event.
type SegmentCheck struct {
	SegmentID string
	CheckedAt time.Time
	OK        bool
	Detail    string // what was wrong, or what was checked
	Checker   string // who checked: the archiver's node name
}

// RecordSegmentCheck records that checker checked the stored segment id with
// the given result, with its record for the registry. Every call is a row:
// checking twice is two checks.
func (s *Store) RecordSegmentCheck(ctx context.Context, segmentID string, ok bool, detail, checker string) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var at time.Time
		if err := tx.QueryRow(ctx, `INSERT INTO archiver.segment_checks (segment_id, ok, detail, checker)
			VALUES ($1, $2, $3, $4) RETURNING checked_at`, segmentID, ok, detail, checker).Scan(&at); err != nil {
			return err
		}
		return recordEvent(ctx, tx, segmentID, func(seq int64) any {
			return &events.SegmentChecked{Type: events.ArchiveSegmentChecked, Seq: seq, SegmentID: segmentID, OK: ok,
				Detail: detail, CheckedAt: at.UTC(), Checker: checker}
		})
	})
	if err != nil {
		return fmt.Errorf("record check of segment %s: %w", segmentID, err)
	}
	return nil
}

// SegmentChecks returns the recorded checks of segment id, oldest first.
func (s *Store) SegmentChecks(ctx context.Context, segmentID string) ([]SegmentCheck, error) {
	rows, err := s.pool.Query(ctx, `SELECT segment_id, checked_at, ok, detail, checker FROM archiver.segment_checks
		WHERE segment_id = $1 ORDER BY checked_at, id`, segmentID)
	if err != nil {
		return nil, fmt.Errorf("list checks of segment %s: %w", segmentID, err)
	}
	checks, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SegmentCheck])
	if err != nil {
		return nil, fmt.Errorf("list checks of segment %s: %w", segmentID, err)
	}
	return checks, nil
}
