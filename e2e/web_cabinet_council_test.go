package e2e

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// cabinetCouncil: the council authorises its center for a second
// qualification, registers a site of it, and raises the period footage without a result is kept,
// the legal floors shown beside each field; the API holds each. The
// appeal desk is one of its sections. Then a second council authorises
// center1 for its own qualification (a multi-industry center): it sees the
// center, named as council1's, with its own qualification only, and not
// council1's exam.
func cabinetCouncil(t *testing.T, c *cabinet) {
	c.signIn(t, "council1", c.w.passwords["council1"])
	c.open(t, "nav-orgs")
	row := `#centers tr[data-center="center1"]`
	c.run(t, "authorise center1", chromedp.WaitVisible(row+" button.edit-quals"), chromedp.Click(row+" button.edit-quals"),
		chromedp.WaitVisible("#q-40_00800_02"), chromedp.Click("#q-40_00800_02"), chromedp.Click("#quals-save"))
	c.waitText(t, "#quals-state", "Допуск сохранён")
	c.waitText(t, row+" .quals", "Сварщик (4 уровень)")
	var center struct{ Qualifications []string }
	c.nark.do("GET", "/api/v1/centers/center1", nil, http.StatusOK, &center)
	if !slices.Equal(center.Qualifications, []string{"40.00800.01", "40.00800.02"}) {
		t.Errorf("center1's qualifications through the API: %v", center.Qualifications)
	}
	c.run(t, "register a site of center1", chromedp.SetValue("#ns-center", "center1"), chromedp.SendKeys("#ns-id", "site2"),
		chromedp.SendKeys("#ns-name", "Площадка на Покровке"), chromedp.SendKeys("#ns-address", "101000, Москва, ул. Покровка, 2"),
		chromedp.SetValue("#ns-tz", "Asia/Yekaterinburg"), chromedp.Click("#ns-save"), chromedp.WaitVisible(`#sites tr[data-site="site2"]`))
	var site struct {
		Center, Name string
		TimeZone     string `json:"time_zone"`
	}
	c.nark.do("GET", "/api/v1/sites/site2", nil, http.StatusOK, &site)
	if site.Center != "center1" || site.Name != "Площадка на Покровке" || site.TimeZone != "Asia/Yekaterinburg" {
		t.Errorf("the registered site through the API: %+v", site)
	}
	if got := c.text(t, `#sites tr[data-site="site2"]`); !strings.Contains(got, "Asia/Yekaterinburg (GMT+5)") {
		t.Errorf("site2's row shows %q, want its zone with the offset", got)
	}
	c.accessible(t, "the council's centers and sites")
	screenshot(t, c.ctx, "cabinet-council-orgs")

	c.open(t, "nav-retention")
	if got := c.text(t, "#floors"); !strings.Contains(got, "30") || !strings.Contains(got, "90") || !strings.Contains(got, "7") {
		t.Errorf("the floors shown: %q", got)
	}
	if got := c.text(t, "#r-provisional-floor"); got != "не меньше 90" {
		t.Errorf("the floor beside the provisional period says %q", got)
	}
	c.run(t, "keep footage without a result for 120 days", chromedp.SetValue("#r-provisional", ""), chromedp.SendKeys("#r-provisional", "120"),
		chromedp.Click("#r-save"))
	c.waitText(t, "#r-state", "Сроки сохранены")
	var ret struct {
		Council struct {
			Provisional int `json:"provisional_days"`
		}
	}
	c.nark.do("GET", "/api/v1/councils/council1/retention", nil, http.StatusOK, &ret)
	if ret.Council.Provisional != 120 {
		t.Errorf("the council's provisional period through the API: %d days, want 120", ret.Council.Provisional)
	}
	c.accessible(t, "the council's retention")
	screenshot(t, c.ctx, "cabinet-council-retention")

	c.open(t, "nav-appeals")
	c.run(t, "the appeal desk", chromedp.WaitReady(`#open-target option`))
	c.accessible(t, "the council's appeal desk")

	cli(t, c.in.env, "org", "add", "council", "council2", "--name", "СПК в строительстве")
	cli(t, c.in.env, "qualification", "add", "16.03700.02", "--council", "council2", "--name", "Монтажник каркасно-обшивных конструкций",
		"--validity-years", "5", "--tool", "ОС-16.037-02 https://nok.example/os/3")
	pw := cli(t, c.in.env, "user", "add", "--role", "council", "--org", "council2", "council2")
	council2 := login(t, c.w.base, "council2", pw)
	c.run(t, "sign out", chromedp.Click("#logout"), chromedp.WaitVisible("#login-name"))
	c.signIn(t, "council2", "e2e-"+pw+"-changed")
	c.open(t, "nav-orgs")
	c.run(t, "authorise council1's center1", chromedp.WaitVisible("#ac-q-16_03700_02"), chromedp.SendKeys("#ac-center", "center1"),
		chromedp.Click("#ac-q-16_03700_02"), chromedp.Click("#ac-save"), chromedp.WaitVisible(row))
	c.waitText(t, "#ac-state", "Центр допущен")
	// The home council by name, though council2 does not read council1.
	if got := c.text(t, row); !strings.Contains(got, "межотраслевой") || !strings.Contains(got, "Центр совета Council 1") ||
		!strings.Contains(got, "Монтажник") || strings.Contains(got, "Сварщик") {
		t.Errorf("center1's row for council2 shows %q: want it named council1's (Council 1), with council2's qualification only", got)
	}
	var auth struct {
		Authorisations []struct{ Council, Qualification string }
	}
	c.nark.do("GET", "/api/v1/centers/center1", nil, http.StatusOK, &auth)
	if !slices.Contains(auth.Authorisations, struct{ Council, Qualification string }{"council2", "16.03700.02"}) {
		t.Errorf("center1's authorisations through the API: %+v", auth.Authorisations)
	}
	council2.do("GET", "/api/v1/exams/"+c.w.exam, nil, http.StatusNotFound, nil)
	c.accessible(t, "a council's multi-industry center")
	screenshot(t, c.ctx, "cabinet-council-multi-industry")
}
