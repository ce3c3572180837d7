package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/seal"
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

// ArchiveObject is an object the archiver keeps, with the retention applied
// to it (table archiver.archive_objects).
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

// ArchiveObject returns the archived object under key, deleted or not, or
// ErrNotFound.
func (s *Store) ArchiveObject(ctx context.Context, key string) (ArchiveObject, error) {
	o, err := scanArchiveObject(s.pool.QueryRow(ctx, `SELECT `+archiveColumns+` FROM archiver.archive_objects WHERE object_key = $1`, key))
	if errors.Is(err, pgx.ErrNoRows) {
		return ArchiveObject{}, fmt.Errorf("archived object %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return ArchiveObject{}, fmt.Errorf("archived object %s: %w", key, err)
	}
	return o, nil
}

// StreamChain is the last verified segment of a stream.
type StreamChain struct {
	StreamID  string
	Sequence  int64
	Chain     string
	SegmentID string
}

// StreamChain returns the last verified segment of stream, or ErrNotFound
// before the first.
func (s *Store) StreamChain(ctx context.Context, stream string) (StreamChain, error) {
	c := StreamChain{StreamID: stream}
	err := s.pool.QueryRow(ctx, `SELECT sequence, chain, segment_id FROM archiver.stream_chains WHERE stream_id = $1`, stream).
		Scan(&c.Sequence, &c.Chain, &c.SegmentID)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("chain of stream %s: %w", stream, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("chain of stream %s: %w", stream, err)
	}
	return c, nil
}

// SaveArchivedSegment records a segment the archiver received with its
// retention, its init segment with its new retention (added, or updated and
// its span extended), and the stream's new last chain value, in one
// transaction, with their records for the registry. The same segment
// twice changes nothing more.
func (s *Store) SaveArchivedSegment(ctx context.Context, seg, init ArchiveObject, chain StreamChain) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := insertArchiveObject(ctx, tx, seg); err != nil {
			return err
		}
		if _, err := insertArchiveObject(ctx, tx, init); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE archiver.archive_objects SET start_at = least(start_at, $2), end_at = greatest(end_at, $3),
				retain_until = greatest(retain_until, $4), legal_hold = $5, rule = $6, decision = $7, decided_at = $8,
				verified = verified OR $9
			WHERE object_key = $1`,
			init.Key, init.Start, init.End, init.RetainUntil, init.LegalHold, init.Rule, jsonOrEmpty(init.Decision), init.DecidedAt,
			init.Verified)
		if err != nil {
			return err
		}
		if err := recordObjects(ctx, tx, seg.Key, init.Key); err != nil {
			return err
		}
		if chain.StreamID == "" {
			return nil
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO archiver.stream_chains (stream_id, sequence, chain, segment_id, updated_at) VALUES ($1, $2, $3, $4, now())
			ON CONFLICT (stream_id) DO UPDATE SET sequence = EXCLUDED.sequence, chain = EXCLUDED.chain,
				segment_id = EXCLUDED.segment_id, updated_at = now()`,
			chain.StreamID, chain.Sequence, chain.Chain, chain.SegmentID)
		return err
	})
	if err != nil {
		return fmt.Errorf("save archived segment %s: %w", seg.Key, err)
	}
	return nil
}

func jsonOrEmpty(b []byte) []byte {
	if len(b) == 0 {
		return []byte("{}")
	}
	return b
}

// SaveArchiveObject records an object (a rendition, a document), if it is
// new, with its record for the registry.
func (s *Store) SaveArchiveObject(ctx context.Context, o ArchiveObject) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		added, err := insertArchiveObject(ctx, tx, o)
		if err != nil || !added {
			return err
		}
		return recordObjects(ctx, tx, o.Key)
	})
	if err != nil {
		return fmt.Errorf("save archived object %s: %w", o.Key, err)
	}
	return nil
}

