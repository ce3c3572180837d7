// Package storetest sets up registry data that tests of other packages
// need: an organisation chain (council → center → site) with complete
// details, so that devices can be registered at the site.
package storetest

import (
	"context"
	"testing"

	"github.com/nokstream/nokstream/registry/store"
)

// Org creates council, center and site, each with every required detail
// (an appeals commission, a center's head, site, addresses and contacts), or
// updates them if they exist. Pass "" for center and site to stop higher up.
func Org(t testing.TB, s *store.Store, council, center, site string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.SaveCouncil(ctx, store.Council{
		ID: council, Name: "Council " + council,
		Commission: store.Commission{
			Members: []string{"Иванов И. И.", "Петрова А. С."}, Address: "101000, Москва, ул. Мясницкая, 1",
			Email: "appeals@" + council + ".example", Phones: []string{"+7 495 000-00-00"},
		},
	}); err != nil {
		t.Fatalf("storetest: save council %s: %v", council, err)
	}
	if center == "" {
		return
	}
	if _, err := s.SaveCenter(ctx, store.Center{
		ID: center, CouncilID: council, Name: "Center " + center, Head: "Сидоров С. С.",
		Website: "https://" + center + ".example", LegalAddress: "101000, Москва, ул. Покровка, 2",
		PostalAddress: "101000, Москва, ул. Покровка, 2", ActualAddress: "101000, Москва, ул. Покровка, 2", Email: "info@" + center + ".example",
		Phones: []string{"+7 495 111-11-11"},
	}); err != nil {
		t.Fatalf("storetest: save center %s: %v", center, err)
	}
	if site == "" {
		return
	}
	if _, err := s.SaveSite(ctx, store.Site{ID: site, CenterID: center, Name: "Site " + site, Address: "Москва, ул. Ильинка, 3",
		Email: site + "@" + center + ".example", Phones: []string{"+7 495 222-22-22"}}); err != nil {
		t.Fatalf("storetest: save site %s: %v", site, err)
	}
}
