package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
)

// Result kinds.
const (
	ResultCertificate = "certificate" // свидетельство о квалификации
	ResultConclusion  = "conclusion"  // заключение о прохождении (failed exam)
)

// Certificate changes.
const (
	CertificateIssued   = "issued"
	CertificateExtended = "extended"
	CertificateRevoked  = "revoked"
)

// Result is a candidate's result of an exam.
type Result struct {
	ExamID      string
	CandidateID string
	Kind        string // ResultCertificate or ResultConclusion
	// CertificateNumber, for a certificate.
	CertificateNumber string
	// IssuedOn is the date of the certificate or of the conclusion.
	IssuedOn time.Time
	// ValidUntil is the date the certificate is valid until: the issue
	// date plus the qualification's validity, or later if extended.
	ValidUntil time.Time
	// Conclusion is the text of a conclusion: what was failed.
	Conclusion       string
	RevokedAt        *time.Time
	RevocationReason string
	RecordedBy       int64
	RecordedAt       time.Time
	Changes          []CertificateChange // of a certificate, oldest first
}

// CertificateChange is one change of a certificate.
type CertificateChange struct {
	Change     string // CertificateIssued, CertificateExtended or CertificateRevoked
	ValidUntil time.Time
	Reason     string
	ChangedBy  int64
	ChangedAt  time.Time
}

// Preconditions of entering a result (the registry procedure).
const (
	PreconditionCommission = "council_commission" // the council has no appeals-commission contacts
	PreconditionTools      = "assessment_tools"   // the qualification has no assessment tools
	PreconditionCenter     = "center_details"     // the center's required details are missing
)

// Precondition is one unmet precondition of entering a result.
type Precondition struct {
	Code    string // PreconditionCommission, PreconditionTools or PreconditionCenter
	Message string // what is missing and where to fix it
}

// PreconditionError lists the unmet preconditions of entering a result. It
// wraps ErrPrecondition.
type PreconditionError struct {
	Unmet []Precondition
}

func (e *PreconditionError) Error() string {
	msgs := make([]string, len(e.Unmet))
	for i, p := range e.Unmet {
		msgs[i] = p.Message
	}
	return "a result cannot be entered: " + strings.Join(msgs, "; ")
}

// Unwrap returns ErrPrecondition.
func (e *PreconditionError) Unwrap() error { return ErrPrecondition }

// querier is a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ResultPreconditions returns the unmet preconditions of entering a result
// of exam: the council's appeals commission must have members, a postal
// address, an e-mail and a phone; the qualification must have assessment
// tools; the center must have its required details. Nil means a result may
// be entered.
func (s *Store) ResultPreconditions(ctx context.Context, exam string) ([]Precondition, error) {
	return resultPreconditions(ctx, s.pool, exam)
}

func resultPreconditions(ctx context.Context, q querier, exam string) ([]Precondition, error) {
	var council Council
	var center Center
	var qual string
	var tools int
	err := q.QueryRow(ctx, `SELECT co.id, co.commission_members, co.commission_address, co.commission_email, co.commission_phones,
			c.id, c.head, c.website, c.legal_address, c.email, c.phones,
			e.qualification_code, (SELECT count(*) FROM assessment_tools t WHERE t.qualification_code = e.qualification_code)
		FROM exams e JOIN centers c ON c.id = e.center_id JOIN councils co ON co.id = c.council_id WHERE e.id = $1`, exam).
		Scan(&council.ID, &council.Commission.Members, &council.Commission.Address, &council.Commission.Email, &council.Commission.Phones,
			&center.ID, &center.Head, &center.Website, &center.LegalAddress, &center.Email, &center.Phones, &qual, &tools)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("check result preconditions of exam %s: %w", exam, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("check result preconditions of exam %s: %w", exam, err)
	}
	var unmet []Precondition
	if m := council.Commission.Missing(); len(m) > 0 {
		unmet = append(unmet, Precondition{PreconditionCommission, fmt.Sprintf(
			"the appeals commission of council %s lacks %s (PUT /api/v1/councils/%s/commission)", council.ID, strings.Join(m, ", "), council.ID)})
	}
	if tools == 0 {
		unmet = append(unmet, Precondition{PreconditionTools, fmt.Sprintf(
			"qualification %s has no assessment tools (POST /api/v1/qualifications/%s/tools)", qual, qual)})
	}
	if m := center.MissingDetails(); len(m) > 0 {
		unmet = append(unmet, Precondition{PreconditionCenter, fmt.Sprintf(
			"center %s lacks its %s (PUT /api/v1/centers/%s)", center.ID, strings.Join(m, ", "), center.ID)})
	}
	return unmet, nil
}

