package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// qualificationCode is what a qualification's code looks like, e.g.
// "40.00800.01".
var qualificationCode = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._-]{0,62}$`)

// Qualification is a qualification of the register, kept by a council.
type Qualification struct {
	Code      string
	CouncilID string
	Name      string
	// ValidityYears is how long a certificate of this qualification is
	// valid: valid_until = issue date + ValidityYears.
	ValidityYears int
	Tools         []AssessmentTool
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Owner returns where the qualification sits: with its council.
func (q Qualification) Owner() Owner { return Owner{Council: q.CouncilID} }

// AssessmentTool is a set of assessment tools (оценочные средства) of a
// qualification: its reference and where it is published.
type AssessmentTool struct {
	Reference string
	Link      string
	AddedAt   time.Time
}

// SaveQualification creates the qualification q, or updates the name and
// validity of an existing one, and reports whether it was created. The
// council must exist, and a qualification never moves to another council.
// q.Tools are added (a tool with a known reference gets the new link).
func (s *Store) SaveQualification(ctx context.Context, q Qualification) (created bool, err error) {
	if !qualificationCode.MatchString(q.Code) {
		return false, fmt.Errorf("save qualification: %w: code %q: want letters, digits, '.', '_' or '-'", ErrInvalid, q.Code)
	}
	if strings.TrimSpace(q.Name) == "" {
		return false, fmt.Errorf("save qualification %s: %w: a name is required", q.Code, ErrInvalid)
	}
	if q.ValidityYears < 1 || q.ValidityYears > 10 {
		return false, fmt.Errorf("save qualification %s: %w: certificate validity %d years is not 1 to 10", q.Code, ErrInvalid, q.ValidityYears)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT id FROM councils WHERE id = $1`, q.CouncilID).Scan(new(string)); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: council %q", ErrNotFound, q.CouncilID)
		} else if err != nil {
			return err
		}
		var was string
		err := tx.QueryRow(ctx, `SELECT council_id FROM qualifications WHERE code = $1 FOR UPDATE`, q.Code).Scan(&was)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			created = true
		case err != nil:
			return err
		case was != q.CouncilID:
			return fmt.Errorf("%w: qualification %s belongs to council %s, not %s", ErrInvalid, q.Code, was, q.CouncilID)
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO qualifications (code, council_id, name, validity_years) VALUES ($1, $2, $3, $4)
			ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, validity_years = EXCLUDED.validity_years, updated_at = now()`,
			q.Code, q.CouncilID, strings.TrimSpace(q.Name), q.ValidityYears)
		if err != nil {
			return err
		}
		for _, t := range q.Tools {
			if err := addTool(ctx, tx, q.Code, t); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("save qualification %s: %w", q.Code, err)
	}
	return created, nil
}

// AddAssessmentTool adds a set of assessment tools to qualification code,
// or gives a known reference a new link.
func (s *Store) AddAssessmentTool(ctx context.Context, code string, t AssessmentTool) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return addTool(ctx, tx, code, t) })
	if isForeignKeyViolation(err) {
		return fmt.Errorf("add assessment tool to %s: %w", code, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("add assessment tool to %s: %w", code, err)
	}
	return nil
}

func addTool(ctx context.Context, tx pgx.Tx, code string, t AssessmentTool) error {
	ref, link := strings.TrimSpace(t.Reference), strings.TrimSpace(t.Link)
	if ref == "" {
		return fmt.Errorf("%w: an assessment tool needs a reference", ErrInvalid)
	}
	_, err := tx.Exec(ctx, `INSERT INTO assessment_tools (qualification_code, reference, link) VALUES ($1, $2, $3)
		ON CONFLICT (qualification_code, reference) DO UPDATE SET link = EXCLUDED.link`, code, ref, link)
	return err
}

const qualificationColumns = `q.code, q.council_id, q.name, q.validity_years, q.created_at, q.updated_at,
	coalesce((SELECT array_agg(t.reference ORDER BY t.id) FROM assessment_tools t WHERE t.qualification_code = q.code), '{}'),
	coalesce((SELECT array_agg(t.link ORDER BY t.id) FROM assessment_tools t WHERE t.qualification_code = q.code), '{}'),
	coalesce((SELECT array_agg(t.added_at ORDER BY t.id) FROM assessment_tools t WHERE t.qualification_code = q.code), '{}')`

func scanQualification(row pgx.Row) (Qualification, error) {
	var q Qualification
	var refs, links []string
	var added []time.Time
	if err := row.Scan(&q.Code, &q.CouncilID, &q.Name, &q.ValidityYears, &q.CreatedAt, &q.UpdatedAt, &refs, &links, &added); err != nil {
		return q, err
	}
	q.Tools = []AssessmentTool{}
	for i := range refs {
		q.Tools = append(q.Tools, AssessmentTool{Reference: refs[i], Link: links[i], AddedAt: added[i]})
	}
	return q, nil
}

// Qualification returns the qualification code, or ErrNotFound.
func (s *Store) Qualification(ctx context.Context, code string) (Qualification, error) {
	q, err := scanQualification(s.pool.QueryRow(ctx, `SELECT `+qualificationColumns+` FROM qualifications q WHERE q.code = $1`, code))
	if errors.Is(err, pgx.ErrNoRows) {
		return Qualification{}, fmt.Errorf("get qualification %s: %w", code, ErrNotFound)
	}
	if err != nil {
		return Qualification{}, fmt.Errorf("get qualification %s: %w", code, err)
	}
	return q, nil
}

// Qualifications returns every qualification, by code: the register is
// public to every staff user.
func (s *Store) Qualifications(ctx context.Context) ([]Qualification, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+qualificationColumns+` FROM qualifications q ORDER BY q.code`)
	if err != nil {
		return nil, fmt.Errorf("list qualifications: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Qualification, error) { return scanQualification(r) })
	if err != nil {
		return nil, fmt.Errorf("list qualifications: %w", err)
	}
	return out, nil
}

// RetentionSettings are how long footage is kept beyond what a certificate
// says, per council and qualification.
type RetentionSettings struct {
	// AppealWindowDays is how long after a conclusion (failed exam) an
	// appeal may be filed; the footage is kept at least that long.
	AppealWindowDays int
	// ProvisionalDays is how long footage of an exam is kept while no
	// result is recorded.
	ProvisionalDays int
	// UnlinkedDays is how long footage that belongs to no exam is kept.
	UnlinkedDays int
}

// DefaultRetentionSettings are the settings of a council that set none: an
// appeal window of 30 days, 90 provisional days, 30 days for unlinked
// footage.
func DefaultRetentionSettings() RetentionSettings {
	return RetentionSettings{AppealWindowDays: 30, ProvisionalDays: 90, UnlinkedDays: 30}
}

func (rs RetentionSettings) validate() error {
	switch {
	case rs.AppealWindowDays < 0 || rs.AppealWindowDays > 3650:
		return fmt.Errorf("%w: appeal window %d days is not 0 to 3650", ErrInvalid, rs.AppealWindowDays)
	case rs.ProvisionalDays < 1 || rs.ProvisionalDays > 3650:
		return fmt.Errorf("%w: provisional period %d days is not 1 to 3650", ErrInvalid, rs.ProvisionalDays)
	case rs.UnlinkedDays < 1 || rs.UnlinkedDays > 3650:
		return fmt.Errorf("%w: unlinked footage period %d days is not 1 to 3650", ErrInvalid, rs.UnlinkedDays)
	}
	return nil
}

// SetRetentionSettings sets the retention settings of council, for all its
// qualifications when qualification is "", or else for that one (which must
// be the council's).
func (s *Store) SetRetentionSettings(ctx context.Context, council, qualification string, rs RetentionSettings, by int64) error {
	if err := rs.validate(); err != nil {
		return fmt.Errorf("set retention settings of %s: %w", council, err)
	}
	if qualification != "" {
		q, err := s.Qualification(ctx, qualification)
		if err != nil {
			return fmt.Errorf("set retention settings of %s: %w", council, err)
		}
		if q.CouncilID != council {
			return fmt.Errorf("set retention settings of %s: %w: qualification %s is not the council's", council, ErrInvalid, qualification)
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
		INSERT INTO retention_settings (council_id, qualification_code, appeal_window_days, provisional_days, unlinked_days, updated_by)
		VALUES ($1, $2, $3, $4, $5, nullif($6, 0))
		ON CONFLICT (council_id, qualification_code) DO UPDATE SET appeal_window_days = EXCLUDED.appeal_window_days,
			provisional_days = EXCLUDED.provisional_days, unlinked_days = EXCLUDED.unlinked_days,
			updated_by = EXCLUDED.updated_by, updated_at = now()`,
			council, qualification, rs.AppealWindowDays, rs.ProvisionalDays, rs.UnlinkedDays, by)
		if err != nil {
			return err
		}
		return enqueueSettings(ctx, tx, council, time.Now())
	})
	if isForeignKeyViolation(err) {
		return fmt.Errorf("set retention settings of %s: %w", council, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("set retention settings of %s: %w", council, err)
	}
	return nil
}

