package api

import (
	"context"
	"net/http"

	"github.com/nokstream/nokstream/registry/store"
)

// candidateSearchStore is what the candidate search needs of the
// registry's database; *store.Store is one.
type candidateSearchStore interface {
	SearchCandidates(ctx context.Context, f store.CandidateSearch) ([]store.Candidate, int, error)
}

// searchCandidates handles POST /api/v1/candidates/search {"q","limit","offset"}:
// the candidates the caller sees whose name contains q, or whose СНИЛС
// contains q's digits for a role that reads СНИЛС, a page at a time, by
// name. A POST, so that a name or a СНИЛС never travels in a URL (access
// logs, proxies).
func (s *Server) searchCandidates(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := allowRole(c, store.RoleNARK, store.RoleCouncil, store.RoleCenter, store.RoleSite, store.RoleExpert); err != nil {
		return err
	}
	var req struct {
		Q      string `json:"q"`
		Limit  int    `json:"limit"`
		Offset int    `json:"offset"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Limit < 0 || req.Limit > store.MaxPage || req.Offset < 0 {
		return errorf(http.StatusBadRequest, "limit %d, offset %d: want a limit of 1 to %d (50 if 0) and an offset of 0 or more", req.Limit, req.Offset, store.MaxPage)
	}
	if req.Limit == 0 {
		req.Limit = 50
	}
	list, total, err := s.db.accounts.SearchCandidates(r.Context(), store.CandidateSearch{Scope: scopeOf(c.user), Query: limit(req.Q, 200),
		BySNILS: candidateFieldsOf(c.user.Role).snils, Limit: req.Limit, Offset: req.Offset})
	if err != nil {
		return err
	}
	out := []candidateJSON{}
	for _, k := range list {
		if visible(c.user, k.Owner()) {
			out = append(out, newCandidateJSON(k, c.user))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"candidates": out, "total": total, "limit": req.Limit, "offset": req.Offset})
	return nil
}