// execer is a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// insertArchiveObject adds o unless its key is archived, and reports
// whether it did.
func insertArchiveObject(ctx context.Context, q execer, o ArchiveObject) (bool, error) {
	decision := jsonOrEmpty(o.Decision)
	tag, err := q.Exec(ctx, `
		INSERT INTO archiver.archive_objects (object_key, kind, stream_id, site, device, source, sequence, start_at, end_at, bytes,
			sha256, prev_chain, chain, init_key, segment_id, exam_id, candidate_id, verified, retain_until, legal_hold,
			rule, decision, decided_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)
		ON CONFLICT (object_key) DO NOTHING`,
		o.Key, o.Kind, o.StreamID, o.Site, o.Device, o.Source, o.Sequence, o.Start, o.End, o.Bytes,
		o.SHA256, o.PrevChain, o.Chain, o.InitKey, o.SegmentID, o.ExamID, o.CandidateID, o.Verified, o.RetainUntil,
		o.LegalHold, o.Rule, decision, o.DecidedAt)
	return tag.RowsAffected() == 1, err
}

// RetentionUpdate is a new decision for an archived object.
type RetentionUpdate struct {
	Key         string
	RetainUntil time.Time
	LegalHold   bool
	Rule        string
	Decision    []byte
	DecidedAt   time.Time
	// Unmark drops the sweeper's mark: the object is kept after all.
	Unmark bool
}

// SetArchiveRetention records new decisions, in one transaction with their
// records for the registry. A retain-until date is never lowered, whatever
// the caller says.
func (s *Store) SetArchiveRetention(ctx context.Context, updates []RetentionUpdate) error {
	if len(updates) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, u := range updates {
		batch.Queue(`UPDATE archiver.archive_objects SET retain_until = greatest(retain_until, $2), legal_hold = $3, rule = $4,
				decision = $5, decided_at = $6, marked_at = CASE WHEN $7 THEN NULL ELSE marked_at END
			WHERE object_key = $1`, u.Key, u.RetainUntil, u.LegalHold, u.Rule, jsonOrEmpty(u.Decision), u.DecidedAt, u.Unmark)
	}
	keys := make([]string, 0, len(updates))
	for _, u := range updates {
		keys = append(keys, u.Key)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.SendBatch(ctx, batch).Close(); err != nil {
			return err
		}
		return recordObjects(ctx, tx, keys...)
	})
	if err != nil {
		return fmt.Errorf("record retention of %d objects: %w", len(updates), err)
	}
	return nil
}

// ArchivedSegments returns up to limit kept raw segments of site whose
// footage overlaps [from, to), in key order after afterKey: a page of the
// footage of the site in an exam window.
func (s *Store) ArchivedSegments(ctx context.Context, site string, from, to time.Time, afterKey string, limit int) ([]ArchiveObject, error) {
	return s.archivedFootage(ctx, []string{ArchiveSegment}, site, from, to, afterKey, limit)
}

// ArchivedFootage is ArchivedSegments with the renditions and thumbnails
// of the segments too.
func (s *Store) ArchivedFootage(ctx context.Context, site string, from, to time.Time, afterKey string, limit int) ([]ArchiveObject, error) {
	return s.archivedFootage(ctx, []string{ArchiveSegment, ArchiveRendition}, site, from, to, afterKey, limit)
}

func (s *Store) archivedFootage(ctx context.Context, kinds []string, site string, from, to time.Time, afterKey string, limit int) ([]ArchiveObject, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+archiveColumns+` FROM archiver.archive_objects
		WHERE kind = ANY($6) AND site = $1 AND start_at < $3 AND end_at > $2 AND deleted_at IS NULL AND object_key > $4
		ORDER BY object_key LIMIT $5`, site, from, to, afterKey, limit, kinds)
	if err != nil {
		return nil, fmt.Errorf("list archived segments of site %s: %w", site, err)
	}
	objs, err := collectArchiveObjects(rows)
	if err != nil {
		return nil, fmt.Errorf("list archived segments of site %s: %w", site, err)
	}
	return objs, nil
}

// InitUsage is what the kept segments that use an init segment ask of it.
type InitUsage struct {
	Users int // how many kept segments use it
	// Latest is the user with the latest retain-until date, and Held one
	// under legal hold, if any ("" keys when there is none).
	LatestKey   string
	LatestUntil time.Time
	HeldKey     string
}

