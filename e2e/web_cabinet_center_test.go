package e2e

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// cabinetCenter: the center finds a candidate by name, registers another
// with the form, uploads the scan of her passport and opens it; then forms
// an exam group for tomorrow, puts her at a workstation and appoints the
// expert. The API holds each.
func cabinetCenter(t *testing.T, c *cabinet) {
	w := c.w
	c.signIn(t, "center1", w.passwords["center1"])
	c.waitText(t, "#exams", "Орлова Анна")
	if got := c.text(t, "#exams"); !strings.Contains(got, "Сварщик (3 уровень)") || !strings.Contains(got, "ожидает допуска") ||
		!strings.Contains(got, "(GMT+3)") {
		t.Errorf("the center's exams say %q, want the qualification by name, the admission in Russian and the time in site1's zone (Moscow's)", got)
	}
	c.accessible(t, "the center's exams")

	c.open(t, "nav-candidates")
	// The server searches; the table says which query its rows answer.
	c.run(t, "search", chromedp.SendKeys("#search", "орл"), chromedp.WaitVisible(`#candidates[data-query="орл"]`))
	c.waitText(t, "#candidates tbody", "Орлова Анна")
	if n := eval[int](t, c, `document.querySelectorAll('#candidates tbody tr[data-candidate]').length`); n != 1 {
		t.Errorf("searching «орл» lists %d candidates, want 1", n)
	}
	c.run(t, "register a candidate", chromedp.Click("#new-candidate"), chromedp.SendKeys("#c-last", "Сидорова"),
		chromedp.SendKeys("#c-first", "Мария"), chromedp.SendKeys("#c-middle", "Петровна"), chromedp.SendKeys("#c-snils", "111-111-111 45"),
		chromedp.SendKeys("#c-document", "паспорт 4511 223344"), chromedp.Click("#c-save"))
	c.waitText(t, "#c-state", "Кандидат зарегистрирован")
	var cands []struct {
		ID, SNILS, Document string
		FullName            string `json:"full_name"`
	}
	c.nark.do("GET", "/api/v1/candidates", nil, http.StatusOK, &cands)
	var id string
	for _, k := range cands {
		if k.FullName == "Сидорова Мария Петровна" && k.SNILS == "111-111-111 45" && k.Document == "паспорт 4511 223344" {
			id = k.ID
		}
	}
	if id == "" {
		t.Fatalf("the registered candidate is not in the API's list: %+v", cands)
	}

	scan := filepath.Join(t.TempDir(), "Сидорова-паспорт.png")
	img := image.NewRGBA(image.Rect(0, 0, 120, 80))
	for x := 0; x < 120; x++ {
		for y := 0; y < 80; y++ {
			img.Set(x, y, color.RGBA{uint8(x * 2), uint8(y * 3), 160, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(scan, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	c.run(t, "upload the passport", chromedp.SetUploadFiles("#doc-file", []string{scan}), chromedp.Click("#doc-upload"),
		chromedp.WaitVisible("#documents tr[data-document] button.open-doc"), chromedp.Click("#documents tr[data-document] button.open-doc"),
		chromedp.WaitVisible("#doc-view img"))
	// Visible is not loaded: the picture's size is known once it is decoded
	// (a fresh run read 0 right after it became visible).
	c.run(t, "the scan loads", chromedp.Poll[chromedp.Void](`(() => { const i = document.querySelector('#doc-view img');
		return !!i && i.complete && i.naturalWidth > 0 })()`))
	if wdt := eval[int](t, c, `document.querySelector('#doc-view img').naturalWidth`); wdt != 120 {
		t.Errorf("the scan shown is %d pixels wide, want 120", wdt)
	}
	var docs []struct {
		Kind, Filename string
		ContentType    string `json:"content_type"`
		Bytes          int
	}
	c.nark.do("GET", "/api/v1/candidates/"+id+"/documents", nil, http.StatusOK, &docs)
	if len(docs) != 1 || docs[0].Kind != "passport" || docs[0].ContentType != "image/png" || docs[0].Bytes != buf.Len() || docs[0].Filename != "passport.png" {
		t.Errorf("documents through the API: %+v (the file's own name, which names her, is not sent)", docs)
	}
	c.accessible(t, "the center's candidates")
	screenshot(t, c.ctx, "cabinet-center-candidates")

	c.open(t, "nav-groups")
	c.run(t, "form a group", chromedp.SetValue("#x-qual", "40.00800.01"), chromedp.SetValue("#x-site", "site1"), chromedp.Click("#x-create"),
		chromedp.WaitVisible("#group #m-candidate"))
	exam := eval[string](t, c, `document.getElementById('group').dataset.exam`)
	if title := c.text(t, "#group-title"); !strings.Contains(title, "Сварщик (3 уровень)") || !strings.Contains(title, "Site 1") {
		t.Errorf("the group's title says %q", title)
	}
	c.run(t, "add her at workstation 1", chromedp.WaitReady(`#m-candidate option[value="`+id+`"]`), chromedp.SetValue("#m-candidate", id), chromedp.SetValue("#m-webcam", "ws1-cam"),
		chromedp.Click("#m-add"),
		chromedp.WaitVisible(`#members tr[data-candidate="`+id+`"]`))
	c.run(t, "appoint the expert", chromedp.SendKeys("#e-login", "expert1"), chromedp.Click("#e-appoint"),
		chromedp.WaitVisible(`#experts li[data-expert="expert1"]`))
	var x struct {
		Qualification, Site string
		StartsAt            time.Time `json:"starts_at"`
		Parts               []struct{ Kind string }
		Experts             []struct{ Login string }
	}
	c.nark.do("GET", "/api/v1/exams/"+exam, nil, http.StatusOK, &x)
	tomorrow := time.Now().Add(24 * time.Hour).Format("2006-01-02")
	if x.Qualification != "40.00800.01" || x.Site != "site1" || x.StartsAt.Local().Format("2006-01-02") != tomorrow || len(x.Parts) != 2 ||
		len(x.Experts) != 1 || x.Experts[0].Login != "expert1" {
		t.Errorf("the group through the API: %+v, want tomorrow's at site1 with theory, practice and expert1", x)
	}
	var members []struct {
		Candidate      struct{ ID string }
		Webcam, Screen string
	}
	c.nark.do("GET", "/api/v1/exams/"+exam+"/candidates", nil, http.StatusOK, &members)
	if len(members) != 1 || members[0].Candidate.ID != id || members[0].Webcam != "ws1-cam" || members[0].Screen != "ws1-screen" {
		t.Errorf("the group's candidates through the API: %+v", members)
	}
	c.accessible(t, "the center's exam groups")
	screenshot(t, c.ctx, "cabinet-center-groups")
}
