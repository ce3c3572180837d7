package store

import (
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/oklog/ulid/v2"
)

// Errors of the domain that callers branch on.
var (
	// ErrPrecondition is returned, wrapped with every unmet precondition
	// (see Preconditions), when a change is refused because other records
	// are not in the state the registry procedure requires.
	ErrPrecondition = errors.New("precondition not met")
	// ErrState is returned when a change does not fit the current state of
	// the thing changed: admitting a candidate with a result, closing a
	// closed appeal, issuing a password to a refused candidate.
	ErrState = errors.New("not allowed in the current state")
	// ErrOutsideWindow is returned for an exam password used outside its
	// exam's time window.
	ErrOutsideWindow = errors.New("outside the exam window")
)

// Owner is where an object sits in the organisation tree: the council,
// center and site it belongs to, and for what belongs to an exam, the exam
// and the experts appointed to it. Access to an object is decided on its
// Owner alone (registry/api, scope.go).
type Owner struct {
	Council string
	// Councils are further councils that see the object: every council
	// that authorised a multi-industry center, or has exams there, sees the
	// center's basic details and its sites; a candidate is seen by the
	// councils of its exams (see Candidate.Councils).
	Councils []string
	Center   string
	Site     string
	Exam     string
	Experts  []int64
}

// SeenByCouncil reports whether council sees the object owned by o.
func (o Owner) SeenByCouncil(council string) bool {
	return council != "" && (o.Council == council || slices.Contains(o.Councils, council))
}

// HasExpert reports whether user id is appointed to the owner's exam.
func (o Owner) HasExpert(id int64) bool { return o.Exam != "" && slices.Contains(o.Experts, id) }

// Scope narrows a listing to what one caller may see. The registry API
// derives it from the caller (registry/api, scope.go) and checks each
// listed object's Owner again. The zero Scope is everything; set fields
// are combined with AND.
type Scope struct {
	Council string // only what belongs to this council
	Center  string // only what belongs to this center
	Site    string // only what belongs to this site
	Expert  int64  // only exams this expert user is appointed to
	None    bool   // nothing
}

// scopeColumns names the SQL expressions of a listing's organisation
// columns; an empty one means the listed thing has no such owner.
type scopeColumns struct {
	council, center, site, exam string
	// councilCond, when set, replaces "council = p": the condition that
	// council p sees the row (multi-industry centers, candidates).
	councilCond func(p string) string
}

// centerSeenBy returns the SQL condition that council p sees center
// center (an SQL expression) whose home council is home: its home
// council, a council that authorised it for a qualification, and a
// council with an exam there (which keeps seeing it after withdrawing).
func centerSeenBy(center, home string) func(p string) string {
	return func(p string) string {
		return "(" + home + " = " + p + " OR EXISTS (SELECT 1 FROM center_qualifications sa WHERE sa.center_id = " + center +
			" AND sa.council_id = " + p + ") OR EXISTS (SELECT 1 FROM exams sx WHERE sx.center_id = " + center + " AND sx.council_id = " + p + "))"
	}
}

// candidateSeenBy returns the SQL condition that council p sees candidate
// cand (an SQL expression) of a center whose home council is home: the
// councils of its exams, or the home council while it has none.
func candidateSeenBy(cand, home string) func(p string) string {
	return func(p string) string {
		return "(EXISTS (SELECT 1 FROM exam_candidates sc JOIN exams sx ON sx.id = sc.exam_id WHERE sc.candidate_id = " + cand +
			" AND sx.council_id = " + p + ") OR (" + home + " = " + p +
			" AND NOT EXISTS (SELECT 1 FROM exam_candidates sc WHERE sc.candidate_id = " + cand + ")))"
	}
}

// args collects positional query arguments.
type args []any

// add appends v and returns its placeholder.
func (a *args) add(v any) string {
	*a = append(*a, v)
	return fmt.Sprintf("$%d", len(*a))
}

// where returns the SQL condition that restricts rows with columns cols to
// sc, adding its arguments to a.
func (sc Scope) where(cols scopeColumns, a *args) string {
	if sc.None {
		return "false"
	}
	var conds []string
	if sc.Council != "" && cols.councilCond != nil {
		conds = append(conds, cols.councilCond(a.add(sc.Council)))
		sc.Council = ""
	}
	for _, f := range []struct{ want, col string }{
		{sc.Council, cols.council}, {sc.Center, cols.center}, {sc.Site, cols.site},
	} {
		if f.want == "" {
			continue
		}
		if f.col == "" {
			return "false"
		}
		conds = append(conds, f.col+" = "+a.add(f.want))
	}
	if sc.Expert != 0 {
		if cols.exam == "" {
			return "false"
		}
		conds = append(conds, "EXISTS (SELECT 1 FROM exam_experts xx WHERE xx.exam_id = "+cols.exam+" AND xx.user_id = "+a.add(sc.Expert)+")")
	}
	if len(conds) == 0 {
		return "true"
	}
	return strings.Join(conds, " AND ")
}

// NewID returns a new random id that is a valid name: a lowercase ULID,
// which sorts by creation time.
func NewID() string { return strings.ToLower(ulid.MustNew(ulid.Now(), rand.Reader).String()) }

// checkID validates an id of an organisation, candidate or exam.
func checkID(what, id string) error {
	if !ValidName(id) {
		return fmt.Errorf("%w: %s id %q: want 1-63 of a-z, 0-9, '_', '-', starting with a letter or digit", ErrInvalid, what, id)
	}
	return nil
}

// isForeignKeyViolation reports whether err is PostgreSQL's
// foreign_key_violation.
func isForeignKeyViolation(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23503"
}

// isCheckViolation reports whether err is PostgreSQL's check_violation.
func isCheckViolation(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23514"
}

// constraintName returns the name of the constraint err violated, or "".
func constraintName(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.ConstraintName
	}
	return ""
}

// cleanList trims every element of l and drops the empty ones; it never
// returns nil, so that text[] columns get '{}'.
func cleanList(l []string) []string {
	out := []string{}
	for _, s := range l {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
