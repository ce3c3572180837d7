package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nokstream/nokstream/internal/events"
)

// Kinds of archived objects.
const (
	ArchiveSegment = "segment"
	ArchiveInit    = "init"
	// ArchiveRendition is a rendition of a raw segment, or a thumbnail
	// sprite or track of it: footage of the same stream and time.
	ArchiveRendition = "rendition"
	ArchiveSeal      = "seal"
	// ArchiveDocument is a scanned document that is evidence of
	// candidate-exams (DocumentEvidence): the candidate's or the exam's.
	ArchiveDocument = "document"
)

// The archiver keeps its records in its own schema (archiver/store): the
// registry does not write them. Until seals and archived objects reach the
// registry as events (docs/NOTES.md, Session 5), this file is the
// registry's read-only view of them for evidence exports (ArchivedSegments,
// ArchiveObjectsByKeys, LatestSeal: registry/export, through SealIndex); and
// RecordDeletion is how the registry records a deletion the archiver
// reports (events.ObjectDeleted).

// ArchiveObject is an object the archiver keeps, with the retention applied
// to it (table archiver.archive_objects). Its fields are those of the
// archiver's own type.
type ArchiveObject struct {
	Key      string
	Kind     string // ArchiveSegment, ArchiveInit or ArchiveSeal
	StreamID string
	Site     string
	Device   string
	Source   string
	Sequence int64
	// Start and End: a segment's footage; for an init segment, the span of
	// the segments that use it; for a seal, its candidate-exam's window.
	Start, End  time.Time
	Bytes       int64
	SHA256      string
	PrevChain   string
	Chain       string
	InitKey     string
	SegmentID   string
	ExamID      string // of a seal
	CandidateID string // of a seal
	Verified    bool
	RetainUntil time.Time
	LegalHold   bool
	Rule        string
	Decision    []byte // JSON of the archiver's decision
	DecidedAt   time.Time
	MarkedAt    *time.Time
	DeletedAt   *time.Time
}

const archiveColumns = `object_key, kind, stream_id, site, device, source, sequence, start_at, end_at, bytes, sha256,
	prev_chain, chain, init_key, segment_id, exam_id, candidate_id, verified, retain_until, legal_hold, rule, decision,
	decided_at, marked_at, deleted_at`

func scanArchiveObject(row pgx.Row) (ArchiveObject, error) {
	var o ArchiveObject
	err := row.Scan(&o.Key, &o.Kind, &o.StreamID, &o.Site, &o.Device, &o.Source, &o.Sequence, &o.Start, &o.End,
		&o.Bytes, &o.SHA256, &o.PrevChain, &o.Chain, &o.InitKey, &o.SegmentID, &o.ExamID, &o.CandidateID, &o.Verified,
		&o.RetainUntil, &o.LegalHold, &o.Rule, &o.Decision, &o.DecidedAt, &o.MarkedAt, &o.DeletedAt)
	return o, err
}

func collectArchiveObjects(rows pgx.Rows) ([]ArchiveObject, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (ArchiveObject, error) { return scanArchiveObject(row) })
}

// ArchivedSegments returns up to limit kept raw segments of site whose
// footage overlaps [from, to), in key order after afterKey: a page of the
// footage of the site in an exam window.
func (s *Store) ArchivedSegments(ctx context.Context, site string, from, to time.Time, afterKey string, limit int) ([]ArchiveObject, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+archiveColumns+` FROM archiver.archive_objects
		WHERE kind = 'segment' AND site = $1 AND start_at < $3 AND end_at > $2 AND deleted_at IS NULL AND object_key > $4
		ORDER BY object_key LIMIT $5`, site, from, to, afterKey, limit)
	if err != nil {
		return nil, fmt.Errorf("list archived segments of site %s: %w", site, err)
	}
	objs, err := collectArchiveObjects(rows)
	if err != nil {
		return nil, fmt.Errorf("list archived segments of site %s: %w", site, err)
	}
	return objs, nil
}

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
		if _, err := tx.Exec(ctx, `DELETE FROM segments WHERE object_key = $1`, e.ObjectKey); err != nil {
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

// Seal is one seal of a candidate-exam.
type Seal struct {
	ExamID       string
	CandidateID  string
	Version      int
	ManifestKey  string
	SignatureKey string
	MerkleRoot   string
	KeyID        string
	Objects      int
	Bytes        int64
	SealedAt     time.Time
}

// LatestSeal returns the newest seal of a candidate-exam, or ErrNotFound.
func (s *Store) LatestSeal(ctx context.Context, exam, candidate string) (Seal, error) {
	seal := Seal{ExamID: exam, CandidateID: candidate}
	err := s.pool.QueryRow(ctx, `SELECT version, manifest_key, signature_key, merkle_root, key_id, objects, bytes, sealed_at
		FROM archiver.seals WHERE exam_id = $1 AND candidate_id = $2 ORDER BY version DESC LIMIT 1`, exam, candidate).
		Scan(&seal.Version, &seal.ManifestKey, &seal.SignatureKey, &seal.MerkleRoot, &seal.KeyID, &seal.Objects, &seal.Bytes, &seal.SealedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return seal, fmt.Errorf("seal of exam %s candidate %s: %w", exam, candidate, ErrNotFound)
	}
	if err != nil {
		return seal, fmt.Errorf("seal of exam %s candidate %s: %w", exam, candidate, err)
	}
	return seal, nil
}

// ArchiveObjectsByKeys returns the archived objects under keys, in key
// order; keys not archived are left out.
func (s *Store) ArchiveObjectsByKeys(ctx context.Context, keys []string) ([]ArchiveObject, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+archiveColumns+` FROM archiver.archive_objects WHERE object_key = ANY($1) ORDER BY object_key`, keys)
	if err != nil {
		return nil, fmt.Errorf("read archived objects: %w", err)
	}
	objs, err := collectArchiveObjects(rows)
	if err != nil {
		return nil, fmt.Errorf("read archived objects: %w", err)
	}
	return objs, nil
}

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
