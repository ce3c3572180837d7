package api

import (
	"context"
	"net/http"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// orgStore lists what the routes of councils, centers, sites and
// qualifications call of the registry's database.
type orgStore interface {
	Councils(ctx context.Context, sc store.Scope) ([]store.Council, error)
	Council(ctx context.Context, id string) (store.Council, error)
	SaveCouncil(ctx context.Context, c store.Council) (bool, error)
	CouncilRetentionSettings(ctx context.Context, council string) (map[string]store.RetentionSettings, error)
	SetRetentionSettings(ctx context.Context, council, qualification string, rs store.RetentionSettings, by int64) error
	Centers(ctx context.Context, sc store.Scope) ([]store.Center, error)
	Center(ctx context.Context, id string) (store.Center, error)
	SaveCenter(ctx context.Context, c store.Center) (bool, error)
	AuthoriseCenter(ctx context.Context, center, council string, codes []string, by int64) ([]string, error)
	WithdrawAuthorisation(ctx context.Context, center, council, code string) error
	Sites(ctx context.Context, sc store.Scope) ([]store.Site, error)
	Site(ctx context.Context, id string) (store.Site, error)
	SaveSite(ctx context.Context, s store.Site) (bool, error)
	SiteDevices(ctx context.Context, site string) ([]store.SiteDevice, error)
	Qualifications(ctx context.Context) ([]store.Qualification, error)
	Qualification(ctx context.Context, code string) (store.Qualification, error)
	AddAssessmentTool(ctx context.Context, code string, t store.AssessmentTool) error
}

type commissionJSON struct {
	Members []string `json:"members"`
	Address string   `json:"address"`
	Email   string   `json:"email"`
	Phones  []string `json:"phones"`
}

type councilJSON struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Commission commissionJSON `json:"commission"`
	// Missing lists what the appeals commission lacks before a result may
	// be entered.
	Missing   []string  `json:"missing"`
	UpdatedAt time.Time `json:"updated_at"`
}

func newCouncilJSON(c store.Council) councilJSON {
	return councilJSON{ID: c.ID, Name: c.Name, Commission: commissionJSON(c.Commission),
		Missing: nonNil(c.Commission.Missing()), UpdatedAt: c.UpdatedAt.UTC()}
}

func nonNil[T any](l []T) []T {
	if l == nil {
		return []T{}
	}
	return l
}

// me handles GET /api/v1/auth/me: who the caller is.
func (s *Server) me(w http.ResponseWriter, _ *http.Request, c *caller) error {
	age := 0
	if !c.user.MustChangePassword {
		age = max(int(s.now().Sub(c.user.PasswordChangedAt).Hours()/24), 0)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": c.user.ID, "login": c.user.Login, "role": c.user.Role, "org": c.user.OrgID,
		"must_change_password": c.user.MustChangePassword, "password_age_days": age, "org_admin": c.user.OrgAdmin,
		"full_name": c.user.Profile.FullName, "privacy_policy": newPolicyJSON(c.user),
	})
	return nil
}

