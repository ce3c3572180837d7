package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/store"
)

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

// TestTemporaryPasswordOnDomainRoutes: a user with a temporary password can
// only change it, on the domain routes too, and the answer says so.
func TestTemporaryPasswordOnDomainRoutes(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	ctx := context.Background()
	temp, err := e.store.ResetPassword(ctx, "center1")
	must(t, err)
	token, mustChange := e.login("center1", temp)
	if !mustChange {
		t.Fatal("must_change_password is false after a reset")
	}
	for _, p := range []string{"/api/v1/exams", "/api/v1/candidates", "/api/v1/exams/exam1/candidates/cand1a/media", "/api/v1/deadlines/overdue"} {
		r := e.do("GET", p, token, nil)
		if r.code != http.StatusForbidden || !strings.Contains(r.errorMessage(t), "password change required") {
			t.Errorf("GET %s before the change: %d %s", p, r.code, r.body)
		}
	}
	if r := e.do("GET", "/api/v1/auth/me", token, nil); r.code != http.StatusOK || !decode[map[string]any](t, r)["must_change_password"].(bool) {
		t.Errorf("GET /auth/me before the change: %d %s", r.code, r.body)
	}
	r := e.do("POST", "/api/v1/auth/password", token, map[string]string{"old_password": temp, "new_password": "a new long password"})
	if r.code != http.StatusOK {
		t.Fatalf("change: %d %s", r.code, r.body)
	}
	token = decode[struct{ Token string }](t, r).Token
	if r := e.do("GET", "/api/v1/exams", token, nil); r.code != http.StatusOK {
		t.Errorf("GET /api/v1/exams after the change: %d %s", r.code, r.body)
	}
	_ = w
}

// TestLoginRateLimit: failed logins are limited per login (from addresses
// it never succeeded from) and per address, with 429 and Retry-After, and
// the limit lifts when the window passes.
func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, func(c *api.Config) {
		c.LoginFailuresPerLogin, c.LoginFailuresPerAddress, c.LoginFailureWindow = 3, 5, 10*time.Minute
	})
	ctx := context.Background()
	temp, err := e.store.AddUser(ctx, "operator", store.RoleNARK, "")
	must(t, err)
	login := func(name, pw string) response {
		return e.do("POST", "/api/v1/auth/login", "", map[string]string{"login": name, "password": pw})
	}
	for i := range 3 {
		if r := login("operator", "wrong"); r.code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d %s", i, r.code, r.body)
		}
		e.clock.Set(e.clock.Now().Add(time.Minute))
	}
	// The right password does not get through either while limited.
	r := login("Operator", temp)
	if r.code != http.StatusTooManyRequests {
		t.Fatalf("4th attempt: %d %s, want 429", r.code, r.body)
	}
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || retry != 7*60 {
		t.Errorf("Retry-After %q, want 420 (the first failure, 3 minutes ago, leaves the 10-minute window in 7)", r.header.Get("Retry-After"))
	}
	r.errorMessage(t)
	// Another login from the same address still works, up to the
	// address's limit.
	for i := range 2 {
		if r := login("nobody", "wrong"); r.code != http.StatusUnauthorized {
			t.Fatalf("other login failure %d: %d", i, r.code)
		}
	}
	if r := login("someone-else", "wrong"); r.code != http.StatusTooManyRequests {
		t.Errorf("6th failure from one address: %d, want 429", r.code)
	}
	e.clock.Set(e.clock.Now().Add(10 * time.Minute))
	if r := login("operator", temp); r.code != http.StatusOK {
		t.Errorf("after the window: %d %s", r.code, r.body)
	}
	rows, err := e.store.LoginAudit(ctx, time.Time{})
	must(t, err)
	n := 0
	for _, a := range rows {
		if a.Action == "auth.login_throttled" {
			n += a.Count
		}
	}
	if n != 2 {
		t.Errorf("%d throttled logins audited, want 2", n)
	}
}

// TestPasswordReminder: a password older than 90 days brings a reminder.
func TestPasswordReminder(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	e.operator("operator")
	u, err := e.store.UserByLogin(context.Background(), "operator")
	must(t, err)
	for _, tt := range []struct {
		days     int
		reminder bool
	}{{10, false}, {90, false}, {91, true}} {
		e.clock.Set(u.PasswordChangedAt.Add(time.Duration(tt.days)*24*time.Hour + time.Minute))
		r := e.do("POST", "/api/v1/auth/login", "", map[string]string{"login": "operator", "password": "a long enough password"})
		v := decode[struct {
			PasswordAgeDays  int    `json:"password_age_days"`
			PasswordReminder string `json:"password_reminder"`
		}](t, r)
		if v.PasswordAgeDays != tt.days || (v.PasswordReminder != "") != tt.reminder {
			t.Errorf("after %d days: age %d, reminder %q", tt.days, v.PasswordAgeDays, v.PasswordReminder)
		}
	}
}

