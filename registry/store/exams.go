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

// Exam part kinds.
const (
	PartTheory    = "theory"
	PartPractical = "practical"
)

// Admission states of a candidate of an exam.
const (
	AdmissionPending  = "pending"
	AdmissionAdmitted = "admitted"
	AdmissionRefused  = "refused"
)

// MaxExamWindow is the longest an exam window may be.
const MaxExamWindow = 24 * time.Hour

// Exam is a group exam of a center at one of its sites, in a time window,
// for one qualification.
type Exam struct {
	ID            string
	CenterID      string
	CouncilID     string // the council that authorised the center for the qualification (examCouncil); read only
	SiteID        string
	Qualification string
	Start, End    time.Time
	Parts         []ExamPart
	Experts       []Expert // read only: AppointExpert adds
	CreatedBy     int64
	CreatedAt     time.Time
}

// ExamPart is the theory or practical part of an exam, inside its window.
type ExamPart struct {
	Kind       string // PartTheory or PartPractical
	Start, End time.Time
}

// Expert is an expert appointed to an exam.
type Expert struct {
	ID          int64
	Login       string
	FullName    string // from the expert's profile; "" if not given (read only)
	AppointedAt time.Time
}

// Owner returns where the exam sits, with its appointed experts.
func (e Exam) Owner() Owner {
	o := Owner{Council: e.CouncilID, Center: e.CenterID, Site: e.SiteID, Exam: e.ID, Experts: []int64{}}
	for _, x := range e.Experts {
		o.Experts = append(o.Experts, x.ID)
	}
	return o
}

// Contains reports whether t is inside the exam window [Start, End).
func (e Exam) Contains(t time.Time) bool { return !t.Before(e.Start) && t.Before(e.End) }

// CreateExam creates exam e; e.ID is set when empty. The site must be a site
// of the center, the center authorised for the qualification (by its own
// council or, for a multi-industry center, by the qualification's: the
// exam's council, see examCouncil), the window at most MaxExamWindow, and the parts inside it
// (ErrInvalid says which is wrong). An existing id is ErrExists.
func (s *Store) CreateExam(ctx context.Context, e *Exam) error {
	if e.ID == "" {
		e.ID = NewID()
	}
	if err := checkID("exam", e.ID); err != nil {
		return fmt.Errorf("create exam: %w", err)
	}
	if !e.End.After(e.Start) || e.End.Sub(e.Start) > MaxExamWindow {
		return fmt.Errorf("create exam %s: %w: the window must end after it starts and last at most %v", e.ID, ErrInvalid, MaxExamWindow)
	}
	seen := map[string]bool{}
	for _, p := range e.Parts {
		switch {
		case p.Kind != PartTheory && p.Kind != PartPractical:
			return fmt.Errorf("create exam %s: %w: part %q is not theory or practical", e.ID, ErrInvalid, p.Kind)
		case seen[p.Kind]:
			return fmt.Errorf("create exam %s: %w: two %s parts", e.ID, ErrInvalid, p.Kind)
		case !p.End.After(p.Start) || p.Start.Before(e.Start) || p.End.After(e.End):
			return fmt.Errorf("create exam %s: %w: the %s part must lie inside the exam window", e.ID, ErrInvalid, p.Kind)
		}
		seen[p.Kind] = true
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var siteCenter *string
		err := tx.QueryRow(ctx, `SELECT center_id FROM sites WHERE id = $1`, e.SiteID).Scan(&siteCenter)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && (siteCenter == nil || *siteCenter != e.CenterID)) {
			return fmt.Errorf("%w: %q is not a site of center %s", ErrInvalid, e.SiteID, e.CenterID)
		}
		if err != nil {
			return err
		}
		council, err := examCouncil(ctx, tx, e.CenterID, e.Qualification)
		if err != nil {
			return err
		}
		e.CouncilID = council
		err = tx.QueryRow(ctx, `
			INSERT INTO exams (id, center_id, council_id, site_id, qualification_code, starts_at, ends_at, created_by)
			VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, 0)) RETURNING created_at`,
			e.ID, e.CenterID, e.CouncilID, e.SiteID, e.Qualification, e.Start, e.End, e.CreatedBy).Scan(&e.CreatedAt)
		if isUniqueViolation(err) {
			return ErrExists
		}
		if err != nil {
			return err
		}
		for _, p := range e.Parts {
			if _, err := tx.Exec(ctx, `INSERT INTO exam_parts (exam_id, kind, starts_at, ends_at) VALUES ($1, $2, $3, $4)`,
				e.ID, p.Kind, p.Start, p.End); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create exam %s: %w", e.ID, err)
	}
	return nil
}