// date returns t's calendar date in UTC, at midnight.
func date(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// RecordResult records r, the result of a candidate admitted to an exam
// that has ended by now, and publishes RetentionChanged through the outbox
// (certificate_issued or result_recorded). A certificate needs a number and
// an issue date (its validity is computed: r.ValidUntil is set); a
// conclusion needs a date and a text. Unmet preconditions are a
// *PreconditionError; a candidate not admitted or an exam not over is
// ErrState; a candidate with a result or a certificate number in use is
// ErrExists.
func (s *Store) RecordResult(ctx context.Context, r *Result, by int64, now time.Time) error {
	r.CertificateNumber, r.Conclusion = strings.TrimSpace(r.CertificateNumber), strings.TrimSpace(r.Conclusion)
	if r.IssuedOn.IsZero() {
		return fmt.Errorf("record result: %w: a date is required", ErrInvalid)
	}
	r.IssuedOn = date(r.IssuedOn)
	switch r.Kind {
	case ResultCertificate:
		if r.CertificateNumber == "" {
			return fmt.Errorf("record result: %w: a certificate needs a number", ErrInvalid)
		}
		r.Conclusion = ""
	case ResultConclusion:
		if r.Conclusion == "" {
			return fmt.Errorf("record result: %w: a conclusion needs a text", ErrInvalid)
		}
		r.CertificateNumber = ""
	default:
		return fmt.Errorf("record result: %w: kind %q is not certificate or conclusion", ErrInvalid, r.Kind)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var admission string
		var ends time.Time
		var years int
		err := tx.QueryRow(ctx, `SELECT ec.admission, e.ends_at, q.validity_years
			FROM exam_candidates ec JOIN exams e ON e.id = ec.exam_id JOIN qualifications q ON q.code = e.qualification_code
			WHERE ec.exam_id = $1 AND ec.candidate_id = $2 FOR UPDATE OF ec`, r.ExamID, r.CandidateID).Scan(&admission, &ends, &years)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		unmet, err := resultPreconditions(ctx, tx, r.ExamID)
		if err != nil {
			return err
		}
		if len(unmet) > 0 {
			return &PreconditionError{Unmet: unmet}
		}
		if admission != AdmissionAdmitted {
			return fmt.Errorf("%w: the candidate was not admitted (%s)", ErrState, admission)
		}
		if now.Before(ends) {
			return fmt.Errorf("%w: the exam ends at %s", ErrState, ends.UTC().Format(time.RFC3339))
		}
		reason := events.RetentionResultRecorded
		var number, validUntil any
		if r.Kind == ResultCertificate {
			r.ValidUntil = r.IssuedOn.AddDate(years, 0, 0)
			number, validUntil = r.CertificateNumber, r.ValidUntil
			reason = events.RetentionCertificateIssued
		}
		r.RecordedBy, r.RecordedAt = by, now
		_, err = tx.Exec(ctx, `INSERT INTO results (exam_id, candidate_id, kind, certificate_number, issued_on, valid_until,
				conclusion, recorded_by, recorded_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, 0), $9)`,
			r.ExamID, r.CandidateID, r.Kind, number, r.IssuedOn, validUntil, r.Conclusion, by, now)
		if isUniqueViolation(err) {
			if constraintName(err) == "results_pkey" {
				return fmt.Errorf("%w: the candidate has a result of this exam", ErrExists)
			}
			return fmt.Errorf("%w: certificate number %s is in use", ErrExists, r.CertificateNumber)
		}
		if err != nil {
			return err
		}
		if r.Kind == ResultCertificate {
			if err := addCertificateChange(ctx, tx, r.CertificateNumber, CertificateIssued, r.ValidUntil, "", by, now); err != nil {
				return err
			}
		}
		return enqueueRetention(ctx, tx, r.ExamID, r.CandidateID, reason, now)
	})
	if err != nil {
		return fmt.Errorf("record result of %s in exam %s: %w", r.CandidateID, r.ExamID, err)
	}
	return nil
}

