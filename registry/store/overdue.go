package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/facts"
	"github.com/nokstream/nokstream/internal/evidence/retention"
)

// DeadlineEvidence is the deadline kind of overdue evidence: a
// candidate-exam whose result is still missing when the provisional period
// after the exam ended. Its evidence is held, never deleted automatically,
// until a result, an appeal's end or the council's disposal.
const DeadlineEvidence = "evidence_overdue"

// OverdueEvidence is a candidate-exam whose evidence is overdue.
type OverdueEvidence = facts.OverdueEvidence

// overdueSelect lists the candidate-exams in scope whose result is missing,
// that no appeal's end or disposal released, with the end of their
// provisional period (the council's or qualification's, else
// defaultDays) as due. Its placeholders are the caller's.
func overdueSelect(where, defaultDays string) string {
	return `
		SELECT ec.exam_id, ec.candidate_id, e.council_id, e.center_id, e.site_id, e.qualification_code, e.ends_at,
			coalesce(rq.provisional_days, rc.provisional_days, ` + defaultDays + `) AS days
		FROM exam_candidates ec JOIN exams e ON e.id = ec.exam_id JOIN centers c ON c.id = e.center_id
		LEFT JOIN retention_settings rq ON rq.council_id = e.council_id AND rq.qualification_code = e.qualification_code
		LEFT JOIN retention_settings rc ON rc.council_id = e.council_id AND rc.qualification_code = ''
		WHERE ` + where + `
			AND NOT EXISTS (SELECT 1 FROM results r WHERE r.exam_id = ec.exam_id AND r.candidate_id = ec.candidate_id
				AND r.state IN ` + registerStates + `)
			AND NOT EXISTS (SELECT 1 FROM evidence_disposals d WHERE d.exam_id = ec.exam_id AND d.candidate_id = ec.candidate_id)
			AND NOT EXISTS (SELECT 1 FROM appeals a WHERE a.exam_id = ec.exam_id AND a.candidate_id = ec.candidate_id
				AND a.status = 'closed')`
}

// OverdueEvidence returns the candidate-exams in sc whose evidence is
// overdue at now: no result, no appeal ended, no disposal, and the
// provisional period after the exam (the council's or qualification's,
// at least floor, else defaultProvisional) over. Oldest due first.
func (s *Store) OverdueEvidence(ctx context.Context, sc Scope, now time.Time, defaultProvisional, floor time.Duration) ([]OverdueEvidence, error) {
	var a args
	where := sc.where(scopeColumns{council: "e.council_id", center: "e.center_id", site: "e.site_id", exam: "e.id"}, &a)
	def := a.add(int(defaultProvisional / retention.Day))
	floorP := a.add(int(floor / retention.Day))
	nowP := a.add(now)
	q := `WITH o AS (` + overdueSelect(where+` AND e.ends_at <= `+nowP, def+`::int`) + `)
		SELECT exam_id, candidate_id, council_id, center_id, site_id, qualification_code, ends_at, greatest(days, ` + floorP + `::int)
		FROM o WHERE ends_at + make_interval(days => greatest(days, ` + floorP + `::int)) <= ` + nowP + `
		ORDER BY ends_at + make_interval(days => greatest(days, ` + floorP + `::int)), exam_id, candidate_id`
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("list overdue evidence: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OverdueEvidence, error) {
		var o OverdueEvidence
		err := r.Scan(&o.ExamID, &o.CandidateID, &o.CouncilID, &o.CenterID, &o.SiteID, &o.Qualification, &o.ExamEnd, &o.ProvisionalDays)
		o.Due = o.ExamEnd.Add(time.Duration(o.ProvisionalDays) * retention.Day)
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("list overdue evidence: %w", err)
	}
	return out, nil
}

// Disposal is the council's explicit disposal of overdue evidence.
type Disposal struct {
	ExamID, CandidateID string
	Reason              string
	DisposedBy          int64
	DisposedAt          time.Time
}

