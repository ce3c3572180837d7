package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Mark kinds.
const (
	MarkViolation = "violation"
	MarkNote      = "note"
)

// Mark is an expert's mark on a candidate's footage, at a time on the exam's
// wall clock.
type Mark struct {
	ID          int64
	ExamID      string
	CandidateID string
	ExpertID    int64
	ExpertLogin string // read only
	At          time.Time
	Kind        string // MarkViolation or MarkNote
	Text        string
	Stream      string // "<site>/<device>" the mark refers to, or ""
	CreatedAt   time.Time
}

// AddMark records mark m of an expert; m.At must be inside the exam window
// (ErrInvalid). m.ID and m.CreatedAt (now) are set.
func (s *Store) AddMark(ctx context.Context, m *Mark, now time.Time) error {
	m.Text, m.Stream = strings.TrimSpace(m.Text), strings.TrimSpace(m.Stream)
	switch {
	case m.Kind != MarkViolation && m.Kind != MarkNote:
		return fmt.Errorf("add mark: %w: kind %q is not violation or note", ErrInvalid, m.Kind)
	case m.Text == "":
		return fmt.Errorf("add mark: %w: a mark needs a text", ErrInvalid)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var start, end time.Time
		err := tx.QueryRow(ctx, `SELECT e.starts_at, e.ends_at FROM exam_candidates ec JOIN exams e ON e.id = ec.exam_id
			WHERE ec.exam_id = $1 AND ec.candidate_id = $2`, m.ExamID, m.CandidateID).Scan(&start, &end)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if m.At.Before(start) || m.At.After(end) {
			return fmt.Errorf("%w: %s is outside the exam window %s to %s", ErrInvalid, m.At.UTC().Format(time.RFC3339),
				start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
		}
		m.CreatedAt = now
		return tx.QueryRow(ctx, `INSERT INTO review_marks (exam_id, candidate_id, expert_id, at, kind, text, stream, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id`,
			m.ExamID, m.CandidateID, m.ExpertID, m.At, m.Kind, m.Text, m.Stream, now).Scan(&m.ID)
	})
	if err != nil {
		return fmt.Errorf("add mark to %s of exam %s: %w", m.CandidateID, m.ExamID, err)
	}
	return nil
}

