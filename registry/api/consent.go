package api

import (
	"context"
	"net/http"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// consentStore lists what the consent routes call of the registry's
// database.
type consentStore interface {
	RecordConsent(ctx context.Context, c *store.Consent) error
}

type consentJSON struct {
	Exam       string    `json:"exam"`
	Version    string    `json:"version"`
	Page       string    `json:"page"`
	AcceptedAt time.Time `json:"accepted_at"`
}

// recordConsent handles POST /api/v1/exam/consent {"version","page"}: the
// candidate, with their exam token, consents to the processing of their
// personal data and the recording of the exam (the version of the text
// shown, and the page it was shown on). Audited; the candidate's streams
// are refused until it is recorded.
func (s *Server) recordConsent(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req struct {
		Version string `json:"version"`
		Page    string `json:"page"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	k := &store.Consent{ExamID: c.exam.ExamID, CandidateID: c.exam.CandidateID, Version: req.Version, Page: req.Page, AcceptedAt: s.now()}
	if err := s.db.consent.RecordConsent(r.Context(), k); err != nil {
		return fail(err, "candidate of the exam")
	}
	if err := s.audit(r, nil, "exam.consent", k.ExamID+"/"+k.CandidateID, map[string]any{"version": k.Version, "page": k.Page}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, consentJSON{Exam: k.ExamID, Version: k.Version, Page: k.Page, AcceptedAt: k.AcceptedAt.UTC()})
	return nil
}
