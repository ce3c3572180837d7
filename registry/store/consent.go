package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoConsent is the refusal of a candidate's stream before the candidate
// consented to the processing of personal data and the recording. It
// wraps ErrBadCredentials: the publisher is not let in.
var ErrNoConsent = fmt.Errorf("%w: the candidate has not consented to the recording (POST /api/v1/exam/consent)", ErrBadCredentials)

// Consent is a candidate's consent to the processing of personal data and
// the recording of the exam.
type Consent struct {
	ExamID, CandidateID string
	Version             string // of the text accepted
	Page                string // where it was accepted
	AcceptedAt          time.Time
}

// RecordConsent records c. A version or page that is empty or too long is
// ErrInvalid; a candidate not in the exam ErrNotFound.
func (s *Store) RecordConsent(ctx context.Context, c *Consent) error {
	c.Version, c.Page = strings.TrimSpace(c.Version), strings.TrimSpace(c.Page)
	if c.Version == "" || len(c.Version) > 64 || c.Page == "" || len(c.Page) > 255 {
		return fmt.Errorf("record consent of %s: %w: the text's version (at most 64 characters) and the page (at most 255) are required",
			c.CandidateID, ErrInvalid)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO exam_consents (exam_id, candidate_id, version, page, accepted_at) VALUES ($1, $2, $3, $4, $5)`,
		c.ExamID, c.CandidateID, c.Version, c.Page, c.AcceptedAt)
	if isForeignKeyViolation(err) {
		return fmt.Errorf("record consent of %s: %w", c.CandidateID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("record consent of %s: %w", c.CandidateID, err)
	}
	return nil
}

// ExamConsent returns the latest consent of candidate in exam, or
// ErrNotFound.
func (s *Store) ExamConsent(ctx context.Context, exam, candidate string) (Consent, error) {
	c := Consent{ExamID: exam, CandidateID: candidate}
	err := s.pool.QueryRow(ctx, `SELECT version, page, accepted_at FROM exam_consents WHERE exam_id = $1 AND candidate_id = $2
		ORDER BY id DESC LIMIT 1`, exam, candidate).Scan(&c.Version, &c.Page, &c.AcceptedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("consent of %s in exam %s: %w", candidate, exam, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("consent of %s in exam %s: %w", candidate, exam, err)
	}
	return c, nil
}
