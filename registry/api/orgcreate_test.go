package api_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/nokstream/nokstream/registry/store"
)

// TestCouncilRegistersCenters: a council registers a center with its own
// qualifications and a site of it, and edits both; another council sees
// neither; an existing id is 409.
func TestCouncilRegistersCenters(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o1, o2 := w.orgs[1], w.orgs[2]
	council, center := o1.tokens[store.RoleCouncil], o1.tokens[store.RoleCenter]
	body := map[string]any{"id": "center-north", "name": "ЦОК Север", "head": "Петров П. П.", "qualifications": []string{o1.qual}}
	if r := e.do("POST", "/api/v1/centers", council, map[string]any{"id": "center-bad", "name": "X", "qualifications": []string{o2.qual}}); r.code != http.StatusUnprocessableEntity {
		t.Errorf("a center with another council's qualification: %d %s", r.code, r.body)
	}
	r := e.do("POST", "/api/v1/centers", council, body)
	if r.code != http.StatusCreated {
		t.Fatalf("create center: %d %s", r.code, r.body)
	}
	got := decode[struct {
		Council        string
		Qualifications []string
	}](t, r)
	if got.Council != o1.council || len(got.Qualifications) != 1 || got.Qualifications[0] != o1.qual {
		t.Errorf("created center %+v", got)
	}
	if r := e.do("POST", "/api/v1/centers", council, body); r.code != http.StatusConflict {
		t.Errorf("the same id again: %d", r.code)
	}
	if r := e.do("PUT", "/api/v1/centers/center-north", council, map[string]any{"head": "Иванова И. И.", "actual_address": "Мурманск"}); r.code != http.StatusOK {
		t.Errorf("the council edits its center: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/sites", council, map[string]any{"id": "site-north", "center": "center-north", "name": "ЭП Север"}); r.code != http.StatusCreated {
		t.Fatalf("create site: %d %s", r.code, r.body)
	}
	if r := e.do("PUT", "/api/v1/sites/site-north", council, map[string]any{"name": "ЭП Север-1", "address": "Мурманск"}); r.code != http.StatusOK {
		t.Errorf("the council edits the site: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/sites", center, map[string]any{"id": "site-own", "name": "ЭП своя"}); r.code != http.StatusCreated {
		t.Errorf("a center registers its own site: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/sites", center, map[string]any{"id": "site-x", "center": "center-north", "name": "чужая"}); r.code != http.StatusUnprocessableEntity {
		t.Errorf("a center registers a site of another center: %d %s", r.code, r.body)
	}
	for _, p := range []string{"/api/v1/centers/center-north", "/api/v1/sites/site-north"} {
		if r := e.do("GET", p, o2.tokens[store.RoleCouncil], nil); r.code != http.StatusNotFound {
			t.Errorf("council2 reads %s: %d", p, r.code)
		}
		if r := e.do("GET", p, council, nil); r.code != http.StatusOK {
			t.Errorf("council1 reads %s: %d", p, r.code)
		}
	}
}

// TestOrganisationIDsAreOne: a council or a center cannot register a
// center or a site under the id of another organisation of another kind.
// Users name their organisation by id alone, so a site registered as
// "council2" would have made its admin (once an operator added one) the
// manager of council2's accounts: listing their names and contacts and
// disabling them.
func TestOrganisationIDsAreOne(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	ctx := context.Background()
	o1, o2 := w.orgs[1], w.orgs[2]
	council, center := o1.tokens[store.RoleCouncil], o1.tokens[store.RoleCenter]
	for _, id := range []string{o2.council, o1.council, o2.center} {
		if r := e.do("POST", "/api/v1/sites", center, map[string]any{"id": id, "name": "ЭП"}); r.code != http.StatusConflict {
			t.Errorf("center1 registers site %s: %d %s, want 409", id, r.code, r.body)
		}
		if _, err := e.store.Site(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("site %s: %v, want none", id, err)
		}
	}
	for _, id := range []string{o2.council, o2.site} {
		if r := e.do("POST", "/api/v1/centers", council, map[string]any{"id": id, "name": "ЦОК"}); r.code != http.StatusConflict {
			t.Errorf("council1 registers center %s: %d %s, want 409", id, r.code, r.body)
		}
		if _, err := e.store.Center(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("center %s: %v, want none", id, err)
		}
	}
	// No site admin can be made for council2's id, so none manages its
	// accounts.
	if _, err := e.store.AddUser(ctx, "intruder", store.RoleSite, o2.council); err == nil {
		tok, _ := userToken(t, e, "intruder2", store.RoleSite, o2.council)
		must(t, e.store.SetOrgAdmin(ctx, "intruder2", true))
		r := e.do("GET", "/api/v1/users", tok, nil)
		t.Errorf("a site admin of id %s was made; its accounts list: %d %s", o2.council, r.code, r.body)
	}
}