// examCouncil returns the council an exam of center for qualification
// belongs to: the council that authorised the center for the qualification,
// which is the qualification's own (the center's home council, or a further
// council of a multi-industry center). It is the one derivation of an exam's
// council: CreateExam stores its answer as exams.council_id, fixed for the
// exam's life, and every scope, approval, deadline, register check and
// retention fact reads that column. A center not authorised for the
// qualification is ErrInvalid.
func examCouncil(ctx context.Context, q querier, center, qualification string) (string, error) {
	var council string
	err := q.QueryRow(ctx, `SELECT council_id FROM center_qualifications WHERE center_id = $1 AND qualification_code = $2`,
		center, qualification).Scan(&council)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("%w: center %s is not authorised for qualification %q: its council, or the qualification's council, authorises it first",
			ErrInvalid, center, qualification)
	}
	if err != nil {
		return "", err
	}
	return council, nil
}

const examColumns = `e.id, e.center_id, e.council_id, e.site_id, e.qualification_code, e.starts_at, e.ends_at,
	coalesce(e.created_by, 0), e.created_at,
	coalesce((SELECT array_agg(p.kind ORDER BY p.starts_at) FROM exam_parts p WHERE p.exam_id = e.id), '{}'),
	coalesce((SELECT array_agg(p.starts_at ORDER BY p.starts_at) FROM exam_parts p WHERE p.exam_id = e.id), '{}'),
	coalesce((SELECT array_agg(p.ends_at ORDER BY p.starts_at) FROM exam_parts p WHERE p.exam_id = e.id), '{}'),
	coalesce((SELECT array_agg(x.user_id ORDER BY x.appointed_at, x.user_id) FROM exam_experts x WHERE x.exam_id = e.id), '{}'),
	coalesce((SELECT array_agg(u.login ORDER BY x.appointed_at, x.user_id) FROM exam_experts x JOIN users u ON u.id = x.user_id WHERE x.exam_id = e.id), '{}'),
	coalesce((SELECT array_agg(x.appointed_at ORDER BY x.appointed_at, x.user_id) FROM exam_experts x WHERE x.exam_id = e.id), '{}'),
	coalesce((SELECT array_agg(u.full_name ORDER BY x.appointed_at, x.user_id) FROM exam_experts x JOIN users u ON u.id = x.user_id WHERE x.exam_id = e.id), '{}')`

const examFrom = ` FROM exams e JOIN centers c ON c.id = e.center_id `

func scanExam(row pgx.Row) (Exam, error) {
	var e Exam
	var kinds, logins, names []string
	var starts, ends, appointed []time.Time
	var ids []int64
	err := row.Scan(&e.ID, &e.CenterID, &e.CouncilID, &e.SiteID, &e.Qualification, &e.Start, &e.End, &e.CreatedBy, &e.CreatedAt,
		&kinds, &starts, &ends, &ids, &logins, &appointed, &names)
	if err != nil {
		return e, err
	}
	e.Parts = []ExamPart{}
	for i := range kinds {
		e.Parts = append(e.Parts, ExamPart{Kind: kinds[i], Start: starts[i], End: ends[i]})
	}
	e.Experts = []Expert{}
	for i := range ids {
		e.Experts = append(e.Experts, Expert{ID: ids[i], Login: logins[i], FullName: names[i], AppointedAt: appointed[i]})
	}
	return e, nil
}

