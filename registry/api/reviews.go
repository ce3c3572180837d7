package api

import (
	"context"
	"net/http"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// markStore lists what the routes of experts' marks and verdicts call of the
// registry's database.
type markStore interface {
	AddMark(ctx context.Context, m *store.Mark, now time.Time) error
	Marks(ctx context.Context, exam, candidate string) ([]store.Mark, error)
	SetVerdict(ctx context.Context, v store.Verdict) error
	Verdicts(ctx context.Context, exam, candidate string) ([]store.Verdict, error)
}

type markJSON struct {
	ID        int64     `json:"id"`
	Expert    string    `json:"expert"`
	At        time.Time `json:"at"`
	Kind      string    `json:"kind"`
	Text      string    `json:"text"`
	Stream    string    `json:"stream,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

func newMarkJSON(m store.Mark) markJSON {
	return markJSON{ID: m.ID, Expert: m.ExpertLogin, At: m.At.UTC(), Kind: m.Kind, Text: m.Text, Stream: m.Stream, CreatedAt: m.CreatedAt.UTC()}
}

type verdictJSON struct {
	Expert             string    `json:"expert"`
	ProcedureConfirmed bool      `json:"procedure_confirmed"`
	Reasons            string    `json:"reasons,omitempty"`
	DecidedAt          time.Time `json:"decided_at"`
}

// addMark handles POST /api/v1/exams/{exam}/candidates/{candidate}/marks
// {"at","kind":"violation"|"note","text","stream"}: an appointed expert
// marks a moment of the candidate's footage.
func (s *Server) addMark(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c, store.RoleExpert)
	if err != nil {
		return err
	}
	var req struct {
		At     time.Time `json:"at"`
		Kind   string    `json:"kind"`
		Text   string    `json:"text"`
		Stream string    `json:"stream"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	m := &store.Mark{ExamID: exam, CandidateID: cand, ExpertID: c.user.ID, ExpertLogin: c.user.Login, At: req.At,
		Kind: req.Kind, Text: req.Text, Stream: req.Stream}
	if err := s.db.marks.AddMark(r.Context(), m, s.now()); err != nil {
		return fail(err, "candidate of the exam")
	}
	if err := s.audit(r, c, "review.mark", exam+"/"+cand, map[string]any{"mark": m.ID, "kind": m.Kind, "at": m.At.UTC()}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, newMarkJSON(*m))
	return nil
}

func (s *Server) listMarks(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c)
	if err != nil {
		return err
	}
	marks, err := s.db.marks.Marks(r.Context(), exam, cand)
	if err != nil {
		return err
	}
	out := []markJSON{}
	for _, m := range marks {
		out = append(out, newMarkJSON(m))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// setVerdict handles PUT /api/v1/exams/{exam}/candidates/{candidate}/verdict
// {"procedure_confirmed","reasons"}: an appointed expert's verdict on the
// procedure, replacing their earlier one.
func (s *Server) setVerdict(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c, store.RoleExpert)
	if err != nil {
		return err
	}
	var req struct {
		ProcedureConfirmed *bool  `json:"procedure_confirmed"`
		Reasons            string `json:"reasons"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.ProcedureConfirmed == nil {
		return errorf(http.StatusUnprocessableEntity, "procedure_confirmed is required")
	}
	v := store.Verdict{ExamID: exam, CandidateID: cand, ExpertID: c.user.ID, ProcedureConfirmed: *req.ProcedureConfirmed,
		Reasons: req.Reasons, DecidedAt: s.now()}
	if err := s.db.marks.SetVerdict(r.Context(), v); err != nil {
		return fail(err, "candidate of the exam")
	}
	if err := s.audit(r, c, "review.verdict", exam+"/"+cand, map[string]any{"procedure_confirmed": v.ProcedureConfirmed}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, verdictJSON{Expert: c.user.Login, ProcedureConfirmed: v.ProcedureConfirmed, Reasons: v.Reasons, DecidedAt: v.DecidedAt.UTC()})
	return nil
}

// getReview handles GET /api/v1/exams/{exam}/candidates/{candidate}/review:
// every expert's marks and verdicts on the candidate's exam.
func (s *Server) getReview(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c)
	if err != nil {
		return err
	}
	marks, err := s.db.marks.Marks(r.Context(), exam, cand)
	if err != nil {
		return err
	}
	verdicts, err := s.db.marks.Verdicts(r.Context(), exam, cand)
	if err != nil {
		return err
	}
	ms, vs := []markJSON{}, []verdictJSON{}
	for _, m := range marks {
		ms = append(ms, newMarkJSON(m))
	}
	for _, v := range verdicts {
		vs = append(vs, verdictJSON{Expert: v.ExpertLogin, ProcedureConfirmed: v.ProcedureConfirmed, Reasons: v.Reasons, DecidedAt: v.DecidedAt.UTC()})
	}
	writeJSON(w, http.StatusOK, map[string]any{"exam": exam, "candidate": cand, "marks": ms, "verdicts": vs})
	return nil
}