// Marks returns the marks on candidate's footage of exam, by time.
func (s *Store) Marks(ctx context.Context, exam, candidate string) ([]Mark, error) {
	rows, err := s.pool.Query(ctx, `SELECT m.id, m.exam_id, m.candidate_id, m.expert_id, u.login, m.at, m.kind, m.text, m.stream, m.created_at
		FROM review_marks m JOIN users u ON u.id = m.expert_id WHERE m.exam_id = $1 AND m.candidate_id = $2 ORDER BY m.at, m.id`, exam, candidate)
	if err != nil {
		return nil, fmt.Errorf("list marks of %s in exam %s: %w", candidate, exam, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Mark, error) {
		var m Mark
		err := r.Scan(&m.ID, &m.ExamID, &m.CandidateID, &m.ExpertID, &m.ExpertLogin, &m.At, &m.Kind, &m.Text, &m.Stream, &m.CreatedAt)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("list marks of %s in exam %s: %w", candidate, exam, err)
	}
	return out, nil
}

// Verdict is an expert's verdict on the procedure of a candidate's exam.
type Verdict struct {
	ExamID             string
	CandidateID        string
	ExpertID           int64
	ExpertLogin        string // read only
	ProcedureConfirmed bool
	Reasons            string // required when the procedure is not confirmed
	DecidedAt          time.Time
}

// SetVerdict records an expert's verdict, replacing their earlier one.
func (s *Store) SetVerdict(ctx context.Context, v Verdict) error {
	v.Reasons = strings.TrimSpace(v.Reasons)
	if !v.ProcedureConfirmed && v.Reasons == "" {
		return fmt.Errorf("set verdict: %w: a procedure not confirmed needs the reasons", ErrInvalid)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO review_verdicts (exam_id, candidate_id, expert_id, procedure_confirmed, reasons, decided_at)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (exam_id, candidate_id, expert_id) DO UPDATE SET procedure_confirmed = EXCLUDED.procedure_confirmed,
			reasons = EXCLUDED.reasons, decided_at = EXCLUDED.decided_at`,
		v.ExamID, v.CandidateID, v.ExpertID, v.ProcedureConfirmed, v.Reasons, v.DecidedAt)
	if isForeignKeyViolation(err) {
		return fmt.Errorf("set verdict on %s of exam %s: %w", v.CandidateID, v.ExamID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set verdict on %s of exam %s: %w", v.CandidateID, v.ExamID, err)
	}
	return nil
}

// Verdicts returns the experts' verdicts on candidate's exam.
func (s *Store) Verdicts(ctx context.Context, exam, candidate string) ([]Verdict, error) {
	rows, err := s.pool.Query(ctx, `SELECT v.exam_id, v.candidate_id, v.expert_id, u.login, v.procedure_confirmed, v.reasons, v.decided_at
		FROM review_verdicts v JOIN users u ON u.id = v.expert_id WHERE v.exam_id = $1 AND v.candidate_id = $2 ORDER BY v.decided_at`, exam, candidate)
	if err != nil {
		return nil, fmt.Errorf("list verdicts on %s of exam %s: %w", candidate, exam, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Verdict, error) {
		var v Verdict
		err := r.Scan(&v.ExamID, &v.CandidateID, &v.ExpertID, &v.ExpertLogin, &v.ProcedureConfirmed, &v.Reasons, &v.DecidedAt)
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("list verdicts on %s of exam %s: %w", candidate, exam, err)
	}
	return out, nil
}

// Protocol is the commission protocol of an exam: a document and its
// metadata, and the experts' approvals.
type Protocol struct {
	ExamID     string
	Number     string
	SignedOn   time.Time
	Document   Document
	UploadedBy int64
	UploadedAt time.Time
	Approvals  []ProtocolApproval
}

// ProtocolApproval is an expert's approval (or not) of a protocol.
type ProtocolApproval struct {
	ExpertID    int64
	ExpertLogin string
	Approved    bool
	Comment     string // required when not approved
	DecidedAt   time.Time
}

// SetProtocol records the commission protocol of p.ExamID, whose document
// p.Document.ID is recorded already, replacing an earlier one; the
// experts' approvals of the earlier one are withdrawn.
func (s *Store) SetProtocol(ctx context.Context, p Protocol) error {
	p.Number = strings.TrimSpace(p.Number)
	if p.Number == "" || p.SignedOn.IsZero() {
		return fmt.Errorf("set protocol of %s: %w: a protocol needs a number and a date", p.ExamID, ErrInvalid)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO protocols (exam_id, number, signed_on, document_id, uploaded_by, uploaded_at)
			VALUES ($1, $2, $3, $4, nullif($5, 0), $6)
			ON CONFLICT (exam_id) DO UPDATE SET number = EXCLUDED.number, signed_on = EXCLUDED.signed_on,
				document_id = EXCLUDED.document_id, uploaded_by = EXCLUDED.uploaded_by, uploaded_at = EXCLUDED.uploaded_at`,
			p.ExamID, p.Number, date(p.SignedOn), p.Document.ID, p.UploadedBy, p.UploadedAt)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM protocol_approvals WHERE exam_id = $1`, p.ExamID)
		return err
	})
	if isForeignKeyViolation(err) {
		return fmt.Errorf("set protocol of %s: %w", p.ExamID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set protocol of %s: %w", p.ExamID, err)
	}
	return nil
}

// ExamProtocol returns the protocol of exam, or ErrNotFound.
func (s *Store) ExamProtocol(ctx context.Context, exam string) (Protocol, error) {
	p := Protocol{ExamID: exam}
	var docID string
	err := s.pool.QueryRow(ctx, `SELECT number, signed_on, document_id, coalesce(uploaded_by, 0), uploaded_at FROM protocols WHERE exam_id = $1`, exam).
		Scan(&p.Number, &p.SignedOn, &docID, &p.UploadedBy, &p.UploadedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Protocol{}, fmt.Errorf("get protocol of %s: %w", exam, ErrNotFound)
	}
	if err != nil {
		return Protocol{}, fmt.Errorf("get protocol of %s: %w", exam, err)
	}
	if p.Document, err = s.Document(ctx, docID); err != nil {
		return Protocol{}, fmt.Errorf("get protocol of %s: %w", exam, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT a.expert_id, u.login, a.approved, a.comment, a.decided_at
		FROM protocol_approvals a JOIN users u ON u.id = a.expert_id WHERE a.exam_id = $1 ORDER BY a.decided_at`, exam)
	if err != nil {
		return Protocol{}, fmt.Errorf("get protocol of %s: %w", exam, err)
	}
	p.Approvals, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (ProtocolApproval, error) {
		var a ProtocolApproval
		err := r.Scan(&a.ExpertID, &a.ExpertLogin, &a.Approved, &a.Comment, &a.DecidedAt)
		return a, err
	})
	if err != nil {
		return Protocol{}, fmt.Errorf("get protocol of %s: %w", exam, err)
	}
	return p, nil
}

// ApproveProtocol records an expert's approval (or not, with a comment) of
// exam's protocol, replacing their earlier one. No protocol yet is ErrState.
func (s *Store) ApproveProtocol(ctx context.Context, exam string, expert int64, approved bool, comment string, now time.Time) error {
	comment = strings.TrimSpace(comment)
	if !approved && comment == "" {
		return fmt.Errorf("approve protocol of %s: %w: not approving needs a comment", exam, ErrInvalid)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO protocol_approvals (exam_id, expert_id, approved, comment, decided_at)
		SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM protocols WHERE exam_id = $1)
		ON CONFLICT (exam_id, expert_id) DO UPDATE SET approved = EXCLUDED.approved, comment = EXCLUDED.comment, decided_at = EXCLUDED.decided_at`,
		exam, expert, approved, comment, now)
	if err != nil {
		return fmt.Errorf("approve protocol of %s: %w", exam, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("approve protocol of %s: %w: the site has not uploaded a protocol", exam, ErrState)
	}
	return nil
}
