package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/nokstream/nokstream/registry/store"
)

// TestNARKSuspendsAccounts: NARK suspends an account with a reason (its
// sessions end at once) and reactivates it; nobody else may.
func TestNARKSuspendsAccounts(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	council := o.tokens[store.RoleCouncil]
	login := o.users[store.RoleCouncil].Login
	path := "/api/v1/users/" + login + "/suspension"
	if r := e.do("POST", path, o.tokens[store.RoleCenter], map[string]any{"suspended": true, "reason": "x"}); r.code != http.StatusForbidden {
		t.Errorf("a center suspends: %d", r.code)
	}
	if r := e.do("POST", path, w.nark, map[string]any{"suspended": true}); r.code != http.StatusUnprocessableEntity {
		t.Errorf("a suspension without a reason: %d", r.code)
	}
	if r := e.do("POST", "/api/v1/users/nobody/suspension", w.nark, map[string]any{"suspended": true, "reason": "x"}); r.code != http.StatusNotFound {
		t.Errorf("an unknown account: %d", r.code)
	}
	if r := e.do("GET", "/api/v1/auth/me", council, nil); r.code != http.StatusOK {
		t.Fatalf("before: %d", r.code)
	}
	if r := e.do("POST", path, w.nark, map[string]any{"suspended": true, "reason": "проверка НАРК"}); r.code != http.StatusOK {
		t.Fatalf("suspend: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/api/v1/auth/me", council, nil); r.code != http.StatusUnauthorized {
		t.Errorf("the suspended account's session: %d, want 401", r.code)
	}
	if r := e.do("POST", path, w.nark, map[string]any{"suspended": false}); r.code != http.StatusOK {
		t.Fatalf("reactivate: %d %s", r.code, r.body)
	}
	u, err := e.store.UserByLogin(context.Background(), login)
	must(t, err)
	if u.Disabled {
		t.Errorf("still suspended after reactivation")
	}
}

// TestNARKSuspendsOrganisations: NARK suspends a center with a reason: its
// users and its sites' users lose their sessions at once and cannot log
// in, the council's users keep working, and the center's data stays
// readable to NARK and its council; the organisations list and the
// center's audit trail show the suspension; reactivation lets its users
// log in again (their old sessions stay ended).
func TestNARKSuspendsOrganisations(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	ctx := context.Background()
	temp, err := e.store.AddUser(ctx, "center1-clerk", store.RoleCenter, o.center)
	must(t, err)
	loginCode := func() int {
		return e.do("POST", "/api/v1/auth/login", "", map[string]string{"login": "center1-clerk", "password": temp}).code
	}
	if c := loginCode(); c != http.StatusOK {
		t.Fatalf("login before the suspension: %d", c)
	}
	path := "/api/v1/organisations/center/" + o.center + "/suspension"
	for _, tt := range []struct {
		name, path, token string
		body              map[string]any
		want              int
	}{
		{"by the council", path, o.tokens[store.RoleCouncil], map[string]any{"suspended": true, "reason": "x"}, http.StatusForbidden},
		{"without a reason", path, w.nark, map[string]any{"suspended": true}, http.StatusUnprocessableEntity},
		{"of an unknown center", "/api/v1/organisations/center/nowhere/suspension", w.nark, map[string]any{"suspended": true, "reason": "x"}, http.StatusNotFound},
		{"of an unknown kind", "/api/v1/organisations/school/" + o.center + "/suspension", w.nark, map[string]any{"suspended": true, "reason": "x"}, http.StatusUnprocessableEntity},
	} {
		if r := e.do("POST", tt.path, tt.token, tt.body); r.code != tt.want {
			t.Errorf("a suspension %s: %d %s, want %d", tt.name, r.code, r.body, tt.want)
		}
	}
	if r := e.do("POST", path, w.nark, map[string]any{"suspended": true, "reason": "лицензия приостановлена"}); r.code != http.StatusOK {
		t.Fatalf("suspend: %d %s", r.code, r.body)
	}
	for role, want := range map[string]int{store.RoleCenter: http.StatusUnauthorized, store.RoleSite: http.StatusUnauthorized,
		store.RoleCouncil: http.StatusOK, store.RoleExpert: http.StatusOK} {
		if r := e.do("GET", "/api/v1/auth/me", o.tokens[role], nil); r.code != want {
			t.Errorf("the %s user's session while the center is suspended: %d, want %d", role, r.code, want)
		}
	}
	if r := e.do("GET", "/api/v1/auth/me", w.orgs[2].tokens[store.RoleCenter], nil); r.code != http.StatusOK {
		t.Errorf("another center's user: %d", r.code)
	}
	if c := loginCode(); c != http.StatusUnauthorized {
		t.Errorf("login while the center is suspended: %d, want 401", c)
	}
	// The data stays, readable to NARK and the council.
	for _, tok := range []string{w.nark, o.tokens[store.RoleCouncil]} {
		for _, p := range []string{"/api/v1/centers/" + o.center, "/api/v1/exams/" + o.exam, "/api/v1/candidates/" + o.cand} {
			if r := e.do("GET", p, tok, nil); r.code != http.StatusOK {
				t.Errorf("GET %s while the center is suspended: %d", p, r.code)
			}
		}
	}
	var list struct {
		Organisations []struct {
			Kind, ID   string
			Suspended  bool
			Suspension struct{ Reason, By string }
		}
		Total int
	}
	if r := e.do("GET", "/api/v1/organisations?q="+o.center, w.nark, nil); r.code != http.StatusOK || json.Unmarshal(r.body, &list) != nil {
		t.Fatalf("organisations: %d %s", r.code, r.body)
	}
	if list.Total != 1 || len(list.Organisations) != 1 || !list.Organisations[0].Suspended ||
		list.Organisations[0].Suspension.Reason != "лицензия приостановлена" || list.Organisations[0].Suspension.By != "nark" {
		t.Errorf("NARK's list of %s: %+v", o.center, list)
	}
	// The council sees its own chain only: itself, its center and its site.
	if r := e.do("GET", "/api/v1/organisations", o.tokens[store.RoleCouncil], nil); r.code != http.StatusOK || json.Unmarshal(r.body, &list) != nil {
		t.Fatalf("the council's organisations: %d %s", r.code, r.body)
	}
	var ids []string
	for _, x := range list.Organisations {
		ids = append(ids, x.Kind+":"+x.ID)
	}
	if want := []string{"council:council1", "center:center1", "site:site1"}; !slices.Equal(ids, want) || list.Total != 3 {
		t.Errorf("the council's organisations: %v (total %d), want %v", ids, list.Total, want)
	}
	var trail []struct{ Action, Actor string }
	if r := e.do("GET", "/api/v1/audit?org="+o.center, w.nark, nil); r.code != http.StatusOK || json.Unmarshal(r.body, &trail) != nil {
		t.Fatalf("trail: %d %s", r.code, r.body)
	}
	if len(trail) == 0 || trail[0].Action != "org.suspension" || trail[0].Actor != "nark" {
		t.Errorf("the center's trail does not start with NARK's suspension: %+v", trail)
	}

	if r := e.do("POST", path, w.nark, map[string]any{"suspended": false}); r.code != http.StatusOK {
		t.Fatalf("reactivate: %d %s", r.code, r.body)
	}
	if c := loginCode(); c != http.StatusOK {
		t.Errorf("login after the reactivation: %d", c)
	}
	if r := e.do("GET", "/api/v1/auth/me", o.tokens[store.RoleCenter], nil); r.code != http.StatusUnauthorized {
		t.Errorf("a session ended by the suspension came back: %d", r.code)
	}
}

// TestOrgAdminAccounts: an organisation's admin lists its own accounts
// (searched and paged on the server), disables one (its session ends at
// once) and enables it again; it cannot touch another organisation's
// account nor reactivate one NARK suspended, and a user who is no admin
// manages nothing. NARK lists every account.
func TestOrgAdminAccounts(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	ctx := context.Background()
	must(t, e.store.SetOrgAdmin(ctx, o.users[store.RoleCenter].Login, true))
	admin := o.tokens[store.RoleCenter]
	clerk, _ := userToken(t, e, "center1-clerk", store.RoleCenter, o.center)
	if r := e.do("GET", "/api/v1/users", clerk, nil); r.code != http.StatusForbidden {
		t.Errorf("a user who is no admin lists accounts: %d", r.code)
	}
	if r := e.do("POST", "/api/v1/users/center1/suspension", clerk, map[string]any{"suspended": true, "reason": "x"}); r.code != http.StatusForbidden {
		t.Errorf("a user who is no admin suspends their admin: %d", r.code)
	}
	type accounts struct {
		Accounts []struct {
			Login      string
			Disabled   bool
			DisabledBy string `json:"disabled_by"`
			OrgAdmin   bool   `json:"org_admin"`
		}
		Total int
	}
	list := func(token, query string) accounts {
		t.Helper()
		var a accounts
		if r := e.do("GET", "/api/v1/users"+query, token, nil); r.code != http.StatusOK || json.Unmarshal(r.body, &a) != nil {
			t.Fatalf("GET /api/v1/users%s: %d %s", query, r.code, r.body)
		}
		return a
	}
	if a := list(admin, ""); a.Total != 2 || len(a.Accounts) != 2 || a.Accounts[0].Login != "center1" || !a.Accounts[0].OrgAdmin ||
		a.Accounts[1].Login != "center1-clerk" {
		t.Errorf("the center's accounts: %+v", a)
	}
	if a := list(admin, "?q=CLERK"); a.Total != 1 || len(a.Accounts) != 1 || a.Accounts[0].Login != "center1-clerk" {
		t.Errorf("searched for clerk: %+v", a)
	}
	if a := list(admin, "?limit=1&offset=1"); a.Total != 2 || len(a.Accounts) != 1 || a.Accounts[0].Login != "center1-clerk" {
		t.Errorf("the second page of one: %+v", a)
	}
	if a := list(w.nark, "?q=1&limit=3"); a.Total < 5 || len(a.Accounts) != 3 {
		t.Errorf("NARK's accounts with 1 in the login, 3 a page: %+v", a)
	}
	if r := e.do("GET", "/api/v1/users?limit=0", admin, nil); r.code != http.StatusBadRequest {
		t.Errorf("limit=0: %d", r.code)
	}

	suspend := func(token, login string, suspended bool) int {
		body := map[string]any{"suspended": suspended}
		if suspended {
			body["reason"] = "увольнение"
		}
		return e.do("POST", "/api/v1/users/"+login+"/suspension", token, body).code
	}
	if c := suspend(admin, "council1", true); c != http.StatusNotFound {
		t.Errorf("the center's admin disables the council's user: %d, want 404", c)
	}
	if c := suspend(admin, "center1-clerk", true); c != http.StatusOK {
		t.Fatalf("the admin disables the clerk: %d", c)
	}
	if r := e.do("GET", "/api/v1/auth/me", clerk, nil); r.code != http.StatusUnauthorized {
		t.Errorf("the disabled clerk's session: %d, want 401", r.code)
	}
	if a := list(admin, "?q=clerk"); len(a.Accounts) != 1 || !a.Accounts[0].Disabled || a.Accounts[0].DisabledBy != store.RoleCenter {
		t.Errorf("the clerk after the admin disabled them: %+v", a)
	}
	if c := suspend(admin, "center1-clerk", false); c != http.StatusOK {
		t.Errorf("the admin enables the clerk: %d", c)
	}
	if c := suspend(w.nark, "center1-clerk", true); c != http.StatusOK {
		t.Fatalf("NARK suspends the clerk: %d", c)
	}
	if c := suspend(admin, "center1-clerk", false); c != http.StatusConflict {
		t.Errorf("the admin reactivates an account NARK suspended: %d, want 409", c)
	}
	if c := suspend(w.nark, "center1-clerk", false); c != http.StatusOK {
		t.Errorf("NARK reactivates the clerk: %d", c)
	}
	u, err := e.store.UserByLogin(ctx, "center1-clerk")
	must(t, err)
	if u.Disabled || u.DisabledBy != "" {
		t.Errorf("the clerk after NARK reactivated them: disabled %v by %q", u.Disabled, u.DisabledBy)
	}
}
