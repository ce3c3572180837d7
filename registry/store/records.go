package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// The registry's copies of the archiver's records (tables archived_objects,
// evidence_seals, segment_integrity), kept from its events on
// events.TopicArchive (registry/index/records.go), idempotently: the same
// event twice changes nothing more, and an object's older snapshot arriving
// after a newer one changes nothing. Evidence exports and the documents'
// state read these copies; the registry reads nothing of the archiver's
// schema.

// RecordArchivedObject keeps the archiver's snapshot of an object
// (events.ObjectArchived) unless it has one as new or newer, and reports
// whether it changed the copy. An event that fails validation is
// ErrInvalid.
func (s *Store) RecordArchivedObject(ctx context.Context, e *events.ObjectArchived) (bool, error) {
	if err := e.Validate(); err != nil {
		return false, fmt.Errorf("record archived object: %w: %w", ErrInvalid, err)
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO archived_objects (object_key, seq, kind, stream_id, site, device, source, sequence, start_at, end_at,
			bytes, sha256, prev_chain, chain, init_key, segment_id, exam_id, candidate_id, verified, retain_until,
			legal_hold, rule, decided_at, deleted_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24)
		ON CONFLICT (object_key) DO UPDATE SET seq = EXCLUDED.seq, kind = EXCLUDED.kind, stream_id = EXCLUDED.stream_id,
			site = EXCLUDED.site, device = EXCLUDED.device, source = EXCLUDED.source, sequence = EXCLUDED.sequence,
			start_at = EXCLUDED.start_at, end_at = EXCLUDED.end_at, bytes = EXCLUDED.bytes, sha256 = EXCLUDED.sha256,
			prev_chain = EXCLUDED.prev_chain, chain = EXCLUDED.chain, init_key = EXCLUDED.init_key,
			segment_id = EXCLUDED.segment_id, exam_id = EXCLUDED.exam_id, candidate_id = EXCLUDED.candidate_id,
			verified = EXCLUDED.verified, retain_until = EXCLUDED.retain_until, legal_hold = EXCLUDED.legal_hold,
			rule = EXCLUDED.rule, decided_at = EXCLUDED.decided_at, deleted_at = EXCLUDED.deleted_at, recorded_at = now()
		WHERE archived_objects.seq < EXCLUDED.seq`,
		e.ObjectKey, e.Seq, e.Kind, e.StreamID, e.Site, e.Device, e.Source, e.Sequence, e.Start, e.End,
		e.Bytes, e.SHA256, e.PrevChain, e.Chain, e.InitKey, e.SegmentID, e.ExamID, e.CandidateID, e.Verified, e.RetainUntil,
		e.LegalHold, e.Rule, e.DecidedAt, e.DeletedAt)
	if err != nil {
		return false, fmt.Errorf("record archived object %s: %w", e.ObjectKey, err)
	}
	return tag.RowsAffected() == 1, nil
}

// RecordSeal keeps the archiver's seal of a candidate-exam
// (events.SealWritten), and reports whether it was new. A seal is never
// rewritten: the same version with another Merkle root or other keys is
// ErrConflict; an event that fails validation is ErrInvalid.
func (s *Store) RecordSeal(ctx context.Context, e *events.SealWritten) (bool, error) {
	if err := e.Validate(); err != nil {
		return false, fmt.Errorf("record seal: %w: %w", ErrInvalid, err)
	}
	var recorded bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO evidence_seals (exam_id, candidate_id, version, manifest_key, signature_key,
				merkle_root, key_id, objects, bytes, sealed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (exam_id, candidate_id, version) DO NOTHING`,
			e.ExamID, e.CandidateID, e.Version, e.ManifestKey, e.SignatureKey, e.MerkleRoot, e.KeyID, e.Objects, e.Bytes,
			e.SealedAt)
		if err != nil || tag.RowsAffected() == 1 {
			recorded = err == nil
			return err
		}
		var same bool
		if err := tx.QueryRow(ctx, `SELECT merkle_root = $4 AND manifest_key = $5 AND signature_key = $6
			FROM evidence_seals WHERE exam_id = $1 AND candidate_id = $2 AND version = $3`,
			e.ExamID, e.CandidateID, e.Version, e.MerkleRoot, e.ManifestKey, e.SignatureKey).Scan(&same); err != nil {
			return err
		}
		if !same {
			return fmt.Errorf("%w: version %d is recorded with another Merkle root or other objects", ErrConflict, e.Version)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("record seal %d of exam %s candidate %s: %w", e.Version, e.ExamID, e.CandidateID, err)
	}
	return recorded, nil
}

