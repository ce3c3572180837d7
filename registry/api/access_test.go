package api_test

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// Roles of the access matrix: the staff roles and a candidate holding an
// exam token.
const roleCandidate = "candidate"

var matrixRoles = []string{store.RoleNARK, store.RoleCouncil, store.RoleCenter, store.RoleSite, store.RoleExpert, roleCandidate}

// Who sees an object of organisation chain 1 (the callers' own), by kind:
// the rule of scope.go, written out independently here.
var (
	seeCouncil   = []string{store.RoleNARK, store.RoleCouncil}
	seeCenter    = []string{store.RoleNARK, store.RoleCouncil, store.RoleCenter}
	seeSite      = []string{store.RoleNARK, store.RoleCouncil, store.RoleCenter, store.RoleSite}
	seeCandidate = seeCenter
	seeExam      = []string{store.RoleNARK, store.RoleCouncil, store.RoleCenter, store.RoleSite, store.RoleExpert}
	seeAppeal    = seeSite
	seeStream    = seeExam // a room camera of the exam's site, inside the window
	allStaff     = seeExam
)

// kinds of routes in the matrix.
const (
	kindObject    = iota // acts on one object of a chain: inside is chain 1, outside chain 2
	kindList             // lists: everyone's answer is filtered
	kindCreate           // creates in the caller's own organisation
	kindPublic           // no authentication
	kindSelf             // about the caller's own session
	kindCandidate        // the candidate's exam token
	kindRole             // about no object: the roles in do may call it
)

// access is the expected access to one route.
type access struct {
	kind int
	// path returns the path of the request about chain o.
	path func(w *world, o *org) string
	// body returns the JSON body (or raw bytes with contentType) about o.
	body        func(w *world, o *org) any
	contentType string
	// see is who sees the object of chain 1 (kindObject); NARK sees chain
	// 2's too. public objects are seen by every staff user of both chains.
	see    []string
	public bool
	// do is who may act; nil means everyone who sees.
	do []string
	// listed returns an id that the list of chain o's caller shows when
	// see says so, and that never shows for chain 2 except to NARK.
	listed func(o *org) string
	// outside, for kindCreate, is the status a permitted role gets when
	// the body names chain 2's objects.
	outside int
	// staff, for kindSelf, is the status every staff user gets.
	staff int
	// fresh runs the call with a new session of the user (it ends it).
	fresh bool
}

func win() string {
	return "?from=" + url.QueryEscape(examStart.Format(time.RFC3339)) + "&to=" + url.QueryEscape(examEnd.Format(time.RFC3339))
}

func objPath(f string, keys ...func(*org) string) func(*world, *org) string {
	return func(_ *world, o *org) string {
		args := make([]any, len(keys))
		for i, k := range keys {
			args[i] = k(o)
		}
		return fmt.Sprintf(f, args...)
	}
}

func fixed(p string) func(*world, *org) string { return func(*world, *org) string { return p } }

func jsonBody(v map[string]any) func(*world, *org) any { return func(*world, *org) any { return v } }

var (
	kCouncil  = func(o *org) string { return o.council }
	kCenter   = func(o *org) string { return o.center }
	kSite     = func(o *org) string { return o.site }
	kQual     = func(o *org) string { return o.qual }
	kCand     = func(o *org) string { return o.cand }
	kCand2    = func(o *org) string { return o.cand2 }
	kExam     = func(o *org) string { return o.exam }
	kAppeal   = func(o *org) string { return o.appeal }
	kCert     = func(o *org) string { return o.cert }
	kDocument = func(o *org) string { return o.document }
	kMedia    = func(o *org) string { return o.media }
)