// TestResultPreconditions: a result cannot be entered while the council has
// no appeals-commission contacts, the qualification no assessment tools, or
// the center its required details; the answer says which, and fixing each
// through the API lets the result in.
func TestResultPreconditions(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	ctx := context.Background()
	o := w.orgs[1]
	e.clock.Set(examEnd.Add(time.Hour))
	// Break all three.
	_, err := e.store.SaveCouncil(ctx, store.Council{ID: o.council, Name: "СПК"})
	must(t, err)
	_, err = e.store.SaveQualification(ctx, store.Qualification{Code: "q-bare", CouncilID: o.council, Name: "Без ОС", ValidityYears: 5})
	must(t, err)
	_, err = e.store.SaveCenter(ctx, store.Center{ID: o.center, CouncilID: o.council, Name: "ЦОК", Qualifications: []string{o.qual, "q-bare"}})
	must(t, err)
	must(t, e.store.CreateExam(ctx, &store.Exam{ID: "exam-bare", CenterID: o.center, SiteID: o.site, Qualification: "q-bare",
		Start: examStart.Add(-24 * time.Hour), End: examEnd.Add(-24 * time.Hour)}))
	must(t, e.store.AddExamCandidate(ctx, "exam-bare", o.loner, "ws1-cam", "ws1-screen", examStart.Add(-48*time.Hour)))
	must(t, e.store.SetAdmission(ctx, "exam-bare", o.loner, true, "", 0, examStart.Add(-24*time.Hour)))

	council, center := o.tokens[store.RoleCouncil], o.tokens[store.RoleCenter]
	path := "/api/v1/exams/exam-bare/candidates/" + o.loner + "/result"
	cert := map[string]any{"kind": "certificate", "certificate_number": "Б-1", "issued_on": "2025-03-01"}
	// The center fills and submits the card whatever the details: the
	// preconditions are the council's approval's.
	if r := e.do("PUT", path, center, cert); r.code != http.StatusCreated {
		t.Fatalf("the center's card: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/exams/exam-bare/submission", center, nil); r.code != http.StatusOK {
		t.Fatalf("submission: %d %s", r.code, r.body)
	}
	approval := map[string]any{"decision": "approved", "protocol": map[string]any{"number": "СПК-1", "date": "2025-03-02", "link": "https://spk.example/1"}}
	codes := func() []string {
		t.Helper()
		r := e.do("POST", "/api/v1/exams/exam-bare/decision", council, approval)
		if r.code == http.StatusOK {
			return nil
		}
		if r.code != http.StatusConflict {
			t.Fatalf("approval with unmet preconditions: %d %s, want 409", r.code, r.body)
		}
		v := decode[struct {
			Error         string
			Preconditions []struct{ Code, Message string }
		}](t, r)
		var out []string
		for _, p := range v.Preconditions {
			out = append(out, p.Code)
			if !strings.Contains(v.Error, p.Message) {
				t.Errorf("error %q does not say %q", v.Error, p.Message)
			}
		}
		return out
	}
	if got := codes(); !slices.Equal(got, []string{"commission_protocol", "council_commission", "assessment_tools", "site_details", "center_details"}) {
		t.Errorf("unmet %v", got)
	}
	// The commission protocol, approved by the appointed expert.
	if r := e.do("PUT", "/api/v1/exams/exam-bare/protocol?number=9&signed_on=2025-02-28&filename=p.pdf", o.tokens[store.RoleSite],
		"%PDF-1.4 protocol", "Content-Type", "application/pdf"); r.code != http.StatusOK {
		t.Fatalf("protocol: %d %s", r.code, r.body)
	}
	_, err = e.store.AppointExpert(ctx, "exam-bare", o.users[store.RoleExpert].Login, 0)
	must(t, err)
	if r := e.do("POST", "/api/v1/exams/exam-bare/protocol/approval", o.tokens[store.RoleExpert], map[string]any{"approved": true}); r.code != http.StatusOK {
		t.Fatalf("expert's approval: %d %s", r.code, r.body)
	}
	r := e.do("PUT", "/api/v1/councils/"+o.council+"/commission", council, map[string]any{
		"members": []string{"Иванов И. И.", "Петров П. П."}, "address": "101000, Москва", "email": "appeals@c.example", "phones": []string{"+7 495 0"}})
	if r.code != http.StatusOK {
		t.Fatalf("set commission: %d %s", r.code, r.body)
	}
	if got := codes(); !slices.Equal(got, []string{"assessment_tools", "site_details", "center_details"}) {
		t.Errorf("unmet after the protocol and the commission %v", got)
	}
	if r := e.do("POST", "/api/v1/qualifications/q-bare/tools", council, map[string]string{"reference": "ОС-Б", "link": "os.example/b"}); r.code != http.StatusOK {
		t.Fatalf("add tool: %d %s", r.code, r.body)
	}
	if got := codes(); !slices.Equal(got, []string{"assessment_tool_links", "site_details", "center_details"}) {
		t.Errorf("unmet after a tool with a bad link %v", got)
	}
	if r := e.do("POST", "/api/v1/qualifications/q-bare/tools", council, map[string]string{"reference": "ОС-Б", "link": "https://os.example/b"}); r.code != http.StatusOK {
		t.Fatalf("fix tool: %d %s", r.code, r.body)
	}
	if r := e.do("PUT", "/api/v1/sites/"+o.site, center, map[string]any{"name": "ЭП", "address": "Москва, ул. Ильинка, 3",
		"email": "ep@c.example", "phones": []string{"+7 495 2"}}); r.code != http.StatusOK {
		t.Fatalf("set site details: %d %s", r.code, r.body)
	}
	if got := codes(); !slices.Equal(got, []string{"center_details"}) {
		t.Errorf("unmet after the tools and the site %v", got)
	}
	pre := decode[struct{ Ready bool }](t, e.do("GET", "/api/v1/exams/exam-bare/preconditions", center, nil))
	if pre.Ready {
		t.Errorf("preconditions ready with the center's details missing")
	}
	if r := e.do("PUT", "/api/v1/centers/"+o.center, center, map[string]any{"head": "Сидоров С. С.", "website": "https://c.example",
		"legal_address": "Москва", "actual_address": "Москва, ул. Покровка, 2", "postal_address": "101000, Москва",
		"email": "c@c.example", "phones": []string{"+7 495 1"}}); r.code != http.StatusOK {
		t.Fatalf("set center details: %d %s", r.code, r.body)
	}
	if got := codes(); got != nil {
		t.Errorf("unmet after fixing everything: %v", got)
	}
	res := decode[struct {
		ValidUntil string `json:"valid_until"`
		State      string
	}](t, e.do("GET", path, center, nil))
	if res.ValidUntil != "2030-03-01" || res.State != "approved" {
		t.Errorf("card %+v, want approved, valid until 2030-03-01 (5 years)", res)
	}
}

// TestDeadlinesOverdue: the council's 14 days and NARK's 7 days, listed
// when overdue, to those who see the exam.
func TestDeadlinesOverdue(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o1 := w.orgs[1]
	type dl struct {
		Kind, Exam  string
		Overdue     bool
		OverdueDays int `json:"overdue_days"`
		Due         time.Time
	}
	list := func(token, path string) []dl {
		t.Helper()
		r := e.do("GET", path, token, nil)
		if r.code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.code, r.body)
		}
		return decode[[]dl](t, r)
	}
	// The exam ends at 17:00 MSK on 1 March: the council's last day is 15
	// March, so it is overdue from 00:00 MSK on 16 March.
	councilDue := time.Date(2025, 3, 15, 21, 0, 0, 0, time.UTC)
	e.clock.Set(councilDue.Add(-time.Second))
	if got := list(w.nark, "/api/v1/deadlines/overdue"); len(got) != 0 {
		t.Errorf("overdue on the last day: %+v", got)
	}
	if got := list(o1.tokens[store.RoleCouncil], "/api/v1/deadlines"); len(got) != 1 || got[0].Kind != "council_submission" || got[0].Overdue || !got[0].Due.Equal(councilDue) {
		t.Errorf("pending on the last day: %+v, want due %v", got, councilDue)
	}
	e.clock.Set(councilDue.Add(2*24*time.Hour + time.Hour))
	got := list(w.nark, "/api/v1/deadlines/overdue")
	if len(got) != 2 || got[0].Kind != "council_submission" || got[0].OverdueDays != 2 {
		t.Errorf("NARK's overdue list two days late: %+v", got)
	}
	if got := list(o1.tokens[store.RoleCouncil], "/api/v1/deadlines/overdue"); len(got) != 1 || got[0].Exam != o1.exam {
		t.Errorf("council1's overdue list: %+v", got)
	}
	sum := decode[struct {
		Date          string
		Organisations []struct {
			Kind, ID                   string
			Pending, DueToday, Overdue int
		}
	}](t, e.do("GET", "/api/v1/deadlines/summary", w.nark, nil))
	if sum.Date != "2025-03-18" || len(sum.Organisations) != 4 {
		t.Errorf("NARK's daily summary %+v, want 18 March and two councils and two centers", sum)
	}
	for _, o := range sum.Organisations {
		if o.Pending != 1 || o.Overdue != 1 {
			t.Errorf("summary of %s %s: %+v", o.Kind, o.ID, o)
		}
	}
	// The center fills the missing card and submits; the council, late,
	// must say why, and approves only a protocol the expert approved.
	center, council := o1.tokens[store.RoleCenter], o1.tokens[store.RoleCouncil]
	if r := e.do("PUT", "/api/v1/exams/"+o1.exam+"/candidates/"+o1.cand2+"/result", center,
		map[string]string{"kind": "conclusion", "issued_on": "2025-03-02", "conclusion": "не сдана практическая часть"}); r.code != http.StatusCreated {
		t.Fatalf("card: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/exams/"+o1.exam+"/submission", center, nil); r.code != http.StatusOK {
		t.Fatalf("submission: %d %s", r.code, r.body)
	}
	approval := map[string]any{"decision": "approved", "protocol": map[string]any{"number": "СПК-7", "date": "2025-03-17", "link": "https://spk.example/7"}}
	decide := func() response { return e.do("POST", "/api/v1/exams/"+o1.exam+"/decision", council, approval) }
	if r := decide(); r.code != http.StatusConflict || !strings.Contains(string(r.body), "late") {
		t.Fatalf("a late approval without a reason: %d %s, want 409 saying late", r.code, r.body)
	}
	approval["late_reason"] = "ждали подписи председателя"
	if r := decide(); r.code != http.StatusConflict || !strings.Contains(string(r.body), "experts approved") {
		t.Fatalf("approval before the expert's: %d %s, want 409 saying the experts have not approved", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/exams/"+o1.exam+"/protocol/approval", o1.tokens[store.RoleExpert], map[string]any{"approved": true}); r.code != http.StatusOK {
		t.Fatalf("expert's approval: %d %s", r.code, r.body)
	}
	for _, sd := range []struct {
		path string
		body map[string]any
	}{
		{"/api/v1/sites/" + o1.site, map[string]any{"name": "ЭП", "address": "Москва", "email": "ep@c.example", "phones": []string{"+7 495 2"}}},
		{"/api/v1/centers/" + o1.center, map[string]any{"head": "Сидоров С. С.", "website": "https://c.example", "legal_address": "Москва",
			"actual_address": "Москва", "postal_address": "101000, Москва", "email": "c@c.example", "phones": []string{"+7 495 1"}}},
	} {
		if r := e.do("PUT", sd.path, center, sd.body); r.code != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", sd.path, r.code, r.body)
		}
	}
	if r := decide(); r.code != http.StatusOK {
		t.Fatalf("decision: %d %s", r.code, r.body)
	}
	// NARK's 7 days from the approval (18 March MSK): overdue from 26 March MSK.
	e.clock.Set(time.Date(2025, 3, 25, 21, 0, 0, 0, time.UTC))
	got = list(center, "/api/v1/deadlines/overdue")
	if len(got) != 1 || got[0].Kind != "nark_verification" || got[0].OverdueDays != 0 {
		t.Errorf("NARK overdue from the start of the 8th day: %+v", got)
	}
	if r := e.do("POST", "/api/v1/exams/"+o1.exam+"/verification", w.nark, map[string]any{"verified": true, "late_reason": "очередь"}); r.code != http.StatusOK {
		t.Fatalf("verification: %d %s", r.code, r.body)
	}
	if got := list(center, "/api/v1/deadlines/overdue"); len(got) != 0 {
		t.Errorf("after the verification: %+v", got)
	}
}