func addCertificateChange(ctx context.Context, tx pgx.Tx, number, change string, validUntil time.Time, reason string, by int64, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO certificate_changes (certificate_number, change, valid_until, reason, changed_by, changed_at)
		VALUES ($1, $2, $3, $4, nullif($5, 0), $6)`, number, change, validUntil, reason, by, now)
	return err
}

// ExtendCertificate extends certificate number to validUntil, which must be
// later than its current date (ErrInvalid), and publishes RetentionChanged
// (certificate_extended). A revoked certificate is ErrState.
func (s *Store) ExtendCertificate(ctx context.Context, number string, validUntil time.Time, reason string, by int64, now time.Time) error {
	validUntil = date(validUntil)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		exam, cand, current, revoked, err := lockCertificate(ctx, tx, number)
		if err != nil {
			return err
		}
		if revoked {
			return fmt.Errorf("%w: the certificate is revoked", ErrState)
		}
		if !validUntil.After(current) {
			return fmt.Errorf("%w: %s is not after the current validity %s", ErrInvalid,
				validUntil.Format(time.DateOnly), current.Format(time.DateOnly))
		}
		if _, err := tx.Exec(ctx, `UPDATE results SET valid_until = $2 WHERE certificate_number = $1`, number, validUntil); err != nil {
			return err
		}
		if err := addCertificateChange(ctx, tx, number, CertificateExtended, validUntil, strings.TrimSpace(reason), by, now); err != nil {
			return err
		}
		return enqueueRetention(ctx, tx, exam, cand, events.RetentionCertificateExtended, now)
	})
	if err != nil {
		return fmt.Errorf("extend certificate %s: %w", number, err)
	}
	return nil
}

// RevokeCertificate revokes certificate number for reason (required) and
// publishes RetentionChanged (certificate_revoked). The certificate keeps
// its validity date: evidence is never kept shorter because of a
// revocation. Revoking twice is ErrState.
func (s *Store) RevokeCertificate(ctx context.Context, number, reason string, by int64, now time.Time) error {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return fmt.Errorf("revoke certificate %s: %w: a reason is required", number, ErrInvalid)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		exam, cand, current, revoked, err := lockCertificate(ctx, tx, number)
		if err != nil {
			return err
		}
		if revoked {
			return fmt.Errorf("%w: the certificate is revoked already", ErrState)
		}
		if _, err := tx.Exec(ctx, `UPDATE results SET revoked_at = $2, revocation_reason = $3 WHERE certificate_number = $1`,
			number, now, reason); err != nil {
			return err
		}
		if err := addCertificateChange(ctx, tx, number, CertificateRevoked, current, reason, by, now); err != nil {
			return err
		}
		return enqueueRetention(ctx, tx, exam, cand, events.RetentionCertificateRevoked, now)
	})
	if err != nil {
		return fmt.Errorf("revoke certificate %s: %w", number, err)
	}
	return nil
}

func lockCertificate(ctx context.Context, tx pgx.Tx, number string) (exam, cand string, validUntil time.Time, revoked bool, err error) {
	err = tx.QueryRow(ctx, `SELECT exam_id, candidate_id, valid_until, revoked_at IS NOT NULL FROM results
		WHERE certificate_number = $1 FOR UPDATE`, number).Scan(&exam, &cand, &validUntil, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		err = ErrNotFound
	}
	return exam, cand, validUntil, revoked, err
}

const resultColumns = `r.exam_id, r.candidate_id, r.kind, coalesce(r.certificate_number, ''), r.issued_on,
	coalesce(r.valid_until, '0001-01-01'::date), r.conclusion, r.revoked_at, r.revocation_reason, coalesce(r.recorded_by, 0), r.recorded_at`

func (s *Store) scanResult(ctx context.Context, row pgx.Row) (Result, error) {
	var r Result
	err := row.Scan(&r.ExamID, &r.CandidateID, &r.Kind, &r.CertificateNumber, &r.IssuedOn, &r.ValidUntil, &r.Conclusion,
		&r.RevokedAt, &r.RevocationReason, &r.RecordedBy, &r.RecordedAt)
	if err != nil {
		return r, err
	}
	r.Changes = []CertificateChange{}
	if r.Kind != ResultCertificate {
		r.ValidUntil = time.Time{}
		return r, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT change, valid_until, reason, coalesce(changed_by, 0), changed_at
		FROM certificate_changes WHERE certificate_number = $1 ORDER BY id`, r.CertificateNumber)
	if err != nil {
		return r, err
	}
	r.Changes, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (CertificateChange, error) {
		var c CertificateChange
		err := row.Scan(&c.Change, &c.ValidUntil, &c.Reason, &c.ChangedBy, &c.ChangedAt)
		return c, err
	})
	return r, err
}