// Exam returns exam id, or ErrNotFound.
func (s *Store) Exam(ctx context.Context, id string) (Exam, error) {
	e, err := scanExam(s.pool.QueryRow(ctx, `SELECT `+examColumns+examFrom+`WHERE e.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Exam{}, fmt.Errorf("get exam %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Exam{}, fmt.Errorf("get exam %s: %w", id, err)
	}
	return e, nil
}

// Exams returns the exams in sc whose window overlaps [from, to), by start;
// a zero from or to leaves that side open.
func (s *Store) Exams(ctx context.Context, sc Scope, from, to time.Time) ([]Exam, error) {
	var a args
	conds := []string{sc.where(scopeColumns{council: "e.council_id", center: "e.center_id", site: "e.site_id", exam: "e.id"}, &a)}
	if !from.IsZero() {
		conds = append(conds, "e.ends_at > "+a.add(from))
	}
	if !to.IsZero() {
		conds = append(conds, "e.starts_at < "+a.add(to))
	}
	rows, err := s.pool.Query(ctx, `SELECT `+examColumns+examFrom+`WHERE `+strings.Join(conds, " AND ")+` ORDER BY e.starts_at, e.id`, a...)
	if err != nil {
		return nil, fmt.Errorf("list exams: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Exam, error) { return scanExam(r) })
	if err != nil {
		return nil, fmt.Errorf("list exams: %w", err)
	}
	return out, nil
}

// ExamOwner returns the Owner of exam id and of everything that belongs to
// it, or ErrNotFound.
func (s *Store) ExamOwner(ctx context.Context, id string) (Owner, error) {
	o := Owner{Exam: id}
	err := s.pool.QueryRow(ctx, `SELECT e.council_id, e.center_id, e.site_id,
		coalesce((SELECT array_agg(user_id ORDER BY user_id) FROM exam_experts WHERE exam_id = e.id), '{}')`+examFrom+`WHERE e.id = $1`, id).
		Scan(&o.Council, &o.Center, &o.Site, &o.Experts)
	if errors.Is(err, pgx.ErrNoRows) {
		return Owner{}, fmt.Errorf("get owner of exam %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Owner{}, fmt.Errorf("get owner of exam %s: %w", id, err)
	}
	return o, nil
}

// AppointExpert appoints the expert user login to exam (again is no
// change) and returns the appointment. A login that is not an expert, or
// an expert registered with neither the exam's center nor its council, is
// ErrInvalid.
func (s *Store) AppointExpert(ctx context.Context, exam, login string, by int64) (Expert, error) {
	var center, council string
	err := s.pool.QueryRow(ctx, `SELECT c.id, e.council_id FROM exams e JOIN centers c ON c.id = e.center_id WHERE e.id = $1`, exam).
		Scan(&center, &council)
	if errors.Is(err, pgx.ErrNoRows) {
		return Expert{}, fmt.Errorf("appoint expert to %s: %w", exam, ErrNotFound)
	}
	if err != nil {
		return Expert{}, fmt.Errorf("appoint expert to %s: %w", exam, err)
	}
	u, err := s.UserByLogin(ctx, login)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Expert{}, fmt.Errorf("appoint expert to %s: %w", exam, err)
	}
	// One answer whether the login is unknown, not an expert's, disabled
	// or another organisation's: the center learns no other logins and
	// roles by trying them.
	if err != nil || u.Role != RoleExpert || u.Disabled || u.OrgID == "" || (u.OrgID != center && u.OrgID != council) {
		return Expert{}, fmt.Errorf("appoint expert to %s: %w: %q is not an expert registered with center %s or council %s",
			exam, ErrInvalid, login, center, council)
	}
	x := Expert{ID: u.ID, Login: u.Login}
	err = s.pool.QueryRow(ctx, `
		WITH ins AS (INSERT INTO exam_experts (exam_id, user_id, appointed_by) VALUES ($1, $2, nullif($3, 0))
			ON CONFLICT DO NOTHING RETURNING appointed_at)
		SELECT appointed_at FROM ins UNION ALL SELECT appointed_at FROM exam_experts WHERE exam_id = $1 AND user_id = $2
		LIMIT 1`, exam, u.ID, by).Scan(&x.AppointedAt)
	if isForeignKeyViolation(err) {
		return Expert{}, fmt.Errorf("appoint expert to %s: %w", exam, ErrNotFound)
	}
	if err != nil {
		return Expert{}, fmt.Errorf("appoint expert to %s: %w", exam, err)
	}
	return x, nil
}

// ExamCandidate is a candidate of an exam at a workstation.
type ExamCandidate struct {
	ExamID    string
	Candidate Candidate
	SiteID    string
	// Webcam and Screen are the devices at the exam's site whose streams
	// are the candidate's: <site>/<webcam>, <site>/<screen>.
	Webcam, Screen   string
	Admission        string // AdmissionPending, AdmissionAdmitted or AdmissionRefused
	RefusalReason    string
	AdmissionBy      int64
	AdmissionAt      *time.Time
	PasswordIssuedAt *time.Time
	AddedAt          time.Time
	ResultKind       string // "", "certificate" or "conclusion"
	ResultState      string // the state of its result card (Card*), or ""
}

// AddExamCandidate adds candidate to exam at the workstation whose webcam
// and screen are the given devices of the exam's site, or moves a
// candidate of the exam to another workstation, and publishes
// RetentionChanged (exam_changed): other footage is now their evidence. The candidate must be
// registered by the exam's center, the devices must be a webcam and a
// screen, and no other candidate of an exam overlapping this one at the
// site may use them (ErrInvalid says which is wrong). Once the exam has
// started (at now), whose footage a workstation records cannot change: a
// candidate of the exam keeps the workstation it had, and moving them is
// ErrState with the reason; adding them again at the same workstation
// changes nothing.
func (s *Store) AddExamCandidate(ctx context.Context, exam, candidate, webcam, screen string, now time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var e Exam
		err := tx.QueryRow(ctx, `SELECT center_id, site_id, starts_at, ends_at FROM exams WHERE id = $1 FOR UPDATE`, exam).
			Scan(&e.CenterID, &e.SiteID, &e.Start, &e.End)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: exam %s", ErrNotFound, exam)
		}
		if err != nil {
			return err
		}
		var curWebcam, curScreen string
		err = tx.QueryRow(ctx, `SELECT webcam_device, screen_device FROM exam_candidates WHERE exam_id = $1 AND candidate_id = $2`,
			exam, candidate).Scan(&curWebcam, &curScreen)
		placed := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if !now.Before(e.Start) && placed {
			if curWebcam == webcam && curScreen == screen {
				return nil // the same workstation: nothing changes
			}
			return fmt.Errorf("%w: the exam started at %s: candidate %s stays at the workstation of %s/%s and %s/%s, "+
				"whose footage is their evidence", ErrState, e.Start.UTC().Format(time.RFC3339), candidate,
				e.SiteID, curWebcam, e.SiteID, curScreen)
		}
		var center string
		err = tx.QueryRow(ctx, `SELECT center_id FROM candidates WHERE id = $1`, candidate).Scan(&center)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && center != e.CenterID) {
			return fmt.Errorf("%w: %q is not a candidate of center %s", ErrInvalid, candidate, e.CenterID)
		}
		if err != nil {
			return err
		}
		for _, d := range []struct{ name, kind string }{{webcam, KindWebcam}, {screen, KindScreen}} {
			var kind string
			err := tx.QueryRow(ctx, `SELECT kind FROM devices WHERE site = $1 AND name = $2`, e.SiteID, d.name).Scan(&kind)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("%w: no device %q at site %s: register it with 'nokstream device add %s/%s --kind %s'",
					ErrInvalid, d.name, e.SiteID, e.SiteID, d.name, d.kind)
			}
			if err != nil {
				return err
			}
			if kind != d.kind {
				return fmt.Errorf("%w: device %s/%s is a %s device, not a %s", ErrInvalid, e.SiteID, d.name, kind, d.kind)
			}
		}
		var other string
		err = tx.QueryRow(ctx, `
			SELECT ec.candidate_id || ' of exam ' || ec.exam_id FROM exam_candidates ec JOIN exams x ON x.id = ec.exam_id
			WHERE ec.site_id = $1 AND x.starts_at < $5 AND x.ends_at > $4 AND ec.admission <> 'refused'
				AND NOT (ec.exam_id = $6 AND ec.candidate_id = $7)
				AND (ec.webcam_device IN ($2, $3) OR ec.screen_device IN ($2, $3))
			LIMIT 1`, e.SiteID, webcam, screen, e.Start, e.End, exam, candidate).Scan(&other)
		if err == nil {
			return fmt.Errorf("%w: the workstation's devices are taken by candidate %s at that time", ErrInvalid, other)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO exam_candidates (exam_id, candidate_id, site_id, webcam_device, screen_device)
			VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (exam_id, candidate_id) DO UPDATE SET webcam_device = EXCLUDED.webcam_device, screen_device = EXCLUDED.screen_device`,
			exam, candidate, e.SiteID, webcam, screen)
		if isCheckViolation(err) {
			return fmt.Errorf("%w: webcam and screen must be two devices", ErrInvalid)
		}
		if err != nil {
			return err
		}
		// Footage of the workstation in the window is now this
		// candidate's evidence.
		return enqueueRetention(ctx, tx, exam, candidate, events.RetentionExamChanged, time.Now())
	})
	if err != nil {
		return fmt.Errorf("add candidate %s to exam %s: %w", candidate, exam, err)
	}
	return nil
}

