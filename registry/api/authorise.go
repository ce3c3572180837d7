package api

import (
	"errors"
	"net/http"

	"github.com/nokstream/nokstream/registry/store"
)

// authoriseCenter handles POST /api/v1/centers/{center}/authorisations
// {"qualifications": [...]}: a council authorises a center, its own or
// another council's (a multi-industry center), for qualifications of its
// own. The center keeps its home council; the authorising council sees the
// center's basic details and only the exams of its qualifications. The
// answer is the center as the council sees it.
func (s *Server) authoriseCenter(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := allowRole(c, store.RoleCouncil); err != nil {
		return err
	}
	var req struct {
		Qualifications []string `json:"qualifications"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	center := r.PathValue("center")
	added, err := s.db.orgs.AuthoriseCenter(r.Context(), center, c.user.OrgID, req.Qualifications, c.user.ID)
	if err != nil {
		return fail(err, "center")
	}
	if err := s.audit(r, c, "center.authorise", center, map[string]any{"council": c.user.OrgID,
		"qualifications": req.Qualifications, "added": nonNil(added)}); err != nil {
		return err
	}
	return s.getCenter(w, r, c)
}

// withdrawAuthorisation handles DELETE
// /api/v1/centers/{center}/authorisations/{qualification}: the council
// withdraws its authorisation of the center for one of its qualifications.
// The center can hold no new exam of it; its exams stay the council's. An
// authorisation the council did not give is 404.
func (s *Server) withdrawAuthorisation(w http.ResponseWriter, r *http.Request, c *caller) error {
	x, err := s.center(r, c)
	if err != nil {
		return err
	}
	if err := allowRole(c, store.RoleCouncil); err != nil {
		return err
	}
	center, code := x.ID, r.PathValue("qualification")
	err = s.db.orgs.WithdrawAuthorisation(r.Context(), center, c.user.OrgID, code)
	if errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, "council %s has not authorised center %s for %s", c.user.OrgID, center, code)
	}
	if err != nil {
		return err
	}
	if err := s.audit(r, c, "center.withdraw", center, map[string]any{"council": c.user.OrgID, "qualification": code}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
