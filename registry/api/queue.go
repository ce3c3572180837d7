package api

import (
	"context"
	"net/http"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// queueStore is what the expert's review queue needs of the registry's
// database; *store.Store is one.
type queueStore interface {
	ReviewQueue(ctx context.Context, expert int64, f store.ReviewQueueFilter, now time.Time) ([]store.ReviewQueueItem, error)
}

// queueRoutes registers the routes of the cabinets' queues (issue 14).
func (s *Server) queueRoutes() {
	s.route("GET /api/v1/review-queue", authBearer, s.reviewQueue)
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
	items, err := s.store.ReviewQueue(r.Context(), c.user.ID, f, s.now())
	if err != nil {
		return err
	}
	out := make([]reviewQueueItemJSON, 0, len(items))
	for _, it := range items {
		j := reviewQueueItemJSON{Exam: it.ExamID, Candidate: namedJSON{it.CandidateID, it.CandidateName},
			Qualification: namedJSON{it.Qualification, it.QualificationName}, Site: namedJSON{it.SiteID, it.SiteName},
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