const examCandidateColumns = `ec.exam_id, ec.site_id, ec.webcam_device, ec.screen_device, ec.admission, ec.refusal_reason,
	coalesce(ec.admission_by, 0), ec.admission_at, ec.password_issued_at, ec.added_at,
	coalesce((SELECT r.kind FROM results r WHERE r.exam_id = ec.exam_id AND r.candidate_id = ec.candidate_id), ''),
	coalesce((SELECT r.state FROM results r WHERE r.exam_id = ec.exam_id AND r.candidate_id = ec.candidate_id), ''),
	` + candidateColumns

const examCandidateFrom = ` FROM exam_candidates ec JOIN candidates k ON k.id = ec.candidate_id JOIN centers c ON c.id = k.center_id `

func scanExamCandidate(row pgx.Row) (ExamCandidate, error) {
	var ec ExamCandidate
	k := &ec.Candidate
	err := row.Scan(&ec.ExamID, &ec.SiteID, &ec.Webcam, &ec.Screen, &ec.Admission, &ec.RefusalReason, &ec.AdmissionBy,
		&ec.AdmissionAt, &ec.PasswordIssuedAt, &ec.AddedAt, &ec.ResultKind, &ec.ResultState,
		&k.ID, &k.CenterID, &k.CouncilID, &k.Councils, &k.LastName, &k.FirstName, &k.MiddleName, &k.SNILS, &k.Document,
		&k.Email, &k.Phone, &k.CreatedAt, &k.UpdatedAt)
	return ec, err
}