// matrix is the expected access of every route. TestAccessMatrix fails for
// a registered route missing here.
var matrix = map[string]access{
	"POST /api/v1/auth/login": {kind: kindPublic, path: fixed("/api/v1/auth/login"),
		body: jsonBody(map[string]any{"login": "nark", "password": "a long enough password"})},
	"POST /api/v1/auth/password": {kind: kindSelf, staff: http.StatusForbidden, path: fixed("/api/v1/auth/password"),
		body: jsonBody(map[string]any{"old_password": "not the password", "new_password": "another long password"})},
	"POST /api/v1/auth/logout": {kind: kindSelf, staff: http.StatusNoContent, fresh: true, path: fixed("/api/v1/auth/logout")},
	"GET /api/v1/auth/me":      {kind: kindSelf, staff: http.StatusOK, path: fixed("/api/v1/auth/me")},
	"POST /api/v1/links": {kind: kindSelf, staff: http.StatusOK, path: fixed("/api/v1/links"),
		body: jsonBody(map[string]any{"path": "/api/v1/streams/site1/room1/playlist.m3u8"})},
	"GET /api/v1/openapi.json": {kind: kindPublic, path: fixed("/api/v1/openapi.json")},
	"POST /api/v1/exam/login": {kind: kindPublic, path: fixed("/api/v1/exam/login"),
		body: func(w *world, _ *org) any { return map[string]any{"password": w.examPW} }},
	"GET /api/v1/exam/session": {kind: kindCandidate, path: fixed("/api/v1/exam/session")},

	"GET /api/v1/streams/{site}/{device}/segments": {path: objPath("/api/v1/streams/%s/room1/segments"+win(), kSite), see: seeStream},
	"GET /api/v1/streams/{site}/{device}/playlist.m3u8": {path: objPath("/api/v1/streams/%s/room1/playlist.m3u8"+win(), kSite),
		see: seeStream},
	"GET /api/v1/streams/{site}/{device}/master.m3u8": {path: objPath("/api/v1/streams/%s/room1/master.m3u8"+win(), kSite),
		see: seeStream},
	"GET /api/v1/streams/{site}/{device}/thumbnails.vtt": {path: objPath("/api/v1/streams/%s/room1/thumbnails.vtt"+win(), kSite),
		see: seeStream},
	"GET /api/v1/streams/{site}/{device}/observations": {path: objPath("/api/v1/streams/%s/room1/observations"+win(), kSite),
		see: seeStream},
	"GET /api/v1/media/{key...}": {path: objPath("/api/v1/media/%s", kMedia), see: seeStream},

	"GET /api/v1/councils":           {kind: kindList, path: fixed("/api/v1/councils"), see: seeCouncil, listed: kCouncil},
	"GET /api/v1/councils/{council}": {path: objPath("/api/v1/councils/%s", kCouncil), see: seeCouncil},
	"PUT /api/v1/councils/{council}/commission": {path: objPath("/api/v1/councils/%s/commission", kCouncil), see: seeCouncil,
		do: []string{store.RoleCouncil}, body: jsonBody(map[string]any{"members": []string{"Иванов И. И."}, "address": "Москва",
			"email": "a@b.example", "phones": []string{"+7 495 000-00-00"}})},
	"GET /api/v1/councils/{council}/retention": {path: objPath("/api/v1/councils/%s/retention", kCouncil), see: seeCouncil},
	"PUT /api/v1/councils/{council}/retention": {path: objPath("/api/v1/councils/%s/retention", kCouncil), see: seeCouncil,
		do: []string{store.RoleCouncil}, body: jsonBody(map[string]any{"appeal_window_days": 30, "provisional_days": 90, "unlinked_days": 30})},
	"GET /api/v1/centers":          {kind: kindList, path: fixed("/api/v1/centers"), see: seeCenter, listed: kCenter},
	"GET /api/v1/centers/{center}": {path: objPath("/api/v1/centers/%s", kCenter), see: seeCenter},
	"PUT /api/v1/centers/{center}": {path: objPath("/api/v1/centers/%s", kCenter), see: seeCenter, do: []string{store.RoleCenter, store.RoleCouncil},
		body: jsonBody(map[string]any{"name": "ЦОК", "head": "Сидоров С. С.", "website": "https://c.example", "legal_address": "Москва",
			"email": "c@c.example", "phones": []string{"+7 495 111-11-11"}})},
	"PUT /api/v1/centers/{center}/qualifications": {path: objPath("/api/v1/centers/%s/qualifications", kCenter), see: seeCenter,
		do: []string{store.RoleCouncil}, body: func(_ *world, o *org) any { return map[string]any{"qualifications": []string{o.qual}} }},
	"GET /api/v1/sites":                 {kind: kindList, path: fixed("/api/v1/sites"), see: seeSite, listed: kSite},
	"GET /api/v1/sites/{site}":          {path: objPath("/api/v1/sites/%s", kSite), see: seeSite},
	"PUT /api/v1/sites/{site}":          {path: objPath("/api/v1/sites/%s", kSite), see: seeSite, do: []string{store.RoleCenter, store.RoleSite, store.RoleCouncil}, body: jsonBody(map[string]any{"name": "ЭП"})},
	"GET /api/v1/sites/{site}/devices":  {path: objPath("/api/v1/sites/%s/devices", kSite), see: seeSite},
	"GET /api/v1/qualifications":        {kind: kindList, path: fixed("/api/v1/qualifications"), see: allStaff, public: true, listed: kQual},
	"GET /api/v1/qualifications/{code}": {path: objPath("/api/v1/qualifications/%s", kQual), see: allStaff, public: true},
	"POST /api/v1/qualifications/{code}/tools": {path: objPath("/api/v1/qualifications/%s/tools", kQual), see: allStaff, public: true,
		do: []string{store.RoleCouncil}, body: jsonBody(map[string]any{"reference": "ОС-2", "link": "https://nok.example/os/2"})},

	"GET /api/v1/candidates": {kind: kindList, path: fixed("/api/v1/candidates"), see: seeCandidate, listed: kCand},
	"POST /api/v1/candidates": {kind: kindCreate, path: fixed("/api/v1/candidates"), do: []string{store.RoleCenter},
		body: jsonBody(map[string]any{"last_name": "Новиков", "first_name": "Олег", "document": "паспорт 4510 000001"})},
	"GET /api/v1/candidates/{candidate}": {path: objPath("/api/v1/candidates/%s", kCand), see: seeCandidate},
	"PUT /api/v1/candidates/{candidate}": {path: objPath("/api/v1/candidates/%s", kCand), see: seeCandidate, do: []string{store.RoleCenter},
		body: jsonBody(map[string]any{"last_name": "Фамилия", "first_name": "Имя0", "document": "паспорт 10"})},
	"GET /api/v1/candidates/{candidate}/documents": {path: objPath("/api/v1/candidates/%s/documents", kCand), see: seeCandidate},
	"POST /api/v1/candidates/{candidate}/documents": {path: objPath("/api/v1/candidates/%s/documents?kind=diploma&filename=d.pdf", kCand),
		see: seeCandidate, do: []string{store.RoleCenter}, contentType: "application/pdf",
		body: func(*world, *org) any { return []byte("%PDF-1.4 diploma") }},
	"GET /api/v1/documents/{document}": {path: objPath("/api/v1/documents/%s", kDocument), see: seeCandidate},

	"GET /api/v1/exams": {kind: kindList, path: fixed("/api/v1/exams"), see: seeExam, listed: kExam},
	"POST /api/v1/exams": {kind: kindCreate, path: fixed("/api/v1/exams"), do: []string{store.RoleCenter}, outside: http.StatusUnprocessableEntity,
		body: func(_ *world, o *org) any {
			return map[string]any{"site": o.site, "qualification": o.qual, "starts_at": examStart.Add(48 * time.Hour), "ends_at": examEnd.Add(48 * time.Hour)}
		}},
	"GET /api/v1/exams/{exam}": {path: objPath("/api/v1/exams/%s", kExam), see: seeExam},
	"POST /api/v1/exams/{exam}/experts": {path: objPath("/api/v1/exams/%s/experts", kExam), see: seeExam, do: []string{store.RoleCenter},
		body: jsonBody(map[string]any{"login": "expert1"})},
	"GET /api/v1/exams/{exam}/preconditions": {path: objPath("/api/v1/exams/%s/preconditions", kExam), see: seeExam},
	"GET /api/v1/exams/{exam}/candidates":    {path: objPath("/api/v1/exams/%s/candidates", kExam), see: seeExam},
	"POST /api/v1/exams/{exam}/candidates": {path: objPath("/api/v1/exams/%s/candidates", kExam), see: seeExam, do: []string{store.RoleCenter},
		body: func(_ *world, o *org) any {
			return map[string]any{"candidate": o.cand, "webcam": "ws1-cam", "screen": "ws1-screen"}
		}},
	"GET /api/v1/exams/{exam}/candidates/{candidate}": {path: objPath("/api/v1/exams/%s/candidates/%s", kExam, kCand), see: seeExam},
	"PUT /api/v1/exams/{exam}/candidates/{candidate}/admission": {path: objPath("/api/v1/exams/%s/candidates/%s/admission", kExam, kCand),
		see: seeExam, do: []string{store.RoleSite}, body: jsonBody(map[string]any{"status": "admitted"})},
	"POST /api/v1/exams/{exam}/candidates/{candidate}/password": {path: objPath("/api/v1/exams/%s/candidates/%s/password", kExam, kCand2),
		see: seeExam, do: []string{store.RoleSite}},
	"GET /api/v1/exams/{exam}/candidates/{candidate}/media":  {path: objPath("/api/v1/exams/%s/candidates/%s/media", kExam, kCand), see: seeExam},
	"GET /api/v1/exams/{exam}/candidates/{candidate}/result": {path: objPath("/api/v1/exams/%s/candidates/%s/result", kExam, kCand), see: seeExam},
	"PUT /api/v1/exams/{exam}/candidates/{candidate}/result": {path: objPath("/api/v1/exams/%s/candidates/%s/result", kExam, kCand2),
		see: seeExam, do: []string{store.RoleCenter},
		body: jsonBody(map[string]any{"kind": "conclusion", "issued_on": "2025-03-02", "conclusion": "не сдана практическая часть"})},
	"GET /api/v1/exams/{exam}/candidates/{candidate}/marks": {path: objPath("/api/v1/exams/%s/candidates/%s/marks", kExam, kCand), see: seeExam},
	"POST /api/v1/exams/{exam}/candidates/{candidate}/marks": {path: objPath("/api/v1/exams/%s/candidates/%s/marks", kExam, kCand),
		see: seeExam, do: []string{store.RoleExpert},
		body: jsonBody(map[string]any{"at": examStart.Add(time.Hour), "kind": "note", "text": "посмотрел в сторону"})},
	"PUT /api/v1/exams/{exam}/candidates/{candidate}/verdict": {path: objPath("/api/v1/exams/%s/candidates/%s/verdict", kExam, kCand),
		see: seeExam, do: []string{store.RoleExpert}, body: jsonBody(map[string]any{"procedure_confirmed": true})},
	"GET /api/v1/exams/{exam}/candidates/{candidate}/review": {path: objPath("/api/v1/exams/%s/candidates/%s/review", kExam, kCand), see: seeExam},
	"POST /api/v1/exams/{exam}/candidates/{candidate}/appeals": {path: objPath("/api/v1/exams/%s/candidates/%s/appeals", kExam, kCand),
		see: seeExam, do: []string{store.RoleCouncil}, body: jsonBody(map[string]any{"reason": "не согласен с результатом"})},
	"POST /api/v1/exams/{exam}/candidates/{candidate}/evidence/disposal": {path: objPath("/api/v1/exams/%s/candidates/%s/evidence/disposal", kExam, kCand),
		see: seeExam, do: []string{store.RoleCouncil}, body: jsonBody(map[string]any{"reason": "результата не будет"})},
	"GET /api/v1/exams/{exam}/candidates/{candidate}/evidence": {path: objPath("/api/v1/exams/%s/candidates/%s/evidence?purpose=appeal", kExam, kCand),
		see: seeExam, do: []string{store.RoleNARK, store.RoleCouncil}},
	// A body that is no bundle is answered with a report that says so.
	"POST /api/v1/evidence/verify": {kind: kindRole, path: fixed("/api/v1/evidence/verify"), do: []string{store.RoleNARK, store.RoleCouncil},
		contentType: "application/x-tar", body: func(*world, *org) any { return []byte("not an evidence bundle") }},
	"GET /api/v1/keys/seal":             {kind: kindPublic, path: fixed("/api/v1/keys/seal")},
	"GET /api/v1/review-queue":          {kind: kindRole, path: fixed("/api/v1/review-queue"), do: []string{store.RoleExpert}},
	"GET /api/v1/retention/floors":      {kind: kindRole, path: fixed("/api/v1/retention/floors"), do: allStaff},
	"GET /api/v1/audit":                 {kind: kindRole, path: fixed("/api/v1/audit?org=center1"), do: []string{store.RoleNARK}},
	"GET /api/v1/exams/{exam}/protocol": {path: objPath("/api/v1/exams/%s/protocol", kExam), see: seeExam},
	"PUT /api/v1/exams/{exam}/protocol": {path: objPath("/api/v1/exams/%s/protocol?number=1&signed_on=2025-03-01&filename=p.pdf", kExam),
		see: seeExam, do: []string{store.RoleSite}, contentType: "application/pdf",
		body: func(*world, *org) any { return []byte("%PDF-1.4 protocol") }},
	"POST /api/v1/exams/{exam}/protocol/approval": {path: objPath("/api/v1/exams/%s/protocol/approval", kExam), see: seeExam,
		do: []string{store.RoleExpert}, body: jsonBody(map[string]any{"approved": true})},
	"GET /api/v1/exams/{exam}/decisions": {path: objPath("/api/v1/exams/%s/decisions", kExam), see: seeExam},
	// "returned" needs no approved protocol (TestDeadlinesAPI covers that).
	"POST /api/v1/exams/{exam}/decision": {path: objPath("/api/v1/exams/%s/decision", kExam), see: seeExam, do: []string{store.RoleCouncil},
		body: jsonBody(map[string]any{"decision": "returned", "comment": "на доработку"})},
	"POST /api/v1/exams/{exam}/verification": {path: objPath("/api/v1/exams/%s/verification", kExam), see: seeExam, do: []string{store.RoleNARK},
		body: jsonBody(map[string]any{"verified": true})},

	"GET /api/v1/certificates/{number}": {path: objPath("/api/v1/certificates/%s", kCert), see: seeExam},
	"POST /api/v1/certificates/{number}/extend": {path: objPath("/api/v1/certificates/%s/extend", kCert), see: seeExam,
		do: []string{store.RoleCouncil}, body: jsonBody(map[string]any{"valid_until": "2031-01-01", "reason": "продление"})},
	"POST /api/v1/certificates/{number}/revoke": {path: objPath("/api/v1/certificates/%s/revoke", kCert), see: seeExam,
		do: []string{store.RoleCouncil}, body: jsonBody(map[string]any{"reason": "ошибка в протоколе"})},
	"GET /api/v1/deadlines":         {kind: kindList, path: fixed("/api/v1/deadlines"), see: seeExam},
	"GET /api/v1/deadlines/overdue": {kind: kindList, path: fixed("/api/v1/deadlines/overdue"), see: seeExam},

	"GET /api/v1/appeals":          {kind: kindList, path: fixed("/api/v1/appeals"), see: seeAppeal, listed: kAppeal},
	"GET /api/v1/appeals/{appeal}": {path: objPath("/api/v1/appeals/%s", kAppeal), see: seeAppeal},
	"POST /api/v1/appeals/{appeal}/decision": {path: objPath("/api/v1/appeals/%s/decision", kAppeal), see: seeAppeal,
		do: []string{store.RoleCouncil}, body: jsonBody(map[string]any{"outcome": "rejected", "decision": "оснований нет"})},
	"POST /api/v1/appeals/{appeal}/close": {path: objPath("/api/v1/appeals/%s/close", kAppeal), see: seeAppeal, do: []string{store.RoleCouncil}},
}

