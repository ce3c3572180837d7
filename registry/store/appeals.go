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

// Appeal states.
const (
	AppealOpen    = "open"
	AppealDecided = "decided"
	AppealClosed  = "closed"
)

// Appeal outcomes: the commission's decision.
const (
	AppealUpheld   = "upheld"
	AppealRejected = "rejected"
)

// Appeal is an appeal against a candidate's exam, heard by the council's
// appeals commission. While it is not closed, the candidate's evidence is
// under legal hold.
type Appeal struct {
	ID          string
	ExamID      string
	CandidateID string
	CouncilID   string // of the exam; read only
	CenterID    string
	SiteID      string
	Status      string // AppealOpen, AppealDecided or AppealClosed
	Reason      string
	FiledOn     time.Time
	OpenedBy    int64
	OpenedAt    time.Time
	Outcome     string // AppealUpheld or AppealRejected, once decided
	Decision    string // the commission's decision
	DecidedBy   int64
	DecidedAt   *time.Time
	ClosedBy    int64
	ClosedAt    *time.Time
}

// Owner returns where the appeal sits: with its exam (experts excluded).
func (a Appeal) Owner() Owner {
	return Owner{Council: a.CouncilID, Center: a.CenterID, Site: a.SiteID, Exam: a.ExamID}
}

// OpenAppeal opens appeal a against a candidate's exam and publishes
// RetentionChanged (appeal_opened). a.ID is set when empty; a.FiledOn
// defaults to the date of now.
func (s *Store) OpenAppeal(ctx context.Context, a *Appeal, by int64, now time.Time) error {
	if a.ID == "" {
		a.ID = NewID()
	}
	if err := checkID("appeal", a.ID); err != nil {
		return fmt.Errorf("open appeal: %w", err)
	}
	a.Reason = strings.TrimSpace(a.Reason)
	if a.Reason == "" {
		return fmt.Errorf("open appeal: %w: a reason is required", ErrInvalid)
	}
	if a.FiledOn.IsZero() {
		a.FiledOn = now
	}
	a.FiledOn = date(a.FiledOn)
	a.Status, a.OpenedBy, a.OpenedAt = AppealOpen, by, now
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO appeals (id, exam_id, candidate_id, reason, filed_on, opened_by, opened_at)
			VALUES ($1, $2, $3, $4, $5, nullif($6, 0), $7)`, a.ID, a.ExamID, a.CandidateID, a.Reason, a.FiledOn, by, now)
		if isUniqueViolation(err) {
			return ErrExists
		}
		if isForeignKeyViolation(err) {
			return fmt.Errorf("%w: candidate %s of exam %s", ErrNotFound, a.CandidateID, a.ExamID)
		}
		if err != nil {
			return err
		}
		return enqueueRetention(ctx, tx, a.ExamID, a.CandidateID, events.RetentionAppealOpened, now)
	})
	if err != nil {
		return fmt.Errorf("open appeal %s: %w", a.ID, err)
	}
	return nil
}

// DecideAppeal records the commission's decision on open appeal id:
// outcome AppealUpheld or AppealRejected, and its text. The appeal stays
// under hold until it is closed. An appeal not open is ErrState.
func (s *Store) DecideAppeal(ctx context.Context, id, outcome, decision string, by int64, now time.Time) error {
	decision = strings.TrimSpace(decision)
	if outcome != AppealUpheld && outcome != AppealRejected {
		return fmt.Errorf("decide appeal %s: %w: outcome %q is not upheld or rejected", id, ErrInvalid, outcome)
	}
	if decision == "" {
		return fmt.Errorf("decide appeal %s: %w: the decision needs a text", id, ErrInvalid)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		status, _, _, err := lockAppeal(ctx, tx, id)
		if err != nil {
			return err
		}
		if status != AppealOpen {
			return fmt.Errorf("%w: the appeal is %s", ErrState, status)
		}
		_, err = tx.Exec(ctx, `UPDATE appeals SET status = 'decided', outcome = $2, decision = $3, decided_by = nullif($4, 0), decided_at = $5
			WHERE id = $1`, id, outcome, decision, by, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("decide appeal %s: %w", id, err)
	}
	return nil
}

// CloseAppeal closes appeal id, which lifts its hold on the evidence, and
// publishes RetentionChanged (appeal_closed). An appeal is closed only
// once the commission's decision is recorded: closing an open (undecided)
// or a closed appeal is ErrState, and says which.
func (s *Store) CloseAppeal(ctx context.Context, id string, by int64, now time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		status, exam, cand, err := lockAppeal(ctx, tx, id)
		if err != nil {
			return err
		}
		switch status {
		case AppealClosed:
			return fmt.Errorf("%w: the appeal is closed already", ErrState)
		case AppealOpen:
			return fmt.Errorf("%w: the commission's decision on the appeal is not recorded: record it (POST /api/v1/appeals/%s/decision) before closing", ErrState, id)
		}
		if _, err := tx.Exec(ctx, `UPDATE appeals SET status = 'closed', closed_by = nullif($2, 0), closed_at = $3 WHERE id = $1`,
			id, by, now); err != nil {
			return err
		}
		return enqueueRetention(ctx, tx, exam, cand, events.RetentionAppealClosed, now)
	})
	if err != nil {
		return fmt.Errorf("close appeal %s: %w", id, err)
	}
	return nil
}

func lockAppeal(ctx context.Context, tx pgx.Tx, id string) (status, exam, cand string, err error) {
	err = tx.QueryRow(ctx, `SELECT status, exam_id, candidate_id FROM appeals WHERE id = $1 FOR UPDATE`, id).Scan(&status, &exam, &cand)
	if errors.Is(err, pgx.ErrNoRows) {
		err = ErrNotFound
	}
	return status, exam, cand, err
}

const appealColumns = `a.id, a.exam_id, a.candidate_id, e.council_id, e.center_id, e.site_id, a.status, a.reason, a.filed_on,
	coalesce(a.opened_by, 0), a.opened_at, a.outcome, a.decision, coalesce(a.decided_by, 0), a.decided_at,
	coalesce(a.closed_by, 0), a.closed_at`

const appealFrom = ` FROM appeals a JOIN exams e ON e.id = a.exam_id JOIN centers c ON c.id = e.center_id `

func scanAppeal(row pgx.Row) (Appeal, error) {
	var a Appeal
	err := row.Scan(&a.ID, &a.ExamID, &a.CandidateID, &a.CouncilID, &a.CenterID, &a.SiteID, &a.Status, &a.Reason, &a.FiledOn,
		&a.OpenedBy, &a.OpenedAt, &a.Outcome, &a.Decision, &a.DecidedBy, &a.DecidedAt, &a.ClosedBy, &a.ClosedAt)
	return a, err
}

// Appeal returns appeal id, or ErrNotFound.
func (s *Store) Appeal(ctx context.Context, id string) (Appeal, error) {
	a, err := scanAppeal(s.pool.QueryRow(ctx, `SELECT `+appealColumns+appealFrom+`WHERE a.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Appeal{}, fmt.Errorf("get appeal %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Appeal{}, fmt.Errorf("get appeal %s: %w", id, err)
	}
	return a, nil
}

