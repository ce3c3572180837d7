package e2e

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/nokstream/nokstream/internal/testenv"
)

// cabinetSite: at admission the site uploads Орлова's missing passport
// scan, sees it beside the desk's live webcam, takes a photo and confirms
// her identity against the scan; Белов's identity is refused with a reason,
// which refuses his admission. The API holds both checks.
func cabinetSite(t *testing.T, c *cabinet) {
	w := c.w
	orlova, belov := w.cands[0], w.cands[1]
	c.signIn(t, "site1", w.passwords["site1"])
	c.open(t, "nav-site")
	row := func(id string) string { return `#exams tr[data-candidate="` + id + `"]` }
	c.run(t, "Орлова's identity check", chromedp.WaitVisible(row(orlova)+" button.identity"), chromedp.Click(row(orlova)+" button.identity"),
		chromedp.WaitVisible("#id-noscan"))

	scan := filepath.Join(t.TempDir(), "Орлова паспорт.png")
	img := image.NewRGBA(image.Rect(0, 0, 90, 60))
	for x := 0; x < 90; x++ {
		img.Set(x, 30, color.RGBA{200, 0, 0, 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(scan, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	c.run(t, "upload the missing scan", chromedp.SetUploadFiles("#id-file", []string{scan}), chromedp.Click("#id-upload"),
		chromedp.WaitVisible("#id-scan img.doc-scan"))
	testenv.WaitFor(t, 15*time.Second, "the desk's webcam picture", func() bool {
		return eval[int](t, c, `document.getElementById('id-live').videoWidth`) > 0
	})
	c.run(t, "photo", chromedp.Click("#id-snap"))
	c.waitText(t, "#id-photo-state", "Фото сделано")
	c.accessible(t, "the site's identity check")
	screenshot(t, c.ctx, "cabinet-site-identity")
	c.run(t, "confirm", chromedp.Click("#id-confirm"), chromedp.WaitVisible(`#id-check[data-confirmed="true"]`))
	var id struct {
		Documents []struct{ ID, Kind string }
		Check     *struct {
			Confirmed       bool
			Document, Photo string
			CheckedBy       string `json:"checked_by"`
		}
	}
	ep := "/api/v1/exams/" + w.exam + "/candidates/"
	w.site.do("GET", ep+orlova+"/identity", nil, http.StatusOK, &id)
	if id.Check == nil || !id.Check.Confirmed || id.Check.Document == "" || id.Check.Photo == "" || id.Check.CheckedBy != "site1" {
		t.Errorf("Орлова's identity check through the API: %+v, want confirmed by site1 against a document with a photo", id.Check)
	}

	c.run(t, "Белов's identity check", chromedp.Click(row(belov)+" button.identity"), chromedp.WaitVisible(`#identity[data-candidate="`+belov+`"]`),
		chromedp.SendKeys("#id-reason", "лицо не совпадает с фотографией в паспорте"), chromedp.Click("#id-refuse"),
		chromedp.WaitVisible(`#id-check[data-confirmed="false"]`), chromedp.WaitVisible(row(belov)+" .admission.refused"))
	var ec struct {
		Admission     string
		RefusalReason string `json:"refusal_reason"`
	}
	w.site.do("GET", ep+belov, nil, http.StatusOK, &ec)
	if ec.Admission != "refused" || ec.RefusalReason == "" {
		t.Errorf("Белов's admission through the API: %+v, want refused with the reason", ec)
	}
	c.run(t, "close", chromedp.Click("#id-close"))
}