// DisposeEvidence records the council's disposal of the evidence of
// candidate's exam, with a reason, and publishes RetentionChanged
// (evidence_disposed): the missing result no longer holds it, and the
// sweeper may delete what nothing else keeps. Only overdue evidence can be
// disposed of (ErrState says why not: a result is recorded, an appeal is
// open or ended, the provisional period after the exam, at least floor, is
// not over, or it was disposed of already); a reason is required
// (ErrInvalid).
func (s *Store) DisposeEvidence(ctx context.Context, d Disposal, defaultProvisional, floor time.Duration) error {
	d.Reason = strings.TrimSpace(d.Reason)
	if d.Reason == "" {
		return fmt.Errorf("dispose of evidence of %s in exam %s: %w: a reason is required", d.CandidateID, d.ExamID, ErrInvalid)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var end time.Time
		var council, qual string
		err := tx.QueryRow(ctx, `SELECT e.ends_at, e.council_id, e.qualification_code FROM exam_candidates ec
			JOIN exams e ON e.id = ec.exam_id JOIN centers c ON c.id = e.center_id
			WHERE ec.exam_id = $1 AND ec.candidate_id = $2 FOR UPDATE OF ec`, d.ExamID, d.CandidateID).Scan(&end, &council, &qual)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		var result, disposed, openAppeal, closedAppeal bool
		err = tx.QueryRow(ctx, `SELECT
				EXISTS (SELECT 1 FROM results WHERE exam_id = $1 AND candidate_id = $2 AND state IN `+registerStates+`),
				EXISTS (SELECT 1 FROM evidence_disposals WHERE exam_id = $1 AND candidate_id = $2),
				EXISTS (SELECT 1 FROM appeals WHERE exam_id = $1 AND candidate_id = $2 AND status <> 'closed'),
				EXISTS (SELECT 1 FROM appeals WHERE exam_id = $1 AND candidate_id = $2 AND status = 'closed')`,
			d.ExamID, d.CandidateID).Scan(&result, &disposed, &openAppeal, &closedAppeal)
		if err != nil {
			return err
		}
		days := int(defaultProvisional / retention.Day)
		err = tx.QueryRow(ctx, `SELECT provisional_days FROM retention_settings WHERE council_id = $1 AND qualification_code IN ('', $2)
			ORDER BY qualification_code DESC LIMIT 1`, council, qual).Scan(&days)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		due := end.Add(max(time.Duration(days)*retention.Day, floor))
		switch {
		case disposed:
			return fmt.Errorf("%w: the evidence was disposed of already", ErrState)
		case result:
			return fmt.Errorf("%w: a result is recorded: its rules keep the evidence, and nothing is overdue", ErrState)
		case openAppeal:
			return fmt.Errorf("%w: an appeal is open: its legal hold keeps the evidence", ErrState)
		case closedAppeal:
			return fmt.Errorf("%w: an appeal ended: the missing result no longer holds the evidence", ErrState)
		case d.DisposedAt.Before(due):
			return fmt.Errorf("%w: the evidence is not overdue: the provisional period ends on %s", ErrState,
				due.UTC().Format(time.RFC3339))
		}
		_, err = tx.Exec(ctx, `INSERT INTO evidence_disposals (exam_id, candidate_id, reason, disposed_by, disposed_at)
			VALUES ($1, $2, $3, nullif($4, 0), $5)`, d.ExamID, d.CandidateID, d.Reason, d.DisposedBy, d.DisposedAt)
		if err != nil {
			return err
		}
		return enqueueRetention(ctx, tx, d.ExamID, d.CandidateID, events.RetentionEvidenceDisposed, d.DisposedAt)
	})
	if err != nil {
		return fmt.Errorf("dispose of evidence of %s in exam %s: %w", d.CandidateID, d.ExamID, err)
	}
	return nil
}