// Result returns the result of candidate in exam, or ErrNotFound.
func (s *Store) Result(ctx context.Context, exam, candidate string) (Result, error) {
	r, err := s.scanResult(ctx, s.pool.QueryRow(ctx, `SELECT `+resultColumns+` FROM results r WHERE r.exam_id = $1 AND r.candidate_id = $2`, exam, candidate))
	if errors.Is(err, pgx.ErrNoRows) {
		return Result{}, fmt.Errorf("get result of %s in exam %s: %w", candidate, exam, ErrNotFound)
	}
	if err != nil {
		return Result{}, fmt.Errorf("get result of %s in exam %s: %w", candidate, exam, err)
	}
	return r, nil
}

// Certificate returns the result that is certificate number, or
// ErrNotFound.
func (s *Store) Certificate(ctx context.Context, number string) (Result, error) {
	r, err := s.scanResult(ctx, s.pool.QueryRow(ctx, `SELECT `+resultColumns+` FROM results r WHERE r.certificate_number = $1`, number))
	if errors.Is(err, pgx.ErrNoRows) {
		return Result{}, fmt.Errorf("get certificate %s: %w", number, ErrNotFound)
	}
	if err != nil {
		return Result{}, fmt.Errorf("get certificate %s: %w", number, err)
	}
	return r, nil
}

// Council decisions on an exam's results.
const (
	DecisionApproved = "approved" // submits the results to the register
	DecisionRejected = "rejected"
	DecisionReturned = "returned" // back to the center for rework
)

// Deadlines of the registry procedure.
const (
	// SubmissionDeadline is how long after the exam the council has to
	// submit (approve) its results.
	SubmissionDeadline = 14 * 24 * time.Hour
	// VerificationDeadline is how long after the submission NARK has to
	// verify the results.
	VerificationDeadline = 7 * 24 * time.Hour
)

// Decision is a council's decision on an exam's results.
type Decision struct {
	ExamID    string
	Decision  string // DecisionApproved, DecisionRejected or DecisionReturned
	Comment   string // required unless approved
	DecidedBy int64
	DecidedAt time.Time
}

// Verification is NARK's verification of an exam's submitted results.
type Verification struct {
	ExamID     string
	Verified   bool
	Comment    string // required unless verified
	VerifiedBy int64
	VerifiedAt time.Time
}

