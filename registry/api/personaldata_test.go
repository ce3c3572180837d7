package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nokstream/nokstream/registry/store"
)

// A candidate's personal data beyond the name, by the JSON member that
// carries it, and who may read each (152-FZ minimisation): written out
// here independently of scope.go. An expert reads the name only; a site
// the name and the identity document, to check identity; the center, its
// council and NARK everything.
var (
	personalFields = []string{"snils", "document", "email", "phone"}
	readsPersonal  = map[string][]string{
		store.RoleNARK:    personalFields,
		store.RoleCouncil: personalFields,
		store.RoleCenter:  personalFields,
		store.RoleSite:    {"document"},
		store.RoleExpert:  nil,
	}
	staffRoles = []string{store.RoleNARK, store.RoleCouncil, store.RoleCenter, store.RoleSite, store.RoleExpert}
)

// candidateRoutes answer candidates, in lists and single reads.
var candidateRoutes = []string{
	"GET /api/v1/candidates",
	"GET /api/v1/candidates/{candidate}",
	"GET /api/v1/exams/{exam}/candidates",
	"GET /api/v1/exams/{exam}/candidates/{candidate}",
	"GET /api/v1/exams/{exam}/candidates/{candidate}/identity",
}

// candidatesIn returns every JSON object of v that is a candidate (has a
// full_name).
func candidatesIn(v any) []map[string]any {
	var out []map[string]any
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["full_name"]; ok {
			out = append(out, x)
		}
		for _, y := range x {
			out = append(out, candidatesIn(y)...)
		}
	case []any:
		for _, y := range x {
			out = append(out, candidatesIn(y)...)
		}
	}
	return out
}

