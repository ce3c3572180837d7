package api_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/registry/store"
)

// TestConsent: the candidate's streams are refused until they consent (the
// text's version, the page, the time), and the consent is audited.
func TestConsent(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	ctx := context.Background()
	o := w.orgs[1]
	if _, _, err := e.store.CandidatePublisher(ctx, w.candidate, o.site, "ws1-cam", e.clock.Now()); !errors.Is(err, store.ErrNoConsent) {
		t.Errorf("webcam before the consent: %v, want refused", err)
	}
	if r := e.do("POST", "/api/v1/exam/consent", w.candidate, map[string]string{"version": "recording-1"}); r.code != http.StatusUnprocessableEntity {
		t.Errorf("consent without the page: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/exam/consent", o.tokens[store.RoleSite], map[string]string{"version": "recording-1", "page": "/ui/exam.html"}); r.code != http.StatusUnauthorized {
		t.Errorf("consent with a staff token: %d", r.code)
	}
	r := e.do("POST", "/api/v1/exam/consent", w.candidate, map[string]string{"version": "recording-1", "page": "/ui/exam.html"})
	if r.code != http.StatusCreated {
		t.Fatalf("consent: %d %s", r.code, r.body)
	}
	if kind, _, err := e.store.CandidatePublisher(ctx, w.candidate, o.site, "ws1-cam", e.clock.Now()); err != nil || kind != store.KindWebcam {
		t.Errorf("webcam after the consent: %q %v", kind, err)
	}
	c, err := e.store.ExamConsent(ctx, o.exam, o.cand)
	if err != nil || c.Version != "recording-1" || c.Page != "/ui/exam.html" || !c.AcceptedAt.Equal(e.clock.Now()) {
		t.Errorf("consent %+v %v", c, err)
	}
	db, _ := databases.Load(e)
	var n int
	must(t, db.(*pgx.Conn).QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE action = 'exam.consent' AND object = $1
		AND detail->>'version' = 'recording-1' AND detail->>'page' = '/ui/exam.html'`, o.exam+"/"+o.cand).Scan(&n))
	if n != 1 {
		t.Errorf("%d audit entries of the consent, want 1", n)
	}
}
