package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/nokstream/nokstream/internal/evidence/retention"
	"github.com/nokstream/nokstream/registry/store"
)

// queueStore lists what the cabinets' queues and the audit trail call of the
// registry's database.
type queueStore interface {
	ReviewQueue(ctx context.Context, expert int64, f store.ReviewQueueFilter, now time.Time) ([]store.ReviewQueueItem, error)
	AuditTrail(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error)
}

// queueRoutes registers the routes that the cabinets' pages need beyond
// the domain's (issue 14): the expert's review queue, the legal floors of
// retention, and NARK's reading of the audit trail.
func (s *Server) queueRoutes() {
	s.route("GET /api/v1/review-queue", authBearer, s.reviewQueue)
	s.route("GET /api/v1/retention/floors", authBearer, s.retentionFloors)
	s.route("GET /api/v1/audit", authBearer, s.auditTrail)
}

type namedJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type queueVerdictJSON struct {
	ProcedureConfirmed bool      `json:"procedure_confirmed"`
	DecidedAt          time.Time `json:"decided_at"`
}

// reviewQueueItemJSON is one candidate-exam of an expert's queue. The
// candidate is named and nothing more: an expert reviews the procedure
// (candidateFieldsOf).
type reviewQueueItemJSON struct {
	Exam           string            `json:"exam"`
	Candidate      namedJSON         `json:"candidate"`
	Qualification  namedJSON         `json:"qualification"`
	Site           namedJSON         `json:"site"`
	TimeZone       string            `json:"time_zone"` // the site's, in which the pages show the exam's times
	Center         namedJSON         `json:"center"`
	StartsAt       time.Time         `json:"starts_at"`
	EndsAt         time.Time         `json:"ends_at"`
	Admission      string            `json:"admission"`
	State          string            `json:"state"`
	OpenedAt       *time.Time        `json:"opened_at,omitempty"`
	Verdict        *queueVerdictJSON `json:"verdict,omitempty"`
	Marks          int               `json:"marks"`
	Violations     int               `json:"violations"`
	AllMarks       int               `json:"all_marks"`
	Observations   int               `json:"observations"`
	FlaggedSeconds float64           `json:"flagged_seconds"`
}

// reviewQueue handles GET /api/v1/review-queue?exam=&from=&to=: the
// calling expert's candidate-exams with their review state, sorted by what
// needs attention (store.ReviewQueue). Only experts have a queue.
func (s *Server) reviewQueue(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := allowRole(c, store.RoleExpert); err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.ReviewQueueFilter{Exam: q.Get("exam")}
	var err error
	if v := q.Get("from"); v != "" {
		if f.From, err = parseTime("from", v); err != nil {
			return err
		}
	}
	if v := q.Get("to"); v != "" {
		if f.To, err = parseTime("to", v); err != nil {
			return err
		}
	}
	items, err := s.db.queue.ReviewQueue(r.Context(), c.user.ID, f, s.now())
	if err != nil {
		return err
	}
	out := make([]reviewQueueItemJSON, 0, len(items))
	for _, it := range items {
		j := reviewQueueItemJSON{Exam: it.ExamID, Candidate: namedJSON{it.CandidateID, it.CandidateName},
			Qualification: namedJSON{it.Qualification, it.QualificationName}, Site: namedJSON{it.SiteID, it.SiteName}, TimeZone: it.SiteTimeZone,
			Center: namedJSON{it.CenterID, it.CenterName}, StartsAt: it.Start.UTC(), EndsAt: it.End.UTC(), Admission: it.Admission,
			State: it.State, OpenedAt: utcPtr(it.OpenedAt), Marks: it.Marks, Violations: it.Violations, AllMarks: it.AllMarks,
			Observations: it.Observations, FlaggedSeconds: it.FlaggedSeconds}
		if it.Verdict != nil {
			j.Verdict = &queueVerdictJSON{ProcedureConfirmed: it.Verdict.ProcedureConfirmed, DecidedAt: it.Verdict.DecidedAt.UTC()}
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type floorsJSON struct {
	AppealWindowDays int `json:"appeal_window_days"`
	AppealMarginDays int `json:"appeal_margin_days"`
	ProvisionalDays  int `json:"provisional_days"`
	UnlinkedDays     int `json:"unlinked_days"`
}

// retentionFloors handles GET /api/v1/retention/floors: the legal floors
// below which no council's retention setting is accepted, for the pages
// that edit them.
func (s *Server) retentionFloors(w http.ResponseWriter, _ *http.Request, c *caller) error {
	if err := allowRole(c, store.RoleNARK, store.RoleCouncil, store.RoleCenter, store.RoleSite, store.RoleExpert); err != nil {
		return err
	}
	f := s.cfg.RetentionFloors
	day := func(d time.Duration) int { return int(d / retention.Day) }
	writeJSON(w, http.StatusOK, floorsJSON{AppealWindowDays: day(f.AppealWindow), AppealMarginDays: day(f.AppealMargin),
		ProvisionalDays: day(f.Provisional), UnlinkedDays: day(f.Unlinked)})
	return nil
}

type auditEntryJSON struct {
	ID      int64          `json:"id"`
	At      time.Time      `json:"at"`
	Actor   string         `json:"actor"`
	Action  string         `json:"action"`
	Object  string         `json:"object"`
	Address string         `json:"remote_addr"`
	Purpose string         `json:"purpose,omitempty"`
	Detail  map[string]any `json:"detail,omitempty"`
}

// auditTrail handles GET /api/v1/audit?org=|user=|object=&before=&limit=:
// NARK reads the audit trail of an organisation, an account or an object,
// newest first. Reading it is audited too.
func (s *Server) auditTrail(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := allowRole(c, store.RoleNARK); err != nil {
		return err
	}
	q := r.URL.Query()
	f := store.AuditFilter{Org: q.Get("org"), User: q.Get("user"), Object: q.Get("object")}
	if f.Org == "" && f.User == "" && f.Object == "" {
		return errorf(http.StatusBadRequest, "name what to trace: ?org=, ?user= or ?object=")
	}
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"before", &f.Before}, {"limit", nil}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return errorf(http.StatusBadRequest, "%s %q is not a positive number", p.name, v)
		}
		switch {
		case p.dst != nil:
			*p.dst = n
		case n > 500:
			return errorf(http.StatusBadRequest, "limit %d: at most 500 entries a page", n)
		default:
			f.Limit = int(n)
		}
	}
	list, err := s.db.queue.AuditTrail(r.Context(), f)
	if err != nil {
		return fail(err, "audit trail")
	}
	if err := s.audit(r, c, "audit.read", f.Object, map[string]any{"org": f.Org, "user": f.User, "entries": len(list)}); err != nil {
		return err
	}
	out := make([]auditEntryJSON, 0, len(list))
	for _, e := range list {
		out = append(out, auditEntryJSON{ID: e.ID, At: e.At.UTC(), Actor: e.ActorLogin, Action: e.Action, Object: e.Object,
			Address: e.RemoteAddr, Purpose: e.Purpose, Detail: e.Detail})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
