package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Timeline is what the registry knows of one candidate's exam, for an
// evidence bundle: the exam, the candidate, admission, result and
// certificate changes, appeals, experts' marks and verdicts, and what was
// observed on the streams that are evidence for it.
type Timeline struct {
	Exam struct {
		ID            string    `json:"id"`
		Council       string    `json:"council"`
		Center        string    `json:"center"`
		Site          string    `json:"site"`
		Qualification string    `json:"qualification"`
		Start         time.Time `json:"start"`
		End           time.Time `json:"end"`
	} `json:"exam"`
	Candidate struct {
		ID       string `json:"id"`
		FullName string `json:"full_name"`
		Webcam   string `json:"webcam_stream"`
		Screen   string `json:"screen_stream"`
	} `json:"candidate"`
	Admission struct {
		State  string     `json:"state"`
		Reason string     `json:"reason,omitempty"`
		At     *time.Time `json:"at,omitempty"`
	} `json:"admission"`
	Result       *TimelineResult      `json:"result,omitempty"`
	Certificate  []TimelineCertChange `json:"certificate_changes,omitempty"`
	Appeals      []TimelineAppeal     `json:"appeals,omitempty"`
	Marks        []TimelineMark       `json:"expert_marks,omitempty"`
	Verdicts     []TimelineVerdict    `json:"expert_verdicts,omitempty"`
	Observations []TimelineObs        `json:"observations,omitempty"`
}

// TimelineResult is the result of a candidate-exam.
type TimelineResult struct {
	Kind              string     `json:"kind"`
	CertificateNumber string     `json:"certificate_number,omitempty"`
	IssuedOn          time.Time  `json:"issued_on"`
	ValidUntil        *time.Time `json:"valid_until,omitempty"`
	Conclusion        string     `json:"conclusion,omitempty"`
	RevokedAt         *time.Time `json:"revoked_at,omitempty"`
	RevocationReason  string     `json:"revocation_reason,omitempty"`
	RecordedAt        time.Time  `json:"recorded_at"`
}

// TimelineCertChange is one change of the certificate.
type TimelineCertChange struct {
	Change     string    `json:"change"`
	ValidUntil time.Time `json:"valid_until"`
	Reason     string    `json:"reason,omitempty"`
	At         time.Time `json:"at"`
}

