package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/evidence/facts"
)

// A document is evidence of a candidate-exam (exam e, candidate c, c sat
// or was listed for e) when it is c's own document, not tied to another
// exam, or e's document tied to no candidate (the commission protocol):
//
//	(d.candidate_id = c AND (d.exam_id IS NULL OR d.exam_id = e))
//	OR (d.candidate_id IS NULL AND d.exam_id = e)
//
// A document of another candidate of the same exam never is: no bundle
// carries one candidate's papers in another's evidence.
const documentOfCandidateExam = `((d.candidate_id = ec.candidate_id AND (d.exam_id IS NULL OR d.exam_id = ec.exam_id))
	OR (d.candidate_id IS NULL AND d.exam_id = ec.exam_id))`

// EvidenceDocument is a document that is evidence of a candidate-exam,
// with what the archiver reported of it (Archived false: not yet), from
// the registry's copy of the archiver's records (archived_objects,
// records.go).
type EvidenceDocument struct {
	Document
	Archived  bool
	Verified  bool
	DeletedAt *time.Time
}

// EvidenceDocuments returns the documents that are evidence of candidate's
// exam, in object-key order.
func (s *Store) EvidenceDocuments(ctx context.Context, exam, candidate string) ([]EvidenceDocument, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT d.id, coalesce(d.candidate_id, ''), coalesce(d.exam_id, ''), d.kind, d.filename, d.content_type, d.bytes,
			d.sha256, d.object_key, coalesce(d.uploaded_by, 0), d.uploaded_at,
			a.object_key IS NOT NULL, coalesce(a.verified, false), a.deleted_at
		FROM exam_candidates ec
		JOIN documents d ON `+documentOfCandidateExam+`
		LEFT JOIN archived_objects a ON a.object_key = d.object_key
		WHERE ec.exam_id = $1 AND ec.candidate_id = $2
		ORDER BY d.object_key`, exam, candidate)
	if err != nil {
		return nil, fmt.Errorf("list evidence documents of exam %s candidate %s: %w", exam, candidate, err)
	}
	docs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (EvidenceDocument, error) {
		var d EvidenceDocument
		err := row.Scan(&d.ID, &d.CandidateID, &d.ExamID, &d.Kind, &d.Filename, &d.ContentType, &d.Bytes, &d.SHA256,
			&d.ObjectKey, &d.UploadedBy, &d.UploadedAt, &d.Archived, &d.Verified, &d.DeletedAt)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("list evidence documents of exam %s candidate %s: %w", exam, candidate, err)
	}
	return docs, nil
}

// DocumentEvidence returns the candidate-exams the document stored under
// key is evidence of; none (and no error) for a document that is evidence
// of nothing yet.
func (s *Store) DocumentEvidence(ctx context.Context, key string) ([]EvidenceExam, error) {
	rows, err := s.pool.Query(ctx, evidenceSelect+`
		WHERE EXISTS (SELECT 1 FROM documents d WHERE d.object_key = $1 AND `+documentOfCandidateExam+`)
		ORDER BY e.id, ec.candidate_id`, key)
	if err != nil {
		return nil, fmt.Errorf("read evidence facts of document %s: %w", key, err)
	}
	exams, err := pgx.CollectRows(rows, scanEvidenceExam)
	if err != nil {
		return nil, fmt.Errorf("read evidence facts of document %s: %w", key, err)
	}
	if err := s.addAppeals(ctx, exams); err != nil {
		return nil, err
	}
	return exams, nil
}

// CandidateExamRef names a candidate-exam.
type CandidateExamRef = facts.CandidateExamRef

// PendingDocumentEvidence returns up to limit candidate-exams that have an
// evidence document the archiver has not reported taking yet (one it took
// moments ago may be listed still: taking is idempotent).
func (s *Store) PendingDocumentEvidence(ctx context.Context, limit int) ([]CandidateExamRef, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT ec.exam_id, ec.candidate_id
		FROM documents d
		JOIN exam_candidates ec ON `+documentOfCandidateExam+`
		WHERE NOT EXISTS (SELECT 1 FROM archived_objects a WHERE a.object_key = d.object_key)
		ORDER BY ec.exam_id, ec.candidate_id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list candidate-exams with new documents: %w", err)
	}
	refs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[CandidateExamRef])
	if err != nil {
		return nil, fmt.Errorf("list candidate-exams with new documents: %w", err)
	}
	return refs, nil
}