// verdict classifies an answer: A (allowed: the access checks let it
// through), 404 (hidden), 403 (seen but not permitted), 401.
func verdict(code int) string {
	switch code {
	case http.StatusNotFound, http.StatusForbidden, http.StatusUnauthorized:
		return fmt.Sprint(code)
	}
	return "A"
}

// expect returns the verdict the matrix expects for role acting on chain
// side (1 inside, 2 outside) through route a.
func (a access) expect(role string, side int) string {
	if a.kind == kindPublic {
		return "A"
	}
	if role == roleCandidate {
		if a.kind == kindCandidate {
			return "A"
		}
		return "401"
	}
	switch a.kind {
	case kindCandidate:
		return "401"
	case kindSelf:
		return verdict(a.staff)
	case kindList:
		return "A"
	case kindRole:
		if !slices.Contains(a.do, role) {
			return "403"
		}
		return "A"
	case kindCreate:
		if !slices.Contains(a.do, role) {
			return "403"
		}
		if side == 2 && a.outside != 0 {
			return verdict(a.outside)
		}
		return "A"
	}
	sees := slices.Contains(a.see, role) && (side == 1 || a.public || role == store.RoleNARK)
	if !sees {
		return "404"
	}
	if a.do != nil && !slices.Contains(a.do, role) {
		return "403"
	}
	if a.public && a.do != nil && side == 2 {
		// Everyone reads a public object; only its own council changes it.
		return "403"
	}
	return "A"
}