// TimelineAppeal is an appeal and its outcome.
type TimelineAppeal struct {
	ID        string     `json:"id"`
	Status    string     `json:"status"`
	Reason    string     `json:"reason"`
	FiledOn   time.Time  `json:"filed_on"`
	OpenedAt  time.Time  `json:"opened_at"`
	Outcome   string     `json:"outcome,omitempty"`
	Decision  string     `json:"decision,omitempty"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	ClosedAt  *time.Time `json:"closed_at,omitempty"`
}

// TimelineMark is an expert's mark on the footage.
type TimelineMark struct {
	Expert string    `json:"expert"`
	At     time.Time `json:"at"`
	Kind   string    `json:"kind"`
	Text   string    `json:"text"`
	Stream string    `json:"stream,omitempty"`
}

// TimelineVerdict is an expert's verdict on the procedure.
type TimelineVerdict struct {
	Expert             string    `json:"expert"`
	ProcedureConfirmed bool      `json:"procedure_confirmed"`
	Reasons            string    `json:"reasons,omitempty"`
	DecidedAt          time.Time `json:"decided_at"`
}

// TimelineObs is an observation on a stream that is evidence.
type TimelineObs struct {
	Stream   string    `json:"stream"`
	Kind     string    `json:"kind"`
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Detail   string    `json:"detail,omitempty"`
	Reporter string    `json:"reporter,omitempty"`
}

// EvidenceTimeline returns the timeline of a candidate's exam, or
// ErrNotFound.
func (s *Store) EvidenceTimeline(ctx context.Context, exam, candidate string) (Timeline, error) {
	var t Timeline
	var middle string
	err := s.pool.QueryRow(ctx, `
		SELECT e.id, e.council_id, e.center_id, e.site_id, e.qualification_code, e.starts_at, e.ends_at,
			k.id, k.last_name || ' ' || k.first_name, k.middle_name, ec.webcam_device, ec.screen_device,
			ec.admission, ec.refusal_reason, ec.admission_at
		FROM exam_candidates ec JOIN exams e ON e.id = ec.exam_id JOIN centers c ON c.id = e.center_id
		JOIN candidates k ON k.id = ec.candidate_id
		WHERE ec.exam_id = $1 AND ec.candidate_id = $2`, exam, candidate).
		Scan(&t.Exam.ID, &t.Exam.Council, &t.Exam.Center, &t.Exam.Site, &t.Exam.Qualification, &t.Exam.Start, &t.Exam.End,
			&t.Candidate.ID, &t.Candidate.FullName, &middle, &t.Candidate.Webcam, &t.Candidate.Screen,
			&t.Admission.State, &t.Admission.Reason, &t.Admission.At)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("timeline of exam %s candidate %s: %w", exam, candidate, ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("timeline of exam %s candidate %s: %w", exam, candidate, err)
	}
	if middle != "" {
		t.Candidate.FullName += " " + middle
	}
	t.Candidate.Webcam = t.Exam.Site + "/" + t.Candidate.Webcam
	t.Candidate.Screen = t.Exam.Site + "/" + t.Candidate.Screen

	var r TimelineResult
	err = s.pool.QueryRow(ctx, `SELECT kind, coalesce(certificate_number, ''), issued_on, valid_until, conclusion, revoked_at,
			revocation_reason, recorded_at FROM results WHERE exam_id = $1 AND candidate_id = $2 AND state IN `+registerStates, exam, candidate).
		Scan(&r.Kind, &r.CertificateNumber, &r.IssuedOn, &r.ValidUntil, &r.Conclusion, &r.RevokedAt, &r.RevocationReason, &r.RecordedAt)
	switch {
	case err == nil:
		t.Result = &r
	case !errors.Is(err, pgx.ErrNoRows):
		return t, fmt.Errorf("timeline of exam %s candidate %s: result: %w", exam, candidate, err)
	}
	if r.CertificateNumber != "" {
		rows, err := s.pool.Query(ctx, `SELECT change, valid_until, reason, changed_at FROM certificate_changes
			WHERE certificate_number = $1 ORDER BY id`, r.CertificateNumber)
		if err != nil {
			return t, fmt.Errorf("timeline: certificate changes: %w", err)
		}
		if t.Certificate, err = pgx.CollectRows(rows, pgx.RowToStructByPos[TimelineCertChange]); err != nil {
			return t, fmt.Errorf("timeline: certificate changes: %w", err)
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT id, status, reason, filed_on, opened_at, outcome, decision, decided_at, closed_at
		FROM appeals WHERE exam_id = $1 AND candidate_id = $2 ORDER BY opened_at, id`, exam, candidate)
	if err != nil {
		return t, fmt.Errorf("timeline: appeals: %w", err)
	}
	if t.Appeals, err = pgx.CollectRows(rows, pgx.RowToStructByPos[TimelineAppeal]); err != nil {
		return t, fmt.Errorf("timeline: appeals: %w", err)
	}
	rows, err = s.pool.Query(ctx, `SELECT u.login, m.at, m.kind, m.text, m.stream FROM review_marks m JOIN users u ON u.id = m.expert_id
		WHERE m.exam_id = $1 AND m.candidate_id = $2 ORDER BY m.at, m.id`, exam, candidate)
	if err != nil {
		return t, fmt.Errorf("timeline: marks: %w", err)
	}
	if t.Marks, err = pgx.CollectRows(rows, pgx.RowToStructByPos[TimelineMark]); err != nil {
		return t, fmt.Errorf("timeline: marks: %w", err)
	}
	rows, err = s.pool.Query(ctx, `SELECT u.login, v.procedure_confirmed, v.reasons, v.decided_at FROM review_verdicts v
		JOIN users u ON u.id = v.expert_id WHERE v.exam_id = $1 AND v.candidate_id = $2 ORDER BY v.decided_at`, exam, candidate)
	if err != nil {
		return t, fmt.Errorf("timeline: verdicts: %w", err)
	}
	if t.Verdicts, err = pgx.CollectRows(rows, pgx.RowToStructByPos[TimelineVerdict]); err != nil {
		return t, fmt.Errorf("timeline: verdicts: %w", err)
	}
	// Observations of the candidate's streams and of the site's room
	// cameras in the window.
	rows, err = s.pool.Query(ctx, `SELECT o.stream_id, o.kind, o.start_at, o.end_at, o.detail, o.reporter FROM observations o
		WHERE o.site = $1 AND o.start_at < $3 AND o.end_at >= $2
			AND (o.device IN ($4, $5) OR o.device IN (SELECT name FROM devices WHERE site = $1 AND kind = 'room'))
		ORDER BY o.start_at, o.stream_id, o.kind`,
		t.Exam.Site, t.Exam.Start, t.Exam.End, t.Candidate.Webcam[len(t.Exam.Site)+1:], t.Candidate.Screen[len(t.Exam.Site)+1:])
	if err != nil {
		return t, fmt.Errorf("timeline: observations: %w", err)
	}
	if t.Observations, err = pgx.CollectRows(rows, pgx.RowToStructByPos[TimelineObs]); err != nil {
		return t, fmt.Errorf("timeline: observations: %w", err)
	}
	return t, nil
}
