package api

import (
	"context"
	"net/http"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// appealStore lists what the appeal routes call of the registry's database.
type appealStore interface {
	OpenAppeal(ctx context.Context, a *store.Appeal, by int64, now time.Time) error
	Appeal(ctx context.Context, id string) (store.Appeal, error)
	Appeals(ctx context.Context, sc store.Scope, f store.AppealFilter) ([]store.Appeal, error)
	DecideAppeal(ctx context.Context, id, outcome, decision string, by int64, now time.Time) error
	CloseAppeal(ctx context.Context, id string, by int64, now time.Time) error
}

type appealJSON struct {
	ID        string     `json:"id"`
	Exam      string     `json:"exam"`
	Candidate string     `json:"candidate"`
	Council   string     `json:"council"`
	Center    string     `json:"center"`
	Site      string     `json:"site"`
	Status    string     `json:"status"`
	Reason    string     `json:"reason"`
	FiledOn   date       `json:"filed_on"`
	OpenedAt  time.Time  `json:"opened_at"`
	Outcome   string     `json:"outcome,omitempty"`
	Decision  string     `json:"decision,omitempty"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	ClosedAt  *time.Time `json:"closed_at,omitempty"`
	// LegalHold is true while the appeal is not closed: the candidate's
	// evidence may not be deleted.
	LegalHold bool `json:"legal_hold"`
}

func newAppealJSON(a store.Appeal) appealJSON {
	return appealJSON{ID: a.ID, Exam: a.ExamID, Candidate: a.CandidateID, Council: a.CouncilID, Center: a.CenterID, Site: a.SiteID,
		Status: a.Status, Reason: a.Reason, FiledOn: date{a.FiledOn}, OpenedAt: a.OpenedAt.UTC(), Outcome: a.Outcome,
		Decision: a.Decision, DecidedAt: utcPtr(a.DecidedAt), ClosedAt: utcPtr(a.ClosedAt), LegalHold: a.Status != store.AppealClosed}
}

// openAppeal handles POST /api/v1/exams/{exam}/candidates/{candidate}/appeals
// {"reason","filed_on"}: the council registers a candidate's appeal, which
// puts the candidate's evidence under legal hold.
func (s *Server) openAppeal(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c, store.RoleCouncil)
	if err != nil {
		return err
	}
	var req struct {
		Reason  string `json:"reason"`
		FiledOn date   `json:"filed_on"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	a := &store.Appeal{ExamID: exam, CandidateID: cand, Reason: req.Reason, FiledOn: req.FiledOn.Time}
	if err := s.db.appeals.OpenAppeal(r.Context(), a, c.user.ID, s.now()); err != nil {
		return fail(err, "candidate of the exam")
	}
	s.kickOutbox()
	if err := s.audit(r, c, "appeal.open", a.ID, map[string]any{"exam": exam, "candidate": cand}); err != nil {
		return err
	}
	got, err := s.db.appeals.Appeal(r.Context(), a.ID)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/appeals/"+a.ID)
	writeJSON(w, http.StatusCreated, newAppealJSON(got))
	return nil
}

// listAppeals handles GET /api/v1/appeals?status=&exam=&candidate=.
func (s *Server) listAppeals(w http.ResponseWriter, r *http.Request, c *caller) error {
	q := r.URL.Query()
	list, err := s.db.appeals.Appeals(r.Context(), scopeOf(c.user), store.AppealFilter{Status: q.Get("status"), ExamID: q.Get("exam"), CandidateID: q.Get("candidate")})
	if err != nil {
		return err
	}
	out := []appealJSON{}
	for _, a := range list {
		if visible(c.user, a.Owner()) {
			out = append(out, newAppealJSON(a))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) appeal(r *http.Request, c *caller, roles ...string) (store.Appeal, error) {
	a, err := s.db.appeals.Appeal(r.Context(), r.PathValue("appeal"))
	if err != nil {
		return a, fail(err, "appeal")
	}
	return a, allow(c, a.Owner(), "appeal", roles...)
}

func (s *Server) getAppeal(w http.ResponseWriter, r *http.Request, c *caller) error {
	a, err := s.appeal(r, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newAppealJSON(a))
	return nil
}

// decideAppeal handles POST /api/v1/appeals/{appeal}/decision
// {"outcome":"upheld"|"rejected","decision"}: the commission's decision.
// The hold stays until the appeal is closed.
func (s *Server) decideAppeal(w http.ResponseWriter, r *http.Request, c *caller) error {
	a, err := s.appeal(r, c, store.RoleCouncil)
	if err != nil {
		return err
	}
	var req struct {
		Outcome  string `json:"outcome"`
		Decision string `json:"decision"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := s.db.appeals.DecideAppeal(r.Context(), a.ID, req.Outcome, req.Decision, c.user.ID, s.now()); err != nil {
		return fail(err, "appeal")
	}
	if err := s.audit(r, c, "appeal.decide", a.ID, map[string]any{"outcome": req.Outcome}); err != nil {
		return err
	}
	return s.getAppeal(w, r, c)
}

// closeAppeal handles POST /api/v1/appeals/{appeal}/close: the appeal is
// over and its legal hold is lifted.
func (s *Server) closeAppeal(w http.ResponseWriter, r *http.Request, c *caller) error {
	a, err := s.appeal(r, c, store.RoleCouncil)
	if err != nil {
		return err
	}
	if err := s.db.appeals.CloseAppeal(r.Context(), a.ID, c.user.ID, s.now()); err != nil {
		return fail(err, "appeal")
	}
	s.kickOutbox()
	if err := s.audit(r, c, "appeal.close", a.ID, nil); err != nil {
		return err
	}
	return s.getAppeal(w, r, c)
}