// RecordDecision records the council's decision d on an exam that has
// ended by d.DecidedAt (ErrState otherwise).
func (s *Store) RecordDecision(ctx context.Context, d Decision) error {
	d.Comment = strings.TrimSpace(d.Comment)
	switch {
	case d.Decision != DecisionApproved && d.Decision != DecisionRejected && d.Decision != DecisionReturned:
		return fmt.Errorf("record decision on %s: %w: %q is not approved, rejected or returned", d.ExamID, ErrInvalid, d.Decision)
	case d.Decision != DecisionApproved && d.Comment == "":
		return fmt.Errorf("record decision on %s: %w: a %s decision needs a comment", d.ExamID, ErrInvalid, d.Decision)
	}
	var ends time.Time
	err := s.pool.QueryRow(ctx, `SELECT ends_at FROM exams WHERE id = $1`, d.ExamID).Scan(&ends)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("record decision on %s: %w", d.ExamID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("record decision on %s: %w", d.ExamID, err)
	}
	if d.DecidedAt.Before(ends) {
		return fmt.Errorf("record decision on %s: %w: the exam ends at %s", d.ExamID, ErrState, ends.UTC().Format(time.RFC3339))
	}
	if d.Decision == DecisionApproved {
		if err := s.protocolApproved(ctx, d.ExamID); err != nil {
			return fmt.Errorf("record decision on %s: %w", d.ExamID, err)
		}
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO exam_decisions (exam_id, decision, comment, decided_by, decided_at) VALUES ($1, $2, $3, nullif($4, 0), $5)`,
		d.ExamID, d.Decision, d.Comment, d.DecidedBy, d.DecidedAt)
	if err != nil {
		return fmt.Errorf("record decision on %s: %w", d.ExamID, err)
	}
	return nil
}

// protocolApproved returns nil if the exam's commission protocol is
// recorded and every expert appointed to the exam approved it, which the
// council needs before it approves (submits) the results; otherwise
// ErrState saying what is missing.
func (s *Store) protocolApproved(ctx context.Context, exam string) error {
	var hasProtocol bool
	var experts, approved int
	var refused []string
	err := s.pool.QueryRow(ctx, `SELECT
			EXISTS (SELECT 1 FROM protocols WHERE exam_id = $1),
			(SELECT count(*) FROM exam_experts WHERE exam_id = $1),
			(SELECT count(*) FROM protocol_approvals a JOIN exam_experts x ON x.exam_id = a.exam_id AND x.user_id = a.expert_id
				WHERE a.exam_id = $1 AND a.approved),
			(SELECT coalesce(array_agg(u.login ORDER BY u.login), '{}') FROM protocol_approvals a JOIN users u ON u.id = a.expert_id
				WHERE a.exam_id = $1 AND NOT a.approved)`, exam).Scan(&hasProtocol, &experts, &approved, &refused)
	if err != nil {
		return err
	}
	switch {
	case !hasProtocol:
		return fmt.Errorf("%w: the commission protocol is not recorded (PUT /api/v1/exams/%s/protocol)", ErrState, exam)
	case experts == 0:
		return fmt.Errorf("%w: no expert is appointed to approve the commission protocol", ErrState)
	case len(refused) > 0:
		return fmt.Errorf("%w: the commission protocol is not approved by %s", ErrState, strings.Join(refused, ", "))
	case approved < experts:
		return fmt.Errorf("%w: %d of %d appointed experts approved the commission protocol", ErrState, approved, experts)
	}
	return nil
}

// RecordVerification records NARK's verification v of an exam whose
// results the council submitted (ErrState otherwise).
func (s *Store) RecordVerification(ctx context.Context, v Verification) error {
	v.Comment = strings.TrimSpace(v.Comment)
	if !v.Verified && v.Comment == "" {
		return fmt.Errorf("record verification of %s: %w: a failed verification needs a comment", v.ExamID, ErrInvalid)
	}
	var latest *string
	err := s.pool.QueryRow(ctx, `SELECT (SELECT decision FROM exam_decisions d WHERE d.exam_id = e.id ORDER BY decided_at DESC, id DESC LIMIT 1)
		FROM exams e WHERE e.id = $1`, v.ExamID).Scan(&latest)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("record verification of %s: %w", v.ExamID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("record verification of %s: %w", v.ExamID, err)
	}
	if latest == nil || *latest != DecisionApproved {
		return fmt.Errorf("record verification of %s: %w: the council has not submitted the results", v.ExamID, ErrState)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO exam_verifications (exam_id, verified, comment, verified_by, verified_at) VALUES ($1, $2, $3, nullif($4, 0), $5)`,
		v.ExamID, v.Verified, v.Comment, v.VerifiedBy, v.VerifiedAt)
	if err != nil {
		return fmt.Errorf("record verification of %s: %w", v.ExamID, err)
	}
	return nil
}

