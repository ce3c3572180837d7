package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
)

// States of a result card in the register's procedure (README, "Registry").
const (
	CardDraft       = "draft"        // the center fills it
	CardSubmitted   = "submitted"    // the center sent the exam's cards to the council
	CardApproved    = "approved"     // the council approved, with its protocol: in the register
	CardRejected    = "rejected"     // the council rejected (reason)
	CardReturned    = "returned"     // the council returned it to the center (reason); the center edits and resubmits
	CardVerified    = "verified"     // NARK verified it
	CardNotVerified = "not_verified" // NARK did not (reason); the council may return it
	CardRegistered  = "registered"   // in the register, searchable
)

// registerStates are the states in which a card is in the register: its
// certificate can be looked up, counts for retention, and answers the
// public check.
const registerStates = `('approved', 'verified', 'not_verified', 'registered')`

// Deadlines of the procedure in calendar days, counted in Moscow time.
const (
	// SubmissionDays is how many calendar days after the exam the council
	// has to decide on its results.
	SubmissionDays = 14
	// VerificationDays is how many calendar days after the council's
	// approval (the submission to the register) NARK has to verify.
	VerificationDays = 7
)

// Moscow is the time zone the procedure counts days in: Moscow has kept
// UTC+3 all year since 26 October 2014.
func Moscow() *time.Location { return time.FixedZone("MSK", 3*60*60) }

// DueAfter returns the instant a step that has days calendar days from
// since (in Moscow time) becomes overdue: the start of the Moscow day after
// its last day.
func DueAfter(since time.Time, days int) time.Time {
	y, m, d := since.In(Moscow()).Date()
	return time.Date(y, m, d+days+1, 0, 0, 0, 0, Moscow())
}

// moscowDue is DueAfter in SQL, of the timestamptz expression since.
func moscowDue(since string, days int) string {
	return fmt.Sprintf(`((((%s) AT TIME ZONE 'Europe/Moscow')::date + %d)::timestamp AT TIME ZONE 'Europe/Moscow')`, since, days+1)
}

// Transition is one change of a card: of its state, or a correction.
type Transition struct {
	From, To string
	Reason   string
	Changes  map[string]any // of a correction: field → {"from","to"}
	By       int64
	At       time.Time
}