// TestPersonalDataMatrix reads the candidates of the caller's own chain as
// every staff role through every route that answers candidates, and checks
// which personal fields each answer carries against the matrix above. Then
// it calls every GET route of the access matrix as every role and checks
// that no answer carries a value the role may not read. The observed table
// is testdata/personal-data-matrix.txt (rewritten with -update).
func TestPersonalDataMatrix(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	ctx := context.Background()
	o := w.orgs[1]
	values := map[string]string{"snils": "112-233-445 95", "document": "паспорт 4510 123456", "email": "orlova@mail.example",
		"phone": "+7 900 123-45-67"}
	for _, id := range []string{o.cand} {
		k, err := e.store.Candidate(ctx, id)
		must(t, err)
		k.SNILS, k.Document, k.Email, k.Phone = values["snils"], values["document"], values["email"], values["phone"]
		_, err = e.store.SaveCandidate(ctx, k)
		must(t, err)
	}
	token := func(role string) string {
		if role == store.RoleNARK {
			return w.nark
		}
		return o.tokens[role]
	}
	paths := map[string]string{
		"GET /api/v1/candidates":                                   "/api/v1/candidates",
		"GET /api/v1/candidates/{candidate}":                       "/api/v1/candidates/" + o.cand,
		"GET /api/v1/exams/{exam}/candidates":                      "/api/v1/exams/" + o.exam + "/candidates",
		"GET /api/v1/exams/{exam}/candidates/{candidate}":          "/api/v1/exams/" + o.exam + "/candidates/" + o.cand,
		"GET /api/v1/exams/{exam}/candidates/{candidate}/identity": "/api/v1/exams/" + o.exam + "/candidates/" + o.cand + "/identity",
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-50s", "route \\ role")
	for _, role := range staffRoles {
		fmt.Fprintf(&table, " %-32s", role)
	}
	table.WriteString("\n")
	for _, route := range candidateRoutes {
		fmt.Fprintf(&table, "%-50s", route)
		for _, role := range staffRoles {
			r := e.do("GET", paths[route], token(role), nil)
			var v any
			if r.code == http.StatusOK {
				must(t, json.Unmarshal(r.body, &v))
			}
			cands := candidatesIn(v)
			cell := "-" // does not see the candidate
			if len(cands) > 0 {
				cell = "name"
				for _, f := range personalFields {
					n := 0
					for _, k := range cands {
						if _, ok := k[f]; ok {
							n++
						}
					}
					switch {
					case n == len(cands):
						cell += "+" + f
					case n > 0:
						t.Errorf("%s as %s: %s in %d of %d candidates", route, role, f, n, len(cands))
					}
				}
				want := "name"
				for _, f := range readsPersonal[role] {
					want += "+" + f
				}
				if cell != want {
					t.Errorf("%s as %s: %s, want %s", route, role, cell, want)
				}
			}
			fmt.Fprintf(&table, " %-32s", cell)
		}
		table.WriteString("\n")
	}
	got := ""
	for _, line := range strings.SplitAfter(table.String(), "\n") {
		got += strings.TrimRight(line, " \n")
		if strings.HasSuffix(line, "\n") {
			got += "\n"
		}
	}
	golden := filepath.Join("testdata", "personal-data-matrix.txt")
	if *update {
		must(t, os.WriteFile(golden, []byte(got), 0o644))
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if string(want) != got {
		t.Errorf("personal data matrix differs from %s (run with -update if intended):\n%s", golden, got)
	}

	// No route leaks what a role may not read.
	for route, a := range matrix {
		method, _, _ := strings.Cut(route, " ")
		if method != "GET" || a.kind == kindCandidate {
			continue
		}
		for _, role := range staffRoles {
			r := e.do("GET", a.path(w, o), token(role), nil)
			for _, f := range personalFields {
				if !slices.Contains(readsPersonal[role], f) && bytes.Contains(r.body, []byte(values[f])) {
					t.Errorf("%s as %s: the answer carries the candidate's %s", route, role, f)
				}
			}
		}
	}
}

// TestAppointOnlyOwnExperts: a center appoints only experts registered
// with its council or itself; another council's expert, or one registered
// with no organisation, is refused and not appointed.
func TestAppointOnlyOwnExperts(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	ctx := context.Background()
	o1, o2 := w.orgs[1], w.orgs[2]
	_, err := e.store.AddUser(ctx, "freelancer", store.RoleExpert, "")
	must(t, err)
	_, err = e.store.AddUser(ctx, "center-expert", store.RoleExpert, o1.center)
	must(t, err)
	center := o1.tokens[store.RoleCenter]
	path := "/api/v1/exams/" + o1.exam + "/experts"
	for _, tt := range []struct {
		login string
		want  int
	}{
		{o2.users[store.RoleExpert].Login, http.StatusUnprocessableEntity}, // council2's expert
		{"freelancer", http.StatusUnprocessableEntity},
		{"center-expert", http.StatusOK},
		{o1.users[store.RoleExpert].Login, http.StatusOK}, // council1's expert
	} {
		if r := e.do("POST", path, center, map[string]string{"login": tt.login}); r.code != tt.want {
			t.Errorf("appoint %s: %d %s, want %d", tt.login, r.code, r.body, tt.want)
		}
	}
	x, err := e.store.Exam(ctx, o1.exam)
	must(t, err)
	for _, a := range x.Experts {
		if a.Login == o2.users[store.RoleExpert].Login || a.Login == "freelancer" {
			t.Errorf("%s was appointed to %s", a.Login, o1.exam)
		}
	}
	// council2's expert still cannot see the exam.
	if r := e.do("GET", "/api/v1/exams/"+o1.exam, o2.tokens[store.RoleExpert], nil); r.code != http.StatusNotFound {
		t.Errorf("council2's expert reads exam1: %d", r.code)
	}
}

// TestAppointExpertTellsNoLogins: a center trying logins as experts of its
// exam gets one answer for a login that does not exist, one of another
// role (its own council's, another council's), a disabled expert and
// another council's expert, so it cannot learn who has an account and in
// which role. It used to answer "no user", "is not an expert" and "is
// registered with neither ... nor ..." apart.
func TestAppointExpertTellsNoLogins(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	ctx := context.Background()
	o1, o2 := w.orgs[1], w.orgs[2]
	_, err := e.store.AddUser(ctx, "retired-expert", store.RoleExpert, o1.council)
	must(t, err)
	must(t, e.store.SetUserDisabled(ctx, "retired-expert", true))
	center := o1.tokens[store.RoleCenter]
	path := "/api/v1/exams/" + o1.exam + "/experts"
	answers := map[string][]string{}
	for _, login := range []string{"no-such-login", o1.users[store.RoleCouncil].Login, o2.users[store.RoleCouncil].Login,
		o2.users[store.RoleSite].Login, "nark", "retired-expert", o2.users[store.RoleExpert].Login} {
		r := e.do("POST", path, center, map[string]string{"login": login})
		if r.code != http.StatusUnprocessableEntity {
			t.Errorf("appoint %s: %d %s, want 422", login, r.code, r.body)
			continue
		}
		msg := strings.Replace(r.errorMessage(t), login, "LOGIN", 1)
		answers[msg] = append(answers[msg], login)
	}
	if len(answers) != 1 {
		t.Errorf("the answers tell the logins apart: %q", answers)
	}
	x, err := e.store.Exam(ctx, o1.exam)
	must(t, err)
	if len(x.Experts) != 1 {
		t.Errorf("experts of %s: %+v, want only its own", o1.exam, x.Experts)
	}
}
