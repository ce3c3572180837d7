package api

import (
	"context"
	"net/http"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// PrivacyPolicyVersion is the version of the privacy policy (the text the
// pages show, privacy.html) that every staff user accepts before anything
// else works. A new version makes everyone accept it again.
const PrivacyPolicyVersion = "2026-12-01"

// policyCode is the "code" of the 403 answered to a staff user who has not
// accepted the current privacy policy: the pages show the policy on it.
const policyCode = "privacy_policy_required"

// errPolicyRequired answers every route but the few of authPasswordChange
// and authPolicy until the caller accepts the current privacy policy.
var errPolicyRequired = &apiError{status: http.StatusForbidden,
	msg:   "accept the privacy policy first: POST /api/v1/auth/privacy-policy {\"version\": \"" + PrivacyPolicyVersion + "\"}",
	extra: map[string]any{"code": policyCode, "policy_version": PrivacyPolicyVersion}}

// profileStore is what the routes of staff profiles and the privacy
// policy need of the registry's database; *store.Store is one.
type profileStore interface {
	UserByLogin(ctx context.Context, login string) (store.User, error)
	SetProfile(ctx context.Context, login, org string, p store.Profile) error
	AcceptPolicy(ctx context.Context, id int64, version string, now time.Time) error
}

// profileRoutes registers the routes of the privacy policy and of staff
// profiles.
func (s *Server) profileRoutes() {
	s.route("POST /api/v1/auth/privacy-policy", authPolicy, s.acceptPolicy)
	s.route("GET /api/v1/auth/profile", authBearer, s.ownProfile)
	s.route("PUT /api/v1/auth/profile", authBearer, s.setOwnProfile)
	s.route("GET /api/v1/users/{login}", authBearer, s.getAccount)
	s.route("PUT /api/v1/users/{login}/profile", authBearer, s.setAccountProfile)
}

// policyJSON is the state of a user's acceptance of the privacy policy.
type policyJSON struct {
	Current    string     `json:"current"`
	Accepted   string     `json:"accepted,omitempty"`
	AcceptedAt *time.Time `json:"accepted_at,omitempty"`
	Required   bool       `json:"required"`
}

func newPolicyJSON(u store.User) policyJSON {
	p := policyJSON{Current: PrivacyPolicyVersion, Accepted: u.PolicyVersion, Required: u.PolicyVersion != PrivacyPolicyVersion}
	if u.PolicyVersion != "" {
		at := u.PolicyAcceptedAt.UTC()
		p.AcceptedAt = &at
	}
	return p
}

// acceptPolicy handles POST /api/v1/auth/privacy-policy {"version"}: the
// caller accepts the current privacy policy (409 for another version,
// such as one the page showed before an upgrade). Recorded with the time,
// and audited.
func (s *Server) acceptPolicy(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req struct {
		Version string `json:"version"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Version != PrivacyPolicyVersion {
		return errorf(http.StatusConflict, "version %q is not the current privacy policy %q: read it again", req.Version, PrivacyPolicyVersion)
	}
	now := s.now()
	if err := s.db.accounts.AcceptPolicy(r.Context(), c.user.ID, req.Version, now); err != nil {
		return err
	}
	if err := s.audit(r, c, "auth.policy_accepted", c.user.Login, map[string]any{"version": req.Version}); err != nil {
		return err
	}
	c.user.PolicyVersion, c.user.PolicyAcceptedAt = req.Version, now
	writeJSON(w, http.StatusOK, newPolicyJSON(c.user))
	return nil
}

// profileJSON is a staff user's profile.
type profileJSON struct {
	FullName string `json:"full_name"`
	Position string `json:"position"`
	Phone    string `json:"phone"`
	Email    string `json:"email"`
	Region   string `json:"region"`
}

func newProfileJSON(p store.Profile) profileJSON {
	return profileJSON{FullName: p.FullName, Position: p.Position, Phone: p.Phone, Email: p.Email, Region: p.Region}
}

func (p profileJSON) profile() store.Profile {
	return store.Profile{FullName: p.FullName, Position: p.Position, Phone: p.Phone, Email: p.Email, Region: p.Region}
}

// ownProfile handles GET /api/v1/auth/profile: the caller's own profile.
func (s *Server) ownProfile(w http.ResponseWriter, _ *http.Request, c *caller) error {
	writeJSON(w, http.StatusOK, newProfileJSON(c.user.Profile))
	return nil
}

// setOwnProfile handles PUT /api/v1/auth/profile: the caller edits their
// own profile (every field; an empty one is cleared).
func (s *Server) setOwnProfile(w http.ResponseWriter, r *http.Request, c *caller) error {
	return s.saveProfile(w, r, c, c.user.Login, "")
}

// saveProfile replaces the profile of login (of organisation org, if not
// "") from r's body, audits it without the values, and answers it.
func (s *Server) saveProfile(w http.ResponseWriter, r *http.Request, c *caller, login, org string) error {
	var req profileJSON
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	p := req.profile()
	if err := s.db.accounts.SetProfile(r.Context(), login, org, p); err != nil {
		return fail(err, "user")
	}
	// Which fields, not what they say: the audit log keeps no more personal
	// data than it must.
	if err := s.audit(r, c, "user.profile", login, nil); err != nil {
		return err
	}
	_ = p.Normalize()
	writeJSON(w, http.StatusOK, newProfileJSON(p))
	return nil
}

// accountDetailJSON is an account with its profile, for NARK and its
// organisation's admin.
type accountDetailJSON struct {
	accountJSON
	Profile       profileJSON `json:"profile"`
	PrivacyPolicy policyJSON  `json:"privacy_policy"`
}

// getAccount handles GET /api/v1/users/{login}: NARK reads any account, an
// organisation's admin one of its organisation (404 otherwise), with its
// profile and its acceptance of the privacy policy.
func (s *Server) getAccount(w http.ResponseWriter, r *http.Request, c *caller) error {
	org, err := accountManager(c)
	if err != nil {
		return err
	}
	u, err := s.db.accounts.UserByLogin(r.Context(), r.PathValue("login"))
	if err != nil || (org != "" && u.OrgID != org) {
		return fail(store.ErrNotFound, "user")
	}
	writeJSON(w, http.StatusOK, accountDetailJSON{accountJSON: newAccountJSON(u), Profile: newProfileJSON(u.Profile), PrivacyPolicy: newPolicyJSON(u)})
	return nil
}

// setAccountProfile handles PUT /api/v1/users/{login}/profile: NARK edits
// any account's profile, an organisation's admin one of its organisation's.
func (s *Server) setAccountProfile(w http.ResponseWriter, r *http.Request, c *caller) error {
	org, err := accountManager(c)
	if err != nil {
		return err
	}
	return s.saveProfile(w, r, c, r.PathValue("login"), org)
}
