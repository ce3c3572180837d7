package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/nokstream/nokstream/internal/evidence/retention"
	"github.com/nokstream/nokstream/registry/store"
)

// integrityStore lists what the routes of overdue evidence and its disposal
// call of the registry's database.
type integrityStore interface {
	OverdueEvidence(ctx context.Context, sc store.Scope, now time.Time, defaultProvisional, floor time.Duration) ([]store.OverdueEvidence, error)
	DisposeEvidence(ctx context.Context, d store.Disposal, defaultProvisional, floor time.Duration) error
}

// defaultProvisional is the provisional period of a council that set none.
func defaultProvisional() time.Duration {
	return time.Duration(store.DefaultRetentionSettings().ProvisionalDays) * retention.Day
}

// checkFloors refuses retention settings below the legal floors of the
// configuration: 422 naming the setting and its floor.
func (s *Server) checkFloors(rs retentionJSON) error {
	err := s.cfg.RetentionFloors.Check(retention.Policy{
		AppealWindow: time.Duration(rs.AppealWindowDays) * retention.Day,
		Provisional:  time.Duration(rs.ProvisionalDays) * retention.Day,
	}, time.Duration(rs.UnlinkedDays)*retention.Day)
	var bf *retention.BelowFloorError
	if errors.As(err, &bf) {
		return &apiError{status: http.StatusUnprocessableEntity, msg: bf.Error(),
			extra: map[string]any{"floor": map[string]any{"setting": bf.Setting + "_days", "days": int(bf.Floor / retention.Day)}}}
	}
	return err
}

// overdueDeadlines returns the candidate-exams in c's scope whose evidence
// is overdue at now, as deadlines of kind evidence_overdue.
func (s *Server) overdueDeadlines(ctx context.Context, c *caller, now time.Time) ([]deadlineJSON, error) {
	list, err := s.db.integrity.OverdueEvidence(ctx, scopeOf(c.user), now, defaultProvisional(), s.cfg.RetentionFloors.Provisional)
	if err != nil {
		return nil, err
	}
	out := make([]deadlineJSON, 0, len(list))
	for _, o := range list {
		out = append(out, deadlineJSON{Kind: store.DeadlineEvidence, Exam: o.ExamID, Candidate: o.CandidateID, Council: o.CouncilID,
			Center: o.CenterID, Site: o.SiteID, Since: o.ExamEnd.UTC(), Due: o.Due.UTC(), Overdue: true,
			OverdueDays: int(now.Sub(o.Due).Hours() / 24)})
	}
	return out, nil
}

// disposeEvidence handles POST
// /api/v1/exams/{exam}/candidates/{candidate}/evidence/disposal {"reason"}:
// the council disposes of overdue evidence (a result is missing after the
// provisional period), with a reason, which is audited. The sweeper may
// then delete what nothing else keeps. Evidence that is not overdue is
// 409 with the reason.
func (s *Server) disposeEvidence(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c, store.RoleCouncil)
	if err != nil {
		return err
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	d := store.Disposal{ExamID: exam, CandidateID: cand, Reason: req.Reason, DisposedBy: c.user.ID, DisposedAt: s.now()}
	if err := s.db.integrity.DisposeEvidence(r.Context(), d, defaultProvisional(), s.cfg.RetentionFloors.Provisional); err != nil {
		return fail(err, "candidate of the exam")
	}
	s.kickOutbox()
	if err := s.audit(r, c, "evidence.dispose", exam+"/"+cand, map[string]any{"reason": req.Reason}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"exam": exam, "candidate": cand, "reason": req.Reason, "disposed_at": d.DisposedAt.UTC()})
	return nil
}