// RecordSegmentCheck keeps one of the archiver's checks of a stored
// segment (events.SegmentChecked), and reports whether it was new. An
// event that fails validation is ErrInvalid.
func (s *Store) RecordSegmentCheck(ctx context.Context, e *events.SegmentChecked) (bool, error) {
	if err := e.Validate(); err != nil {
		return false, fmt.Errorf("record segment check: %w: %w", ErrInvalid, err)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO segment_integrity (seq, segment_id, ok, detail, checked_at, checker)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (seq) DO NOTHING`,
		e.Seq, e.SegmentID, e.OK, e.Detail, e.CheckedAt, e.Checker)
	if err != nil {
		return false, fmt.Errorf("record check of segment %s: %w", e.SegmentID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// SegmentCheck is one check by the archiver of a stored segment.
type SegmentCheck struct {
	SegmentID string
	OK        bool
	Detail    string // what was wrong, or what was checked
	CheckedAt time.Time
	Checker   string
}

// SegmentChecks returns the archiver's checks of a segment, oldest first.
func (s *Store) SegmentChecks(ctx context.Context, segmentID string) ([]SegmentCheck, error) {
	rows, err := s.pool.Query(ctx, `SELECT segment_id, ok, detail, checked_at, checker FROM segment_integrity
		WHERE segment_id = $1 ORDER BY checked_at, seq`, segmentID)
	if err != nil {
		return nil, fmt.Errorf("list checks of segment %s: %w", segmentID, err)
	}
	checks, err := pgx.CollectRows(rows, pgx.RowToStructByPos[SegmentCheck])
	if err != nil {
		return nil, fmt.Errorf("list checks of segment %s: %w", segmentID, err)
	}
	return checks, nil
}

// Seal is one seal of a candidate-exam, as the archiver reported it.
type Seal = seal.Record

// LatestSeal returns the newest seal of a candidate-exam the archiver has
// reported, or ErrNotFound. The archiver may have written a newer one the
// registry has not heard of yet: registry/export looks in the blob store
// too.
func (s *Store) LatestSeal(ctx context.Context, exam, candidate string) (Seal, error) {
	sl := Seal{ExamID: exam, CandidateID: candidate}
	err := s.pool.QueryRow(ctx, `SELECT version, manifest_key, signature_key, merkle_root, key_id, objects, bytes, sealed_at
		FROM evidence_seals WHERE exam_id = $1 AND candidate_id = $2 ORDER BY version DESC LIMIT 1`, exam, candidate).
		Scan(&sl.Version, &sl.ManifestKey, &sl.SignatureKey, &sl.MerkleRoot, &sl.KeyID, &sl.Objects, &sl.Bytes, &sl.SealedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return sl, fmt.Errorf("seal of exam %s candidate %s: %w", exam, candidate, ErrNotFound)
	}
	if err != nil {
		return sl, fmt.Errorf("seal of exam %s candidate %s: %w", exam, candidate, err)
	}
	return sl, nil
}

const sealObjectColumns = `object_key, stream_id, device, source, source = 'room', sequence, start_at, end_at, bytes,
	sha256, prev_chain, chain, init_key, verified`

func collectSealObjects(rows pgx.Rows) ([]seal.Object, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (seal.Object, error) {
		var o seal.Object
		err := row.Scan(&o.Key, &o.Stream, &o.Device, &o.Source, &o.Room, &o.Sequence, &o.Start, &o.End, &o.Size,
			&o.SHA256, &o.PrevChain, &o.Chain, &o.Init, &o.Verified)
		return o, err
	})
}

// ArchivedSegments returns up to limit kept raw segments of site whose
// footage overlaps [from, to), in key order after afterKey, as the
// archiver reported them: a page of the footage of the site in an exam
// window, as seal.Collect reads it.
func (s *Store) ArchivedSegments(ctx context.Context, site string, from, to time.Time, afterKey string, limit int) ([]seal.Object, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sealObjectColumns+` FROM archived_objects
		WHERE kind = 'segment' AND site = $1 AND start_at < $3 AND end_at > $2 AND deleted_at IS NULL AND object_key > $4
		ORDER BY object_key LIMIT $5`, site, from, to, afterKey, limit)
	if err != nil {
		return nil, fmt.Errorf("list archived segments of site %s: %w", site, err)
	}
	objs, err := collectSealObjects(rows)
	if err != nil {
		return nil, fmt.Errorf("list archived segments of site %s: %w", site, err)
	}
	return objs, nil
}

// ArchivedObjects returns the objects under keys the archiver reported it
// keeps, in key order; keys it did not report are left out.
func (s *Store) ArchivedObjects(ctx context.Context, keys []string) ([]seal.Object, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sealObjectColumns+` FROM archived_objects WHERE object_key = ANY($1)
		ORDER BY object_key`, keys)
	if err != nil {
		return nil, fmt.Errorf("read archived objects: %w", err)
	}
	objs, err := collectSealObjects(rows)
	if err != nil {
		return nil, fmt.Errorf("read archived objects: %w", err)
	}
	return objs, nil
}