func addTransition(ctx context.Context, tx pgx.Tx, exam, cand, from, to, reason string, changes map[string]any, by int64, now time.Time) error {
	var js []byte
	if changes != nil {
		var err error
		if js, err = json.Marshal(changes); err != nil {
			return err
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO result_transitions (exam_id, candidate_id, from_state, to_state, reason, changes, by_user, at)
		VALUES ($1, $2, $3, $4, $5, $6, nullif($7, 0), $8)`, exam, cand, from, to, reason, js, by, now)
	return err
}

// normalizeResult checks and tidies the fields of a card the center fills.
func normalizeResult(r *Result) error {
	r.CertificateNumber, r.Conclusion = strings.TrimSpace(r.CertificateNumber), strings.TrimSpace(r.Conclusion)
	if r.IssuedOn.IsZero() {
		return fmt.Errorf("%w: a date is required", ErrInvalid)
	}
	r.IssuedOn = date(r.IssuedOn)
	switch r.Kind {
	case ResultCertificate:
		if r.CertificateNumber == "" {
			return fmt.Errorf("%w: a certificate needs a number", ErrInvalid)
		}
		if len(r.CertificateNumber) > 64 {
			return fmt.Errorf("%w: a certificate number has at most 64 characters", ErrInvalid)
		}
		r.Conclusion = ""
	case ResultConclusion:
		if r.Conclusion == "" {
			return fmt.Errorf("%w: a conclusion needs a text", ErrInvalid)
		}
		r.CertificateNumber = ""
	default:
		return fmt.Errorf("%w: kind %q is not certificate or conclusion", ErrInvalid, r.Kind)
	}
	return nil
}

// SaveCard creates or edits the result card r of a candidate admitted to an
// exam that has ended by now, as a draft: a certificate (number, issue
// date; its validity is computed from the qualification) or a conclusion
// (date, text). Only a draft or a returned card changes (ErrState
// otherwise); a returned card becomes a draft again. A certificate number
// in use anywhere is ErrExists.
func (s *Store) SaveCard(ctx context.Context, r *Result, by int64, now time.Time) (created bool, err error) {
	if err := normalizeResult(r); err != nil {
		return false, fmt.Errorf("save result card of %s in exam %s: %w", r.CandidateID, r.ExamID, err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		admission, ends, years, err := lockExamCandidate(ctx, tx, r.ExamID, r.CandidateID)
		if err != nil {
			return err
		}
		if admission != AdmissionAdmitted {
			return fmt.Errorf("%w: the candidate was not admitted (%s)", ErrState, admission)
		}
		if now.Before(ends) {
			return fmt.Errorf("%w: the exam ends at %s", ErrState, ends.UTC().Format(time.RFC3339))
		}
		var was string
		err = tx.QueryRow(ctx, `SELECT state FROM results WHERE exam_id = $1 AND candidate_id = $2 FOR UPDATE`, r.ExamID, r.CandidateID).Scan(&was)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			created = true
		case err != nil:
			return err
		case was == CardVerified || was == CardRegistered:
			return fmt.Errorf("%w: the card is %s: it changes only by NARK's correction, with a reason", ErrState, was)
		case was != CardDraft && was != CardReturned:
			return fmt.Errorf("%w: the card is %s: only a draft or a returned card changes", ErrState, was)
		}
		var number, validUntil any
		r.ValidUntil = time.Time{}
		if r.Kind == ResultCertificate {
			r.ValidUntil = r.IssuedOn.AddDate(years, 0, 0)
			number, validUntil = r.CertificateNumber, r.ValidUntil
		}
		if created {
			_, err = tx.Exec(ctx, `INSERT INTO results (exam_id, candidate_id, kind, certificate_number, issued_on, valid_until,
					conclusion, recorded_by, recorded_at, state, state_by, state_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, 0), $9, 'draft', nullif($8, 0), $9, $9)`,
				r.ExamID, r.CandidateID, r.Kind, number, r.IssuedOn, validUntil, r.Conclusion, by, now)
		} else {
			_, err = tx.Exec(ctx, `UPDATE results SET kind = $3, certificate_number = $4, issued_on = $5, valid_until = $6,
					conclusion = $7, state = 'draft', state_reason = CASE WHEN state = 'draft' THEN '' ELSE state_reason END,
					state_by = CASE WHEN state = 'draft' THEN state_by ELSE nullif($8, 0) END,
					state_at = CASE WHEN state = 'draft' THEN state_at ELSE $9 END, updated_at = $9
				WHERE exam_id = $1 AND candidate_id = $2`,
				r.ExamID, r.CandidateID, r.Kind, number, r.IssuedOn, validUntil, r.Conclusion, by, now)
		}
		if isUniqueViolation(err) {
			return fmt.Errorf("%w: certificate number %s is in use", ErrExists, r.CertificateNumber)
		}
		if err != nil {
			return err
		}
		if was != CardDraft {
			return addTransition(ctx, tx, r.ExamID, r.CandidateID, was, CardDraft, "", nil, by, now)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("save result card of %s in exam %s: %w", r.CandidateID, r.ExamID, err)
	}
	return created, nil
}

// missingCards returns the admitted candidates of exam without a card.
func missingCards(ctx context.Context, tx pgx.Tx, exam string) ([]string, error) {
	var missing []string
	err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(ec.candidate_id ORDER BY ec.candidate_id), '{}') FROM exam_candidates ec
		WHERE ec.exam_id = $1 AND ec.admission = 'admitted'
			AND NOT EXISTS (SELECT 1 FROM results r WHERE r.exam_id = ec.exam_id AND r.candidate_id = ec.candidate_id)`, exam).Scan(&missing)
	return missing, err
}

func missingCardsPrecondition(exam string, missing []string) Precondition {
	return Precondition{PreconditionCards, fmt.Sprintf("admitted candidates %s have no result card (PUT /api/v1/exams/%s/candidates/{candidate}/result)",
		strings.Join(missing, ", "), exam)}
}

// lockExam locks exam's row and returns when it ends.
func lockExam(ctx context.Context, tx pgx.Tx, exam string) (time.Time, error) {
	var ends time.Time
	err := tx.QueryRow(ctx, `SELECT ends_at FROM exams WHERE id = $1 FOR UPDATE`, exam).Scan(&ends)
	if errors.Is(err, pgx.ErrNoRows) {
		return ends, ErrNotFound
	}
	return ends, err
}

// moveCards moves the cards of exam in one of from (and among candidates,
// if any are given) to state to, recording each transition, and returns the
// candidates moved with the state each came from.
func moveCards(ctx context.Context, tx pgx.Tx, exam string, candidates []string, from []string, to, reason string, by int64, now time.Time) (map[string]string, error) {
	rows, err := tx.Query(ctx, `SELECT candidate_id, state FROM results WHERE exam_id = $1 AND state = ANY($2)
		AND (coalesce(cardinality($3::text[]), 0) = 0 OR candidate_id = ANY($3)) ORDER BY candidate_id FOR UPDATE`, exam, from, candidates)
	if err != nil {
		return nil, err
	}
	moved := map[string]string{}
	var order []string
	for rows.Next() {
		var c, st string
		if err := rows.Scan(&c, &st); err != nil {
			rows.Close()
			return nil, err
		}
		moved[c] = st
		order = append(order, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(order) == 0 {
		return moved, nil
	}
	_, err = tx.Exec(ctx, `UPDATE results SET state = $3, state_reason = $4, state_by = nullif($5, 0), state_at = $6, updated_at = $6,
			submitted_at = CASE WHEN $3 = 'submitted' THEN $6 ELSE submitted_at END,
			approved_at = CASE WHEN $3 = 'approved' THEN $6 ELSE approved_at END
		WHERE exam_id = $1 AND candidate_id = ANY($2)`, exam, order, to, reason, by, now)
	if err != nil {
		return nil, err
	}
	for _, c := range order {
		if err := addTransition(ctx, tx, exam, c, moved[c], to, reason, nil, by, now); err != nil {
			return nil, err
		}
	}
	return moved, nil
}

// SubmitCards sends the draft and returned cards of exam to its council
// and returns how many. Every admitted candidate must have a card (a
// *PreconditionError names those without); an exam not over, or one with
// nothing to submit, is ErrState.
func (s *Store) SubmitCards(ctx context.Context, exam string, by int64, now time.Time) (int, error) {
	var n int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		ends, err := lockExam(ctx, tx, exam)
		if err != nil {
			return err
		}
		if now.Before(ends) {
			return fmt.Errorf("%w: the exam ends at %s", ErrState, ends.UTC().Format(time.RFC3339))
		}
		missing, err := missingCards(ctx, tx, exam)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			return &PreconditionError{Unmet: []Precondition{missingCardsPrecondition(exam, missing)}}
		}
		moved, err := moveCards(ctx, tx, exam, nil, []string{CardDraft, CardReturned}, CardSubmitted, "", by, now)
		if err != nil {
			return err
		}
		if len(moved) == 0 {
			return fmt.Errorf("%w: no card of the exam is a draft or returned: nothing to submit", ErrState)
		}
		n = len(moved)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("submit result cards of exam %s: %w", exam, err)
	}
	return n, nil
}

