package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Authorisation is a council's authorisation of a center for one of the
// council's qualifications. A center's home council authorises it for its
// own qualifications (SaveCenter); a multi-industry center is authorised
// by further councils for theirs (AuthoriseCenter). An exam of the center
// belongs to the council of its qualification's authorisation
// (examCouncil).
type Authorisation struct {
	Council       string
	CouncilName   string // the authorising council's name (read only)
	Qualification string
	AuthorisedAt  time.Time
}

// AuthoriseCenter records that council authorises center for the
// qualifications codes, which must be the council's own (ErrInvalid names
// the others), and returns the codes newly authorised (an authorisation
// already given changes nothing). The center keeps its home council; any
// council may authorise any center. An unknown center is ErrNotFound.
func (s *Store) AuthoriseCenter(ctx context.Context, center, council string, codes []string, by int64) ([]string, error) {
	codes = cleanList(codes)
	if len(codes) == 0 {
		return nil, fmt.Errorf("authorise center %s: %w: name at least one qualification", center, ErrInvalid)
	}
	var added []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT id FROM centers WHERE id = $1`, center).Scan(new(string))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		var foreign []string
		err = tx.QueryRow(ctx, `
			SELECT coalesce(array_agg(w.code ORDER BY w.code), '{}') FROM unnest($1::text[]) AS w(code)
			WHERE NOT EXISTS (SELECT 1 FROM qualifications q WHERE q.code = w.code AND q.council_id = $2)`,
			codes, council).Scan(&foreign)
		if err != nil {
			return err
		}
		if len(foreign) > 0 {
			return fmt.Errorf("%w: qualifications %s are not qualifications of council %s", ErrInvalid, strings.Join(foreign, ", "), council)
		}
		rows, err := tx.Query(ctx, `INSERT INTO center_qualifications (center_id, council_id, qualification_code, authorised_by)
			SELECT $1, $2, w.code, nullif($4, 0) FROM unnest($3::text[]) AS w(code)
			ON CONFLICT DO NOTHING RETURNING qualification_code`, center, council, codes, by)
		if err != nil {
			return err
		}
		added, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("authorise center %s for council %s: %w", center, council, err)
	}
	return added, nil
}

// WithdrawAuthorisation withdraws council's authorisation of center for
// qualification code: the center can hold no new exam of it. Its exams
// stay the council's, with everything that belongs to them: nothing is
// re-attributed. No such authorisation of council is ErrNotFound.
func (s *Store) WithdrawAuthorisation(ctx context.Context, center, council, code string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM center_qualifications WHERE center_id = $1 AND council_id = $2 AND qualification_code = $3`,
		center, council, code)
	if err != nil {
		return fmt.Errorf("withdraw authorisation of center %s for %s: %w", center, code, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("withdraw authorisation of center %s for %s: %w", center, code, ErrNotFound)
	}
	return nil
}

// ExamWindow is the window of an exam of a site with the exam's council.
type ExamWindow struct {
	Window
	Council string
}

// StreamExamWindows returns the windows of the exams of site for which
// stream <site>/<device> is evidence (a room camera of the site, or the
// webcam or screen of one of the exam's candidates), each with the exam's
// council, by start. A council sees footage inside the windows of its own
// exams, and the center's home council also outside every other council's
// (registry/api, canSee).
func (s *Store) StreamExamWindows(ctx context.Context, site, device string) ([]ExamWindow, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT e.starts_at, e.ends_at, e.council_id FROM exams e
		WHERE e.site_id = $1 AND (
			EXISTS (SELECT 1 FROM devices d WHERE d.site = $1 AND d.name = $2 AND d.kind = 'room')
			OR EXISTS (SELECT 1 FROM exam_candidates ec WHERE ec.exam_id = e.id AND $2 IN (ec.webcam_device, ec.screen_device)))
		ORDER BY e.starts_at`, site, device)
	if err != nil {
		return nil, fmt.Errorf("list exam windows of %s/%s: %w", site, device, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ExamWindow, error) {
		var w ExamWindow
		err := r.Scan(&w.Start, &w.End, &w.Council)
		return w, err
	})
	if err != nil {
		return nil, fmt.Errorf("list exam windows of %s/%s: %w", site, device, err)
	}
	return out, nil
}
