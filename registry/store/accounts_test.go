package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nokstream/nokstream/registry/store"
	"github.com/nokstream/nokstream/registry/store/storetest"
)

// TestOrgSuspension: a suspended center blocks the logins and sessions of
// its users, of its sites' users and of the experts registered with it,
// not of its council's users; the logins whose sessions ended are
// returned; reactivation lets them log in again.
func TestOrgSuspension(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	storetest.Org(t, s, "council1", "center2", "site2")
	now := time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	users := []struct {
		login, role, org string
		blocked          bool
	}{
		{"c-center", store.RoleCenter, "center1", true},
		{"c-site", store.RoleSite, "site1", true},
		{"c-expert", store.RoleExpert, "center1", true},
		{"c-council", store.RoleCouncil, "council1", false},
		{"c-council-expert", store.RoleExpert, "council1", false},
		{"c-other-site", store.RoleSite, "site2", false},
	}
	passwords := map[string]string{}
	for _, u := range users {
		pw, err := s.AddUser(ctx, u.login, u.role, u.org)
		if err != nil {
			t.Fatal(err)
		}
		passwords[u.login] = pw
		x, err := s.UserByLogin(ctx, u.login)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.CreateSession(ctx, x.ID, now, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SetOrgSuspended(ctx, store.OrgCenter, "center1", true, " ", 0, now); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("a suspension without a reason: %v", err)
	}
	if _, err := s.SetOrgSuspended(ctx, store.OrgCenter, "nowhere", true, "x", 0, now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an unknown center: %v", err)
	}
	ended, err := s.SetOrgSuspended(ctx, store.OrgCenter, "center1", true, "проверка", 0, now)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(ended)
	if want := []string{"c-center", "c-expert", "c-site"}; !slices.Equal(ended, want) {
		t.Errorf("sessions ended of %v, want %v", ended, want)
	}
	for _, u := range users {
		_, err := s.Login(ctx, u.login, passwords[u.login])
		if blocked := errors.Is(err, store.ErrBadCredentials); blocked != u.blocked {
			t.Errorf("%s (%s of %s) logs in while center1 is suspended: %v", u.login, u.role, u.org, err)
		}
	}
	orgs, total, err := s.Organisations(ctx, store.OrgFilter{Query: "CENTER"})
	if err != nil {
		t.Fatal(err)
	}
	if total != 2 || len(orgs) != 2 || orgs[0].ID != "center1" || orgs[0].Suspension == nil || orgs[0].Suspension.Reason != "проверка" ||
		orgs[0].Users != 2 || orgs[1].Suspension != nil {
		t.Errorf("centers listed: %+v (total %d)", orgs, total)
	}
	if _, err := s.SetOrgSuspended(ctx, store.OrgCenter, "center1", false, "", 0, now); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if _, err := s.Login(ctx, u.login, passwords[u.login]); err != nil {
			t.Errorf("%s logs in after the reactivation: %v", u.login, err)
		}
	}
}
