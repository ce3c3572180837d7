package e2e

import (
	"bytes"
	"image"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// cabinetResults walks an exam's result cards through the register's
// procedure on the pages: the center fills a certificate and a conclusion
// and submits them; the council returns them with a reason, which the
// center sees, corrects the number and submits again; the council approves
// with its protocol's number, date and scan; NARK finds the exam at the top of its verification queue,
// verifies it and enters it in the register, where the public check finds
// the certificate. The API holds each step. What the procedure needs
// beforehand (the organisations' details, the commission protocol and its
// approval) is set through the API.
func cabinetResults(t *testing.T, c *cabinet) {
	w := c.w
	// The organisations' details that approval requires.
	w.council.do("PUT", "/api/v1/councils/council1/commission", map[string]any{"members": []string{"Иванов И. И."},
		"address": "101000, Москва, ул. Мясницкая, 1", "email": "appeals@council1.example", "phones": []string{"+7 495 000-00-00"}}, http.StatusOK, nil)
	w.center.do("PUT", "/api/v1/centers/center1", map[string]any{"name": "Center 1", "head": "Сидоров С. С.", "website": "https://center1.example",
		"legal_address": "101000, Москва, ул. Покровка, 2", "actual_address": "101000, Москва, ул. Покровка, 2",
		"postal_address": "101000, Москва, ул. Покровка, 2", "email": "info@center1.example", "phones": []string{"+7 495 111-11-11"}}, http.StatusOK, nil)
	w.site.do("PUT", "/api/v1/sites/site1", map[string]any{"name": "Site 1", "address": "101000, Москва, ул. Покровка, 2, ауд. 5",
		"email": "site1@center1.example", "phones": []string{"+7 495 222-22-22"}}, http.StatusOK, nil)
	// An exam that was held this morning: both candidates admitted, the
	// commission protocol uploaded by the site and approved by the expert.
	start := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	end := start.Add(time.Hour)
	var exam struct{ ID string }
	w.center.do("POST", "/api/v1/exams", map[string]any{"site": "site1", "qualification": "40.00800.01", "starts_at": start, "ends_at": end,
		"parts": []map[string]any{{"kind": "theory", "starts_at": start, "ends_at": end}}}, http.StatusCreated, &exam)
	ep := "/api/v1/exams/" + exam.ID
	for i, cand := range w.cands {
		w.center.do("POST", ep+"/candidates", map[string]string{"candidate": cand, "webcam": []string{"ws1-cam", "ws2-cam"}[i],
			"screen": []string{"ws1-screen", "ws2-screen"}[i]}, http.StatusCreated, nil)
		confirmIdentity(w.site, ep, cand)
		w.site.do("PUT", ep+"/candidates/"+cand+"/admission", map[string]string{"status": "admitted"}, http.StatusOK, nil)
	}
	w.center.do("POST", ep+"/experts", map[string]string{"login": "expert1"}, http.StatusOK, nil)
	upload(t, w.site, "PUT", ep+"/protocol?number=К-17&signed_on="+end.Format(time.DateOnly), "application/pdf", []byte("%PDF-1.4 commission protocol"))
	expert := login(t, w.base, "expert1", "e2e-"+w.expertPW+"-changed")
	expert.do("POST", ep+"/protocol/approval", map[string]any{"approved": true}, http.StatusOK, nil)
	cards := func(who *api) map[string]string {
		var r struct {
			Cards []struct{ Candidate, State string }
		}
		who.do("GET", ep+"/cards", nil, http.StatusOK, &r)
		out := map[string]string{}
		for _, k := range r.Cards {
			out[k.Candidate] = k.State
		}
		return out
	}
	orlova, belov := w.cands[0], w.cands[1]
	number := "40.00800.01.000017" // corrected to …018 after the council returns it

	// The center fills both cards and submits them.
	c.signIn(t, "center1", w.passwords["center1"])
	c.open(t, "nav-results")
	c.run(t, "open the exam", chromedp.Click(`#exams tr[data-exam="`+exam.ID+`"] button.open`),
		chromedp.WaitVisible(`#cards tr[data-card-form="`+orlova+`"] .card-number`))
	c.run(t, "Орлова's certificate", chromedp.SendKeys(`#cards tr[data-card-form="`+orlova+`"] .card-number`, number),
		chromedp.Click(`#cards tr[data-card-form="`+orlova+`"] .card-save`), chromedp.WaitVisible(`#cards tr[data-candidate="`+orlova+`"][data-state="draft"]`))
	c.run(t, "Белов's conclusion", chromedp.SetValue(`#cards tr[data-card-form="`+belov+`"] .card-kind`, "conclusion"))
	eval[bool](t, c, `document.querySelector('#cards tr[data-card-form="`+belov+`"] .card-kind').dispatchEvent(new Event('change'))`)
	c.run(t, "Белов's conclusion", chromedp.SendKeys(`#cards tr[data-card-form="`+belov+`"] .card-conclusion`, "не прошёл практическую часть"),
		chromedp.Click(`#cards tr[data-card-form="`+belov+`"] .card-save`), chromedp.WaitVisible(`#cards tr[data-candidate="`+belov+`"][data-state="draft"]`))
	c.accessible(t, "the center's result cards")
	c.run(t, "submit", chromedp.Click("#submit-cards"), chromedp.WaitVisible(`#cards tr[data-candidate="`+orlova+`"][data-state="submitted"]`))
	if got := cards(w.council); got[orlova] != "submitted" || got[belov] != "submitted" {
		t.Fatalf("cards through the API after submitting: %v", got)
	}
	c.run(t, "sign out", chromedp.Click("#logout"), chromedp.WaitVisible("#login-name"))

	// The council returns them with a reason; the center sees it, corrects
	// the certificate's number and submits again.
	const why = "номер свидетельства не по реестру совета"
	c.signIn(t, "council1", w.passwords["council1"])
	c.open(t, "nav-results")
	c.run(t, "return the cards", chromedp.Click(`#exams tr[data-exam="`+exam.ID+`"] button.open`), chromedp.WaitVisible("#decision-form #d-decision"),
		chromedp.SetValue("#d-decision", "returned"), chromedp.SendKeys("#d-comment", why), chromedp.Click("#d-save"),
		chromedp.WaitVisible(`#cards tr[data-candidate="`+orlova+`"][data-state="returned"]`))
	c.run(t, "sign out", chromedp.Click("#logout"), chromedp.WaitVisible("#login-name"))
	c.signIn(t, "center1", w.passwords["center1"])
	c.open(t, "nav-results")
	c.run(t, "open the returned exam", chromedp.Click(`#exams tr[data-exam="`+exam.ID+`"] button.open`),
		chromedp.WaitVisible(`#cards tr[data-candidate="`+orlova+`"][data-state="returned"] .state-reason`))
	if got := c.text(t, `#cards tr[data-candidate="`+orlova+`"] .state-reason`); got != why {
		t.Errorf("the returned card's reason on the page: %q, want %q", got, why)
	}
	number = "40.00800.01.000018"
	eval[string](t, c, `document.querySelector('#cards tr[data-card-form="`+orlova+`"] .card-number').value = ''`)
	c.run(t, "correct the number", chromedp.SendKeys(`#cards tr[data-card-form="`+orlova+`"] .card-number`, number), chromedp.Click(`#cards tr[data-card-form="`+orlova+`"] .card-save`),
		chromedp.WaitVisible(`#cards tr[data-candidate="`+orlova+`"][data-state="draft"]`))
	screenshot(t, c.ctx, "cabinet-center-results")
	c.run(t, "submit again", chromedp.Click("#submit-cards"), chromedp.WaitVisible(`#cards tr[data-candidate="`+orlova+`"][data-state="submitted"]`))
	var card struct {
		State             string
		CertificateNumber string `json:"certificate_number"`
	}
	w.council.do("GET", ep+"/candidates/"+orlova+"/result", nil, http.StatusOK, &card)
	if card.State != "submitted" || card.CertificateNumber != number {
		t.Errorf("Орлова's card through the API after resubmitting: %+v", card)
	}
	c.run(t, "sign out", chromedp.Click("#logout"), chromedp.WaitVisible("#login-name"))

	// The council approves with its protocol: number, date and scan.
	scan := filepath.Join(t.TempDir(), "протокол совета.png")
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 60, 80))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(scan, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	c.signIn(t, "council1", w.passwords["council1"])
	c.open(t, "nav-results")
	c.run(t, "open the exam", chromedp.Click(`#exams tr[data-exam="`+exam.ID+`"] button.open`), chromedp.WaitVisible("#decision-form #d-number"))
	c.run(t, "approve", chromedp.SendKeys("#d-number", "СПК-5/2026"), chromedp.SetUploadFiles("#d-scan", []string{scan}), chromedp.Click("#d-save"),
		chromedp.WaitVisible(`#cards tr[data-candidate="`+orlova+`"][data-state="approved"]`))
	var decisions struct {
		Decisions []struct {
			Decision string
			Protocol struct{ Number, Document string }
		}
	}
	w.council.do("GET", ep+"/decisions", nil, http.StatusOK, &decisions)
	last := decisions.Decisions[len(decisions.Decisions)-1]
	if len(decisions.Decisions) != 2 || decisions.Decisions[0].Decision != "returned" || last.Decision != "approved" ||
		last.Protocol.Number != "СПК-5/2026" || last.Protocol.Document == "" {
		t.Errorf("the council's decision through the API: %+v, want approved with its protocol's number and scan", decisions)
	}
	if got := cards(w.council); got[orlova] != "approved" || got[belov] != "approved" {
		t.Errorf("cards through the API after the approval: %v", got)
	}
	c.accessible(t, "the council's decisions")
	screenshot(t, c.ctx, "cabinet-council-results")
	c.run(t, "sign out", chromedp.Click("#logout"), chromedp.WaitVisible("#login-name"))

	// NARK: the exam heads the verification queue; verified, registered,
	// and found by the public check.
	c.signIn(t, "operator", c.operatorPW)
	c.open(t, "nav-results")
	c.run(t, "the queue", chromedp.WaitVisible(`#exams tbody tr[data-exam]`))
	if first := eval[string](t, c, `document.querySelector('#exams tbody tr[data-exam]').dataset.exam`); first != exam.ID {
		t.Errorf("NARK's queue starts with %s, want the exam awaiting verification %s", first, exam.ID)
	}
	c.run(t, "verify", chromedp.Click(`#exams tr[data-exam="`+exam.ID+`"] button.open`), chromedp.WaitVisible("#v-save"), chromedp.Click("#v-save"),
		chromedp.WaitVisible(`#cards tr[data-candidate="`+orlova+`"][data-state="verified"]`), chromedp.WaitVisible("#v-register"), chromedp.Click("#v-register"),
		chromedp.WaitVisible(`#cards tr[data-candidate="`+orlova+`"][data-state="registered"]`))
	if got := cards(c.nark); got[orlova] != "registered" {
		t.Errorf("Орлова's card through the API: %s, want registered", got[orlova])
	}
	c.accessible(t, "NARK's verification")
	c.open(t, "nav-register")
	c.run(t, "check the certificate", chromedp.SendKeys("#r-number", number), chromedp.Click("#r-check"),
		chromedp.WaitVisible(`#found tr[data-number="`+number+`"]`))
	if row := c.text(t, `#found tr[data-number="`+number+`"]`); !strings.Contains(row, "Орлова Анна") || !strings.Contains(row, "в реестре") ||
		!strings.Contains(row, "Сварщик (3 уровень)") || strings.Contains(row, "112-233-445 95") {
		t.Errorf("the register's answer: %q", row)
	}
	c.accessible(t, "the register")
	screenshot(t, c.ctx, "cabinet-nark-register")
}
