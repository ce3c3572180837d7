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
	// Newest first: the council's authorisation of the center, then the
	// center's own appointment of the expert.
	if len(trail) < 2 || trail[0].Action != "center.qualifications_set" || trail[0].Actor != "council1" ||
		trail[1].Action != "exam.expert_appoint" || trail[1].Actor != "center1" {
		t.Fatalf("center1's trail through the API: %+v, want the council's authorisation, then the expert's appointment", trail)
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
}
