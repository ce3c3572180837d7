package api_test

import (
	"context"
	"net/http"
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
