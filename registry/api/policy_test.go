package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/store"
)

// TestPrivacyPolicy: a staff user who has changed the password but not
// accepted the privacy policy gets a 403 with the code the pages handle
// everywhere but /auth/me, the password change and logout; accepting
// another version is 409; accepting the current one records the version
// and the time (audited), and then the API works.
func TestPrivacyPolicy(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	ctx := context.Background()
	storeWorld := newWorld(t, e)
	_, err := e.store.AddUser(ctx, "newcomer", store.RoleCenter, storeWorld.orgs[1].center)
	must(t, err)
	u, err := e.store.UserByLogin(ctx, "newcomer")
	must(t, err)
	// The temporary password changed, the policy not accepted.
	must(t, markPasswordChanged(ctx, e, u.ID))
	db, _ := databases.Load(e)
	_, err = db.(*pgx.Conn).Exec(ctx, `UPDATE users SET policy_version = '', policy_accepted_at = NULL WHERE id = $1`, u.ID)
	must(t, err)
	tok, _, err := e.store.CreateSession(ctx, u.ID, e.clock.Now(), time.Hour)
	must(t, err)

	for _, p := range []string{"/api/v1/exams", "/api/v1/candidates", "/api/v1/auth/profile"} {
		r := e.do("GET", p, tok, nil)
		var v struct {
			Code, Error   string
			PolicyVersion string `json:"policy_version"`
		}
		if r.code != http.StatusForbidden || json.Unmarshal(r.body, &v) != nil || v.Code != "privacy_policy_required" || v.PolicyVersion != api.PrivacyPolicyVersion {
			t.Errorf("GET %s before the policy is accepted: %d %s", p, r.code, r.body)
		}
	}
	var me struct {
		PrivacyPolicy struct {
			Current, Accepted string
			Required          bool
		} `json:"privacy_policy"`
	}
	if r := e.do("GET", "/api/v1/auth/me", tok, nil); r.code != http.StatusOK || json.Unmarshal(r.body, &me) != nil ||
		!me.PrivacyPolicy.Required || me.PrivacyPolicy.Current != api.PrivacyPolicyVersion {
		t.Fatalf("/auth/me before: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/auth/privacy-policy", tok, map[string]string{"version": "2020-01-01"}); r.code != http.StatusConflict {
		t.Errorf("accepting an old version: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/auth/privacy-policy", tok, map[string]string{"version": api.PrivacyPolicyVersion}); r.code != http.StatusOK {
		t.Fatalf("accept: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/api/v1/exams", tok, nil); r.code != http.StatusOK {
		t.Errorf("GET /api/v1/exams after accepting: %d %s", r.code, r.body)
	}
	u, err = e.store.UserByLogin(ctx, "newcomer")
	must(t, err)
	if u.PolicyVersion != api.PrivacyPolicyVersion || !u.PolicyAcceptedAt.Equal(e.clock.Now()) {
		t.Errorf("recorded acceptance: %q at %v, want %q at %v", u.PolicyVersion, u.PolicyAcceptedAt, api.PrivacyPolicyVersion, e.clock.Now())
	}
	var trail []struct{ Action, Actor string }
	if r := e.do("GET", "/api/v1/audit?user=newcomer", storeWorld.nark, nil); r.code != http.StatusOK || json.Unmarshal(r.body, &trail) != nil ||
		len(trail) == 0 || trail[0].Action != "auth.policy_accepted" {
		t.Errorf("newcomer's trail: %d %s", r.code, r.body)
	}
}

// TestStaffProfiles: a user edits their own profile (a malformed e-mail or
// phone is 422); an organisation's admin reads and edits its users'
// profiles and finds them by name, not another organisation's; NARK reads
// any; a user who is no admin reads no one else's.
func TestStaffProfiles(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	ctx := context.Background()
	clerk := o.tokens[store.RoleCenter]
	for _, bad := range []map[string]string{{"email": "not an address"}, {"phone": "call me"}, {"full_name": strings.Repeat("я", 201)}} {
		if r := e.do("PUT", "/api/v1/auth/profile", clerk, bad); r.code != http.StatusUnprocessableEntity {
			t.Errorf("PUT /auth/profile %v: %d %s", bad, r.code, r.body)
		}
	}
	own := map[string]string{"full_name": "Петрова Анна Сергеевна", "position": "специалист ЦОК", "phone": "+7 (495) 123-45-67",
		"email": "petrova@center1.example", "region": "Москва"}
	if r := e.do("PUT", "/api/v1/auth/profile", clerk, own); r.code != http.StatusOK {
		t.Fatalf("PUT /auth/profile: %d %s", r.code, r.body)
	}
	var got map[string]string
	if r := e.do("GET", "/api/v1/auth/profile", clerk, nil); r.code != http.StatusOK || json.Unmarshal(r.body, &got) != nil || got["email"] != own["email"] ||
		got["full_name"] != own["full_name"] {
		t.Errorf("GET /auth/profile: %d %s", r.code, r.body)
	}
	// The center's clerk is no admin: no one else's profile.
	if r := e.do("GET", "/api/v1/users/center2", clerk, nil); r.code != http.StatusForbidden {
		t.Errorf("a user who is no admin reads another's profile: %d", r.code)
	}
	adminTok, _ := userToken(t, e, "center1-head", store.RoleCenter, o.center)
	must(t, e.store.SetOrgAdmin(ctx, "center1-head", true))
	if r := e.do("GET", "/api/v1/users/center1", adminTok, nil); r.code != http.StatusOK || !json.Valid(r.body) {
		t.Errorf("the admin reads its clerk: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/api/v1/users/center2", adminTok, nil); r.code != http.StatusNotFound {
		t.Errorf("the admin reads another center's user: %d, want 404", r.code)
	}
	if r := e.do("PUT", "/api/v1/users/center2/profile", adminTok, own); r.code != http.StatusNotFound {
		t.Errorf("the admin edits another center's user: %d, want 404", r.code)
	}
	if r := e.do("PUT", "/api/v1/users/center1/profile", adminTok, map[string]string{"full_name": "Петрова А. С.", "position": "ведущий специалист"}); r.code != http.StatusOK {
		t.Errorf("the admin edits its clerk: %d %s", r.code, r.body)
	}
	var list struct {
		Accounts []struct {
			Login    string
			FullName string `json:"full_name"`
			Position string
		}
		Total int
	}
	if r := e.do("GET", "/api/v1/users?q=петрова", adminTok, nil); r.code != http.StatusOK || json.Unmarshal(r.body, &list) != nil ||
		list.Total != 1 || list.Accounts[0].Login != "center1" || list.Accounts[0].Position != "ведущий специалист" {
		t.Errorf("the admin finds the clerk by name: %d %s", r.code, r.body)
	}
	var detail struct {
		Profile struct{ Email, Phone string }
	}
	if r := e.do("GET", "/api/v1/users/center1", w.nark, nil); r.code != http.StatusOK || json.Unmarshal(r.body, &detail) != nil ||
		detail.Profile.Email != "" || detail.Profile.Phone != "" {
		t.Errorf("NARK reads the clerk after the admin's edit cleared the contacts: %d %s", r.code, r.body)
	}
}
