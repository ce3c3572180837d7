package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// accountStore lists what the routes of accounts and organisations call of
// the registry's database.
type accountStore interface {
	Accounts(ctx context.Context, f store.AccountFilter) ([]store.User, int, error)
	SetUserDisabledBy(ctx context.Context, login string, disabled bool, byRole, org string) error
	Organisations(ctx context.Context, f store.OrgFilter) ([]store.Organisation, int, error)
	SetOrgSuspended(ctx context.Context, kind, id string, suspended bool, reason string, by int64, now time.Time) ([]string, error)
	profileStore         // profiles and the privacy policy: policy.go
	candidateSearchStore // the candidate search: candsearch.go
}

// accountRoutes registers the routes of accounts and organisations: NARK
// suspends and reactivates any account or organisation, an organisation's
// admin disables and enables its own users, and both list what they
// manage.
func (s *Server) accountRoutes() {
	s.route("GET /api/v1/users", authBearer, s.listAccounts)
	s.route("POST /api/v1/users/{login}/suspension", authBearer, s.suspendUser)
	s.route("GET /api/v1/organisations", authBearer, s.listOrganisations)
	s.route("POST /api/v1/organisations/{kind}/{id}/suspension", authBearer, s.suspendOrganisation)
	s.profileRoutes()
	s.route("POST /api/v1/candidates/search", authBearer, s.searchCandidates)
}

// accountManager returns the organisation whose accounts c manages: "" for
// NARK (every account), c's own for an organisation's admin; a 403 for
// anyone else.
func accountManager(c *caller) (string, error) {
	if err := allowRole(c, store.RoleNARK, store.RoleCouncil, store.RoleCenter, store.RoleSite); err != nil {
		return "", err
	}
	if c.user.Role == store.RoleNARK {
		return "", nil
	}
	if !c.user.OrgAdmin {
		return "", errorf(http.StatusForbidden, "only NARK and an organisation's admin manage accounts")
	}
	return c.user.OrgID, nil
}

// page reads the paging parameters limit (1..store.MaxPage, 50 by
// default) and offset of r.
func page(r *http.Request) (limit, offset int, err error) {
	q := r.URL.Query()
	limit = 50
	for _, p := range []struct {
		name string
		dst  *int
		max  int
	}{{"limit", &limit, store.MaxPage}, {"offset", &offset, 1 << 30}} {
		v := q.Get(p.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > p.max || (p.name == "limit" && n == 0) {
			return 0, 0, errorf(http.StatusBadRequest, "%s %q: want a number from %d to %d", p.name, v, map[string]int{"limit": 1}[p.name], p.max)
		}
		*p.dst = n
	}
	return limit, offset, nil
}

// accountJSON is an account as the accounts list shows it.
type accountJSON struct {
	Login        string    `json:"login"`
	Role         string    `json:"role"`
	Org          string    `json:"org,omitempty"`
	OrgAdmin     bool      `json:"org_admin"`
	Disabled     bool      `json:"disabled"`
	DisabledBy   string    `json:"disabled_by,omitempty"`
	OrgSuspended bool      `json:"org_suspended"`
	CreatedAt    time.Time `json:"created_at"`
	// The person's name and position: NARK and the organisation's admin
	// read the accounts list, and need to know whose each is.
	FullName string `json:"full_name"`
	Position string `json:"position"`
	Region   string `json:"region"`
}

func newAccountJSON(u store.User) accountJSON {
	return accountJSON{Login: u.Login, Role: u.Role, Org: u.OrgID, OrgAdmin: u.OrgAdmin, Disabled: u.Disabled,
		DisabledBy: u.DisabledBy, OrgSuspended: u.OrgSuspended, CreatedAt: u.CreatedAt.UTC(),
		FullName: u.Profile.FullName, Position: u.Profile.Position, Region: u.Profile.Region}
}

// listAccounts handles GET /api/v1/users?q=&limit=&offset=: NARK lists
// every account, an organisation's admin those of its organisation; q
// searches logins (and names and e-mails), on the server, a page at a
// time.
func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request, c *caller) error {
	org, err := accountManager(c)
	if err != nil {
		return err
	}
	limit, offset, err := page(r)
	if err != nil {
		return err
	}
	list, total, err := s.db.accounts.Accounts(r.Context(), store.AccountFilter{Org: org, Query: searchQuery(r), Limit: limit, Offset: offset})
	if err != nil {
		return err
	}
	out := make([]accountJSON, 0, len(list))
	for _, u := range list {
		out = append(out, newAccountJSON(u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"accounts": out, "total": total, "limit": limit, "offset": offset})
	return nil
}

// searchQuery is the search query q of r, cut to a sensible length.
func searchQuery(r *http.Request) string { return limit(r.URL.Query().Get("q"), 200) }

// suspendUser handles POST /api/v1/users/{login}/suspension
// {"suspended","reason"}: NARK suspends any account, an organisation's
// admin disables a user of its organisation (its sessions and signed links
// end at once), or reactivates it. A suspension needs a reason; both are
// audited. An admin cannot reactivate an account NARK suspended (409).
func (s *Server) suspendUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	org, err := accountManager(c)
	if err != nil {
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
	if err := s.db.accounts.SetUserDisabledBy(r.Context(), login, req.Suspended, c.user.Role, org); err != nil {
		return fail(err, "user")
	}
	s.forgetSessions(login) // its signed URLs: at once here, within RevokeWithin elsewhere
	if err := s.audit(r, c, "user.suspension", login, map[string]any{"suspended": req.Suspended, "reason": req.Reason}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"login": login, "suspended": req.Suspended})
	return nil
}

