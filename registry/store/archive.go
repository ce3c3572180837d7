package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nokstream/nokstream/internal/events"
)

// The archiver keeps its records in its own schema (archiver/store): the
// registry neither writes nor reads them. RecordDeletion is how the
// registry records a deletion the archiver reports (events.ObjectDeleted);
// records.go keeps its copies of the rest (objects, seals, checks) from
// the archiver's other events.

// RecordDeletion records the archiver's report (events.ObjectDeleted) that
// its sweeper deleted an object when its retention ended: in one
// transaction, the audit log gets the deletion (action archive.delete, by
// "archiver", with the rule that allowed it, the date and the reasons) and a
// deleted segment leaves the segment index, so that no playlist or evidence
// listing offers media that is gone. Its segment_ids row stays, so that a
// replayed SegmentClosed does not index it again (the audit entry says it
// was swept). The same report twice changes nothing more: recorded is false
// for a deletion recorded before. A report that fails validation is
// ErrInvalid.
func (s *Store) RecordDeletion(ctx context.Context, e *events.ObjectDeleted) (recorded bool, err error) {
	if err := e.Validate(); err != nil {
		return false, fmt.Errorf("record deletion: %w: %w", ErrInvalid, err)
	}
	reasons := make([]map[string]any, 0, len(e.Reasons))
	for _, r := range e.Reasons {
		reasons = append(reasons, map[string]any{"rule": r.Rule, "until": r.Until, "exam_id": r.ExamID,
			"candidate_id": r.CandidateID, "detail": r.Detail})
	}
	entry := AuditEntry{At: e.DeletedAt, ActorLogin: "archiver", Action: auditArchiveDelete, Object: e.ObjectKey,
		Purpose: "retention expired", Detail: map[string]any{
			"kind": e.Kind, "stream": e.StreamID, "bytes": e.Bytes, "sha256": e.SHA256, "rule": e.Rule,
			"retain_until": e.RetainUntil, "marked_at": e.MarkedAt, "reasons": reasons, "archiver": e.Archiver,
		}}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// One report of an object at a time, so that two cannot both
		// find no entry.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('nokstream.deleted.' || $1))`, e.ObjectKey); err != nil {
			return err
		}
		var before bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM audit_log WHERE object = $1 AND action = $2)`,
			e.ObjectKey, auditArchiveDelete).Scan(&before); err != nil || before {
			return err
		}
		if err := deleteSegmentByKey(ctx, tx, e.ObjectKey); err != nil {
			return err
		}
		if err := auditIn(ctx, tx, entry); err != nil {
			return err
		}
		recorded = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("record deletion of %s: %w", e.ObjectKey, err)
	}
	return recorded, nil
}

// auditArchiveDelete is the audit log's action of a deletion by the
// archiver's sweeper.
const auditArchiveDelete = "archive.delete"

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// auditIn appends e to the audit log in the transaction of the change it
// records, as Audit does.
func auditIn(ctx context.Context, q execer, e AuditEntry) error {
	detail := []byte("{}")
	if len(e.Detail) > 0 {
		var err error
		if detail, err = json.Marshal(e.Detail); err != nil {
			return fmt.Errorf("audit %s: encode detail: %w", e.Action, err)
		}
	}
	var actor *int64
	if e.ActorID != 0 {
		actor = &e.ActorID
	}
	at := e.At
	if at.IsZero() {
		at = time.Now()
	}
	_, err := q.Exec(ctx, `
		INSERT INTO audit_log (at, actor_id, actor_login, action, object, remote_addr, purpose, detail)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		at, actor, e.ActorLogin, e.Action, e.Object, e.RemoteAddr, e.Purpose, detail)
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// ObjectAudit returns the audit entries about any of objects (object keys,
// stream ids, "exam/<exam>/<candidate>"), at or after since, oldest first,
// at most limit of them.
func (s *Store) ObjectAudit(ctx context.Context, objects []string, since time.Time, limit int) ([]AuditEntry, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, at, coalesce(actor_id, 0), actor_login, action, object, remote_addr, purpose, detail
		FROM audit_log WHERE object = ANY($1) AND at >= $2 ORDER BY id LIMIT $3`, objects, since, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit trail: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := row.Scan(&e.ID, &e.At, &e.ActorID, &e.ActorLogin, &e.Action, &e.Object, &e.RemoteAddr, &e.Purpose, &e.Detail)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read audit trail: %w", err)
	}
	return entries, nil
}