// InitUsage returns how the kept segments use the init segment key.
func (s *Store) InitUsage(ctx context.Context, key string) (InitUsage, error) {
	var u InitUsage
	err := s.pool.QueryRow(ctx, `
		SELECT count(*),
			coalesce((SELECT object_key FROM archiver.archive_objects WHERE kind IN ('segment', 'rendition') AND init_key = $1 AND deleted_at IS NULL
				ORDER BY retain_until DESC, object_key LIMIT 1), ''),
			coalesce(max(retain_until), 'epoch'),
			coalesce((SELECT object_key FROM archiver.archive_objects WHERE kind IN ('segment', 'rendition') AND init_key = $1 AND deleted_at IS NULL
				AND legal_hold LIMIT 1), '')
		FROM archiver.archive_objects WHERE kind IN ('segment', 'rendition') AND init_key = $1 AND deleted_at IS NULL`, key).
		Scan(&u.Users, &u.LatestKey, &u.LatestUntil, &u.HeldKey)
	if err != nil {
		return u, fmt.Errorf("read users of init %s: %w", key, err)
	}
	return u, nil
}

// DueObjects returns up to limit kept, unmarked objects not under hold whose
// retain-until date is not after now: the sweeper's first phase. Segments
// come before init segments.
func (s *Store) DueObjects(ctx context.Context, now time.Time, limit int) ([]ArchiveObject, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+archiveColumns+` FROM archiver.archive_objects
		WHERE deleted_at IS NULL AND marked_at IS NULL AND NOT legal_hold AND retain_until <= $1
		ORDER BY retain_until, object_key LIMIT $2`, now, limit)
	if err != nil {
		return nil, fmt.Errorf("list due objects: %w", err)
	}
	objs, err := collectArchiveObjects(rows)
	if err != nil {
		return nil, fmt.Errorf("list due objects: %w", err)
	}
	return objs, nil
}

// MarkedObjects returns up to limit kept objects marked at or before
// before: the sweeper's second phase. Segments come before init segments,
// so that an init goes in the same pass as its last segment.
func (s *Store) MarkedObjects(ctx context.Context, before time.Time, limit int) ([]ArchiveObject, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+archiveColumns+` FROM archiver.archive_objects
		WHERE deleted_at IS NULL AND marked_at IS NOT NULL AND marked_at <= $1
		ORDER BY kind = 'init', marked_at, object_key LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list marked objects: %w", err)
	}
	objs, err := collectArchiveObjects(rows)
	if err != nil {
		return nil, fmt.Errorf("list marked objects: %w", err)
	}
	return objs, nil
}

// MarkObject records the sweeper's mark on an expired object, unless it was
// marked already.
func (s *Store) MarkObject(ctx context.Context, key string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE archiver.archive_objects SET marked_at = $2
		WHERE object_key = $1 AND marked_at IS NULL AND deleted_at IS NULL`, key, at)
	if err != nil {
		return fmt.Errorf("mark %s: %w", key, err)
	}
	return nil
}

// Deletion is the archiver's record of one deletion by the sweeper: Detail
// is what the registry's audit entry of it says (the rule that allowed it,
// the reasons, the object's kind, stream, size and SHA-256), JSON.
type Deletion struct {
	Key       string
	DeletedAt time.Time
	Detail    []byte
	// ReportedAt is when the registry recorded the deletion (nil: not
	// yet).
	ReportedAt *time.Time
}

// RecordDeletion records that the sweeper deleted the object at, with the
// detail of the deletion, in one transaction: the object's row keeps its
// retention and decision and gets its deleted_at, and the log of deletions
// gets the deletion, not yet reported to the registry, and the object's
// record for the registry says it is deleted. The same deletion twice
// changes nothing more.
func (s *Store) RecordDeletion(ctx context.Context, key string, at time.Time, detail []byte) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE archiver.archive_objects SET deleted_at = $2
			WHERE object_key = $1 AND deleted_at IS NULL`, key, at)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			if err := recordObjects(ctx, tx, key); err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `INSERT INTO archiver.deletions (object_key, deleted_at, detail) VALUES ($1, $2, $3)
			ON CONFLICT (object_key) DO NOTHING`, key, at, jsonOrEmpty(detail))
		return err
	})
	if err != nil {
		return fmt.Errorf("record deletion of %s: %w", key, err)
	}
	return nil
}

// UnreportedDeletions returns up to limit deletions the registry has not
// recorded yet, oldest first.
func (s *Store) UnreportedDeletions(ctx context.Context, limit int) ([]Deletion, error) {
	rows, err := s.pool.Query(ctx, `SELECT object_key, deleted_at, detail, reported_at FROM archiver.deletions
		WHERE reported_at IS NULL ORDER BY deleted_at, object_key LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list unreported deletions: %w", err)
	}
	ds, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Deletion])
	if err != nil {
		return nil, fmt.Errorf("list unreported deletions: %w", err)
	}
	return ds, nil
}