// TestExamPasswordWindow: the site issues a password; it works only inside
// the exam window, and the token it gives works only for the candidate's
// own session.
func TestExamPasswordWindow(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	site := o.tokens[store.RoleSite]
	e.clock.Set(examStart.Add(-30 * time.Minute))
	r := e.do("POST", "/api/v1/exams/exam1/candidates/"+o.cand2+"/password", site, nil)
	if r.code != http.StatusOK {
		t.Fatalf("issue password: %d %s", r.code, r.body)
	}
	pw := decode[struct{ Password string }](t, r).Password
	examLogin := func(at time.Time, password string) response {
		e.clock.Set(at)
		return e.do("POST", "/api/v1/exam/login", "", map[string]string{"password": password})
	}
	for _, at := range []time.Time{examStart.Add(-time.Second), examEnd, examEnd.Add(time.Hour)} {
		r := examLogin(at, pw)
		if r.code != http.StatusForbidden || !strings.Contains(r.errorMessage(t), "only during the exam") {
			t.Errorf("exam login at %v: %d %s, want 403", at, r.code, r.body)
		}
	}
	if r := examLogin(examStart.Add(time.Hour), "AAAA-BBBB-CCCC"); r.code != http.StatusUnauthorized {
		t.Errorf("wrong exam password: %d", r.code)
	}
	r = examLogin(examStart.Add(time.Hour), strings.ToLower(pw))
	if r.code != http.StatusOK {
		t.Fatalf("exam login inside the window: %d %s", r.code, r.body)
	}
	sess := decode[struct {
		Token, Webcam, Screen string
		CandidateID           string `json:"candidate_id"`
		WHIP                  map[string]string
	}](t, r)
	if sess.CandidateID != o.cand2 || sess.Webcam != "ws2-cam" || sess.WHIP["screen"] != "/whip/site1/ws2-screen" {
		t.Errorf("session %+v", sess)
	}
	if r := e.do("GET", "/api/v1/exam/session", sess.Token, nil); r.code != http.StatusOK {
		t.Errorf("exam session: %d %s", r.code, r.body)
	}
	// The exam token opens nothing else.
	for _, p := range []string{"/api/v1/exams", "/api/v1/exams/exam1/candidates/" + o.cand2 + "/media", "/api/v1/streams/site1/ws2-cam/segments"} {
		if r := e.do("GET", p, sess.Token, nil); r.code != http.StatusUnauthorized {
			t.Errorf("GET %s with an exam token: %d, want 401", p, r.code)
		}
	}
	// Refusing the candidate ends the session and the password.
	if r := e.do("PUT", "/api/v1/exams/exam1/candidates/"+o.cand2+"/admission", site, map[string]string{"status": "refused", "reason": "посторонние предметы"}); r.code != http.StatusOK {
		t.Fatalf("refuse: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/api/v1/exam/session", sess.Token, nil); r.code != http.StatusUnauthorized {
		t.Errorf("exam session after the refusal: %d, want 401", r.code)
	}
	if r := examLogin(examStart.Add(time.Hour), pw); r.code != http.StatusUnauthorized {
		t.Errorf("exam login after the refusal: %d, want 401", r.code)
	}
	// A refusal needs a reason.
	if r := e.do("PUT", "/api/v1/exams/exam1/candidates/"+o.cand2+"/admission", site, map[string]string{"status": "refused"}); r.code != http.StatusUnprocessableEntity {
		t.Errorf("refusal without a reason: %d, want 422", r.code)
	}
}

// flakyBus is a bus.Publisher that fails while down.
type flakyBus struct {
	down atomic.Bool
	bus  bus.Publisher
}

func (f *flakyBus) Publish(ctx context.Context, topic, key string, value []byte) error {
	if f.down.Load() {
		return errors.New("bus is down")
	}
	return f.bus.Publish(ctx, topic, key, value)
}

// TestRetentionEvents: opening and closing an appeal and issuing,
// extending and revoking a certificate each publish RetentionChanged on the
// retention topic of a real bus, and an outage of the bus delays them
// without losing any.
func TestRetentionEvents(t *testing.T) {
	t.Parallel()
	local, err := bus.NewLocal(t.TempDir(), nil, nil)
	must(t, err)
	t.Cleanup(func() { _ = local.Close() })
	fb := &flakyBus{bus: local}
	e := newDomainEnv(t, fb, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	council := o.tokens[store.RoleCouncil]

	var mu sync.Mutex
	var got []events.RetentionChanged
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- local.Consume(ctx, events.TopicRetention, "archiver-test", func(_ context.Context, m bus.Message) error {
			var rc events.RetentionChanged
			if err := json.Unmarshal(m.Value, &rc); err != nil {
				return bus.Permanent(err)
			}
			if m.Key != rc.ExamID {
				t.Errorf("event keyed %q, exam %q", m.Key, rc.ExamID)
			}
			mu.Lock()
			got = append(got, rc)
			mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	reasons := func() []string {
		mu.Lock()
		defer mu.Unlock()
		var out []string
		for _, rc := range got {
			if rc.ExamID == o.exam && rc.Reason != events.RetentionExamChanged {
				out = append(out, rc.CandidateID+":"+rc.Reason)
			}
		}
		return out
	}
	// The world's own certificate and appeal were published by the relay.
	testenv.WaitFor(t, 10*time.Second, "the world's events", func() bool { return len(reasons()) == 2 })

	e.clock.Set(examEnd.Add(time.Hour))
	call := func(method, path string, body any, want int) response {
		t.Helper()
		r := e.do(method, path, council, body)
		if r.code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, r.code, r.body, want)
		}
		return r
	}
	appeal := decode[struct{ ID string }](t, call("POST", "/api/v1/exams/exam1/candidates/"+o.cand+"/appeals", map[string]string{"reason": "оспариваю"}, http.StatusCreated)).ID
	// An appeal is closed only once the commission's decision is recorded.
	if r := call("POST", "/api/v1/appeals/"+appeal+"/close", nil, http.StatusConflict); !strings.Contains(string(r.body), "decision") {
		t.Errorf("closing an undecided appeal: %s, want a reason naming the decision", r.body)
	}
	call("POST", "/api/v1/appeals/"+appeal+"/decision", map[string]string{"outcome": "rejected", "decision": "без изменений"}, http.StatusOK)
	call("POST", "/api/v1/appeals/"+appeal+"/close", nil, http.StatusOK)
	testenv.WaitFor(t, 10*time.Second, "the events before the outage", func() bool { return len(reasons()) == 4 })
	// The bus goes down: the changes still succeed, their events wait.
	fb.down.Store(true)
	call("POST", "/api/v1/certificates/"+o.cert+"/extend", map[string]string{"valid_until": "2031-06-01"}, http.StatusOK)
	call("POST", "/api/v1/certificates/"+o.cert+"/revoke", map[string]string{"reason": "подложные документы"}, http.StatusOK)
	// A draft card is not in the register yet: it changes no retention.
	if r := e.do("PUT", "/api/v1/exams/exam1/candidates/"+o.cand2+"/result", o.tokens[store.RoleCenter],
		map[string]string{"kind": "certificate", "certificate_number": "NEW-1", "issued_on": "2025-03-02"}); r.code != http.StatusCreated {
		t.Fatalf("the center's draft card: %d %s", r.code, r.body)
	}
	// Two changes: each a RetentionChanged and its v2 snapshot.
	if n, err := e.store.PendingOutbox(context.Background()); err != nil || n != 4 {
		t.Errorf("%d events pending during the outage (%v), want 4", n, err)
	}
	fb.down.Store(false)
	want := []string{o.cand + ":certificate_issued", o.cand2 + ":appeal_opened", o.cand + ":appeal_opened", o.cand + ":appeal_closed",
		o.cand + ":certificate_extended", o.cand + ":certificate_revoked"}
	testenv.WaitFor(t, 10*time.Second, "every event after the outage", func() bool { return len(reasons()) == len(want) })
	if r := reasons(); !slices.Equal(r, want) {
		t.Errorf("events %v, want %v", r, want)
	}
	mu.Lock()
	ids := map[string]bool{}
	for _, rc := range got {
		if ids[rc.EventID] || rc.EventID == "" {
			t.Errorf("event id %q repeated or empty", rc.EventID)
		}
		ids[rc.EventID] = true
	}
	mu.Unlock()
}

// TestCandidateEvidence: the evidence of a candidate's exam is their webcam
// and screen and the site's room camera, on the exam window's clock; the
// expert reaches them inside the window only, and every access is audited
// with who, what and why.
func TestCandidateEvidence(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	expert := o.tokens[store.RoleExpert]
	// Room footage the next day belongs to no exam of the expert.
	late := e.footage(o.site, "room1", 1000, examEnd.Add(24*time.Hour), 1)

	r := e.do("GET", "/api/v1/exams/exam1/candidates/"+o.cand+"/media", expert, nil, "X-Purpose", "review of the exam")
	if r.code != http.StatusOK {
		t.Fatalf("evidence: %d %s", r.code, r.body)
	}
	ev := decode[struct {
		From, To time.Time
		Streams  []struct {
			Stream, Source string
			Segments       int
			PlaylistURL    string `json:"playlist_url"`
			First          *time.Time
		}
	}](t, r)
	if !ev.From.Equal(examStart) || !ev.To.Equal(examEnd) {
		t.Errorf("clock %v–%v, want the exam window", ev.From, ev.To)
	}
	var streams []string
	for _, s := range ev.Streams {
		streams = append(streams, s.Source+":"+s.Stream)
		if s.Segments != 6 || s.First == nil || !s.First.Equal(examStart.Add(time.Hour)) {
			t.Errorf("stream %s: %d segments from %v", s.Stream, s.Segments, s.First)
		}
		// The signed playlist plays without a token and starts on the
		// common clock.
		p := e.do("GET", s.PlaylistURL, "", nil)
		if p.code != http.StatusOK || !strings.Contains(string(p.body), "#EXT-X-PROGRAM-DATE-TIME:"+examStart.Add(time.Hour).Format("2006-01-02T15:04:05.000Z")) {
			t.Errorf("playlist of %s: %d %s", s.Stream, p.code, p.body)
		}
	}
	if !slices.Equal(streams, []string{"webcam:site1/ws1-cam", "screen:site1/ws1-screen", "room:site1/room1"}) {
		t.Errorf("streams %v", streams)
	}
	// Media inside the window: yes; the next day's room footage: no, but
	// the site sees it.
	if r := e.do("GET", "/api/v1/media/"+o.media, expert, nil, "X-Purpose", "review of the exam"); r.code != http.StatusOK {
		t.Errorf("expert, media in the window: %d", r.code)
	}
	if r := e.do("GET", "/api/v1/media/"+late.ObjectKey, expert, nil); r.code != http.StatusNotFound {
		t.Errorf("expert, media outside the window: %d, want 404", r.code)
	}
	if r := e.do("GET", "/api/v1/streams/site1/room1/segments?from=2025-03-02T13:00:00Z&to=2025-03-02T15:00:00Z", expert, nil); r.code != http.StatusNotFound {
		t.Errorf("expert, segments outside the window: %d, want 404", r.code)
	}
	if r := e.do("GET", "/api/v1/media/"+late.ObjectKey, o.tokens[store.RoleSite], nil); r.code != http.StatusOK {
		t.Errorf("site, its own footage: %d", r.code)
	}
	must(t, e.srv.CloseMediaAudit(context.Background()))
	log, err := e.store.AuditLog(context.Background(), 0, 10000)
	must(t, err)
	seen := map[string]bool{}
	for _, a := range log {
		if a.ActorLogin == "expert1" && a.Purpose == "review of the exam" {
			seen[a.Action+" "+a.Object] = true
		}
	}
	// Media fetches are audited by stream.
	for _, want := range []string{"evidence.list exam1/" + o.cand, "media.get " + o.site + "/room1"} {
		if !seen[want] {
			t.Errorf("audit log lacks %q by expert1 with its purpose: %v", want, seen)
		}
	}
	playlists := 0
	for _, a := range log {
		if a.Action == "playlist.get" && a.ActorLogin == "expert1" && a.Detail["via"] == "signed_url" {
			playlists++
		}
	}
	if playlists != 3 {
		t.Errorf("%d signed playlist fetches audited as expert1, want 3", playlists)
	}
}

// TestCenterFormsExam drives the domain through the API as its users do:
// the center registers candidates and a document, forms an exam and
// appoints an expert; the site admits and refuses; the expert marks and
// confirms; the council records a certificate.
func TestCenterFormsExam(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	center, site, expert, council := o.tokens[store.RoleCenter], o.tokens[store.RoleSite], o.tokens[store.RoleExpert], o.tokens[store.RoleCouncil]
	e.clock.Set(examStart.Add(24 * time.Hour))
	call := func(token, method, path string, body any, want int) response {
		t.Helper()
		r := e.do(method, path, token, body)
		if r.code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, r.code, r.body, want)
		}
		return r
	}
	a := decode[struct{ ID string }](t, call(center, "POST", "/api/v1/candidates",
		map[string]string{"last_name": "Орлова", "first_name": "Анна", "snils": "11223344595"}, http.StatusCreated)).ID
	b := decode[struct{ ID string }](t, call(center, "POST", "/api/v1/candidates",
		map[string]string{"last_name": "Зайцев", "first_name": "Борис", "document": "паспорт 4500 000002"}, http.StatusCreated)).ID
	if r := e.do("POST", "/api/v1/candidates", center, map[string]string{"last_name": "X", "first_name": "Y", "snils": "112-233-445 96"}); r.code != http.StatusUnprocessableEntity {
		t.Errorf("bad СНИЛС: %d, want 422", r.code)
	}
	doc := e.do("POST", "/api/v1/candidates/"+a+"/documents?kind=passport&filename=passport.pdf", center, "%PDF-1.4 passport", "Content-Type", "application/pdf")
	if doc.code != http.StatusCreated {
		t.Fatalf("upload: %d %s", doc.code, doc.body)
	}
	docURL := decode[struct{ URL string }](t, doc).URL
	if r := e.do("GET", docURL, council, nil); r.code != http.StatusOK || string(r.body) != "%PDF-1.4 passport" {
		t.Errorf("council downloads the document: %d %q", r.code, r.body)
	}
	start := examStart.Add(48 * time.Hour)
	exam := decode[struct{ ID string }](t, call(center, "POST", "/api/v1/exams", map[string]any{"site": o.site, "qualification": o.qual,
		"starts_at": start, "ends_at": start.Add(4 * time.Hour),
		"parts": []map[string]any{{"kind": "theory", "starts_at": start, "ends_at": start.Add(time.Hour)},
			{"kind": "practical", "starts_at": start.Add(time.Hour), "ends_at": start.Add(4 * time.Hour)}}}, http.StatusCreated)).ID
	call(center, "POST", "/api/v1/exams/"+exam+"/candidates", map[string]string{"candidate": a, "webcam": "ws1-cam", "screen": "ws1-screen"}, http.StatusCreated)
	call(center, "POST", "/api/v1/exams/"+exam+"/candidates", map[string]string{"candidate": b, "webcam": "ws2-cam", "screen": "ws2-screen"}, http.StatusCreated)
	if r := e.do("POST", "/api/v1/exams/"+exam+"/candidates", center, map[string]string{"candidate": o.loner, "webcam": "ws1-cam", "screen": "ws2-screen"}); r.code != http.StatusUnprocessableEntity {
		t.Errorf("a workstation taken by another candidate: %d, want 422", r.code)
	}
	call(center, "POST", "/api/v1/exams/"+exam+"/experts", map[string]string{"login": "expert1"}, http.StatusOK)
	// Admission needs the identity confirmed first, against the passport.
	if r := e.do("PUT", "/api/v1/exams/"+exam+"/candidates/"+a+"/admission", site, map[string]string{"status": "admitted"}); r.code != http.StatusConflict ||
		!strings.Contains(string(r.body), "identity_not_confirmed") {
		t.Errorf("admission without the identity check: %d %s, want 409", r.code, r.body)
	}
	call(site, "PUT", "/api/v1/exams/"+exam+"/candidates/"+a+"/identity", map[string]any{"confirmed": true, "document": decode[struct{ ID string }](t, doc).ID}, http.StatusOK)
	call(site, "PUT", "/api/v1/exams/"+exam+"/candidates/"+a+"/admission", map[string]string{"status": "admitted"}, http.StatusOK)
	call(site, "PUT", "/api/v1/exams/"+exam+"/candidates/"+b+"/admission", map[string]string{"status": "refused", "reason": "нет документа"}, http.StatusOK)
	if r := e.do("POST", "/api/v1/exams/"+exam+"/candidates/"+b+"/password", site, nil); r.code != http.StatusConflict {
		t.Errorf("password for the refused candidate: %d, want 409", r.code)
	}
	call(site, "POST", "/api/v1/exams/"+exam+"/candidates/"+a+"/password", nil, http.StatusOK)
	e.clock.Set(start.Add(5 * time.Hour))
	call(expert, "POST", "/api/v1/exams/"+exam+"/candidates/"+a+"/marks",
		map[string]any{"at": start.Add(90 * time.Minute), "kind": "violation", "text": "подсказка соседа", "stream": "site1/room1"}, http.StatusCreated)
	if r := e.do("POST", "/api/v1/exams/"+exam+"/candidates/"+a+"/marks", expert,
		map[string]any{"at": start.Add(5 * time.Hour), "kind": "note", "text": "после экзамена"}); r.code != http.StatusUnprocessableEntity {
		t.Errorf("mark outside the window: %d, want 422", r.code)
	}
	call(expert, "PUT", "/api/v1/exams/"+exam+"/candidates/"+a+"/verdict", map[string]any{"procedure_confirmed": true}, http.StatusOK)
	review := decode[struct {
		Marks    []struct{ Kind, Text string }
		Verdicts []struct {
			ProcedureConfirmed bool `json:"procedure_confirmed"`
		}
	}](t, call(council, "GET", "/api/v1/exams/"+exam+"/candidates/"+a+"/review", nil, http.StatusOK))
	if len(review.Marks) != 1 || review.Marks[0].Kind != "violation" || len(review.Verdicts) != 1 || !review.Verdicts[0].ProcedureConfirmed {
		t.Errorf("review %+v", review)
	}
	res := decode[struct {
		ValidUntil string `json:"valid_until"`
	}](t, call(center, "PUT", "/api/v1/exams/"+exam+"/candidates/"+a+"/result",
		map[string]string{"kind": "certificate", "certificate_number": "40.1-000001", "issued_on": "2025-03-05"}, http.StatusCreated))
	if res.ValidUntil != "2028-03-05" {
		t.Errorf("valid_until %s, want 2028-03-05", res.ValidUntil)
	}
	if r := e.do("PUT", "/api/v1/exams/"+exam+"/candidates/"+b+"/result", center,
		map[string]string{"kind": "conclusion", "issued_on": "2025-03-05", "conclusion": "не допущен"}); r.code != http.StatusConflict {
		t.Errorf("result of a refused candidate: %d, want 409", r.code)
	}
}
