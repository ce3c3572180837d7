package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/nokstream/nokstream/registry/store"
)

// TestCandidateSearch: the center finds its candidates by part of the name
// (ё as е, any case) or of the СНИЛС, a page at a time with the total; a
// site, which does not read СНИЛС, cannot find anyone by it; another
// center finds none of them.
func TestCandidateSearch(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	ctx := context.Background()
	for i := range 25 {
		c := store.Candidate{ID: fmt.Sprintf("sel-%02d", i), CenterID: o.center, LastName: "Селёзнева",
			FirstName: fmt.Sprintf("Анна%02d", i), Document: fmt.Sprintf("паспорт 4500 %06d", i)}
		if i == 0 {
			c.SNILS = "112-233-445 95"
		}
		_, err := e.store.SaveCandidate(ctx, c)
		must(t, err)
	}
	type page struct {
		Candidates []struct{ ID, SNILS string }
		Total      int
	}
	search := func(token string, body map[string]any) page {
		t.Helper()
		var p page
		if r := e.do("POST", "/api/v1/candidates/search", token, body); r.code != http.StatusOK || json.Unmarshal(r.body, &p) != nil {
			t.Fatalf("search %v: %d %s", body, r.code, r.body)
		}
		return p
	}
	center := o.tokens[store.RoleCenter]
	if p := search(center, map[string]any{"q": "СЕЛЕЗНЕВА", "limit": 10}); p.Total != 25 || len(p.Candidates) != 10 || p.Candidates[0].ID != "sel-00" {
		t.Errorf("by name, first page of 10: total %d, %d shown, first %+v", p.Total, len(p.Candidates), p.Candidates)
	}
	if p := search(center, map[string]any{"q": "селезнева", "limit": 10, "offset": 20}); p.Total != 25 || len(p.Candidates) != 5 || p.Candidates[0].ID != "sel-20" {
		t.Errorf("by name, last page: total %d, %d shown", p.Total, len(p.Candidates))
	}
	if p := search(center, map[string]any{"q": "233-445"}); p.Total != 1 || p.Candidates[0].ID != "sel-00" {
		t.Errorf("by СНИЛС: %+v", p)
	}
	if p := search(o.tokens[store.RoleSite], map[string]any{"q": "233-445"}); p.Total != 0 {
		t.Errorf("a site found someone by СНИЛС: %+v", p)
	}
	if p := search(w.orgs[2].tokens[store.RoleCenter], map[string]any{"q": "Селезнева"}); p.Total != 0 {
		t.Errorf("another center found them: %+v", p)
	}
	if r := e.do("POST", "/api/v1/candidates/search", center, map[string]any{"q": "x", "limit": 500}); r.code != http.StatusBadRequest {
		t.Errorf("limit 500: %d", r.code)
	}
}