// TestAccessMatrix calls every route as every role, about an object inside
// the caller's organisation chain and one outside it, and checks each cell
// against the matrix; lists are checked to show what the role sees of its
// own chain and nothing of the other. The observed table is
// testdata/access-matrix.txt (rewritten with -update).
func TestAccessMatrix(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, func(c *api.Config) { c.LoginFailuresPerAddress = 1000 })
	w := newWorld(t, e)
	routes := e.srv.Routes()
	for _, r := range routes {
		if _, ok := matrix[r]; !ok {
			t.Errorf("route %s has no row in the access matrix: add one", r)
		}
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%-64s", "route \\ role: inside/outside")
	for _, role := range matrixRoles {
		fmt.Fprintf(&table, " %-9s", role)
	}
	table.WriteString("\n")
	sorted := slices.Clone(routes)
	slices.Sort(sorted)
	for _, route := range sorted {
		a, ok := matrix[route]
		if !ok {
			continue
		}
		method, _, _ := strings.Cut(route, " ")
		fmt.Fprintf(&table, "%-64s", route)
		for _, role := range matrixRoles {
			var cell []string
			for side := 1; side <= 2; side++ {
				o := w.orgs[side]
				token := w.candidate
				if role != roleCandidate {
					token = w.orgs[1].tokens[role]
					if role == store.RoleNARK {
						token = w.nark
					}
					if a.fresh {
						token = freshSession(t, e, token)
					}
				}
				p := a.path(w, o)
				var res response
				switch b := bodyOf(a, w, o).(type) {
				case []byte:
					res = e.do(method, p, token, string(b), "Content-Type", a.contentType)
				default:
					res = e.do(method, p, token, b)
				}
				got, want := verdict(res.code), a.expect(role, side)
				if got != want {
					t.Errorf("%s as %s about chain %d (%s): %d %s, want %s", route, role, side, p, res.code, limitBody(res.body), want)
				}
				if a.kind == kindCreate && side == 2 && a.outside != 0 && slices.Contains(a.do, role) && res.code != a.outside {
					t.Errorf("%s as %s naming chain 2's objects: %d %s, want %d", route, role, res.code, limitBody(res.body), a.outside)
				}
				if got == "A" && (res.code >= 500 || res.code == http.StatusBadRequest) {
					t.Errorf("%s as %s about chain %d: %d %s", route, role, side, res.code, limitBody(res.body))
				}
				if a.kind == kindList && a.listed != nil && res.code == http.StatusOK {
					id := a.listed(o)
					shown := bytes.Contains(res.body, []byte(`"`+id+`"`))
					wantShown := slices.Contains(a.see, role) && (side == 1 || a.public || role == store.RoleNARK)
					if shown != wantShown {
						t.Errorf("%s as %s: %s listed %v, want %v", route, role, id, shown, wantShown)
					}
				}
				cell = append(cell, got)
			}
			fmt.Fprintf(&table, " %-9s", strings.Join(cell, "/"))
		}
		table.WriteString("\n")
	}
	golden := filepath.Join("testdata", "access-matrix.txt")
	if *update {
		must(t, os.MkdirAll("testdata", 0o755))
		must(t, os.WriteFile(golden, []byte(table.String()), 0o644))
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if string(want) != table.String() {
		t.Errorf("access matrix differs from %s (run with -update if intended):\n%s", golden, table.String())
	}
}

func bodyOf(a access, w *world, o *org) any {
	if a.body == nil {
		return nil
	}
	return a.body(w, o)
}

func limitBody(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// freshSession returns a new session token of the owner of token.
func freshSession(t *testing.T, e *env, token string) string {
	t.Helper()
	u, err := e.store.UserByToken(t.Context(), token, e.clock.Now())
	must(t, err)
	tok, _, err := e.store.CreateSession(t.Context(), u.ID, e.clock.Now(), time.Hour)
	must(t, err)
	return tok
}
