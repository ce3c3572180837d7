package api

import (
	"errors"
	"net/http"

	"github.com/nokstream/nokstream/registry/store"
)

// createCenter handles POST /api/v1/centers {"id","name","head","website",
// "legal_address","actual_address","postal_address","email","phones",
// "qualifications"}: a council registers a center of its own (the
// qualifications, its own, it authorises the center for). An existing id
// is 409.
func (s *Server) createCenter(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := allowRole(c, store.RoleCouncil); err != nil {
		return err
	}
	var req struct {
		ID             string   `json:"id"`
		Name           string   `json:"name"`
		Head           string   `json:"head"`
		Website        string   `json:"website"`
		LegalAddress   string   `json:"legal_address"`
		ActualAddress  string   `json:"actual_address"`
		PostalAddress  string   `json:"postal_address"`
		Email          string   `json:"email"`
		Phones         []string `json:"phones"`
		Qualifications []string `json:"qualifications"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if _, err := s.db.orgs.Center(r.Context(), req.ID); err == nil {
		return errorf(http.StatusConflict, "center %s exists", req.ID)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	x := store.Center{ID: req.ID, CouncilID: c.user.OrgID, Name: req.Name, Head: req.Head, Website: req.Website, LegalAddress: req.LegalAddress,
		ActualAddress: req.ActualAddress, PostalAddress: req.PostalAddress, Email: req.Email, Phones: req.Phones, Qualifications: nonNil(req.Qualifications)}
	if _, err := s.db.orgs.SaveCenter(r.Context(), x); err != nil {
		return fail(err, "center")
	}
	if err := s.audit(r, c, "center.create", x.ID, map[string]any{"qualifications": x.Qualifications}); err != nil {
		return err
	}
	got, err := s.db.orgs.Center(r.Context(), x.ID)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/centers/"+x.ID)
	writeJSON(w, http.StatusCreated, newCenterJSON(got, c.user))
	return nil
}

// createSite handles POST /api/v1/sites {"id","center","name","address",
// "email","phones","time_zone"}: a council registers a site of one of its centers, a
// center one of its own. A center the caller does not see is 422; an
// existing id 409.
func (s *Server) createSite(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := allowRole(c, store.RoleCouncil, store.RoleCenter); err != nil {
		return err
	}
	var req struct {
		ID       string   `json:"id"`
		Center   string   `json:"center"`
		Name     string   `json:"name"`
		Address  string   `json:"address"`
		Email    string   `json:"email"`
		Phones   []string `json:"phones"`
		TimeZone string   `json:"time_zone"` // store.DefaultTimeZone if not given
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Center == "" && c.user.Role == store.RoleCenter {
		req.Center = c.user.OrgID
	}
	center, err := s.db.orgs.Center(r.Context(), req.Center)
	if err != nil || !visible(c.user, center.Owner()) {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return errorf(http.StatusUnprocessableEntity, "unknown center %q", req.Center)
	}
	if c.user.Role == store.RoleCouncil && center.CouncilID != c.user.OrgID {
		return errorf(http.StatusForbidden, "council %s may not register sites of center %s: it belongs to council %s",
			c.user.OrgID, center.ID, center.CouncilID)
	}
	if _, err := s.db.orgs.Site(r.Context(), req.ID); err == nil {
		return errorf(http.StatusConflict, "site %s exists", req.ID)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	x := store.Site{ID: req.ID, CenterID: center.ID, Name: req.Name, Address: req.Address, Email: req.Email, Phones: req.Phones, TimeZone: req.TimeZone}
	if _, err := s.db.orgs.SaveSite(r.Context(), x); err != nil {
		return fail(err, "site")
	}
	if err := s.audit(r, c, "site.create", x.ID, map[string]any{"center": x.CenterID}); err != nil {
		return err
	}
	got, err := s.db.orgs.Site(r.Context(), x.ID)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/sites/"+x.ID)
	writeJSON(w, http.StatusCreated, newSiteJSON(got))
	return nil
}