// ExamCandidates returns the candidates of exam, by name.
func (s *Store) ExamCandidates(ctx context.Context, exam string) ([]ExamCandidate, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+examCandidateColumns+examCandidateFrom+`WHERE ec.exam_id = $1
		ORDER BY k.last_name, k.first_name, k.id`, exam)
	if err != nil {
		return nil, fmt.Errorf("list candidates of exam %s: %w", exam, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ExamCandidate, error) { return scanExamCandidate(r) })
	if err != nil {
		return nil, fmt.Errorf("list candidates of exam %s: %w", exam, err)
	}
	return out, nil
}

// ExamCandidate returns candidate of exam, or ErrNotFound.
func (s *Store) ExamCandidate(ctx context.Context, exam, candidate string) (ExamCandidate, error) {
	ec, err := scanExamCandidate(s.pool.QueryRow(ctx, `SELECT `+examCandidateColumns+examCandidateFrom+`
		WHERE ec.exam_id = $1 AND ec.candidate_id = $2`, exam, candidate))
	if errors.Is(err, pgx.ErrNoRows) {
		return ExamCandidate{}, fmt.Errorf("get candidate %s of exam %s: %w", candidate, exam, ErrNotFound)
	}
	if err != nil {
		return ExamCandidate{}, fmt.Errorf("get candidate %s of exam %s: %w", candidate, exam, err)
	}
	return ec, nil
}

// SetAdmission admits candidate to exam, or refuses them with a reason
// (required), and publishes RetentionChanged (exam_changed). Refusing withdraws the exam password and ends the
// candidate's exam sessions. A candidate with a result can no longer be
// admitted or refused (ErrState).
func (s *Store) SetAdmission(ctx context.Context, exam, candidate string, admitted bool, reason string, by int64, now time.Time) error {
	status := AdmissionAdmitted
	reason = strings.TrimSpace(reason)
	if !admitted {
		status = AdmissionRefused
		if reason == "" {
			return fmt.Errorf("refuse candidate %s of exam %s: %w: a reason is required", candidate, exam, ErrInvalid)
		}
	} else {
		reason = ""
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var hasResult bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM results WHERE exam_id = ec.exam_id AND candidate_id = ec.candidate_id)
			FROM exam_candidates ec WHERE exam_id = $1 AND candidate_id = $2 FOR UPDATE`, exam, candidate).Scan(&hasResult)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if hasResult {
			return fmt.Errorf("%w: the candidate has a result", ErrState)
		}
		_, err = tx.Exec(ctx, `UPDATE exam_candidates SET admission = $3, refusal_reason = $4, admission_by = nullif($5, 0), admission_at = $6,
			password_hash = CASE WHEN $3 = 'admitted' THEN password_hash END,
			password_issued_at = CASE WHEN $3 = 'admitted' THEN password_issued_at END
			WHERE exam_id = $1 AND candidate_id = $2`, exam, candidate, status, reason, by, now)
		if err != nil {
			return err
		}
		if !admitted {
			if _, err := tx.Exec(ctx, `DELETE FROM exam_sessions WHERE exam_id = $1 AND candidate_id = $2`, exam, candidate); err != nil {
				return err
			}
		}
		return enqueueRetention(ctx, tx, exam, candidate, events.RetentionExamChanged, now)
	})
	if err != nil {
		return fmt.Errorf("set admission of candidate %s of exam %s: %w", candidate, exam, err)
	}
	return nil
}
