package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Document kinds of the identity check.
const (
	// DocumentPassport is a scan of an identity document (паспорт or
	// another), which the site checks at admission.
	DocumentPassport = "passport"
	// DocumentIdentityPhoto is a photo from the candidate's webcam taken
	// at the identity check, a document of the candidate-exam.
	DocumentIdentityPhoto = "identity_photo"
)

// IdentityCheck is the site's check of a candidate's identity at
// admission: confirmed against a document, or refused with a reason.
type IdentityCheck struct {
	ExamID, CandidateID string
	Confirmed           bool
	DocumentID          string // the identity document checked (required when confirmed)
	PhotoID             string // the webcam photo taken, if any
	Reason              string // why it was refused (required when not confirmed)
	CheckedBy           int64
	CheckedByLogin      string // read only
	CheckedAt           time.Time
}

// IdentityDocuments returns what the site sees at the identity check of
// candidate in exam: the candidate's identity document scans and the
// documents of the candidate-exam (a webcam photo), oldest first.
func (s *Store) IdentityDocuments(ctx context.Context, exam, candidate string) ([]Document, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+documentColumns+` FROM documents
		WHERE candidate_id = $2 AND ((exam_id IS NULL AND kind = $3) OR exam_id = $1) ORDER BY uploaded_at, id`,
		exam, candidate, DocumentPassport)
	if err != nil {
		return nil, fmt.Errorf("identity documents of %s in exam %s: %w", candidate, exam, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Document, error) { return scanDocument(r) })
	if err != nil {
		return nil, fmt.Errorf("identity documents of %s in exam %s: %w", candidate, exam, err)
	}
	return out, nil
}

// RecordIdentity records the site's identity check c of a candidate of an
// exam, replacing an earlier one. Confirmed needs c.DocumentID, one of the
// candidate's IdentityDocuments other than a photo (ErrInvalid otherwise);
// a refusal needs a reason, and refuses the candidate's admission too
// (SetAdmission). A candidate with a result card is checked already
// (ErrState).
func (s *Store) RecordIdentity(ctx context.Context, c IdentityCheck) error {
	c.Reason, c.DocumentID, c.PhotoID = strings.TrimSpace(c.Reason), strings.TrimSpace(c.DocumentID), strings.TrimSpace(c.PhotoID)
	if c.Confirmed {
		c.Reason = ""
		if c.DocumentID == "" {
			return fmt.Errorf("record identity check of %s: %w: say which identity document was checked (document)", c.CandidateID, ErrInvalid)
		}
	} else if c.Reason == "" {
		return fmt.Errorf("record identity check of %s: %w: a refusal needs a reason", c.CandidateID, ErrInvalid)
	}
	docs, err := s.IdentityDocuments(ctx, c.ExamID, c.CandidateID)
	if err != nil {
		return err
	}
	find := func(id, kind string) bool {
		return slices.ContainsFunc(docs, func(d Document) bool { return d.ID == id && (kind == "" || d.Kind == kind) })
	}
	if c.DocumentID != "" && (!find(c.DocumentID, "") || find(c.DocumentID, DocumentIdentityPhoto)) {
		return fmt.Errorf("record identity check of %s: %w: document %s is not an identity document of the candidate", c.CandidateID, ErrInvalid, c.DocumentID)
	}
	if c.PhotoID != "" && !find(c.PhotoID, DocumentIdentityPhoto) {
		return fmt.Errorf("record identity check of %s: %w: document %s is not a photo of this candidate-exam", c.CandidateID, ErrInvalid, c.PhotoID)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var card bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM results r WHERE r.exam_id = ec.exam_id AND r.candidate_id = ec.candidate_id)
			FROM exam_candidates ec WHERE ec.exam_id = $1 AND ec.candidate_id = $2 FOR UPDATE`, c.ExamID, c.CandidateID).Scan(&card)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if card {
			return fmt.Errorf("%w: the candidate has a result card", ErrState)
		}
		_, err = tx.Exec(ctx, `INSERT INTO identity_checks (exam_id, candidate_id, confirmed, document_id, photo_id, reason, checked_by, checked_at)
			VALUES ($1, $2, $3, nullif($4, ''), nullif($5, ''), $6, nullif($7, 0), $8)
			ON CONFLICT (exam_id, candidate_id) DO UPDATE SET confirmed = EXCLUDED.confirmed, document_id = EXCLUDED.document_id,
				photo_id = EXCLUDED.photo_id, reason = EXCLUDED.reason, checked_by = EXCLUDED.checked_by, checked_at = EXCLUDED.checked_at`,
			c.ExamID, c.CandidateID, c.Confirmed, c.DocumentID, c.PhotoID, c.Reason, c.CheckedBy, c.CheckedAt)
		return err
	})
	if err != nil {
		return fmt.Errorf("record identity check of %s in exam %s: %w", c.CandidateID, c.ExamID, err)
	}
	if !c.Confirmed {
		return s.SetAdmission(ctx, c.ExamID, c.CandidateID, false, "identity not confirmed: "+c.Reason, c.CheckedBy, c.CheckedAt)
	}
	return nil
}

// Identity returns the identity check of candidate in exam, or ErrNotFound
// if none is recorded.
func (s *Store) Identity(ctx context.Context, exam, candidate string) (IdentityCheck, error) {
	c := IdentityCheck{ExamID: exam, CandidateID: candidate}
	err := s.pool.QueryRow(ctx, `SELECT i.confirmed, coalesce(i.document_id, ''), coalesce(i.photo_id, ''), i.reason, coalesce(i.checked_by, 0),
			coalesce(u.login, ''), i.checked_at
		FROM identity_checks i LEFT JOIN users u ON u.id = i.checked_by WHERE i.exam_id = $1 AND i.candidate_id = $2`, exam, candidate).
		Scan(&c.Confirmed, &c.DocumentID, &c.PhotoID, &c.Reason, &c.CheckedBy, &c.CheckedByLogin, &c.CheckedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("identity check of %s in exam %s: %w", candidate, exam, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("identity check of %s in exam %s: %w", candidate, exam, err)
	}
	return c, nil
}