// Council decisions on an exam's results.
const (
	DecisionApproved = "approved" // submits the results to the register
	DecisionRejected = "rejected"
	DecisionReturned = "returned" // back to the center for rework
)

// ApprovalProtocol is the council's protocol of an approval: its number,
// date, and a scan (a document of the exam) or a link.
type ApprovalProtocol struct {
	Number     string
	Date       time.Time
	DocumentID string
	Link       string
}

// Decision is a council's decision on an exam's results.
type Decision struct {
	ExamID     string
	Decision   string // DecisionApproved, DecisionRejected or DecisionReturned
	Comment    string // required unless approved
	Protocol   ApprovalProtocol
	LateReason string // why, when decided after the deadline
	DecidedBy  int64
	DecidedAt  time.Time
	// Cards are the candidates whose cards the decision moved (read only).
	Cards []string
}

// Verification is NARK's verification of an exam's approved cards.
type Verification struct {
	ExamID     string
	Verified   bool
	Comment    string   // required unless verified
	Candidates []string // the cards verified; none means every approved card
	LateReason string   // why, when verified after the deadline
	VerifiedBy int64
	VerifiedAt time.Time
}

// lateError is the refusal of a step taken after its deadline without a
// reason for the delay.
func lateError(step string, due time.Time, days int, since string) error {
	last := due.In(Moscow()).AddDate(0, 0, -1).Format(time.DateOnly)
	return fmt.Errorf("%w: late: the %s was due by the end of %s, Moscow time (%d calendar days after %s); say why in late_reason",
		ErrState, step, last, days, since)
}

