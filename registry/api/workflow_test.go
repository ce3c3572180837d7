package api_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/store"
)

// completeDetails gives chain o's site and center every detail the
// council's approval needs.
func completeDetails(t *testing.T, e *env, o *org) {
	t.Helper()
	for _, sd := range []struct {
		path string
		body map[string]any
	}{
		{"/api/v1/sites/" + o.site, map[string]any{"name": "ЭП", "address": "Москва, ул. Ильинка, 3", "email": "ep@c.example", "phones": []string{"+7 495 2"}}},
		{"/api/v1/centers/" + o.center, map[string]any{"head": "Сидоров С. С.", "website": "https://c.example", "legal_address": "Москва",
			"actual_address": "Москва, ул. Покровка, 2", "postal_address": "101000, Москва", "email": "c@c.example", "phones": []string{"+7 495 1"}}},
	} {
		if r := e.do("PUT", sd.path, o.tokens[store.RoleCenter], sd.body); r.code != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", sd.path, r.code, r.body)
		}
	}
}

// TestCardWorkflowAPI walks a card through the procedure over HTTP, each
// step refused to the wrong role and in the wrong order, and the council's
// protocol attached as a scan.
func TestCardWorkflowAPI(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	center, council, site, expert := o.tokens[store.RoleCenter], o.tokens[store.RoleCouncil], o.tokens[store.RoleSite], o.tokens[store.RoleExpert]
	ep := "/api/v1/exams/" + o.exam
	card := ep + "/candidates/" + o.cand2 + "/result"
	call := func(token, method, path string, body any, want int, says ...string) response {
		t.Helper()
		r := e.do(method, path, token, body)
		if r.code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, r.code, r.body, want)
		}
		for _, s := range says {
			if !strings.Contains(string(r.body), s) {
				t.Errorf("%s %s: %s, want it to say %q", method, path, r.body, s)
			}
		}
		return r
	}
	cert := map[string]string{"kind": "certificate", "certificate_number": "40.1-000077", "issued_on": "2025-03-02"}
	call(center, "PUT", card, cert, http.StatusConflict, "the exam ends at")
	e.clock.Set(examEnd.Add(time.Hour))
	call(council, "PUT", card, cert, http.StatusForbidden)
	call(center, "PUT", card, cert, http.StatusCreated, `"state":"draft"`)
	cert["issued_on"] = "2025-03-03"
	call(center, "PUT", card, cert, http.StatusOK, `"issued_on":"2025-03-03"`)
	// The number is unique nationally: chain 2's center cannot reuse it.
	o2 := w.orgs[2]
	e.clock.Set(examEnd.Add(2 * time.Hour))
	call(o2.tokens[store.RoleCenter], "PUT", "/api/v1/exams/"+o2.exam+"/candidates/"+o2.cand2+"/result", cert, http.StatusConflict, "in use")

	approval := map[string]any{"decision": "approved", "protocol": map[string]any{"number": "СПК-12", "date": "2025-03-03"}}
	early := map[string]any{"decision": "approved", "protocol": map[string]any{"number": "СПК-12", "date": "2025-03-03", "link": "https://spk.example/12"}}
	call(council, "POST", ep+"/decision", early, http.StatusConflict, "submits its cards first")
	call(site, "POST", ep+"/submission", nil, http.StatusForbidden)
	cards := decode[struct {
		Cards []struct{ Candidate, State string }
	}](t, call(center, "POST", ep+"/submission", nil, http.StatusOK))
	if len(cards.Cards) != 2 || cards.Cards[1].Candidate != o.cand2 || cards.Cards[1].State != store.CardSubmitted {
		t.Errorf("cards after the submission %+v", cards)
	}
	call(center, "PUT", card, cert, http.StatusConflict, "only a draft or a returned card changes")

	// The council's protocol: a scan uploaded by the council, then named.
	call(center, "POST", ep+"/council-protocol", nil, http.StatusForbidden)
	scan := e.do("POST", ep+"/council-protocol?filename=spk-12.pdf", council, "%PDF-1.4 СПК-12", "Content-Type", "application/pdf")
	if scan.code != http.StatusCreated {
		t.Fatalf("council protocol upload: %d %s", scan.code, scan.body)
	}
	doc := decode[struct{ ID string }](t, scan).ID
	call(council, "POST", ep+"/decision", approval, http.StatusUnprocessableEntity, "a scan (protocol.document) or a link")
	approval["protocol"].(map[string]any)["document"] = doc
	pre := decode[struct {
		Preconditions []struct{ Code string }
	}](t, call(council, "POST", ep+"/decision", approval, http.StatusConflict))
	var codes []string
	for _, p := range pre.Preconditions {
		codes = append(codes, p.Code)
	}
	if !slices.Equal(codes, []string{"commission_protocol", "site_details", "center_details"}) {
		t.Errorf("unmet preconditions %v", codes)
	}
	call(expert, "POST", ep+"/protocol/approval", map[string]any{"approved": true}, http.StatusOK)
	completeDetails(t, e, o)
	call(center, "POST", ep+"/decision", approval, http.StatusForbidden)
	call(council, "POST", ep+"/decision", approval, http.StatusOK, `"url":"/api/v1/documents/`+doc+`"`, `"number":"СПК-12"`)
	// In the register from the approval: the public check finds it.
	call("", "GET", "/api/v1/register/certificates?number=40.1-000077", nil, http.StatusOK, `"state":"approved"`)

	// NARK verifies; the center can no longer change the card.
	call(council, "POST", ep+"/verification", map[string]any{"verified": true}, http.StatusForbidden)
	call(w.nark, "POST", ep+"/registration", nil, http.StatusConflict, "nothing to register")
	call(w.nark, "POST", ep+"/verification", map[string]any{"verified": true, "candidates": []string{o.cand2}}, http.StatusOK)
	call(center, "PUT", card, cert, http.StatusConflict, "only by NARK's correction")
	call(council, "POST", ep+"/registration", nil, http.StatusForbidden)
	call(w.nark, "POST", ep+"/registration", map[string]any{"candidates": []string{o.cand2}}, http.StatusOK, `"state":"registered"`)

	// A correction: NARK's only, with a reason, audited, in the history.
	fix := map[string]any{"certificate_number": "40.1-000078", "reason": "опечатка в номере"}
	call(council, "POST", card+"/correction", fix, http.StatusForbidden)
	call(w.nark, "POST", card+"/correction", map[string]any{"certificate_number": "40.1-000078"}, http.StatusUnprocessableEntity, "needs a reason")
	call(w.nark, "POST", card+"/correction", fix, http.StatusOK, `"certificate_number":"40.1-000078"`, `"change":"corrected"`)
	hist := decode[[]struct {
		From, To, Reason string
		Changes          map[string]map[string]string
	}](t, call(site, "GET", card+"/history", nil, http.StatusOK))
	var path []string
	for _, h := range hist {
		path = append(path, h.From+">"+h.To)
	}
	if want := []string{">draft", "draft>submitted", "submitted>approved", "approved>verified", "verified>registered", "registered>registered"}; !slices.Equal(path, want) {
		t.Errorf("history %v, want %v", path, want)
	}
	if last := hist[len(hist)-1]; last.Reason != "опечатка в номере" || last.Changes["certificate_number"]["from"] != "40.1-000077" {
		t.Errorf("the correction in the history %+v", last)
	}
	db, _ := databases.Load(e)
	var detail string
	err := db.(*pgx.Conn).QueryRow(context.Background(), `SELECT detail::text FROM audit_log WHERE action = 'result.correction' AND object = $1`,
		o.exam+"/"+o.cand2).Scan(&detail)
	if err != nil || !strings.Contains(detail, "40.1-000077") || !strings.Contains(detail, "опечатка") {
		t.Errorf("audit of the correction: %q %v", detail, err)
	}
	call("", "GET", "/api/v1/register/certificates?number=40.1-000077", nil, http.StatusOK, `"certificates":[]`)
	call("", "GET", "/api/v1/register/certificates?number=40.1-000078", nil, http.StatusOK, `"state":"registered"`)
}

