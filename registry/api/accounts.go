package api

import (
	"net/http"

	"github.com/nokstream/nokstream/registry/store"
)

// suspendUser handles POST /api/v1/users/{login}/suspension
// {"suspended","reason"}: NARK suspends any account (its sessions and
// signed links end at once) or reactivates it. A suspension needs a
// reason; both are audited.
func (s *Server) suspendUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := allowRole(c, store.RoleNARK); err != nil {
		return err
	}
	var req struct {
		Suspended bool   `json:"suspended"`
		Reason    string `json:"reason"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Suspended && req.Reason == "" {
		return errorf(http.StatusUnprocessableEntity, "a suspension needs a reason")
	}
	login := r.PathValue("login")
	if login == c.user.Login && req.Suspended {
		return errorf(http.StatusConflict, "an operator does not suspend their own account")
	}
	if err := s.store.SetUserDisabled(r.Context(), login, req.Suspended); err != nil {
		return fail(err, "user")
	}
	s.forgetSessions(login) // its signed URLs: at once here, within RevokeWithin elsewhere
	if err := s.audit(r, c, "user.suspension", login, map[string]any{"suspended": req.Suspended, "reason": req.Reason}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"login": login, "suspended": req.Suspended})
	return nil
}
