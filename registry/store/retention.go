package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/evidence/facts"
	"github.com/nokstream/nokstream/internal/evidence/retention"
)

// EvidenceExam is a candidate's exam as the archiver sees it (the type
// lives in a leaf, so that the archiver's own copy answers with it too).
type EvidenceExam = facts.EvidenceExam

// evidenceSelect reads the candidate-exams of exams, with their result and
// certificate and the retention settings of their council and qualification
// (the qualification's own row first, then the council's row for all its
// qualifications, then the archiver's defaults).
//
// Every candidate of the exam is included, admitted or not: a refusal can be
// contested too, and room footage is kept for the longest of them anyway.
const evidenceSelect = `
	SELECT e.id, ec.candidate_id, e.council_id, e.qualification_code, e.starts_at, e.ends_at,
		ec.site_id, ec.webcam_device, ec.screen_device, ec.admission,
		coalesce(r.kind, ''), r.issued_on, r.recorded_at, coalesce(r.certificate_number, ''), r.valid_until, r.revoked_at,
		coalesce(rq.appeal_window_days, rc.appeal_window_days, 0), coalesce(rq.provisional_days, rc.provisional_days, 0),
		dp.disposed_at
	FROM exams e
	JOIN centers c ON c.id = e.center_id
	JOIN exam_candidates ec ON ec.exam_id = e.id
	LEFT JOIN results r ON r.exam_id = ec.exam_id AND r.candidate_id = ec.candidate_id AND r.state IN ` + registerStates + `
	LEFT JOIN retention_settings rq ON rq.council_id = e.council_id AND rq.qualification_code = e.qualification_code
	LEFT JOIN retention_settings rc ON rc.council_id = e.council_id AND rc.qualification_code = ''
	LEFT JOIN evidence_disposals dp ON dp.exam_id = ec.exam_id AND dp.candidate_id = ec.candidate_id`

func scanEvidenceExam(row pgx.CollectableRow) (EvidenceExam, error) {
	var e EvidenceExam
	var kind, number string
	var issued, recorded, validUntil, revoked *time.Time
	var windowDays, provisionalDays int
	var disposed *time.Time
	err := row.Scan(&e.ExamID, &e.CandidateID, &e.Council, &e.Qualification, &e.Start, &e.End,
		&e.Site, &e.Webcam, &e.Screen, &e.Admission,
		&kind, &issued, &recorded, &number, &validUntil, &revoked, &windowDays, &provisionalDays, &disposed)
	if err != nil {
		return e, err
	}
	if disposed != nil {
		e.DisposedAt = *disposed
	}
	e.Result = retention.ResultKind(kind)
	if issued != nil {
		// The appeal window runs from when the candidate can know the
		// result: the later of its date and its entry in the register.
		e.ResultAt = *issued
		if recorded != nil && recorded.After(e.ResultAt) {
			e.ResultAt = *recorded
		}
	}
	if validUntil != nil {
		// A certificate is valid through its last day: keep until the
		// day after.
		e.Certificate = &retention.Certificate{Number: number, ValidUntil: validUntil.AddDate(0, 0, 1)}
		if revoked != nil {
			e.Certificate.RevokedAt = *revoked
		}
	}
	e.Policy.AppealWindow = time.Duration(windowDays) * retention.Day
	e.Policy.Provisional = time.Duration(provisionalDays) * retention.Day
	return e, nil
}

// SiteEvidence returns every candidate-exam of an exam at site whose window
// overlaps [from, to), with its appeals, and the unlinked period the site's
// council sets (zero for the archiver's default). Footage of the site in that
// interval is evidence for those of them it serves (EvidenceExam.Serves).
func (s *Store) SiteEvidence(ctx context.Context, site string, from, to time.Time) ([]EvidenceExam, time.Duration, error) {
	rows, err := s.pool.Query(ctx, evidenceSelect+`
		WHERE e.site_id = $1 AND e.starts_at < $3 AND e.ends_at > $2
		ORDER BY e.starts_at, e.id, ec.candidate_id`, site, from, to)
	if err != nil {
		return nil, 0, fmt.Errorf("read evidence facts of site %s: %w", site, err)
	}
	exams, err := pgx.CollectRows(rows, scanEvidenceExam)
	if err != nil {
		return nil, 0, fmt.Errorf("read evidence facts of site %s: %w", site, err)
	}
	if err := s.addAppeals(ctx, exams); err != nil {
		return nil, 0, err
	}
	var days int
	err = s.pool.QueryRow(ctx, `
		SELECT coalesce(rs.unlinked_days, 0) FROM sites si
		JOIN centers c ON c.id = si.center_id
		JOIN retention_settings rs ON rs.council_id = c.council_id AND rs.qualification_code = ''
		WHERE si.id = $1`, site).Scan(&days)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, fmt.Errorf("read unlinked period of site %s: %w", site, err)
	}
	return exams, time.Duration(days) * retention.Day, nil
}

// ExamEvidence returns the candidate-exams of exam with their appeals: the
// one of candidate, or every candidate's when candidate is "". An unknown
// exam or candidate is ErrNotFound.
func (s *Store) ExamEvidence(ctx context.Context, exam, candidate string) ([]EvidenceExam, error) {
	rows, err := s.pool.Query(ctx, evidenceSelect+`
		WHERE e.id = $1 AND ($2 = '' OR ec.candidate_id = $2)
		ORDER BY ec.candidate_id`, exam, candidate)
	if err != nil {
		return nil, fmt.Errorf("read evidence facts of exam %s: %w", exam, err)
	}
	exams, err := pgx.CollectRows(rows, scanEvidenceExam)
	if err != nil {
		return nil, fmt.Errorf("read evidence facts of exam %s: %w", exam, err)
	}
	if len(exams) == 0 {
		return nil, fmt.Errorf("read evidence facts of exam %s candidate %q: %w", exam, candidate, ErrNotFound)
	}
	if err := s.addAppeals(ctx, exams); err != nil {
		return nil, err
	}
	return exams, nil
}

// addAppeals fills in the appeals of each candidate-exam. An appeal holds
// until it is closed: a decided appeal still holds.
func (s *Store) addAppeals(ctx context.Context, exams []EvidenceExam) error {
	return addAppeals(ctx, s.pool, exams)
}

// addAppeals is Store.addAppeals on q: the pool, or a transaction.
func addAppeals(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, exams []EvidenceExam) error {
	if len(exams) == 0 {
		return nil
	}
	ids := make([]string, 0, len(exams))
	index := map[[2]string]int{}
	for i, e := range exams {
		ids = append(ids, e.ExamID)
		index[[2]string{e.ExamID, e.CandidateID}] = i
	}
	rows, err := q.Query(ctx, `SELECT id, exam_id, candidate_id, opened_at, closed_at FROM appeals
		WHERE exam_id = ANY($1) ORDER BY opened_at, id`, ids)
	if err != nil {
		return fmt.Errorf("read appeals: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a retention.Appeal
		var exam, cand string
		var closed *time.Time
		if err := rows.Scan(&a.ID, &exam, &cand, &a.OpenedAt, &closed); err != nil {
			return fmt.Errorf("read appeals: %w", err)
		}
		if closed != nil {
			a.ClosedAt = *closed
		}
		if i, ok := index[[2]string{exam, cand}]; ok {
			exams[i].Appeals = append(exams[i].Appeals, a)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read appeals: %w", err)
	}
	return nil
}
