package api_test

import (
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
