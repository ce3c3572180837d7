package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
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
	// CertificateCorrected is NARK's correction of a verified card.
	CertificateCorrected = "corrected"
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

	// State is where the card is in the register's procedure (Card*).
	State string
	// StateReason is why the card was rejected, returned or not verified.
	StateReason string
	StateAt     time.Time
	SubmittedAt *time.Time // the center's last submission
	ApprovedAt  *time.Time // the council's approval
	UpdatedAt   time.Time
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
	PreconditionCommission = "council_commission"    // the council has no appeals-commission contacts
	PreconditionTools      = "assessment_tools"      // the qualification has no assessment tools
	PreconditionCenter     = "center_details"        // the center's required details are missing
	PreconditionToolLinks  = "assessment_tool_links" // a tool's link is not a valid URL
	PreconditionSite       = "site_details"          // the site's details are missing
	PreconditionProtocol   = "commission_protocol"   // the commission protocol is missing or not approved by every expert
	PreconditionCards      = "result_cards"          // an admitted candidate has no card, or a card is not submitted
)

// Precondition is one unmet precondition of entering a result.
type Precondition struct {
	Code    string // one of the Precondition* codes
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

// ResultPreconditions returns the unmet preconditions of the council's
// approval of exam's results: the council's appeals commission must have
// members, a postal address, an e-mail and a phone; the qualification must
// have assessment tools, each link a valid http(s) URL; the center must have
// its head, official site, e-mail, phones and its legal, actual and postal
// addresses; the site its name, address, e-mail and phone. Nil means they
// hold.
func (s *Store) ResultPreconditions(ctx context.Context, exam string) ([]Precondition, error) {
	return resultPreconditions(ctx, s.pool, exam, true)
}

func resultPreconditions(ctx context.Context, q querier, exam string, approval bool) ([]Precondition, error) {
	var council Council
	var center Center
	var site Site
	var qual string
	var tools int
	var links []string
	err := q.QueryRow(ctx, `SELECT co.id, co.commission_members, co.commission_address, co.commission_email, co.commission_phones,
			c.id, c.head, c.website, c.legal_address, c.actual_address, c.postal_address, c.email, c.phones,
			st.id, st.name, st.address, st.email, st.phones,
			e.qualification_code, (SELECT count(*) FROM assessment_tools t WHERE t.qualification_code = e.qualification_code),
			(SELECT coalesce(array_agg(t.link ORDER BY t.id), '{}') FROM assessment_tools t WHERE t.qualification_code = e.qualification_code)
		FROM exams e JOIN centers c ON c.id = e.center_id JOIN councils co ON co.id = e.council_id JOIN sites st ON st.id = e.site_id
		WHERE e.id = $1`, exam).
		Scan(&council.ID, &council.Commission.Members, &council.Commission.Address, &council.Commission.Email, &council.Commission.Phones,
			&center.ID, &center.Head, &center.Website, &center.LegalAddress, &center.ActualAddress, &center.PostalAddress, &center.Email, &center.Phones,
			&site.ID, &site.Name, &site.Address, &site.Email, &site.Phones, &qual, &tools, &links)
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
	missing := center.MissingDetails()
	if approval {
		var bad []string
		for _, l := range links {
			if !validURL(l) {
				bad = append(bad, fmt.Sprintf("%q", l))
			}
		}
		if len(bad) > 0 {
			unmet = append(unmet, Precondition{PreconditionToolLinks, fmt.Sprintf(
				"assessment tools of qualification %s have links that are not valid http(s) URLs: %s (POST /api/v1/qualifications/%s/tools)",
				qual, strings.Join(bad, ", "), qual)})
		}
		for _, f := range []struct{ name, v string }{{"actual address", center.ActualAddress}, {"postal address", center.PostalAddress}} {
			if strings.TrimSpace(f.v) == "" {
				missing = append(missing, f.name)
			}
		}
		if m := site.MissingDetails(); len(m) > 0 {
			unmet = append(unmet, Precondition{PreconditionSite, fmt.Sprintf(
				"site %s lacks its %s (PUT /api/v1/sites/%s)", site.ID, strings.Join(m, ", "), site.ID)})
		}
	}
	if len(missing) > 0 {
		unmet = append(unmet, Precondition{PreconditionCenter, fmt.Sprintf(
			"center %s lacks its %s (PUT /api/v1/centers/%s)", center.ID, strings.Join(missing, ", "), center.ID)})
	}
	return unmet, nil
}

// validURL reports whether s is an absolute http or https URL with a host.
func validURL(s string) bool {
	u, err := url.Parse(strings.TrimSpace(s))
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// date returns t's calendar date in UTC, at midnight.
func date(t time.Time) time.Time {
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// RecordResult enters r, a result decided outside this registry's
// procedure (an import of the register's past), as a registered card of a
// candidate admitted to an exam that has ended by now, and publishes RetentionChanged through the outbox
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
		admission, ends, years, err := lockExamCandidate(ctx, tx, r.ExamID, r.CandidateID)
		if err != nil {
			return err
		}
		unmet, err := resultPreconditions(ctx, tx, r.ExamID, false)
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
		r.State, r.StateAt, r.UpdatedAt = CardRegistered, now, now
		_, err = tx.Exec(ctx, `INSERT INTO results (exam_id, candidate_id, kind, certificate_number, issued_on, valid_until,
				conclusion, recorded_by, recorded_at, state, state_by, state_at, approved_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, 0), $9, 'registered', nullif($8, 0), $9, $9, $9)`,
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
		if err := addTransition(ctx, tx, r.ExamID, r.CandidateID, "", CardRegistered, "entered directly", nil, by, now); err != nil {
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
		WHERE certificate_number = $1 AND state IN `+registerStates+` FOR UPDATE`, number).Scan(&exam, &cand, &validUntil, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		err = ErrNotFound
	}
	return exam, cand, validUntil, revoked, err
}

const resultColumns = `r.exam_id, r.candidate_id, r.kind, coalesce(r.certificate_number, ''), r.issued_on,
	coalesce(r.valid_until, '0001-01-01'::date), r.conclusion, r.revoked_at, r.revocation_reason, coalesce(r.recorded_by, 0), r.recorded_at,
	r.state, r.state_reason, r.state_at, r.submitted_at, r.approved_at, r.updated_at`

func (s *Store) scanResult(ctx context.Context, row pgx.Row) (Result, error) {
	var r Result
	err := row.Scan(&r.ExamID, &r.CandidateID, &r.Kind, &r.CertificateNumber, &r.IssuedOn, &r.ValidUntil, &r.Conclusion,
		&r.RevokedAt, &r.RevocationReason, &r.RecordedBy, &r.RecordedAt,
		&r.State, &r.StateReason, &r.StateAt, &r.SubmittedAt, &r.ApprovedAt, &r.UpdatedAt)
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
// ErrNotFound: a certificate exists in the register only once the council
// approved its card.
func (s *Store) Certificate(ctx context.Context, number string) (Result, error) {
	r, err := s.scanResult(ctx, s.pool.QueryRow(ctx, `SELECT `+resultColumns+` FROM results r WHERE r.certificate_number = $1 AND r.state IN `+registerStates, number))
	if errors.Is(err, pgx.ErrNoRows) {
		return Result{}, fmt.Errorf("get certificate %s: %w", number, ErrNotFound)
	}
	if err != nil {
		return Result{}, fmt.Errorf("get certificate %s: %w", number, err)
	}
	return r, nil
}