// TestPublicCheck: anyone checks a certificate by number or СНИЛС and
// learns its holder's name and nothing else personal; drafts are not in
// the register; bad questions get 422; the 31st check in a minute 429.
func TestPublicCheck(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	ctx := context.Background()
	o := w.orgs[1]
	k, err := e.store.Candidate(ctx, o.cand)
	must(t, err)
	k.SNILS, k.Email, k.Phone, k.Document = "112-233-445 95", "orlova@mail.example", "+7 900 123-45-67", "паспорт 4510 123456"
	_, err = e.store.SaveCandidate(ctx, k)
	must(t, err)
	// A draft of chain 2 is not in the register.
	e.clock.Set(examEnd.Add(time.Hour))
	o2 := w.orgs[2]
	if r := e.do("PUT", "/api/v1/exams/"+o2.exam+"/candidates/"+o2.cand2+"/result", o2.tokens[store.RoleCenter],
		map[string]string{"kind": "certificate", "certificate_number": "DRAFT-1", "issued_on": "2025-03-02"}); r.code != http.StatusCreated {
		t.Fatalf("draft: %d %s", r.code, r.body)
	}
	type check struct {
		Certificates []struct {
			Number, Holder, State string
			Qualification         struct{ ID, Name string }
			Council, Center       struct{ ID string }
			IssuedOn              string `json:"issued_on"`
			ValidUntil            string `json:"valid_until"`
		}
	}
	n := 0
	ask := func(q string, want int) response {
		t.Helper()
		n++
		r := e.do("GET", "/api/v1/register/certificates?"+q, "", nil)
		if r.code != want {
			t.Fatalf("check %s: %d %s, want %d", q, r.code, r.body, want)
		}
		for _, v := range []string{k.SNILS, k.Email, k.Phone, k.Document, "snils", "email", "phone", "document"} {
			if strings.Contains(string(r.body), v) {
				t.Errorf("check %s answers %q: %s", q, v, r.body)
			}
		}
		return r
	}
	for _, q := range []string{"number=" + o.cert, "snils=11223344595"} {
		c := decode[check](t, ask(q, http.StatusOK))
		if len(c.Certificates) != 1 {
			t.Fatalf("check %s: %+v", q, c)
		}
		got := c.Certificates[0]
		if got.Number != o.cert || got.Holder != "Фамилия Имя0" || got.State != store.CardRegistered || got.Qualification.ID != o.qual ||
			got.Council.ID != o.council || got.Center.ID != o.center || got.IssuedOn == "" || got.ValidUntil == "" {
			t.Errorf("check %s: %+v", q, got)
		}
	}
	if c := decode[check](t, ask("number=DRAFT-1", http.StatusOK)); len(c.Certificates) != 0 {
		t.Errorf("a draft answers the public check: %+v", c)
	}
	ask("", http.StatusUnprocessableEntity)
	ask("number=X&snils=11223344595", http.StatusUnprocessableEntity)
	ask("snils=112-233-445+96", http.StatusUnprocessableEntity)
	for n < api.PublicChecksPerMinute {
		ask(fmt.Sprintf("number=N-%d", n), http.StatusOK)
	}
	r := e.do("GET", "/api/v1/register/certificates?number="+o.cert, "", nil)
	if r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Errorf("check over the limit: %d %s (Retry-After %q), want 429", r.code, r.body, r.header.Get("Retry-After"))
	}
	// The next minute, checks work again.
	e.clock.Set(e.clock.Now().Add(time.Minute))
	ask("number="+o.cert, http.StatusOK)
}
