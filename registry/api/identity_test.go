package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/registry/store"
)

// TestIdentityCheck: at admission the site sees the candidate's identity
// document scans (uploading a missing one), stores a webcam photo, and
// records "identity confirmed" (who, when, which document) or a refusal
// with its reason, which refuses the admission; the expert sees none of it.
func TestIdentityCheck(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	site, center, expert := o.tokens[store.RoleSite], o.tokens[store.RoleCenter], o.tokens[store.RoleExpert]
	id := "/api/v1/exams/" + o.exam + "/candidates/" + o.cand2 + "/identity"
	type identity struct {
		Candidate struct {
			FullName string `json:"full_name"`
			Document *string
		}
		Documents []struct{ ID, Kind, URL string }
		Check     *struct {
			Confirmed       bool
			Document, Photo string
			Reason          string
			CheckedBy       string `json:"checked_by"`
		}
	}
	get := func() identity {
		t.Helper()
		r := e.do("GET", id, site, nil)
		if r.code != http.StatusOK {
			t.Fatalf("GET identity: %d %s", r.code, r.body)
		}
		return decode[identity](t, r)
	}
	if v := get(); v.Candidate.Document == nil || len(v.Documents) != 0 || v.Check != nil {
		t.Errorf("before the check: %+v", v)
	}
	if r := e.do("GET", id, expert, nil); r.code != http.StatusForbidden {
		t.Errorf("the expert reads the identity documents: %d", r.code)
	}
	if r := e.do("PUT", id, site, map[string]any{"confirmed": true}); r.code != http.StatusUnprocessableEntity {
		t.Errorf("confirmed without a document: %d %s", r.code, r.body)
	}
	up := e.do("POST", id+"/documents?filename=passport.pdf", site, "%PDF-1.4 passport of cand1b", "Content-Type", "application/pdf")
	if up.code != http.StatusCreated {
		t.Fatalf("upload the missing passport: %d %s", up.code, up.body)
	}
	passport := decode[struct{ ID, URL string }](t, up)
	if r := e.do("POST", id+"/photo", site, "%PDF-1.4 not a photo", "Content-Type", "application/pdf"); r.code != http.StatusUnsupportedMediaType {
		t.Errorf("a PDF as the webcam photo: %d", r.code)
	}
	ph := e.do("POST", id+"/photo?filename=cam.jpg", site, "\xff\xd8\xff webcam", "Content-Type", "image/jpeg")
	if ph.code != http.StatusCreated {
		t.Fatalf("webcam photo: %d %s", ph.code, ph.body)
	}
	photo := decode[struct{ ID string }](t, ph).ID
	v := get()
	if len(v.Documents) != 2 || v.Documents[0].Kind != store.DocumentPassport || v.Documents[1].Kind != store.DocumentIdentityPhoto {
		t.Fatalf("documents at the check %+v", v.Documents)
	}
	if r := e.do("GET", passport.URL, site, nil); r.code != http.StatusOK || string(r.body) != "%PDF-1.4 passport of cand1b" {
		t.Errorf("the site reads the passport: %d %q", r.code, r.body)
	}
	// The passport is the candidate's (the center sees it); the photo is the candidate-exam's.
	docs := string(e.do("GET", "/api/v1/candidates/"+o.cand2+"/documents", center, nil).body)
	if !strings.Contains(docs, passport.ID) || strings.Contains(docs, photo) {
		t.Errorf("the candidate's documents %s", docs)
	}
	if r := e.do("PUT", id, site, map[string]any{"confirmed": true, "document": photo}); r.code != http.StatusUnprocessableEntity {
		t.Errorf("a photo as the identity document: %d %s", r.code, r.body)
	}
	if r := e.do("PUT", id, center, map[string]any{"confirmed": true, "document": passport.ID}); r.code != http.StatusForbidden {
		t.Errorf("the center records the check: %d", r.code)
	}
	r := e.do("PUT", id, site, map[string]any{"confirmed": true, "document": passport.ID, "photo": photo})
	if r.code != http.StatusOK {
		t.Fatalf("confirm: %d %s", r.code, r.body)
	}
	if v := decode[identity](t, r); v.Check == nil || !v.Check.Confirmed || v.Check.Document != passport.ID || v.Check.Photo != photo ||
		v.Check.CheckedBy != o.users[store.RoleSite].Login {
		t.Errorf("the check %+v", v.Check)
	}
	db, _ := databases.Load(e)
	var n int
	must(t, db.(*pgx.Conn).QueryRow(context.Background(), `SELECT count(*) FROM audit_log WHERE action = 'document.get' AND object = $1
		AND detail->>'purpose' = 'identity_check'`, passport.ID).Scan(&n))
	if n != 1 {
		t.Errorf("%d audited reads of the passport, want 1", n)
	}
	// A refusal needs a reason, and refuses the admission with it.
	if r := e.do("PUT", id, site, map[string]any{"confirmed": false}); r.code != http.StatusUnprocessableEntity {
		t.Errorf("refusal without a reason: %d", r.code)
	}
	if r := e.do("PUT", id, site, map[string]any{"confirmed": false, "reason": "фото в паспорте не совпадает"}); r.code != http.StatusOK {
		t.Fatalf("refusal: %d %s", r.code, r.body)
	}
	ec := decode[struct {
		Admission     string
		RefusalReason string `json:"refusal_reason"`
	}](t, e.do("GET", "/api/v1/exams/"+o.exam+"/candidates/"+o.cand2, site, nil))
	if ec.Admission != store.AdmissionRefused || !strings.Contains(ec.RefusalReason, "фото в паспорте не совпадает") {
		t.Errorf("admission after the refusal %+v", ec)
	}
}