// AppealFilter selects appeals.
type AppealFilter struct {
	Status      string // "" for any
	ExamID      string // "" for any
	CandidateID string // "" for any
}

// Appeals returns the appeals in sc that f selects, newest first.
func (s *Store) Appeals(ctx context.Context, sc Scope, f AppealFilter) ([]Appeal, error) {
	var a args
	conds := []string{sc.where(scopeColumns{council: "e.council_id", center: "e.center_id", site: "e.site_id", exam: "e.id"}, &a)}
	if f.Status != "" {
		conds = append(conds, "a.status = "+a.add(f.Status))
	}
	if f.ExamID != "" {
		conds = append(conds, "a.exam_id = "+a.add(f.ExamID))
	}
	if f.CandidateID != "" {
		conds = append(conds, "a.candidate_id = "+a.add(f.CandidateID))
	}
	rows, err := s.pool.Query(ctx, `SELECT `+appealColumns+appealFrom+`WHERE `+strings.Join(conds, " AND ")+` ORDER BY a.opened_at DESC, a.id`, a...)
	if err != nil {
		return nil, fmt.Errorf("list appeals: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Appeal, error) { return scanAppeal(r) })
	if err != nil {
		return nil, fmt.Errorf("list appeals: %w", err)
	}
	return out, nil
}
