package e2e

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"
)

// cabinetNARK: NARK sees every council, center and site, and reads the
// audit trail of the center from its row: what the center's users did and
// what was done to the center, newest first, as the API has it; then it
// suspends an account and reactivates it.
func cabinetNARK(t *testing.T, c *cabinet) {
	pw := cli(t, c.in.env, "user", "add", "--role", "nark", "operator")
	login(t, c.w.base, "operator", pw) // the temporary password changed
	c.operatorPW = "e2e-" + pw + "-changed"
	c.signIn(t, "operator", c.operatorPW)
	c.open(t, "nav-orgs")
	c.waitText(t, "#councils", "Council 1")
	c.waitText(t, "#sites", "Site 1")
	// center1's authorisation by council2, with council2 named.
	c.waitText(t, `#centers tr[data-center="center1"] td.quals`, "совет СПК в строительстве")
	c.accessible(t, "NARK's organisations")
	screenshot(t, c.ctx, "cabinet-nark-orgs")

	c.run(t, "the center's trail", chromedp.Click(`#centers tr[data-center="center1"] a.audit-link`),
		chromedp.WaitVisible(`#trail tr[data-id]`))
	var trail []struct {
		ID     int64
		Actor  string
		Action string
	}
	c.nark.do("GET", "/api/v1/audit?org=center1&limit=50", nil, http.StatusOK, &trail)
	// Newest first: the second council's authorisation of the center (a
	// multi-industry center), its own council's, then the center's own
	// appointment of the expert.
	if len(trail) < 3 || trail[0].Action != "center.authorise" || trail[0].Actor != "council2" ||
		trail[1].Action != "center.authorise" || trail[1].Actor != "council1" ||
		trail[2].Action != "exam.expert_appoint" || trail[2].Actor != "center1" {
		t.Fatalf("center1's trail through the API: %+v, want both councils' authorisations, then the expert's appointment", trail)
	}
	shown := eval[int](t, c, `document.querySelectorAll('#trail tr[data-id]').length`)
	first := eval[string](t, c, `document.querySelector('#trail tr[data-id]').dataset.id`)
	if shown != len(trail) || first != strconv.FormatInt(trail[0].ID, 10) {
		t.Errorf("the page shows %d entries from %s, the API %d from %d", shown, first, len(trail), trail[0].ID)
	}
	c.accessible(t, "NARK's audit trail")
	screenshot(t, c.ctx, "cabinet-nark-audit")

	// An account suspended with a reason, then reactivated: the page shows
	// what was done to it, and the API's trail has both.
	cli(t, c.in.env, "user", "add", "--role", "expert", "--org", "council1", "expert9")
	c.run(t, "suspend expert9", chromedp.SendKeys("#a-login", "expert9"), chromedp.SendKeys("#a-reason", "уволен из совета"),
		chromedp.Click("#a-suspend"), chromedp.WaitVisible(`#a-state[data-suspended="true"]`), chromedp.WaitVisible(`#trail tr[data-action="user.suspension"]`))
	c.run(t, "reactivate expert9", chromedp.Click("#a-reactivate"), chromedp.WaitVisible(`#a-state[data-suspended="false"]`))
	var acts []struct {
		Actor, Action string
		Detail        struct {
			Suspended bool
			Reason    string
		}
	}
	c.nark.do("GET", "/api/v1/audit?object=expert9", nil, http.StatusOK, &acts)
	var seen []string
	for _, a := range acts {
		if a.Action == "user.suspension" && a.Actor == "operator" {
			seen = append(seen, strconv.FormatBool(a.Detail.Suspended)+":"+a.Detail.Reason)
		}
	}
	if len(seen) != 2 || seen[0] != "false:" || seen[1] != "true:уволен из совета" {
		t.Errorf("expert9's suspensions in the API's trail, newest first: %v", seen)
	}

	// A site suspended on the organisations list: its user's session ends
	// at once and the user cannot log in; the site's row and trail show the
	// suspension; after the reactivation the user logs in again.
	pw2 := cli(t, c.in.env, "user", "add", "--role", "site", "--org", "site2", "site2-head")
	head := login(t, c.w.base, "site2-head", pw2)
	headPW := "e2e-" + pw2 + "-changed"
	c.open(t, "nav-accounts")
	c.run(t, "find site2", chromedp.SendKeys("#o-q", "site2"), chromedp.Click("#o-search"),
		chromedp.WaitVisible(`#orgs[data-total="1"] tr[data-org="site:site2"]`))
	c.accessible(t, "NARK's accounts and organisations")
	c.run(t, "suspend site2", chromedp.SendKeys(`tr[data-org="site:site2"] input.reason`, "проверка НАРК"),
		chromedp.Click(`tr[data-org="site:site2"] button.suspend`), chromedp.WaitVisible(`tr[data-org="site:site2"][data-suspended="true"]`))
	head.do("GET", "/api/v1/auth/me", nil, http.StatusUnauthorized, nil)
	(&api{t: t, base: c.w.base}).do("POST", "/api/v1/auth/login", map[string]string{"login": "site2-head", "password": headPW}, http.StatusUnauthorized, nil)
	screenshot(t, c.ctx, "cabinet-nark-accounts")
	c.run(t, "reactivate site2", chromedp.Click(`tr[data-org="site:site2"] button.reactivate`),
		chromedp.WaitVisible(`tr[data-org="site:site2"][data-suspended="false"]`))
	login(t, c.w.base, "site2-head", headPW)
	var orgTrail []struct {
		Action, Actor string
		Detail        struct{ Suspended bool }
	}
	c.nark.do("GET", "/api/v1/audit?org=site2&limit=50", nil, http.StatusOK, &orgTrail)
	var suspensions []string
	for _, e := range orgTrail {
		if e.Action == "org.suspension" {
			suspensions = append(suspensions, e.Actor+":"+strconv.FormatBool(e.Detail.Suspended))
		}
	}
	if len(suspensions) != 2 || suspensions[0] != "operator:false" || suspensions[1] != "operator:true" {
		t.Errorf("site2's suspensions in the API's trail, newest first: %v", suspensions)
	}

	// The account list is searched on the server: one account found, and
	// suspended from its row.
	c.run(t, "find site2-head", chromedp.SendKeys("#u-q", "site2-h"), chromedp.Click("#u-search"),
		chromedp.WaitVisible(`#accounts[data-total="1"] tr[data-login="site2-head"]`))
	c.run(t, "suspend site2-head", chromedp.SendKeys(`tr[data-login="site2-head"] input.reason`, "уволен"),
		chromedp.Click(`tr[data-login="site2-head"] button.suspend`), chromedp.WaitVisible(`tr[data-login="site2-head"][data-disabled="true"]`))
	(&api{t: t, base: c.w.base}).do("POST", "/api/v1/auth/login", map[string]string{"login": "site2-head", "password": headPW}, http.StatusUnauthorized, nil)

	// The operator's own details, from the name in the header: saved
	// through the page, read back by another operator through the API.
	c.run(t, "my details", chromedp.Click("#who-link"), chromedp.WaitVisible(`body[data-loaded="true"]`), chromedp.WaitVisible("#p-name"),
		chromedp.SendKeys("#p-name", "Морозова Елена Павловна"), chromedp.SendKeys("#p-position", "эксперт НАРК"),
		chromedp.SendKeys("#p-region", "Москва"), chromedp.SendKeys("#p-email", "morozova@nark.example"), chromedp.Click("#p-save"))
	c.waitText(t, "#p-state", "Сохранено")
	c.accessible(t, "the operator's own details")
	screenshot(t, c.ctx, "cabinet-profile")
	var op struct {
		Profile struct {
			FullName                string `json:"full_name"`
			Position, Region, Email string
		}
	}
	c.nark.do("GET", "/api/v1/users/operator", nil, http.StatusOK, &op)
	if op.Profile.FullName != "Морозова Елена Павловна" || op.Profile.Position != "эксперт НАРК" || op.Profile.Email != "morozova@nark.example" {
		t.Errorf("the operator's details through the API: %+v", op.Profile)
	}
}