// ExamDecisions returns the council's decisions and NARK's verifications
// of exam, oldest first.
func (s *Store) ExamDecisions(ctx context.Context, exam string) ([]Decision, []Verification, error) {
	rows, err := s.pool.Query(ctx, `SELECT exam_id, decision, comment, coalesce(decided_by, 0), decided_at FROM exam_decisions
		WHERE exam_id = $1 ORDER BY decided_at, id`, exam)
	if err != nil {
		return nil, nil, fmt.Errorf("list decisions on %s: %w", exam, err)
	}
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Decision, error) {
		var d Decision
		err := r.Scan(&d.ExamID, &d.Decision, &d.Comment, &d.DecidedBy, &d.DecidedAt)
		return d, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list decisions on %s: %w", exam, err)
	}
	rows, err = s.pool.Query(ctx, `SELECT exam_id, verified, comment, coalesce(verified_by, 0), verified_at FROM exam_verifications
		WHERE exam_id = $1 ORDER BY verified_at, id`, exam)
	if err != nil {
		return nil, nil, fmt.Errorf("list verifications of %s: %w", exam, err)
	}
	vs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Verification, error) {
		var v Verification
		err := r.Scan(&v.ExamID, &v.Verified, &v.Comment, &v.VerifiedBy, &v.VerifiedAt)
		return v, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list verifications of %s: %w", exam, err)
	}
	return ds, vs, nil
}

// Deadline kinds.
const (
	DeadlineSubmission   = "council_submission" // the council submits within 14 days of the exam
	DeadlineVerification = "nark_verification"  // NARK verifies within 7 days of the submission
)

// Deadline is a step of the registry procedure that is due.
type Deadline struct {
	Kind      string // DeadlineSubmission or DeadlineVerification
	ExamID    string
	CouncilID string
	CenterID  string
	SiteID    string
	Since     time.Time // the exam's end, or the submission
	Due       time.Time
	Overdue   bool
}

// Deadlines returns the pending steps of the registry procedure of the
// exams in sc at now, the most urgent first: exams that ended and whose
// results the council has not submitted (due 14 days after the exam), and
// submitted results NARK has not verified (due 7 days after the
// submission). With overdueOnly, only those past due.
func (s *Store) Deadlines(ctx context.Context, sc Scope, now time.Time, overdueOnly bool) ([]Deadline, error) {
	var a args
	where := sc.where(scopeColumns{council: "c.council_id", center: "e.center_id", site: "e.site_id", exam: "e.id"}, &a)
	nowP := a.add(now)
	sub := fmt.Sprintf("interval '%d seconds'", int64(SubmissionDeadline.Seconds()))
	ver := fmt.Sprintf("interval '%d seconds'", int64(VerificationDeadline.Seconds()))
	q := `
		WITH st AS (
			SELECT e.id, c.council_id, e.center_id, e.site_id, e.ends_at,
				(SELECT d.decision FROM exam_decisions d WHERE d.exam_id = e.id ORDER BY d.decided_at DESC, d.id DESC LIMIT 1) AS decision,
				(SELECT d.decided_at FROM exam_decisions d WHERE d.exam_id = e.id ORDER BY d.decided_at DESC, d.id DESC LIMIT 1) AS decided_at
			FROM exams e JOIN centers c ON c.id = e.center_id
			WHERE e.ends_at <= ` + nowP + ` AND ` + where + `
		), due AS (
			SELECT 'council_submission' AS kind, id, council_id, center_id, site_id, ends_at AS since, ends_at + ` + sub + ` AS due
			FROM st WHERE decision IS DISTINCT FROM 'approved'
			UNION ALL
			SELECT 'nark_verification', id, council_id, center_id, site_id, decided_at, decided_at + ` + ver + `
			FROM st WHERE decision = 'approved'
				AND NOT EXISTS (SELECT 1 FROM exam_verifications v WHERE v.exam_id = st.id AND v.verified_at >= st.decided_at)
		)
		SELECT kind, id, council_id, center_id, site_id, since, due, due <= ` + nowP + ` FROM due`
	if overdueOnly {
		q += ` WHERE due <= ` + nowP
	}
	q += ` ORDER BY due, id`
	rows, err := s.pool.Query(ctx, q, a...)
	if err != nil {
		return nil, fmt.Errorf("list deadlines: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Deadline, error) {
		var d Deadline
		err := r.Scan(&d.Kind, &d.ExamID, &d.CouncilID, &d.CenterID, &d.SiteID, &d.Since, &d.Due, &d.Overdue)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("list deadlines: %w", err)
	}
	return out, nil
}
