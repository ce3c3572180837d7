package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// cabinetExpert: the expert's landing page is the review queue, naming the
// candidates, the qualification and the site; opening a candidate's
// recordings (the purpose declared) puts the review in progress, which the
// API's queue says too, and the review's header names the candidate and
// the exam.
func cabinetExpert(t *testing.T, c *cabinet) {
	w := c.w
	expert := login(t, w.base, "expert1", w.expertPW) // the temporary password changed
	c.signIn(t, "expert1", "e2e-"+w.expertPW+"-changed")
	row := `#queue tr[data-candidate="` + w.cands[0] + `"]`
	c.run(t, "the queue", chromedp.WaitVisible(row))
	got := c.text(t, row)
	for _, want := range []string{"Орлова Анна", "Сварщик (3 уровень)", "Site 1", "Center 1", "не начата", "(GMT+3)"} {
		if !strings.Contains(got, want) {
			t.Errorf("the queue's row of Орлова says %q, want %q in it", got, want)
		}
	}
	if n := eval[int](t, c, `document.querySelectorAll('#queue tbody tr[data-candidate]').length`); n != 2 {
		t.Errorf("the queue lists %d candidate-exams, want 2", n)
	}
	if all := c.text(t, "#queue"); strings.Contains(all, w.exam) || strings.Contains(all, w.cands[0]) {
		t.Errorf("the queue shows raw ids: %q", all)
	}
	c.accessible(t, "the expert's queue")
	screenshot(t, c.ctx, "cabinet-expert-queue")

	c.run(t, "open the review", chromedp.Click(row+" a.review-link"), chromedp.WaitVisible("#purpose"),
		chromedp.SendKeys("#purpose", "экспертиза процедуры экзамена"), chromedp.Click("#purpose-submit"))
	c.waitText(t, "#title", "Орлова Анна")
	if title := c.text(t, "#title"); !strings.Contains(title, "Сварщик (3 уровень)") || !strings.Contains(title, "Site 1") || strings.Contains(title, w.cands[0]) {
		t.Errorf("the review's header says %q, want the candidate, qualification and site by name", title)
	}
	c.accessible(t, "the review")

	var queue []struct {
		Candidate struct{ ID string }
		State     string
		OpenedAt  *time.Time `json:"opened_at"`
	}
	expert.do("GET", "/api/v1/review-queue", nil, http.StatusOK, &queue)
	for _, q := range queue {
		if q.Candidate.ID == w.cands[0] && (q.State != "in_progress" || q.OpenedAt == nil) {
			t.Errorf("the opened review through the API: %+v, want in_progress", q)
		}
	}
	c.run(t, "back to the queue", chromedp.Click(`header a[href="home.html"]`), chromedp.WaitVisible(`body[data-loaded="true"]`))
	c.waitText(t, row, "идёт проверка")
}
