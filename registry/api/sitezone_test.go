package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/nokstream/nokstream/registry/store"
)

// TestSiteTimeZone: a site has a time zone, Moscow's unless given; a zone
// that is not an IANA name is 422; editing a site without naming one keeps
// it.
func TestSiteTimeZone(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	council := o.tokens[store.RoleCouncil]
	zone := func(r response) string {
		t.Helper()
		var s struct {
			TimeZone string `json:"time_zone"`
		}
		if r.code/100 != 2 || json.Unmarshal(r.body, &s) != nil {
			t.Fatalf("site: %d %s", r.code, r.body)
		}
		return s.TimeZone
	}
	if z := zone(e.do("GET", "/api/v1/sites/"+o.site, council, nil)); z != "Europe/Moscow" {
		t.Errorf("a site that named no zone is in %q, want Europe/Moscow", z)
	}
	if r := e.do("POST", "/api/v1/sites", council, map[string]any{"id": "site-ural", "center": o.center, "name": "ЭП Екатеринбург",
		"time_zone": "Mars/Olympus"}); r.code != http.StatusUnprocessableEntity {
		t.Errorf("an unknown zone: %d %s", r.code, r.body)
	}
	if z := zone(e.do("POST", "/api/v1/sites", council, map[string]any{"id": "site-ural", "center": o.center, "name": "ЭП Екатеринбург",
		"time_zone": "Asia/Yekaterinburg"})); z != "Asia/Yekaterinburg" {
		t.Errorf("created in %q", z)
	}
	if z := zone(e.do("PUT", "/api/v1/sites/site-ural", council, map[string]any{"name": "ЭП Екатеринбург-1"})); z != "Asia/Yekaterinburg" {
		t.Errorf("after an edit that named no zone: %q", z)
	}
	if z := zone(e.do("PUT", "/api/v1/sites/site-ural", council, map[string]any{"name": "ЭП Екатеринбург-1", "time_zone": "Asia/Omsk"})); z != "Asia/Omsk" {
		t.Errorf("after moving it to Omsk's zone: %q", z)
	}
}
