package api_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// TestMultiIndustryCenterAPI: council2 authorises council1's center1 for
// its qualification q2 through the API. It sees the center and its site
// (and cannot change them), the exam of q2 and its footage, and nothing of
// council1's part; council1 no longer sees the footage of council2's exam.
// The withdrawal stops new exams of q2; both steps are audited.
func TestMultiIndustryCenterAPI(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	c1, c2 := w.orgs[1].tokens[store.RoleCouncil], w.orgs[2].tokens[store.RoleCouncil]
	center := w.orgs[1].tokens[store.RoleCenter]
	startX := examEnd.Add(time.Hour)
	newExam := func(id string) map[string]any {
		return map[string]any{"id": id, "site": "site1", "qualification": "q2", "starts_at": startX, "ends_at": startX.Add(2 * time.Hour)}
	}

	if r := e.do("GET", "/api/v1/centers/center1", c2, nil); r.code != http.StatusNotFound {
		t.Fatalf("council2 reads center1 before authorising it: %d %s", r.code, r.body)
	}
	if got := orgsOf(t, e, c2); slices.Contains(got, "center:center1") || slices.Contains(got, "site:site1") {
		t.Fatalf("council2's organisations before authorising center1: %v", got)
	}
	if r := e.do("POST", "/api/v1/exams", center, newExam("examx")); r.code != http.StatusUnprocessableEntity ||
		!strings.Contains(r.errorMessage(t), "not authorised") {
		t.Fatalf("exam of q2 before the authorisation: %d %s, want 422 not authorised", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/centers/center1/authorisations", c2, map[string]any{"qualifications": []string{"q1"}}); r.code != http.StatusUnprocessableEntity {
		t.Fatalf("council2 authorising for council1's q1: %d %s, want 422", r.code, r.body)
	}
	// What a broken or hostile council sends: each refused, nothing given.
	for _, bad := range []struct {
		path string
		body any
		code int
	}{
		{"/api/v1/centers/center1/authorisations", map[string]any{"qualifications": []string{"q2", "q1"}}, http.StatusUnprocessableEntity}, // one of them council1's
		{"/api/v1/centers/center1/authorisations", map[string]any{"qualifications": []string{}}, http.StatusUnprocessableEntity},
		{"/api/v1/centers/center1/authorisations", map[string]any{"qualifications": []string{"q2"}, "council": "council1"}, http.StatusBadRequest},
		{"/api/v1/centers/center1/authorisations", `{"qualifications": "q2"`, http.StatusBadRequest},
		{"/api/v1/centers/no-such-center/authorisations", map[string]any{"qualifications": []string{"q2"}}, http.StatusNotFound},
	} {
		if r := e.do("POST", bad.path, c2, bad.body); r.code != bad.code {
			t.Fatalf("POST %s %v as council2: %d %s, want %d", bad.path, bad.body, r.code, r.body, bad.code)
		}
	}
	if r := e.do("GET", "/api/v1/centers/center1", c2, nil); r.code != http.StatusNotFound {
		t.Fatalf("council2 reads center1 after refused authorisations: %d %s, want 404 (nothing was given)", r.code, r.body)
	}
	r := e.do("POST", "/api/v1/centers/center1/authorisations", c2, map[string]any{"qualifications": []string{"q2"}})
	if r.code != http.StatusOK {
		t.Fatalf("authorise: %d %s", r.code, r.body)
	}
	var got struct {
		Council        string   `json:"council"`
		CouncilName    string   `json:"council_name"`
		Qualifications []string `json:"qualifications"`
		Authorisations []struct {
			Council, Qualification string
			CouncilName            string `json:"council_name"`
		} `json:"authorisations"`
	}
	must(t, json.Unmarshal(r.body, &got))
	if got.Council != "council1" || !slices.Equal(got.Qualifications, []string{"q2"}) || len(got.Authorisations) != 1 ||
		got.Authorisations[0].Council != "council2" {
		t.Fatalf("center1 as council2 sees it: %s; want home council1, council2's q2 only", r.body)
	}
	// The home council's name, though council2 does not read council1.
	if got.CouncilName != "СПК council1" || got.Authorisations[0].CouncilName != "СПК council2" {
		t.Errorf("center1 as council2 sees it: %s; want the councils named", r.body)
	}
	if r := e.do("GET", "/api/v1/councils/council1", c2, nil); r.code != http.StatusNotFound {
		t.Errorf("council2 reads council1: %d, want 404 still", r.code)
	}
	type councilNamed struct {
		ID             string `json:"id"`
		CouncilName    string `json:"council_name"`
		Authorisations []struct {
			Council     string `json:"council"`
			CouncilName string `json:"council_name"`
		} `json:"authorisations"`
	}
	for _, l := range []struct{ who, token string }{{"council2", c2}, {"the center itself", center}} {
		var list []councilNamed
		must(t, json.Unmarshal(e.do("GET", "/api/v1/centers", l.token, nil).body, &list))
		i := slices.IndexFunc(list, func(c councilNamed) bool { return c.ID == "center1" })
		if i < 0 || list[i].CouncilName != "СПК council1" {
			t.Errorf("centers as %s sees them: center1 missing or its home council not named: %+v", l.who, list)
			continue
		}
		for _, a := range list[i].Authorisations {
			if a.CouncilName != "СПК "+a.Council {
				t.Errorf("centers as %s sees them: the authorisation of %s named %q", l.who, a.Council, a.CouncilName)
			}
		}
	}

	// The accounts page's organisations: council2 now lists center1 and
	// its site, with the home council named, and cannot suspend them.
	var orgs struct {
		Organisations []struct {
			Kind, ID, Council string
			CouncilName       string `json:"council_name"`
		} `json:"organisations"`
		Total int `json:"total"`
	}
	must(t, json.Unmarshal(e.do("GET", "/api/v1/organisations?q=1", c2, nil).body, &orgs))
	seen := map[string]string{}
	for _, o := range orgs.Organisations {
		seen[o.Kind+":"+o.ID] = o.Council + " " + o.CouncilName
	}
	if seen["center:center1"] != "council1 СПК council1" || seen["site:site1"] != "council1 СПК council1" || seen["council:council1"] != "" {
		t.Errorf("council2's organisations matching 1: %v; want center1 and site1 of СПК council1, not council1 itself", seen)
	}
	if got := orgsOf(t, e, c1); slices.Contains(got, "center:center2") || slices.Contains(got, "council:council2") {
		t.Errorf("council1's organisations: %v; want nothing of council2's", got)
	}
	for _, kind := range []string{"center/center1", "site/site1"} {
		if r := e.do("POST", "/api/v1/organisations/"+kind+"/suspension", c2, map[string]any{"suspended": true, "reason": "x"}); r.code != http.StatusForbidden {
			t.Errorf("council2 suspends %s: %d %s, want 403", kind, r.code, r.body)
		}
	}
	r = e.do("GET", "/api/v1/centers/center1", c1, nil)
	must(t, json.Unmarshal(r.body, &got))
	if !slices.Equal(got.Qualifications, []string{"q1"}) || len(got.Authorisations) != 1 {
		t.Fatalf("center1 as council1 sees it: %s; want its q1 only", r.body)
	}
	if r := e.do("GET", "/api/v1/sites/site1", c2, nil); r.code != http.StatusOK {
		t.Errorf("council2 reads site1: %d %s", r.code, r.body)
	}
	if r := e.do("PUT", "/api/v1/centers/center1", c2, map[string]any{"name": "Захват"}); r.code != http.StatusForbidden {
		t.Errorf("council2 edits center1: %d %s, want 403", r.code, r.body)
	}
	if r := e.do("PUT", "/api/v1/sites/site1", c2, map[string]any{"name": "Захват"}); r.code != http.StatusForbidden {
		t.Errorf("council2 edits site1: %d %s, want 403", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/sites", c2, map[string]any{"id": "site1x", "center": "center1", "name": "ЭП"}); r.code != http.StatusForbidden {
		t.Errorf("council2 registers a site of center1: %d %s, want 403", r.code, r.body)
	}

	if r := e.do("POST", "/api/v1/exams", center, newExam("examx")); r.code != http.StatusCreated {
		t.Fatalf("exam of q2 after the authorisation: %d %s", r.code, r.body)
	}
	var exam struct{ Council string }
	must(t, json.Unmarshal(e.do("GET", "/api/v1/exams/examx", c2, nil).body, &exam))
	if exam.Council != "council2" {
		t.Fatalf("examx's council = %q, want council2", exam.Council)
	}
	for _, x := range []struct {
		token, exam string
		code        int
	}{{c2, "exam1", http.StatusNotFound}, {c1, "examx", http.StatusNotFound}, {c1, "exam1", http.StatusOK}} {
		if r := e.do("GET", "/api/v1/exams/"+x.exam, x.token, nil); r.code != x.code {
			t.Errorf("GET exam %s: %d, want %d", x.exam, r.code, x.code)
		}
	}
	list := func(token string) string { return string(e.do("GET", "/api/v1/exams", token, nil).body) }
	if l := list(c2); strings.Contains(l, `"exam1"`) || !strings.Contains(l, `"examx"`) {
		t.Errorf("council2's exams: %s", l)
	}
	if l := list(c1); !strings.Contains(l, `"exam1"`) || strings.Contains(l, `"examx"`) {
		t.Errorf("council1's exams: %s", l)
	}

	// cand1a sits council2's exam too: council2 sees her, but not the
	// photo of her identity check at council1's exam.
	must(t, e.store.AddExamCandidate(t.Context(), "examx", "cand1a", "ws1-cam", "ws1-screen", e.clock.Now()))
	if r := e.do("GET", "/api/v1/candidates/cand1a", c2, nil); r.code != http.StatusOK {
		t.Errorf("council2 reads cand1a, a candidate of its exam: %d", r.code)
	}
	if r := e.do("GET", "/api/v1/candidates/cand1b", c2, nil); r.code != http.StatusNotFound {
		t.Errorf("council2 reads cand1b, of council1's exam only: %d, want 404", r.code)
	}
	photo := &store.Document{ExamID: "exam1", CandidateID: "cand1a", Kind: "photo", Filename: "photo.jpg", ContentType: "image/jpeg",
		ID: store.NewID()}
	body := []byte("\xff\xd8\xff photo")
	sum := sha256.Sum256(body)
	photo.Bytes, photo.SHA256 = int64(len(body)), hex.EncodeToString(sum[:])
	photo.ObjectKey = store.DocumentKey("exams/exam1/cand1a", photo.ID)
	must(t, e.blobs.Put(t.Context(), photo.ObjectKey, bytes.NewReader(body), int64(len(body))))
	must(t, e.store.AddDocument(t.Context(), photo))
	for _, x := range []struct {
		token string
		code  int
	}{{c2, http.StatusNotFound}, {c1, http.StatusOK}} {
		if r := e.do("GET", "/api/v1/documents/"+photo.ID, x.token, nil); r.code != x.code {
			t.Errorf("the identity photo at council1's exam: %d, want %d", r.code, x.code)
		}
	}

	// Footage of the room camera: each council its own exam's; the home
	// council also what is no other council's.
	e.footage("site1", "room1", 1000, startX.Add(10*time.Minute), 2)
	e.clock.Set(startX.Add(3 * time.Hour))
	segs := func(token string, from, to time.Time) int {
		return e.do("GET", "/api/v1/streams/site1/room1/segments?from="+url.QueryEscape(from.Format(time.RFC3339))+
			"&to="+url.QueryEscape(to.Format(time.RFC3339)), token, nil).code
	}
	for _, x := range []struct {
		who      string
		token    string
		from, to time.Time
		code     int
	}{
		{"council2, its exam", c2, startX, startX.Add(2 * time.Hour), http.StatusOK},
		{"council2, council1's exam", c2, examStart, examEnd, http.StatusNotFound},
		{"council2, between the exams", c2, examEnd, startX, http.StatusNotFound},
		{"council1, council2's exam", c1, startX, startX.Add(2 * time.Hour), http.StatusNotFound},
		{"council1, its exam", c1, examStart, examEnd, http.StatusOK},
		{"council1, between the exams", c1, examEnd, startX, http.StatusOK},
	} {
		if got := segs(x.token, x.from, x.to); got != x.code {
			t.Errorf("%s: segments %d, want %d", x.who, got, x.code)
		}
	}
	if r := e.do("GET", "/api/v1/media/"+w.orgs[1].media, c2, nil); r.code != http.StatusNotFound {
		t.Errorf("council2 fetches a room segment of council1's exam: %d, want 404", r.code)
	}

	// Withdrawal: only by the council that authorised; no new exam of q2.
	if r := e.do("DELETE", "/api/v1/centers/center1/authorisations/q2", c1, nil); r.code != http.StatusNotFound {
		t.Errorf("council1 withdraws council2's authorisation: %d %s, want 404", r.code, r.body)
	}
	if r := e.do("DELETE", "/api/v1/centers/center1/authorisations/q2", c2, nil); r.code != http.StatusNoContent {
		t.Fatalf("withdraw: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/exams", center, newExam("examy")); r.code != http.StatusUnprocessableEntity {
		t.Errorf("exam of q2 after the withdrawal: %d %s, want 422", r.code, r.body)
	}
	must(t, json.Unmarshal(e.do("GET", "/api/v1/exams/examx", c2, nil).body, &exam))
	if exam.Council != "council2" {
		t.Errorf("examx after the withdrawal: council %q, want council2 still", exam.Council)
	}
	var actions []string
	entries, err := e.store.AuditLog(t.Context(), 0, 100000)
	must(t, err)
	for _, a := range entries {
		if a.Object == "center1" && strings.HasPrefix(a.Action, "center.") && a.ActorLogin == "council2" {
			actions = append(actions, a.Action)
		}
	}
	if !slices.Equal(actions, []string{"center.authorise", "center.withdraw"}) {
		t.Errorf("council2's audited actions on center1 = %v", actions)
	}
}

// orgsOf lists the organisations token sees on the accounts page, as
// "kind:id".
func orgsOf(t *testing.T, e *env, token string) []string {
	t.Helper()
	r := e.do("GET", "/api/v1/organisations?limit=200", token, nil)
	if r.code != http.StatusOK {
		t.Fatalf("GET organisations: %d %s", r.code, r.body)
	}
	var page struct {
		Organisations []struct{ Kind, ID string } `json:"organisations"`
	}
	must(t, json.Unmarshal(r.body, &page))
	var out []string
	for _, o := range page.Organisations {
		out = append(out, o.Kind+":"+o.ID)
	}
	return out
}