// organisationJSON is an organisation as the organisations list shows it.
type organisationJSON struct {
	Kind    string `json:"kind"`
	ID      string `json:"id"`
	Name    string `json:"name"`
	Parent  string `json:"parent,omitempty"`
	Council string `json:"council,omitempty"`
	// CouncilName names Council: a council lists the centers of other
	// councils it authorised, and does not read those councils.
	CouncilName string          `json:"council_name,omitempty"`
	Users       int             `json:"users"`
	Suspended   bool            `json:"suspended"`
	Suspension  *suspensionJSON `json:"suspension,omitempty"`
}

type suspensionJSON struct {
	Reason string    `json:"reason"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
}

// listOrganisations handles GET /api/v1/organisations?kind=&q=&limit=&offset=:
// the councils, centers and sites the caller sees (NARK all, a council
// its own with its centers and sites, a center its own with its sites),
// with their accounts' count and any suspension. A council also sees the
// centers of other councils that it authorised (or has exams at) and
// their sites, as on the centers page: read-only, since only NARK
// suspends an organisation and only the home council edits a center.
func (s *Server) listOrganisations(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := allowRole(c, store.RoleNARK, store.RoleCouncil, store.RoleCenter); err != nil {
		return err
	}
	limit, offset, err := page(r)
	if err != nil {
		return err
	}
	kind := r.URL.Query().Get("kind")
	switch kind {
	case "", store.OrgCouncil, store.OrgCenter, store.OrgSite:
	default:
		return errorf(http.StatusBadRequest, "kind %q is not council, center or site", kind)
	}
	list, total, err := s.db.accounts.Organisations(r.Context(), store.OrgFilter{Scope: scopeOf(c.user), Kind: kind,
		Query: searchQuery(r), Limit: limit, Offset: offset})
	if err != nil {
		return err
	}
	out := make([]organisationJSON, 0, len(list))
	for _, o := range list {
		j := organisationJSON{Kind: o.Kind, ID: o.ID, Name: o.Name, Parent: o.Parent, Council: o.Council, CouncilName: o.CouncilName, Users: o.Users, Suspended: o.Suspension != nil}
		if o.Suspension != nil {
			j.Suspension = &suspensionJSON{Reason: o.Suspension.Reason, By: o.Suspension.By, At: o.Suspension.At.UTC()}
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, map[string]any{"organisations": out, "total": total, "limit": limit, "offset": offset})
	return nil
}

// suspendOrganisation handles POST /api/v1/organisations/{kind}/{id}/suspension
// {"suspended","reason"}: NARK suspends a council, center or site (its
// users, and a center's sites' users, can no longer log in, and their
// sessions end at once; its data stays, readable to NARK and its
// council), or reactivates it. A suspension needs a reason; both are
// audited with the organisation's id as the object, so its trail shows
// them.
func (s *Server) suspendOrganisation(w http.ResponseWriter, r *http.Request, c *caller) error {
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
	kind, id := r.PathValue("kind"), r.PathValue("id")
	ended, err := s.db.accounts.SetOrgSuspended(r.Context(), kind, id, req.Suspended, req.Reason, c.user.ID, s.now())
	if err != nil {
		return fail(err, "organisation")
	}
	for _, login := range ended {
		s.forgetSessions(login)
	}
	if err := s.audit(r, c, "org.suspension", id, map[string]any{"kind": kind, "suspended": req.Suspended, "reason": req.Reason,
		"sessions_ended": len(ended)}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"kind": kind, "id": id, "suspended": req.Suspended})
	return nil
}