// Deletion returns the archiver's record of the deletion of key, or
// ErrNotFound.
func (s *Store) Deletion(ctx context.Context, key string) (Deletion, error) {
	var d Deletion
	err := s.pool.QueryRow(ctx, `SELECT object_key, deleted_at, detail, reported_at FROM archiver.deletions
		WHERE object_key = $1`, key).Scan(&d.Key, &d.DeletedAt, &d.Detail, &d.ReportedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, fmt.Errorf("deletion of %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("deletion of %s: %w", key, err)
	}
	return d, nil
}

// DeletionReported records that the registry recorded the deletion of key.
func (s *Store) DeletionReported(ctx context.Context, key string, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE archiver.deletions SET reported_at = $2
		WHERE object_key = $1 AND reported_at IS NULL`, key, at); err != nil {
		return fmt.Errorf("record the report of the deletion of %s: %w", key, err)
	}
	return nil
}

// Seal is one seal of a candidate-exam.
type Seal = seal.Record

// SaveSeal records a seal, and its two objects with their retention, in one
// transaction with their records for the registry. A seal of the same
// version is ErrExists.
func (s *Store) SaveSeal(ctx context.Context, seal Seal, objects ...ArchiveObject) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO archiver.seals (exam_id, candidate_id, version, manifest_key, signature_key, merkle_root,
				key_id, objects, bytes, sealed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			seal.ExamID, seal.CandidateID, seal.Version, seal.ManifestKey, seal.SignatureKey, seal.MerkleRoot, seal.KeyID,
			seal.Objects, seal.Bytes, seal.SealedAt)
		if isUniqueViolation(err) {
			return ErrExists
		}
		if err != nil {
			return err
		}
		keys := make([]string, 0, len(objects))
		for _, o := range objects {
			if _, err := insertArchiveObject(ctx, tx, o); err != nil {
				return err
			}
			keys = append(keys, o.Key)
		}
		if err := recordObjects(ctx, tx, keys...); err != nil {
			return err
		}
		return recordEvent(ctx, tx, seal.ExamID+"/"+seal.CandidateID, func(seq int64) any {
			return &events.SealWritten{Type: events.ArchiveSealWritten, Seq: seq, ExamID: seal.ExamID,
				CandidateID: seal.CandidateID, Version: seal.Version, ManifestKey: seal.ManifestKey,
				SignatureKey: seal.SignatureKey, MerkleRoot: seal.MerkleRoot, KeyID: seal.KeyID, Objects: seal.Objects,
				Bytes: seal.Bytes, SealedAt: seal.SealedAt.UTC()}
		})
	})
	if err != nil {
		return fmt.Errorf("save seal of exam %s candidate %s: %w", seal.ExamID, seal.CandidateID, err)
	}
	return nil
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

// SealObjects returns the kept seal objects of a candidate-exam.
func (s *Store) SealObjects(ctx context.Context, exam, candidate string) ([]ArchiveObject, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+archiveColumns+` FROM archiver.archive_objects
		WHERE kind = 'seal' AND exam_id = $1 AND candidate_id = $2 AND deleted_at IS NULL ORDER BY object_key`, exam, candidate)
	if err != nil {
		return nil, fmt.Errorf("list seal objects of exam %s candidate %s: %w", exam, candidate, err)
	}
	objs, err := collectArchiveObjects(rows)
	if err != nil {
		return nil, fmt.Errorf("list seal objects of exam %s candidate %s: %w", exam, candidate, err)
	}
	return objs, nil
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