// RecordDecision records the council's decision d on an exam that has
// ended. It moves the exam's submitted cards (and, for returned or
// rejected, those NARK did not verify): approved puts them in the register
// and publishes RetentionChanged for each; returned sends them back to the
// center. Approving needs the council's protocol (ErrInvalid without) and
// every precondition (*PreconditionError naming each unmet one): the
// commission protocol recorded and approved by every appointed expert, a
// card of every admitted candidate, all submitted, and the organisations'
// details (ResultPreconditions). A decision later than SubmissionDays after
// the exam needs d.LateReason (ErrState); one with no card to move is
// ErrState.
func (s *Store) RecordDecision(ctx context.Context, d *Decision) error {
	d.Comment, d.LateReason = strings.TrimSpace(d.Comment), strings.TrimSpace(d.LateReason)
	p := &d.Protocol
	p.Number, p.Link, p.DocumentID = strings.TrimSpace(p.Number), strings.TrimSpace(p.Link), strings.TrimSpace(p.DocumentID)
	switch {
	case d.Decision != DecisionApproved && d.Decision != DecisionRejected && d.Decision != DecisionReturned:
		return fmt.Errorf("record decision on %s: %w: %q is not approved, rejected or returned", d.ExamID, ErrInvalid, d.Decision)
	case d.Decision != DecisionApproved && d.Comment == "":
		return fmt.Errorf("record decision on %s: %w: a %s decision needs a comment (the reason)", d.ExamID, ErrInvalid, d.Decision)
	case d.Decision == DecisionApproved && (p.Number == "" || p.Date.IsZero()):
		return fmt.Errorf("record decision on %s: %w: an approval needs the council's protocol: its number and date", d.ExamID, ErrInvalid)
	case d.Decision == DecisionApproved && p.DocumentID == "" && p.Link == "":
		return fmt.Errorf("record decision on %s: %w: an approval needs the council's protocol as a scan (protocol.document) or a link (protocol.link)", d.ExamID, ErrInvalid)
	case p.Link != "" && !validURL(p.Link):
		return fmt.Errorf("record decision on %s: %w: the protocol link %q is not an http(s) URL", d.ExamID, ErrInvalid, p.Link)
	}
	if d.Decision != DecisionApproved {
		*p = ApprovalProtocol{}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		ends, err := lockExam(ctx, tx, d.ExamID)
		if err != nil {
			return err
		}
		if d.DecidedAt.Before(ends) {
			return fmt.Errorf("%w: the exam ends at %s", ErrState, ends.UTC().Format(time.RFC3339))
		}
		from := []string{CardSubmitted}
		if d.Decision != DecisionApproved {
			from = append(from, CardNotVerified)
		}
		var movable int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM results WHERE exam_id = $1 AND state = ANY($2)`, d.ExamID, from).Scan(&movable); err != nil {
			return err
		}
		if movable == 0 {
			return fmt.Errorf("%w: no card of the exam is %s: the center submits its cards first (POST /api/v1/exams/%s/submission)",
				ErrState, strings.Join(from, " or "), d.ExamID)
		}
		if due := DueAfter(ends, SubmissionDays); !d.DecidedAt.Before(due) && d.LateReason == "" {
			return lateError("council's decision", due, SubmissionDays, "the exam")
		}
		if d.Decision == DecisionApproved {
			if err := approvalPreconditions(ctx, tx, d.ExamID); err != nil {
				return err
			}
			if p.DocumentID != "" {
				var ok bool
				if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM documents WHERE id = $1 AND exam_id = $2)`, p.DocumentID, d.ExamID).Scan(&ok); err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("%w: document %s is not a document of exam %s (POST /api/v1/exams/%s/council-protocol uploads the scan)",
						ErrInvalid, p.DocumentID, d.ExamID, d.ExamID)
				}
			}
		}
		to := map[string]string{DecisionApproved: CardApproved, DecisionRejected: CardRejected, DecisionReturned: CardReturned}[d.Decision]
		moved, err := moveCards(ctx, tx, d.ExamID, nil, from, to, d.Comment, d.DecidedBy, d.DecidedAt)
		if err != nil {
			return err
		}
		d.Cards = d.Cards[:0]
		for c := range moved {
			d.Cards = append(d.Cards, c)
		}
		slices.Sort(d.Cards)
		for _, c := range d.Cards {
			if err := cardRetention(ctx, tx, d.ExamID, c, moved[c], to, d.DecidedBy, d.DecidedAt); err != nil {
				return err
			}
		}
		var date any
		if !p.Date.IsZero() {
			date = p.Date
		}
		_, err = tx.Exec(ctx, `INSERT INTO exam_decisions (exam_id, decision, comment, decided_by, decided_at,
				protocol_number, protocol_date, protocol_document, protocol_link, late_reason)
			VALUES ($1, $2, $3, nullif($4, 0), $5, $6, $7, nullif($8, ''), $9, $10)`,
			d.ExamID, d.Decision, d.Comment, d.DecidedBy, d.DecidedAt, p.Number, date, p.DocumentID, p.Link, d.LateReason)
		return err
	})
	if err != nil {
		return fmt.Errorf("record decision on %s: %w", d.ExamID, err)
	}
	return nil
}

// cardRetention publishes what a card's move means for its evidence: an
// approved card enters the register (certificate_issued or
// result_recorded, and the certificate's "issued" change once), a card
// that leaves it changes the exam's facts.
func cardRetention(ctx context.Context, tx pgx.Tx, exam, cand, from, to string, by int64, now time.Time) error {
	if to == CardApproved {
		var kind, number string
		var validUntil *time.Time
		if err := tx.QueryRow(ctx, `SELECT kind, coalesce(certificate_number, ''), valid_until FROM results WHERE exam_id = $1 AND candidate_id = $2`,
			exam, cand).Scan(&kind, &number, &validUntil); err != nil {
			return err
		}
		if kind != ResultCertificate {
			return enqueueRetention(ctx, tx, exam, cand, events.RetentionResultRecorded, now)
		}
		var issued bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM certificate_changes WHERE certificate_number = $1 AND change = 'issued')`,
			number).Scan(&issued); err != nil {
			return err
		}
		if !issued {
			if err := addCertificateChange(ctx, tx, number, CertificateIssued, *validUntil, "", by, now); err != nil {
				return err
			}
		}
		return enqueueRetention(ctx, tx, exam, cand, events.RetentionCertificateIssued, now)
	}
	if from == CardNotVerified {
		return enqueueRetention(ctx, tx, exam, cand, events.RetentionExamChanged, now)
	}
	return nil
}

// approvalPreconditions returns a *PreconditionError naming every unmet
// precondition of the council's approval of exam, or nil.
func approvalPreconditions(ctx context.Context, tx pgx.Tx, exam string) error {
	var unmet []Precondition
	if err := protocolApproved(ctx, tx, exam); err != nil {
		if !errors.Is(err, ErrState) {
			return err
		}
		unmet = append(unmet, Precondition{PreconditionProtocol, reasonOf(err)})
	}
	missing, err := missingCards(ctx, tx, exam)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		unmet = append(unmet, missingCardsPrecondition(exam, missing))
	}
	var unsent []string
	if err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(candidate_id ORDER BY candidate_id), '{}') FROM results
		WHERE exam_id = $1 AND state IN ('draft', 'returned')`, exam).Scan(&unsent); err != nil {
		return err
	}
	if len(unsent) > 0 {
		unmet = append(unmet, Precondition{PreconditionCards, fmt.Sprintf(
			"the cards of %s are not submitted (POST /api/v1/exams/%s/submission)", strings.Join(unsent, ", "), exam)})
	}
	org, err := resultPreconditions(ctx, tx, exam, true)
	if err != nil {
		return err
	}
	unmet = append(unmet, org...)
	if len(unmet) > 0 {
		return &PreconditionError{Unmet: unmet}
	}
	return nil
}