func (s *Server) listCouncils(w http.ResponseWriter, r *http.Request, c *caller) error {
	list, err := s.db.orgs.Councils(r.Context(), scopeOf(c.user))
	if err != nil {
		return err
	}
	out := []councilJSON{}
	for _, x := range list {
		if visible(c.user, x.Owner()) {
			out = append(out, newCouncilJSON(x))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// council returns the council of the route after checking c may see it
// with one of roles.
func (s *Server) council(r *http.Request, c *caller, roles ...string) (store.Council, error) {
	x, err := s.db.orgs.Council(r.Context(), r.PathValue("council"))
	if err != nil {
		return x, fail(err, "council")
	}
	return x, allow(c, x.Owner(), "council", roles...)
}

func (s *Server) getCouncil(w http.ResponseWriter, r *http.Request, c *caller) error {
	x, err := s.council(r, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newCouncilJSON(x))
	return nil
}

// setCommission handles PUT /api/v1/councils/{council}/commission.
func (s *Server) setCommission(w http.ResponseWriter, r *http.Request, c *caller) error {
	x, err := s.council(r, c, store.RoleCouncil)
	if err != nil {
		return err
	}
	var req commissionJSON
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	x.Commission = store.Commission(req)
	if _, err := s.db.orgs.SaveCouncil(r.Context(), x); err != nil {
		return fail(err, "council")
	}
	if err := s.audit(r, c, "council.commission_set", x.ID, map[string]any{"members": len(req.Members)}); err != nil {
		return err
	}
	x, err = s.db.orgs.Council(r.Context(), x.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newCouncilJSON(x))
	return nil
}

type retentionJSON struct {
	AppealWindowDays int `json:"appeal_window_days"`
	ProvisionalDays  int `json:"provisional_days"`
	UnlinkedDays     int `json:"unlinked_days"`
}

// getRetention handles GET /api/v1/councils/{council}/retention.
func (s *Server) getRetention(w http.ResponseWriter, r *http.Request, c *caller) error {
	x, err := s.council(r, c)
	if err != nil {
		return err
	}
	all, err := s.db.orgs.CouncilRetentionSettings(r.Context(), x.ID)
	if err != nil {
		return err
	}
	quals := map[string]retentionJSON{}
	for code, rs := range all {
		if code != "" {
			quals[code] = retentionJSON(rs)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"council": retentionJSON(all[""]), "qualifications": quals})
	return nil
}

// setRetention handles PUT /api/v1/councils/{council}/retention: the
// council's settings, or with "qualification" those of one of its
// qualifications.
func (s *Server) setRetention(w http.ResponseWriter, r *http.Request, c *caller) error {
	x, err := s.council(r, c, store.RoleCouncil)
	if err != nil {
		return err
	}
	var req struct {
		Qualification string `json:"qualification"`
		retentionJSON
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := s.checkFloors(req.retentionJSON); err != nil {
		return err
	}
	if err := s.db.orgs.SetRetentionSettings(r.Context(), x.ID, req.Qualification, store.RetentionSettings(req.retentionJSON), c.user.ID); err != nil {
		return fail(err, "qualification")
	}
	if err := s.audit(r, c, "council.retention_set", x.ID, map[string]any{"qualification": req.Qualification,
		"appeal_window_days": req.AppealWindowDays, "provisional_days": req.ProvisionalDays, "unlinked_days": req.UnlinkedDays}); err != nil {
		return err
	}
	return s.getRetention(w, r, c)
}

type centerJSON struct {
	ID      string `json:"id"`
	Council string `json:"council"`
	// CouncilName is the home council's name, for whoever sees the center:
	// a council that authorised it does not read the home council itself.
	CouncilName    string   `json:"council_name"`
	Name           string   `json:"name"`
	Head           string   `json:"head"`
	Website        string   `json:"website"`
	LegalAddress   string   `json:"legal_address"`
	ActualAddress  string   `json:"actual_address"`
	PostalAddress  string   `json:"postal_address"`
	Email          string   `json:"email"`
	Phones         []string `json:"phones"`
	Qualifications []string `json:"qualifications"`
	// Authorisations are the center's authorisations by council and
	// qualification; a council reads only its own.
	Authorisations []authorisationJSON `json:"authorisations"`
	Missing        []string            `json:"missing"` // required details the center lacks
	UpdatedAt      time.Time           `json:"updated_at"`
}

type authorisationJSON struct {
	Council       string    `json:"council"`
	CouncilName   string    `json:"council_name"`
	Qualification string    `json:"qualification"`
	AuthorisedAt  time.Time `json:"authorised_at"`
}

// newCenterJSON is center c as u reads it: a council sees the
// qualifications it authorised the center for, and nothing of the other
// councils' part of a multi-industry center.
func newCenterJSON(c store.Center, u store.User) centerJSON {
	out := centerJSON{ID: c.ID, Council: c.CouncilID, CouncilName: c.CouncilName, Name: c.Name, Head: c.Head, Website: c.Website,
		LegalAddress: c.LegalAddress, ActualAddress: c.ActualAddress, PostalAddress: c.PostalAddress, Email: c.Email, Phones: nonNil(c.Phones),
		Qualifications: []string{}, Authorisations: []authorisationJSON{}, Missing: nonNil(c.MissingDetails()), UpdatedAt: c.UpdatedAt.UTC()}
	for _, a := range c.Authorisations {
		if u.Role == store.RoleCouncil && a.Council != u.OrgID {
			continue
		}
		out.Qualifications = append(out.Qualifications, a.Qualification)
		out.Authorisations = append(out.Authorisations, authorisationJSON{Council: a.Council, CouncilName: a.CouncilName, Qualification: a.Qualification,
			AuthorisedAt: a.AuthorisedAt.UTC()})
	}
	return out
}

func (s *Server) listCenters(w http.ResponseWriter, r *http.Request, c *caller) error {
	list, err := s.db.orgs.Centers(r.Context(), scopeOf(c.user))
	if err != nil {
		return err
	}
	out := []centerJSON{}
	for _, x := range list {
		if visible(c.user, x.Owner()) {
			out = append(out, newCenterJSON(x, c.user))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) center(r *http.Request, c *caller, roles ...string) (store.Center, error) {
	x, err := s.db.orgs.Center(r.Context(), r.PathValue("center"))
	if err != nil {
		return x, fail(err, "center")
	}
	return x, allow(c, x.Owner(), "center", roles...)
}

func (s *Server) getCenter(w http.ResponseWriter, r *http.Request, c *caller) error {
	x, err := s.center(r, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newCenterJSON(x, c.user))
	return nil
}

// updateCenter handles PUT /api/v1/centers/{center}: the center's details,
// by the center or its council.
func (s *Server) updateCenter(w http.ResponseWriter, r *http.Request, c *caller) error {
	x, err := s.center(r, c, store.RoleCenter, store.RoleCouncil)
	if err != nil {
		return err
	}
	var req struct {
		Name          string   `json:"name"`
		Head          string   `json:"head"`
		Website       string   `json:"website"`
		LegalAddress  string   `json:"legal_address"`
		ActualAddress string   `json:"actual_address"`
		PostalAddress string   `json:"postal_address"`
		Email         string   `json:"email"`
		Phones        []string `json:"phones"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Name == "" {
		req.Name = x.Name
	}
	x.Name, x.Head, x.Website, x.LegalAddress, x.ActualAddress, x.PostalAddress, x.Email, x.Phones =
		req.Name, req.Head, req.Website, req.LegalAddress, req.ActualAddress, req.PostalAddress, req.Email, req.Phones
	x.Qualifications = nil
	if _, err := s.db.orgs.SaveCenter(r.Context(), x); err != nil {
		return fail(err, "center")
	}
	if err := s.audit(r, c, "center.update", x.ID, nil); err != nil {
		return err
	}
	return s.getCenter(w, r, c)
}

// setCenterQualifications handles PUT /api/v1/centers/{center}/qualifications:
// the council authorises its center for a list of its qualifications.
func (s *Server) setCenterQualifications(w http.ResponseWriter, r *http.Request, c *caller) error {
	x, err := s.center(r, c, store.RoleCouncil)
	if err != nil {
		return err
	}
	var req struct {
		Qualifications []string `json:"qualifications"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	x.Qualifications = nonNil(req.Qualifications)
	if _, err := s.db.orgs.SaveCenter(r.Context(), x); err != nil {
		return fail(err, "center")
	}
	if err := s.audit(r, c, "center.qualifications_set", x.ID, map[string]any{"qualifications": x.Qualifications}); err != nil {
		return err
	}
	return s.getCenter(w, r, c)
}

type siteJSON struct {
	ID        string    `json:"id"`
	Center    string    `json:"center"`
	Council   string    `json:"council"`
	Name      string    `json:"name"`
	Address   string    `json:"address"`
	Email     string    `json:"email"`
	Phones    []string  `json:"phones"`
	TimeZone  string    `json:"time_zone"`
	UpdatedAt time.Time `json:"updated_at"`
}

func newSiteJSON(x store.Site) siteJSON {
	return siteJSON{ID: x.ID, Center: x.CenterID, Council: x.CouncilID, Name: x.Name, Address: x.Address,
		Email: x.Email, Phones: nonNil(x.Phones), TimeZone: x.TimeZone, UpdatedAt: x.UpdatedAt.UTC()}
}

func (s *Server) listSites(w http.ResponseWriter, r *http.Request, c *caller) error {
	list, err := s.db.orgs.Sites(r.Context(), scopeOf(c.user))
	if err != nil {
		return err
	}
	out := []siteJSON{}
	for _, x := range list {
		if visible(c.user, x.Owner()) {
			out = append(out, newSiteJSON(x))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) site(r *http.Request, c *caller, roles ...string) (store.Site, error) {
	x, err := s.db.orgs.Site(r.Context(), r.PathValue("site"))
	if err != nil {
		return x, fail(err, "site")
	}
	return x, allow(c, x.Owner(), "site", roles...)
}

func (s *Server) getSite(w http.ResponseWriter, r *http.Request, c *caller) error {
	x, err := s.site(r, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newSiteJSON(x))
	return nil
}

// updateSite handles PUT /api/v1/sites/{site}: the site's details, by the
// site or its center.
func (s *Server) updateSite(w http.ResponseWriter, r *http.Request, c *caller) error {
	x, err := s.site(r, c, store.RoleSite, store.RoleCenter, store.RoleCouncil)
	if err != nil {
		return err
	}
	var req struct {
		Name     string   `json:"name"`
		Address  string   `json:"address"`
		Email    string   `json:"email"`
		Phones   []string `json:"phones"`
		TimeZone string   `json:"time_zone"` // unchanged if not given
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	x.Name, x.Address, x.Email, x.Phones, x.TimeZone = req.Name, req.Address, req.Email, req.Phones, req.TimeZone
	if _, err := s.db.orgs.SaveSite(r.Context(), x); err != nil {
		return fail(err, "site")
	}
	if err := s.audit(r, c, "site.update", x.ID, nil); err != nil {
		return err
	}
	return s.getSite(w, r, c)
}

// deviceSessionJSON is the latest start or stop of a device's stream.
type deviceSessionJSON struct {
	State  string     `json:"state"` // open, ended, lost, ingest or none
	At     *time.Time `json:"at,omitempty"`
	Detail string     `json:"detail"`
}

// siteDevices handles GET /api/v1/sites/{site}/devices: the site's devices
// with whether ingest pulls them and their stream's latest session, for
// the site console's health grid.
func (s *Server) siteDevices(w http.ResponseWriter, r *http.Request, c *caller) error {
	x, err := s.site(r, c)
	if err != nil {
		return err
	}
	devs, err := s.db.orgs.SiteDevices(r.Context(), x.ID)
	if err != nil {
		return err
	}
	out := []map[string]any{}
	for _, d := range devs {
		sess := deviceSessionJSON{State: d.Session.State, Detail: d.Session.Detail}
		if !d.Session.At.IsZero() {
			at := d.Session.At.UTC()
			sess.At = &at
		}
		out = append(out, map[string]any{"site": d.Site, "name": d.Name, "stream": d.StreamID(), "kind": d.Kind,
			"disabled": d.Disabled, "created_at": d.CreatedAt.UTC(), "pulled": d.Pulled, "session": sess})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

type toolJSON struct {
	Reference string `json:"reference"`
	Link      string `json:"link"`
}

type qualificationJSON struct {
	Code          string     `json:"code"`
	Council       string     `json:"council"`
	Name          string     `json:"name"`
	ValidityYears int        `json:"validity_years"`
	Tools         []toolJSON `json:"tools"`
}

func newQualificationJSON(q store.Qualification) qualificationJSON {
	out := qualificationJSON{Code: q.Code, Council: q.CouncilID, Name: q.Name, ValidityYears: q.ValidityYears, Tools: []toolJSON{}}
	for _, t := range q.Tools {
		out.Tools = append(out.Tools, toolJSON{Reference: t.Reference, Link: t.Link})
	}
	return out
}

// listQualifications handles GET /api/v1/qualifications: the register of
// qualifications is public to every staff user.
func (s *Server) listQualifications(w http.ResponseWriter, r *http.Request, _ *caller) error {
	list, err := s.db.orgs.Qualifications(r.Context())
	if err != nil {
		return err
	}
	out := []qualificationJSON{}
	for _, q := range list {
		out = append(out, newQualificationJSON(q))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getQualification(w http.ResponseWriter, r *http.Request, _ *caller) error {
	q, err := s.db.orgs.Qualification(r.Context(), r.PathValue("code"))
	if err != nil {
		return fail(err, "qualification")
	}
	writeJSON(w, http.StatusOK, newQualificationJSON(q))
	return nil
}

// addTool handles POST /api/v1/qualifications/{code}/tools: the council
// that keeps the qualification adds a set of assessment tools.
func (s *Server) addTool(w http.ResponseWriter, r *http.Request, c *caller) error {
	q, err := s.db.orgs.Qualification(r.Context(), r.PathValue("code"))
	if err != nil {
		return fail(err, "qualification")
	}
	if err := allow(c, q.Owner(), "qualification", store.RoleCouncil); err != nil {
		// Every staff user reads the register: the qualification is
		// known, only changing it is reserved to its council.
		return errorf(http.StatusForbidden, "only the council that keeps qualification %s may change it", q.Code)
	}
	var req toolJSON
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := s.db.orgs.AddAssessmentTool(r.Context(), q.Code, store.AssessmentTool{Reference: req.Reference, Link: req.Link}); err != nil {
		return fail(err, "qualification")
	}
	if err := s.audit(r, c, "qualification.tool_add", q.Code, map[string]any{"reference": req.Reference}); err != nil {
		return err
	}
	return s.getQualification(w, r, c)
}