// RetentionSettingsOf returns the settings in force for qualification of
// council: the qualification's own, else the council's, else the defaults.
func (s *Store) RetentionSettingsOf(ctx context.Context, council, qualification string) (RetentionSettings, error) {
	rs := DefaultRetentionSettings()
	err := s.pool.QueryRow(ctx, `
		SELECT appeal_window_days, provisional_days, unlinked_days FROM retention_settings
		WHERE council_id = $1 AND qualification_code IN ('', $2)
		ORDER BY qualification_code DESC LIMIT 1`, council, qualification).
		Scan(&rs.AppealWindowDays, &rs.ProvisionalDays, &rs.UnlinkedDays)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return RetentionSettings{}, fmt.Errorf("get retention settings of %s/%s: %w", council, qualification, err)
	}
	return rs, nil
}

// CouncilRetentionSettings returns the settings council set: under "" those
// for all its qualifications (the defaults if it set none), and under a
// qualification code those it set for that one.
func (s *Store) CouncilRetentionSettings(ctx context.Context, council string) (map[string]RetentionSettings, error) {
	out := map[string]RetentionSettings{"": DefaultRetentionSettings()}
	rows, err := s.pool.Query(ctx, `SELECT qualification_code, appeal_window_days, provisional_days, unlinked_days
		FROM retention_settings WHERE council_id = $1`, council)
	if err != nil {
		return nil, fmt.Errorf("list retention settings of %s: %w", council, err)
	}
	defer rows.Close()
	for rows.Next() {
		var code string
		var rs RetentionSettings
		if err := rows.Scan(&code, &rs.AppealWindowDays, &rs.ProvisionalDays, &rs.UnlinkedDays); err != nil {
			return nil, fmt.Errorf("list retention settings of %s: %w", council, err)
		}
		out[code] = rs
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list retention settings of %s: %w", council, err)
	}
	return out, nil
}

// SiteRetentionSettings returns the settings in force for footage of site
// that belongs to no exam: those of the council of the site's center, or
// the defaults for a site without a center.
func (s *Store) SiteRetentionSettings(ctx context.Context, site string) (RetentionSettings, error) {
	var council *string
	err := s.pool.QueryRow(ctx, `SELECT c.council_id FROM sites st LEFT JOIN centers c ON c.id = st.center_id WHERE st.id = $1`, site).Scan(&council)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && council == nil) {
		return DefaultRetentionSettings(), nil
	}
	if err != nil {
		return RetentionSettings{}, fmt.Errorf("get retention settings of site %s: %w", site, err)
	}
	return s.RetentionSettingsOf(ctx, *council, "")
}