// reasonOf returns err's message from its ErrState on.
func reasonOf(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, ErrState.Error()+": "); i >= 0 {
		return msg[i+len(ErrState.Error())+2:]
	}
	return msg
}

// protocolApproved returns nil if the exam's commission protocol is
// recorded and every expert appointed to the exam approved it, which the
// council needs before it approves (submits) the results; otherwise
// ErrState saying what is missing.
func protocolApproved(ctx context.Context, q querier, exam string) error {
	var hasProtocol bool
	var experts, approved int
	var refused []string
	err := q.QueryRow(ctx, `SELECT
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

// RecordVerification records NARK's verification v of an exam's approved
// cards (those of v.Candidates, or all): verified, or not_verified with a
// comment. No approved card (or a named one not approved) is ErrState; a
// verification later than VerificationDays after the approval needs
// v.LateReason (ErrState).
func (s *Store) RecordVerification(ctx context.Context, v Verification) error {
	v.Comment, v.LateReason = strings.TrimSpace(v.Comment), strings.TrimSpace(v.LateReason)
	v.Candidates = cleanList(v.Candidates)
	if !v.Verified && v.Comment == "" {
		return fmt.Errorf("record verification of %s: %w: a failed verification needs a comment (the reason)", v.ExamID, ErrInvalid)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := lockExam(ctx, tx, v.ExamID); err != nil {
			return err
		}
		var approved []string
		var since *time.Time
		if err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(candidate_id ORDER BY candidate_id), '{}'), min(approved_at) FROM results
			WHERE exam_id = $1 AND state = 'approved' AND (coalesce(cardinality($2::text[]), 0) = 0 OR candidate_id = ANY($2))`,
			v.ExamID, v.Candidates).Scan(&approved, &since); err != nil {
			return err
		}
		if len(approved) == 0 {
			return fmt.Errorf("%w: no card of the exam is approved by the council: nothing to verify", ErrState)
		}
		if len(v.Candidates) > 0 && len(approved) < len(v.Candidates) {
			var not []string
			for _, c := range v.Candidates {
				if !slices.Contains(approved, c) {
					not = append(not, c)
				}
			}
			return fmt.Errorf("%w: the cards of %s are not approved by the council", ErrState, strings.Join(not, ", "))
		}
		if due := DueAfter(*since, VerificationDays); !v.VerifiedAt.Before(due) && v.LateReason == "" {
			return lateError("verification", due, VerificationDays, "the council's approval")
		}
		to, reason := CardVerified, ""
		if !v.Verified {
			to, reason = CardNotVerified, v.Comment
		}
		if _, err := moveCards(ctx, tx, v.ExamID, approved, []string{CardApproved}, to, reason, v.VerifiedBy, v.VerifiedAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO exam_verifications (exam_id, verified, comment, verified_by, verified_at, candidates, late_reason)
			VALUES ($1, $2, $3, nullif($4, 0), $5, $6, $7)`,
			v.ExamID, v.Verified, v.Comment, v.VerifiedBy, v.VerifiedAt, approved, v.LateReason)
		return err
	})
	if err != nil {
		return fmt.Errorf("record verification of %s: %w", v.ExamID, err)
	}
	return nil
}

// RegisterCards enters the verified cards of exam (those of candidates, or
// all) in the register and returns the candidates registered. None
// verified is ErrState.
func (s *Store) RegisterCards(ctx context.Context, exam string, candidates []string, by int64, now time.Time) ([]string, error) {
	var out []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := lockExam(ctx, tx, exam); err != nil {
			return err
		}
		moved, err := moveCards(ctx, tx, exam, cleanList(candidates), []string{CardVerified}, CardRegistered, "", by, now)
		if err != nil {
			return err
		}
		if len(moved) == 0 {
			return fmt.Errorf("%w: no card of the exam is verified by NARK: nothing to register", ErrState)
		}
		for c := range moved {
			out = append(out, c)
		}
		slices.Sort(out)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("register result cards of exam %s: %w", exam, err)
	}
	return out, nil
}

// Correction is NARK's correction of a verified or registered card: the
// fields given (non-empty) replace the card's, for a reason.
type Correction struct {
	ExamID, CandidateID string
	CertificateNumber   string
	IssuedOn            time.Time
	Conclusion          string
	Reason              string
	By                  int64
	At                  time.Time
}

// CorrectCard applies NARK's correction c to a verified or registered
// card (ErrState for a card in another state: those change by the center
// and the council), recording what changed from what, and publishes
// RetentionChanged when the certificate's validity moved. A correction
// without a reason or changing nothing is ErrInvalid.
func (s *Store) CorrectCard(ctx context.Context, c Correction) (map[string]any, error) {
	c.Reason, c.CertificateNumber, c.Conclusion = strings.TrimSpace(c.Reason), strings.TrimSpace(c.CertificateNumber), strings.TrimSpace(c.Conclusion)
	if c.Reason == "" {
		return nil, fmt.Errorf("correct result card of %s in exam %s: %w: a correction needs a reason", c.CandidateID, c.ExamID, ErrInvalid)
	}
	changes := map[string]any{}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var state, kind, number, conclusion string
		var issued time.Time
		var validUntil *time.Time
		var years int
		err := tx.QueryRow(ctx, `SELECT r.state, r.kind, coalesce(r.certificate_number, ''), r.issued_on, r.valid_until, r.conclusion, q.validity_years
			FROM results r JOIN exams e ON e.id = r.exam_id JOIN qualifications q ON q.code = e.qualification_code
			WHERE r.exam_id = $1 AND r.candidate_id = $2 FOR UPDATE OF r`, c.ExamID, c.CandidateID).
			Scan(&state, &kind, &number, &issued, &validUntil, &conclusion, &years)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if state != CardVerified && state != CardRegistered {
			return fmt.Errorf("%w: the card is %s: NARK corrects only verified or registered cards", ErrState, state)
		}
		newNumber, newIssued, newConclusion, newValid := number, issued, conclusion, validUntil
		if c.CertificateNumber != "" && c.CertificateNumber != number {
			if kind != ResultCertificate {
				return fmt.Errorf("%w: a conclusion has no certificate number", ErrInvalid)
			}
			newNumber = c.CertificateNumber
			changes["certificate_number"] = map[string]any{"from": number, "to": newNumber}
		}
		if !c.IssuedOn.IsZero() && !date(c.IssuedOn).Equal(issued) {
			newIssued = date(c.IssuedOn)
			changes["issued_on"] = map[string]any{"from": issued.Format(time.DateOnly), "to": newIssued.Format(time.DateOnly)}
			if kind == ResultCertificate && validUntil != nil {
				// The validity moves with the issue date unless it was extended.
				if validUntil.Equal(issued.AddDate(years, 0, 0)) {
					v := newIssued.AddDate(years, 0, 0)
					newValid = &v
					changes["valid_until"] = map[string]any{"from": validUntil.Format(time.DateOnly), "to": v.Format(time.DateOnly)}
				}
			}
		}
		if c.Conclusion != "" && c.Conclusion != conclusion {
			if kind != ResultConclusion {
				return fmt.Errorf("%w: a certificate has no conclusion text", ErrInvalid)
			}
			newConclusion = c.Conclusion
			changes["conclusion"] = map[string]any{"from": conclusion, "to": newConclusion}
		}
		if len(changes) == 0 {
			return fmt.Errorf("%w: the correction changes nothing", ErrInvalid)
		}
		var numberArg any
		if kind == ResultCertificate {
			numberArg = newNumber
		}
		_, err = tx.Exec(ctx, `UPDATE results SET certificate_number = $3, issued_on = $4, valid_until = $5, conclusion = $6, updated_at = $7
			WHERE exam_id = $1 AND candidate_id = $2`, c.ExamID, c.CandidateID, numberArg, newIssued, newValid, newConclusion, c.At)
		if isUniqueViolation(err) {
			return fmt.Errorf("%w: certificate number %s is in use", ErrExists, newNumber)
		}
		if err != nil {
			return err
		}
		if err := addTransition(ctx, tx, c.ExamID, c.CandidateID, state, state, c.Reason, changes, c.By, c.At); err != nil {
			return err
		}
		if kind == ResultCertificate {
			if err := addCertificateChange(ctx, tx, newNumber, CertificateCorrected, *newValid, c.Reason, c.By, c.At); err != nil {
				return err
			}
			if _, moved := changes["valid_until"]; moved {
				return enqueueRetention(ctx, tx, c.ExamID, c.CandidateID, events.RetentionExamChanged, c.At)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("correct result card of %s in exam %s: %w", c.CandidateID, c.ExamID, err)
	}
	return changes, nil
}

// ExamCards returns the result cards of exam, by candidate.
func (s *Store) ExamCards(ctx context.Context, exam string) ([]Result, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+resultColumns+` FROM results r WHERE r.exam_id = $1 ORDER BY r.candidate_id`, exam)
	if err != nil {
		return nil, fmt.Errorf("list result cards of exam %s: %w", exam, err)
	}
	var raw []Result
	raw, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Result, error) {
		var r Result
		err := row.Scan(&r.ExamID, &r.CandidateID, &r.Kind, &r.CertificateNumber, &r.IssuedOn, &r.ValidUntil, &r.Conclusion,
			&r.RevokedAt, &r.RevocationReason, &r.RecordedBy, &r.RecordedAt,
			&r.State, &r.StateReason, &r.StateAt, &r.SubmittedAt, &r.ApprovedAt, &r.UpdatedAt)
		if r.Kind != ResultCertificate {
			r.ValidUntil = time.Time{}
		}
		r.Changes = []CertificateChange{}
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list result cards of exam %s: %w", exam, err)
	}
	return raw, nil
}

// CardHistory returns every transition and correction of the card of
// candidate in exam, oldest first.
func (s *Store) CardHistory(ctx context.Context, exam, candidate string) ([]Transition, error) {
	rows, err := s.pool.Query(ctx, `SELECT from_state, to_state, reason, changes, coalesce(by_user, 0), at FROM result_transitions
		WHERE exam_id = $1 AND candidate_id = $2 ORDER BY id`, exam, candidate)
	if err != nil {
		return nil, fmt.Errorf("history of result card of %s in exam %s: %w", candidate, exam, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Transition, error) {
		var t Transition
		err := row.Scan(&t.From, &t.To, &t.Reason, &t.Changes, &t.By, &t.At)
		return t, err
	})
	if err != nil {
		return nil, fmt.Errorf("history of result card of %s in exam %s: %w", candidate, exam, err)
	}
	return out, nil
}

// ExamDecisions returns the council's decisions and NARK's verifications
// of exam, oldest first.
func (s *Store) ExamDecisions(ctx context.Context, exam string) ([]Decision, []Verification, error) {
	rows, err := s.pool.Query(ctx, `SELECT exam_id, decision, comment, coalesce(decided_by, 0), decided_at,
			protocol_number, coalesce(protocol_date, '0001-01-01'::date), coalesce(protocol_document, ''), protocol_link, late_reason
		FROM exam_decisions WHERE exam_id = $1 ORDER BY decided_at, id`, exam)
	if err != nil {
		return nil, nil, fmt.Errorf("list decisions on %s: %w", exam, err)
	}
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Decision, error) {
		var d Decision
		err := r.Scan(&d.ExamID, &d.Decision, &d.Comment, &d.DecidedBy, &d.DecidedAt,
			&d.Protocol.Number, &d.Protocol.Date, &d.Protocol.DocumentID, &d.Protocol.Link, &d.LateReason)
		if d.Protocol.Date.Year() == 1 {
			d.Protocol.Date = time.Time{}
		}
		return d, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list decisions on %s: %w", exam, err)
	}
	rows, err = s.pool.Query(ctx, `SELECT exam_id, verified, comment, coalesce(verified_by, 0), verified_at, candidates, late_reason
		FROM exam_verifications WHERE exam_id = $1 ORDER BY verified_at, id`, exam)
	if err != nil {
		return nil, nil, fmt.Errorf("list verifications of %s: %w", exam, err)
	}
	vs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Verification, error) {
		var v Verification
		err := r.Scan(&v.ExamID, &v.Verified, &v.Comment, &v.VerifiedBy, &v.VerifiedAt, &v.Candidates, &v.LateReason)
		return v, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list verifications of %s: %w", exam, err)
	}
	return ds, vs, nil
}

// Deadline kinds.
const (
	DeadlineSubmission   = "council_submission" // the council decides within 14 days of the exam
	DeadlineVerification = "nark_verification"  // NARK verifies within 7 days of the approval
)

// Deadline is a step of the registry procedure that is due.
type Deadline struct {
	Kind      string // DeadlineSubmission or DeadlineVerification
	ExamID    string
	CouncilID string
	CenterID  string
	SiteID    string
	Since     time.Time // the exam's end, or the council's approval
	Due       time.Time // the start of the Moscow day after the last day
	Overdue   bool
}

// Deadlines returns the pending steps of the registry procedure of the
// exams in sc at now, the most urgent first, counted in Moscow calendar
// days: exams that ended with admitted candidates whose results the
// council has not decided (a card missing, or one draft, submitted,
// returned or not verified: due SubmissionDays after the exam), and
// approved cards NARK has not verified (due VerificationDays after the
// approval). With overdueOnly, only those past due.
func (s *Store) Deadlines(ctx context.Context, sc Scope, now time.Time, overdueOnly bool) ([]Deadline, error) {
	var a args
	where := sc.where(scopeColumns{council: "e.council_id", center: "e.center_id", site: "e.site_id", exam: "e.id"}, &a)
	nowP := a.add(now)
	q := `
		WITH st AS (
			SELECT e.id, e.council_id, e.center_id, e.site_id, e.ends_at,
				EXISTS (SELECT 1 FROM exam_candidates ec WHERE ec.exam_id = e.id AND ec.admission = 'admitted'
					AND NOT EXISTS (SELECT 1 FROM results r WHERE r.exam_id = ec.exam_id AND r.candidate_id = ec.candidate_id)
				) OR EXISTS (SELECT 1 FROM results r WHERE r.exam_id = e.id
					AND r.state IN ('draft', 'submitted', 'returned', 'not_verified')) AS council_pending,
				(SELECT min(r.approved_at) FROM results r WHERE r.exam_id = e.id AND r.state = 'approved') AS approved_at
			FROM exams e JOIN centers c ON c.id = e.center_id
			WHERE e.ends_at <= ` + nowP + ` AND ` + where + `
		), due AS (
			SELECT 'council_submission' AS kind, id, council_id, center_id, site_id, ends_at AS since, ` + moscowDue("ends_at", SubmissionDays) + ` AS due
			FROM st WHERE council_pending
			UNION ALL
			SELECT 'nark_verification', id, council_id, center_id, site_id, approved_at, ` + moscowDue("approved_at", VerificationDays) + `
			FROM st WHERE approved_at IS NOT NULL
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

// PublicCertificate is what the public check of a certificate answers:
// the certificate, its holder's name and no other personal data.
type PublicCertificate struct {
	Number            string
	Holder            string // full name
	Qualification     string // code
	QualificationName string
	Council           string
	CouncilName       string
	Center            string
	CenterName        string
	IssuedOn          time.Time
	ValidUntil        time.Time
	State             string // a register state (approved, verified, not_verified, registered)
	RevokedAt         *time.Time
}

// RegisterCertificates returns the certificates in the register with
// number, or held by the candidates with snils (normalised; ErrInvalid if
// it is not a valid СНИЛС), newest first. Exactly one of number and snils
// is given.
func (s *Store) RegisterCertificates(ctx context.Context, number, snils string) ([]PublicCertificate, error) {
	number, snils = strings.TrimSpace(number), strings.TrimSpace(snils)
	if (number == "") == (snils == "") {
		return nil, fmt.Errorf("check certificates: %w: give a certificate number or a СНИЛС, one of them", ErrInvalid)
	}
	if snils != "" {
		n, err := NormalizeSNILS(snils)
		if err != nil {
			return nil, fmt.Errorf("check certificates: %w", err)
		}
		snils = n
	}
	rows, err := s.pool.Query(ctx, `SELECT r.certificate_number,
			k.last_name || ' ' || k.first_name || CASE WHEN k.middle_name <> '' THEN ' ' || k.middle_name ELSE '' END,
			q.code, q.name, co.id, co.name, c.id, c.name, r.issued_on, r.valid_until, r.state, r.revoked_at
		FROM results r JOIN candidates k ON k.id = r.candidate_id JOIN exams e ON e.id = r.exam_id
			JOIN qualifications q ON q.code = e.qualification_code JOIN centers c ON c.id = e.center_id JOIN councils co ON co.id = e.council_id
		WHERE r.kind = 'certificate' AND r.state IN `+registerStates+`
			AND (($1 <> '' AND r.certificate_number = $1) OR ($2 <> '' AND k.snils = $2))
		ORDER BY r.issued_on DESC, r.certificate_number`, number, snils)
	if err != nil {
		return nil, fmt.Errorf("check certificates: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (PublicCertificate, error) {
		var p PublicCertificate
		err := row.Scan(&p.Number, &p.Holder, &p.Qualification, &p.QualificationName, &p.Council, &p.CouncilName,
			&p.Center, &p.CenterName, &p.IssuedOn, &p.ValidUntil, &p.State, &p.RevokedAt)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("check certificates: %w", err)
	}
	return out, nil
}

// CountPublicCheck counts one public check from addr in the minute of now
// and returns how many it made in that minute, this one included. Counts
// older than an hour are pruned at each address's first check of a
// minute.
func (s *Store) CountPublicCheck(ctx context.Context, addr string, now time.Time) (int, error) {
	minute := now.UTC().Truncate(time.Minute)
	var n int
	err := s.pool.QueryRow(ctx, `INSERT INTO public_checks (addr, minute, n) VALUES ($1, $2, 1)
		ON CONFLICT (addr, minute) DO UPDATE SET n = public_checks.n + 1 RETURNING n`, limitText(addr, 64), minute).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count public check: %w", err)
	}
	if n == 1 {
		if _, err := s.pool.Exec(ctx, `DELETE FROM public_checks WHERE minute < $1`, minute.Add(-time.Hour)); err != nil {
			return 0, fmt.Errorf("prune public checks: %w", err)
		}
	}
	return n, nil
}

// lockExamCandidate locks a candidate's place in an exam for the
// transaction tx and returns the admission, the exam's end and the
// qualification's validity in years; ErrNotFound if the candidate is not in
// the exam.
func lockExamCandidate(ctx context.Context, tx pgx.Tx, exam, candidate string) (admission string, ends time.Time, years int, err error) {
	err = tx.QueryRow(ctx, `SELECT ec.admission, e.ends_at, q.validity_years
		FROM exam_candidates ec JOIN exams e ON e.id = ec.exam_id JOIN qualifications q ON q.code = e.qualification_code
		WHERE ec.exam_id = $1 AND ec.candidate_id = $2 FOR UPDATE OF ec`, exam, candidate).Scan(&admission, &ends, &years)
	if errors.Is(err, pgx.ErrNoRows) {
		err = ErrNotFound
	}
	return admission, ends, years, err
}
