package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/registry/store"
)

type queueItem struct {
	Exam      string
	Candidate struct{ ID, Name string }
	Qualification,
	Site, Center struct{ ID, Name string }
	StartsAt  time.Time `json:"starts_at"`
	Admission string
	State     string
	OpenedAt  *time.Time `json:"opened_at"`
	Verdict   *struct {
		ProcedureConfirmed bool `json:"procedure_confirmed"`
	}
	Marks          int
	Violations     int
	AllMarks       int `json:"all_marks"`
	Observations   int
	FlaggedSeconds float64 `json:"flagged_seconds"`
}

// TestReviewQueue: the expert's queue names the exam's qualification, site,
// center and candidates, and follows the review: not started; in progress
// once the recordings are opened or a mark is made; verdict given. What
// needs attention comes first, a verdict last; observations on the
// candidate's streams inside the window are counted and their length
// summed. Other roles have no queue; another council's expert sees none of
// it; the answer carries no personal data beyond the name.
func TestReviewQueue(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	ctx := context.Background()
	o := w.orgs[1]
	expert := o.tokens[store.RoleExpert]
	queue := func(token, query string) []queueItem {
		t.Helper()
		r := e.do("GET", "/api/v1/review-queue"+query, token, nil)
		if r.code != http.StatusOK {
			t.Fatalf("review queue: %d %s", r.code, r.body)
		}
		if strings.Contains(string(r.body), "паспорт") {
			t.Errorf("the queue carries an identity document: %s", r.body)
		}
		var out []queueItem
		must(t, json.Unmarshal(r.body, &out))
		return out
	}
	byCand := func(q []queueItem) map[string]queueItem {
		m := map[string]queueItem{}
		for _, it := range q {
			m[it.Candidate.ID] = it
		}
		return m
	}

	// A gap of 90 s on the webcam of cand (30 s of it before the window)
	// and a frozen picture of 20 s on the room camera: both are cand's
	// evidence, only the room camera's is cand2's.
	for _, ob := range []events.Observation{
		{ObservationID: "gap-cam", StreamID: o.site + "/ws1-cam", Site: o.site, Device: "ws1-cam", Kind: "gap",
			Start: examStart.Add(-30 * time.Second), End: examStart.Add(60 * time.Second), Reporter: "ingest"},
		{ObservationID: "frozen-room", StreamID: o.site + "/room1", Site: o.site, Device: "room1", Kind: "frozen",
			Start: examStart.Add(time.Hour), End: examStart.Add(time.Hour + 20*time.Second), Reporter: "transcoder"},
		{ObservationID: "after", StreamID: o.site + "/room1", Site: o.site, Device: "room1", Kind: "frozen",
			Start: examEnd.Add(time.Minute), End: examEnd.Add(2 * time.Minute), Reporter: "transcoder"},
	} {
		_, err := e.store.IndexObservation(ctx, &ob)
		must(t, err)
	}
	e.clock.Set(examEnd.Add(time.Hour)) // the exam is over

	q := queue(expert, "")
	if len(q) != 2 {
		t.Fatalf("queue of %d, want the exam's 2 candidates: %+v", len(q), q)
	}
	m := byCand(q)
	a, b := m[o.cand], m[o.cand2]
	if a.Exam != o.exam || a.Qualification.Name != "Квалификация "+o.qual || a.Site.Name != "ЭП "+o.site || a.Center.Name != "ЦОК "+o.center ||
		a.Candidate.Name != "Фамилия Имя0" || b.Candidate.Name != "Фамилия Имя1" || a.Admission != "admitted" || !a.StartsAt.Equal(examStart) {
		t.Errorf("queue items lack the names: %+v / %+v", a, b)
	}
	if a.State != "not_started" || b.State != "not_started" {
		t.Errorf("states %s, %s before anything, want not_started", a.State, b.State)
	}
	if a.Observations != 2 || a.FlaggedSeconds != 80 || b.Observations != 1 || b.FlaggedSeconds != 20 {
		t.Errorf("observations %d (%.0f s) and %d (%.0f s), want 2 (80 s) and 1 (20 s)", a.Observations, a.FlaggedSeconds,
			b.Observations, b.FlaggedSeconds)
	}

	// Opening cand's recordings starts the review; a mark on cand2 too.
	if r := e.do("GET", "/api/v1/exams/"+o.exam+"/candidates/"+o.cand+"/media", expert, nil); r.code != http.StatusOK {
		t.Fatalf("open the recordings: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/exams/"+o.exam+"/candidates/"+o.cand2+"/marks", expert,
		map[string]any{"at": examStart.Add(time.Minute), "kind": "violation", "text": "подсказка"}); r.code != http.StatusCreated {
		t.Fatalf("mark: %d %s", r.code, r.body)
	}
	m = byCand(queue(expert, ""))
	if a, b := m[o.cand], m[o.cand2]; a.State != "in_progress" || a.OpenedAt == nil || b.State != "in_progress" || b.Marks != 1 ||
		b.Violations != 1 || b.AllMarks != 1 {
		t.Errorf("after opening and marking: %+v / %+v", a, b)
	}

	// A verdict on cand puts it last.
	if r := e.do("PUT", "/api/v1/exams/"+o.exam+"/candidates/"+o.cand+"/verdict", expert,
		map[string]any{"procedure_confirmed": true}); r.code != http.StatusOK {
		t.Fatalf("verdict: %d %s", r.code, r.body)
	}
	q = queue(expert, "?exam="+o.exam)
	if len(q) != 2 || q[0].Candidate.ID != o.cand2 || q[1].Candidate.ID != o.cand || q[1].State != "verdict_given" ||
		q[1].Verdict == nil || !q[1].Verdict.ProcedureConfirmed {
		t.Errorf("after the verdict, want cand2 then cand with its verdict: %+v", q)
	}
	if q := queue(expert, "?exam=other"); len(q) != 0 {
		t.Errorf("queue of another exam: %+v", q)
	}
	if q := queue(expert, "?from="+examEnd.Add(time.Minute).Format(time.RFC3339)); len(q) != 0 {
		t.Errorf("queue after the exam's end: %+v", q)
	}

	// Another council's expert sees none of it; other roles have no queue.
	if q := queue(w.orgs[2].tokens[store.RoleExpert], ""); len(q) != 2 || q[0].Exam != w.orgs[2].exam {
		t.Errorf("expert2's queue: %+v", q)
	}
	for _, role := range []string{store.RoleCouncil, store.RoleCenter, store.RoleSite} {
		if r := e.do("GET", "/api/v1/review-queue", o.tokens[role], nil); r.code != http.StatusForbidden {
			t.Errorf("a %s user's queue: %d, want 403", role, r.code)
		}
	}
	if r := e.do("GET", "/api/v1/review-queue?from=yesterday", expert, nil); r.code != http.StatusBadRequest {
		t.Errorf("a malformed from: %d, want 400", r.code)
	}
}

// TestAuditTrail: NARK reads the audit trail of an organisation (what its
// users did and what was done to it), of an account and of an object,
// newest first and a page at a time; nobody else reads it, and reading it
// is itself audited.
func TestAuditTrail(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	center := o.tokens[store.RoleCenter]
	var created []string
	for _, name := range []string{"Первый", "Второй", "Третий"} {
		r := e.do("POST", "/api/v1/candidates", center, map[string]string{"last_name": "Журналов", "first_name": name, "document": "паспорт 1"})
		if r.code != http.StatusCreated {
			t.Fatalf("create a candidate: %d %s", r.code, r.body)
		}
		var k struct{ ID string }
		must(t, json.Unmarshal(r.body, &k))
		created = append(created, k.ID)
	}
	if r := e.do("PUT", "/api/v1/centers/"+o.center+"/qualifications", o.tokens[store.RoleCouncil],
		map[string]any{"qualifications": []string{o.qual}}); r.code != http.StatusOK {
		t.Fatalf("authorise: %d %s", r.code, r.body)
	}
	type entry struct {
		ID     int64
		Actor  string
		Action string
		Object string
	}
	trail := func(query string) []entry {
		t.Helper()
		r := e.do("GET", "/api/v1/audit"+query, w.nark, nil)
		if r.code != http.StatusOK {
			t.Fatalf("audit %s: %d %s", query, r.code, r.body)
		}
		var out []entry
		must(t, json.Unmarshal(r.body, &out))
		return out
	}
	got := trail("?org=" + o.center)
	var actions []string
	for _, a := range got {
		actions = append(actions, a.Action+" "+a.Object+" by "+a.Actor)
	}
	want := []string{"center.qualifications_set " + o.center + " by council1",
		"candidate.create " + created[2] + " by center1", "candidate.create " + created[1] + " by center1", "candidate.create " + created[0] + " by center1"}
	if len(actions) < len(want) || strings.Join(actions[:len(want)], "; ") != strings.Join(want, "; ") {
		t.Errorf("center1's trail, newest first:\n%s\nwant it to begin with\n%s", strings.Join(actions, "\n"), strings.Join(want, "\n"))
	}
	for _, a := range got {
		if a.Actor != "center1" && a.Object != o.center {
			t.Errorf("center1's trail holds %+v", a)
		}
	}
	page := trail("?user=center1&limit=2")
	next := trail("?user=center1&limit=2&before=" + strconv.FormatInt(page[1].ID, 10))
	if len(page) != 2 || len(next) < 1 || next[0].ID >= page[1].ID || page[0].Object != created[2] || next[0].Object != created[0] {
		t.Errorf("center1's account a page at a time: %+v then %+v", page, next)
	}
	if got := trail("?object=" + created[1]); len(got) != 1 || got[0].Action != "candidate.create" {
		t.Errorf("trail of candidate %s: %+v", created[1], got)
	}
	if got := trail("?user=" + "council1&object=" + o.center); len(got) != 1 {
		t.Errorf("council1's entries about center1: %+v", got)
	}
	if got := trail("?user=nark&object=" + created[1]); len(got) != 1 || got[0].Action != "audit.read" {
		t.Errorf("reading the trail is not audited: %+v", got)
	}
	for _, role := range []string{store.RoleCouncil, store.RoleCenter, store.RoleSite, store.RoleExpert} {
		if r := e.do("GET", "/api/v1/audit?org="+o.center, o.tokens[role], nil); r.code != http.StatusForbidden {
			t.Errorf("a %s user reads the audit trail: %d, want 403", role, r.code)
		}
	}
	for _, q := range []string{"", "?org=" + o.center + "&limit=0", "?org=" + o.center + "&limit=501", "?org=" + o.center + "&before=x"} {
		if r := e.do("GET", "/api/v1/audit"+q, w.nark, nil); r.code != http.StatusBadRequest {
			t.Errorf("audit%s: %d, want 400", q, r.code)
		}
	}

	// The legal floors, for every staff user.
	var floors struct {
		AppealWindowDays int `json:"appeal_window_days"`
		ProvisionalDays  int `json:"provisional_days"`
		UnlinkedDays     int `json:"unlinked_days"`
	}
	r := e.do("GET", "/api/v1/retention/floors", o.tokens[store.RoleCouncil], nil)
	must(t, json.Unmarshal(r.body, &floors))
	if r.code != http.StatusOK || floors.AppealWindowDays != 30 || floors.ProvisionalDays != 90 || floors.UnlinkedDays != 7 {
		t.Errorf("floors: %d %+v", r.code, floors)
	}
}
