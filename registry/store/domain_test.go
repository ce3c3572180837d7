package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/registry/store"
)

// examDay is when the test exam runs: 10:00 to 14:00 UTC.
var examDay = time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC)

// world is an exam of center1 at site1 with two candidates at two
// workstations and a room camera.
func world(t *testing.T, s *store.Store) *store.Exam {
	t.Helper()
	ctx := context.Background()
	if _, err := s.SaveQualification(ctx, store.Qualification{
		Code: "40.00800.01", CouncilID: "council1", Name: "Сварщик", ValidityYears: 3,
		Tools: []store.AssessmentTool{{Reference: "ОС-40.008-01", Link: "https://nok.example/os/1"}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveCenter(ctx, mustCenter(t, s, "center1", []string{"40.00800.01"})); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct{ name, kind string }{
		{"room1", store.KindRoom}, {"ws1-cam", store.KindWebcam}, {"ws1-screen", store.KindScreen},
		{"ws2-cam", store.KindWebcam}, {"ws2-screen", store.KindScreen},
	} {
		if _, err := s.AddDevice(ctx, "site1", d.name, d.kind); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []store.Candidate{
		{ID: "ivanov", CenterID: "center1", LastName: "Иванов", FirstName: "Иван", SNILS: "112-233-445 95"},
		{ID: "petrov", CenterID: "center1", LastName: "Петров", FirstName: "Пётр", Document: "паспорт 4500 123456"},
	} {
		if _, err := s.SaveCandidate(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	e := &store.Exam{ID: "exam1", CenterID: "center1", SiteID: "site1", Qualification: "40.00800.01",
		Start: examDay, End: examDay.Add(4 * time.Hour),
		Parts: []store.ExamPart{{Kind: store.PartTheory, Start: examDay, End: examDay.Add(time.Hour)}}}
	if err := s.CreateExam(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := s.AddExamCandidate(ctx, "exam1", "ivanov", "ws1-cam", "ws1-screen", examDay.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddExamCandidate(ctx, "exam1", "petrov", "ws2-cam", "ws2-screen", examDay.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	return e
}

func mustCenter(t *testing.T, s *store.Store, id string, quals []string) store.Center {
	t.Helper()
	c, err := s.Center(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	c.Qualifications = quals
	return c
}

func TestOrganisations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	site, err := s.Site(ctx, "site1")
	if err != nil {
		t.Fatal(err)
	}
	if o := site.Owner(); o.Council != "council1" || o.Center != "center1" || o.Site != "site1" {
		t.Errorf("site owner %+v", site.Owner())
	}
	// A center never moves to another council, a site to another center.
	if _, err := s.SaveCouncil(ctx, store.Council{ID: "council2", Name: "Другой"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveCenter(ctx, store.Center{ID: "center1", CouncilID: "council2", Name: "x"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("move center: got %v, want ErrInvalid", err)
	}
	if _, err := s.SaveCenter(ctx, store.Center{ID: "center2", CouncilID: "council2", Name: "Второй"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveSite(ctx, store.Site{ID: "site1", CenterID: "center2"}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("move site: got %v, want ErrInvalid", err)
	}
	if _, err := s.SaveCenter(ctx, store.Center{ID: "center3", CouncilID: "nope", Name: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("center of an unknown council: got %v, want ErrNotFound", err)
	}
	// Users belong to organisations of their role.
	for _, tt := range []struct {
		role, org string
		want      error
	}{
		{store.RoleCouncil, "council1", nil},
		{store.RoleCouncil, "center1", store.ErrNotFound},
		{store.RoleCenter, "center1", nil},
		{store.RoleSite, "site1", nil},
		{store.RoleSite, "", store.ErrInvalid},
		{store.RoleNARK, "council1", store.ErrInvalid},
		{store.RoleExpert, "", nil},
		{store.RoleExpert, "council1", nil},
		{store.RoleExpert, "site1", store.ErrNotFound},
	} {
		_, err := s.AddUser(ctx, "u-"+tt.role+"-"+tt.org, tt.role, tt.org)
		if (tt.want == nil && err != nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("add %s user of %q: got %v, want %v", tt.role, tt.org, err, tt.want)
		}
	}
	sc := store.Scope{Council: "council2"}
	centers, err := s.Centers(ctx, sc)
	if err != nil || len(centers) != 1 || centers[0].ID != "center2" {
		t.Errorf("centers of council2: %v %v", centers, err)
	}
	sites, err := s.Sites(ctx, store.Scope{Council: "council1"})
	if err != nil || len(sites) != 1 {
		t.Errorf("sites of council1: %v %v", sites, err)
	}
	councils, err := s.Councils(ctx, store.Scope{Site: "site1"})
	if err != nil || len(councils) != 0 {
		t.Errorf("councils seen by site1: %v %v", councils, err)
	}
	councils, err = s.Councils(ctx, store.Scope{Council: "council1"})
	if err != nil || len(councils) != 1 || councils[0].ID != "council1" {
		t.Errorf("councils seen by council1: %v %v", councils, err)
	}
}

func TestSNILS(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"112-233-445 95", "112-233-445 95", true},
		{"11223344595", "112-233-445 95", true},
		{"112-233-445 96", "", false},
		{"1122334459", "", false},
		{"001-001-998 00", "001-001-998 00", true}, // below the checked range
		{"", "", true},
	} {
		got, err := store.NormalizeSNILS(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("NormalizeSNILS(%q) = %q, %v; want %q, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestExamPasswordWindow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	world(t, s)
	before := examDay.Add(-time.Hour)
	if _, err := s.IssueExamPassword(ctx, "exam1", "ivanov", before); !errors.Is(err, store.ErrState) {
		t.Fatalf("password before admission: got %v, want ErrState", err)
	}
	if err := s.SetAdmission(ctx, "exam1", "ivanov", true, "", 0, before); err != nil {
		t.Fatal(err)
	}
	if err := s.SetAdmission(ctx, "exam1", "petrov", false, "", 0, before); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("refusal without a reason: got %v, want ErrInvalid", err)
	}
	if err := s.SetAdmission(ctx, "exam1", "petrov", false, "нет документа", 0, before); err != nil {
		t.Fatal(err)
	}
	pw, err := s.IssueExamPassword(ctx, "exam1", "ivanov", before)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.IssueExamPassword(ctx, "exam1", "petrov", before); !errors.Is(err, store.ErrState) {
		t.Errorf("password for a refused candidate: got %v, want ErrState", err)
	}
	for _, tt := range []struct {
		name string
		at   time.Time
		want error
	}{
		{"before the window", examDay.Add(-time.Minute), store.ErrOutsideWindow},
		{"at the start", examDay, nil},
		{"inside", examDay.Add(3 * time.Hour), nil},
		{"at the end", examDay.Add(4 * time.Hour), store.ErrOutsideWindow},
	} {
		t.Run(tt.name, func(t *testing.T) {
			token, es, err := s.ExamLogin(ctx, pw, tt.at)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("got %v, want %v", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if es.CandidateID != "ivanov" || es.Webcam != "ws1-cam" || !es.ExpiresAt.Equal(examDay.Add(4*time.Hour)) {
				t.Errorf("session %+v", es)
			}
			// No stream before the candidate consents to the recording.
			_, consentErr := s.ExamConsent(ctx, "exam1", "ivanov")
			if _, _, err := s.CandidatePublisher(ctx, token, "site1", "ws1-screen", tt.at); errors.Is(consentErr, store.ErrNotFound) &&
				(!errors.Is(err, store.ErrNoConsent) || !errors.Is(err, store.ErrBadCredentials)) {
				t.Errorf("publish before consenting: %v, want ErrNoConsent", err)
			}
			if err := s.RecordConsent(ctx, &store.Consent{ExamID: "exam1", CandidateID: "ivanov", Version: "recording-1", AcceptedAt: tt.at}); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("consent without the page: %v, want ErrInvalid", err)
			}
			if err := s.RecordConsent(ctx, &store.Consent{ExamID: "exam1", CandidateID: "ivanov", Version: "recording-1", Page: "/ui/exam.html", AcceptedAt: tt.at}); err != nil {
				t.Fatal(err)
			}
			if c, err := s.ExamConsent(ctx, "exam1", "ivanov"); err != nil || c.Version != "recording-1" || c.Page != "/ui/exam.html" || !c.AcceptedAt.Equal(tt.at) {
				t.Errorf("consent %+v %v", c, err)
			}
			kind, _, err := s.CandidatePublisher(ctx, token, "site1", "ws1-screen", tt.at)
			if err != nil || kind != store.KindScreen {
				t.Errorf("publish own screen: %q %v", kind, err)
			}
			if _, _, err := s.CandidatePublisher(ctx, token, "site1", "ws2-cam", tt.at); !errors.Is(err, store.ErrBadCredentials) {
				t.Errorf("publish another candidate's webcam: %v, want ErrBadCredentials", err)
			}
			if _, _, err := s.CandidatePublisher(ctx, token, "site1", "ws1-cam", examDay.Add(5*time.Hour)); !errors.Is(err, store.ErrBadCredentials) {
				t.Errorf("publish after the window: %v, want ErrBadCredentials", err)
			}
		})
	}
	// Lowercase and without dashes is the same password; a wrong one is not.
	if _, _, err := s.ExamLogin(ctx, "x"+pw, examDay); !errors.Is(err, store.ErrBadCredentials) {
		t.Errorf("wrong password: %v", err)
	}
	// A new password replaces the old one for new logins, but a candidate
	// who is live on the old one is not cut off.
	live, _, err := s.ExamLogin(ctx, pw, examDay)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.IssueExamPassword(ctx, "exam1", "ivanov", before); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ExamLogin(ctx, pw, examDay); !errors.Is(err, store.ErrBadCredentials) {
		t.Errorf("replaced password: %v, want ErrBadCredentials", err)
	}
	if _, _, err := s.CandidatePublisher(ctx, live, "site1", "ws1-cam", examDay.Add(time.Minute)); err != nil {
		t.Errorf("the live candidate after a new password: %v, want still publishing", err)
	}
}

func TestResultsAndRetentionEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	world(t, s)
	after := examDay.Add(5 * time.Hour)
	for _, c := range []string{"ivanov", "petrov"} {
		if err := s.SetAdmission(ctx, "exam1", c, true, "", 0, examDay); err != nil {
			t.Fatal(err)
		}
	}
	cert := &store.Result{ExamID: "exam1", CandidateID: "ivanov", Kind: store.ResultCertificate, CertificateNumber: "40.00800.01.00001", IssuedOn: after}
	if err := s.RecordResult(ctx, cert, 0, examDay.Add(time.Hour)); !errors.Is(err, store.ErrState) {
		t.Errorf("result during the exam: %v, want ErrState", err)
	}

	// Break every precondition: each is reported.
	if _, err := s.SaveCouncil(ctx, store.Council{ID: "council1", Name: "Council council1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveCenter(ctx, store.Center{ID: "center1", CouncilID: "council1", Name: "Center"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveQualification(ctx, store.Qualification{Code: "q2", CouncilID: "council1", Name: "Без ОС", ValidityYears: 5}); err != nil {
		t.Fatal(err)
	}
	unmet, err := s.ResultPreconditions(ctx, "exam1")
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, p := range unmet {
		codes = append(codes, p.Code)
	}
	if !slices.Equal(codes, []string{store.PreconditionCommission, store.PreconditionCenter}) {
		t.Errorf("unmet preconditions %v", unmet)
	}
	var pe *store.PreconditionError
	if err := s.RecordResult(ctx, cert, 0, after); !errors.As(err, &pe) || !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("result with unmet preconditions: %v", err)
	}
	storetestOrg(t, s)

	if err := s.RecordResult(ctx, cert, 0, after); err != nil {
		t.Fatal(err)
	}
	if want := date(2028, 3, 3); !cert.ValidUntil.Equal(want) {
		t.Errorf("valid until %v, want %v (3 years)", cert.ValidUntil, want)
	}
	if err := s.RecordResult(ctx, cert, 0, after); !errors.Is(err, store.ErrExists) {
		t.Errorf("second result: %v, want ErrExists", err)
	}
	concl := &store.Result{ExamID: "exam1", CandidateID: "petrov", Kind: store.ResultConclusion, IssuedOn: after, Conclusion: "практическая часть не сдана"}
	if err := s.RecordResult(ctx, concl, 0, after); err != nil {
		t.Fatal(err)
	}
	if err := s.ExtendCertificate(ctx, cert.CertificateNumber, date(2027, 1, 1), "", 0, after); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("shortening extension: %v, want ErrInvalid", err)
	}
	if err := s.ExtendCertificate(ctx, cert.CertificateNumber, date(2030, 1, 1), "продлено", 0, after); err != nil {
		t.Fatal(err)
	}
	a := &store.Appeal{ExamID: "exam1", CandidateID: "petrov", Reason: "не согласен"}
	if err := s.OpenAppeal(ctx, a, 0, after); err != nil {
		t.Fatal(err)
	}
	if err := s.DecideAppeal(ctx, a.ID, store.AppealRejected, "отклонена", 0, after); err != nil {
		t.Fatal(err)
	}
	facts, err := s.CandidateExamFacts(ctx, "exam1", "petrov")
	if err != nil {
		t.Fatal(err)
	}
	if len(facts.OpenAppeals()) != 1 || facts.Result.Kind != store.ResultConclusion || facts.Settings != store.DefaultRetentionSettings() {
		t.Errorf("facts %+v", facts)
	}
	if err := s.CloseAppeal(ctx, a.ID, 0, after); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseAppeal(ctx, a.ID, 0, after); !errors.Is(err, store.ErrState) {
		t.Errorf("closing twice: %v, want ErrState", err)
	}
	if err := s.RevokeCertificate(ctx, cert.CertificateNumber, "подлог", 0, after); err != nil {
		t.Fatal(err)
	}
	got, err := s.Certificate(ctx, cert.CertificateNumber)
	if err != nil || got.RevokedAt == nil || !got.ValidUntil.Equal(date(2030, 1, 1)) || len(got.Changes) != 3 {
		t.Errorf("certificate after revocation: %+v %v", got, err)
	}

	// Every change is in the outbox, in order, and the relay publishes each
	// once; each RetentionChanged is followed by the v2 snapshot of its
	// candidate-exam, whose seq is its outbox id (and the site's council
	// has a snapshot of its settings).
	var reasons, snaps []string
	settings := 0
	var last events.RetentionChangedV2
	n, err := s.RelayOutbox(ctx, 100, after, func(_ context.Context, e store.OutboxEvent) error {
		if e.Topic == events.TopicRetentionV2 {
			m, err := events.DecodeFacts(e.Value)
			switch {
			case err != nil:
				return err
			case m.Settings != nil:
				settings++
			case m.Exam != nil:
				if m.Exam.Seq != e.ID || e.Key != events.RetentionV2Key {
					t.Errorf("snapshot of outbox id %d has seq %d, key %q", e.ID, m.Exam.Seq, e.Key)
				}
				snaps = append(snaps, m.Exam.CandidateID+":"+m.Exam.Reason)
				last = *m.Exam
			}
			return nil
		}
		var rc events.RetentionChanged
		if err := json.Unmarshal(e.Value, &rc); err != nil {
			return err
		}
		if e.Topic != events.TopicRetention || e.Key != "exam1" || rc.ExamID != "exam1" || rc.EventID == "" {
			t.Errorf("outbox event %+v %+v", e, rc)
		}
		reasons = append(reasons, rc.CandidateID+":"+rc.Reason)
		return nil
	})
	if err != nil || n != 21 {
		t.Fatalf("relay: %d %v, want 10 events, their 10 snapshots and the settings' snapshot", n, err)
	}
	want := []string{"ivanov:exam_changed", "petrov:exam_changed", "ivanov:exam_changed", "petrov:exam_changed", "ivanov:certificate_issued", "petrov:result_recorded", "ivanov:certificate_extended",
		"petrov:appeal_opened", "petrov:appeal_closed", "ivanov:certificate_revoked"}
	if !slices.Equal(reasons, want) {
		t.Errorf("events %v, want %v", reasons, want)
	}
	if !slices.Equal(snaps, want) || settings != 1 {
		t.Errorf("snapshots %v and %d of settings, want %v and 1", snaps, settings, want)
	}
	if last.Certificate == nil || last.Certificate.RevokedAt.IsZero() || !last.Certificate.ValidUntil.Equal(date(2030, 1, 2)) ||
		last.Result != "certificate" || last.Council != "council1" || last.Site != "site1" {
		t.Errorf("the last snapshot (the revocation) is %+v, want ivanov's revoked certificate valid through 2030-01-01", last)
	}
	if n, err := s.RelayOutbox(ctx, 100, after, func(context.Context, store.OutboxEvent) error { return nil }); n != 0 || err != nil {
		t.Errorf("second relay: %d %v", n, err)
	}
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// storetestOrg restores the complete details of council1 and center1.
func storetestOrg(t *testing.T, s *store.Store) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.SaveCouncil(ctx, store.Council{ID: "council1", Name: "Council", Commission: store.Commission{
		Members: []string{"Иванов"}, Address: "Москва", Email: "a@b.c", Phones: []string{"+7"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveCenter(ctx, store.Center{ID: "center1", CouncilID: "council1", Name: "Center", Head: "Сидоров",
		Website: "https://c.example", LegalAddress: "Москва", Email: "c@c.c", Phones: []string{"+7"}}); err != nil {
		t.Fatal(err)
	}
}

func TestEvidenceFacts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	world(t, s)
	in := func(h float64) time.Time { return examDay.Add(time.Duration(h * float64(time.Hour))) }

	facts, err := s.EvidenceFacts(ctx, "site1", "room1", in(1), in(1.1))
	if err != nil {
		t.Fatal(err)
	}
	if len(facts) != 2 || facts[0].Link != store.KindRoom || facts[0].Result.Kind != "" {
		t.Fatalf("room footage facts: %+v", facts)
	}
	facts, err = s.EvidenceFacts(ctx, "site1", "ws2-screen", in(1), in(1.1))
	if err != nil || len(facts) != 1 || facts[0].CandidateID != "petrov" || facts[0].Link != store.KindScreen {
		t.Fatalf("screen footage facts: %+v %v", facts, err)
	}
	facts, err = s.EvidenceFacts(ctx, "site1", "room1", in(5), in(6))
	if err != nil || len(facts) != 0 {
		t.Errorf("footage after the exam: %+v %v", facts, err)
	}
	if err := s.SetRetentionSettings(ctx, "council1", "", store.RetentionSettings{AppealWindowDays: 45, ProvisionalDays: 60, UnlinkedDays: 10}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetRetentionSettings(ctx, "council1", "40.00800.01", store.RetentionSettings{AppealWindowDays: 20, ProvisionalDays: 60, UnlinkedDays: 10}, 0); err != nil {
		t.Fatal(err)
	}
	f, err := s.CandidateExamFacts(ctx, "exam1", "ivanov")
	if err != nil || f.Settings.AppealWindowDays != 20 || f.Webcam != "site1/ws1-cam" {
		t.Errorf("facts with settings: %+v %v", f, err)
	}
	if rs, err := s.SiteRetentionSettings(ctx, "site1"); err != nil || rs.UnlinkedDays != 10 {
		t.Errorf("site settings %+v %v", rs, err)
	}

	// The expert sees the streams of their exam inside its window only.
	if _, err := s.AddUser(ctx, "expert1", store.RoleExpert, "center1"); err != nil {
		t.Fatal(err)
	}
	x, err := s.AppointExpert(ctx, "exam1", "expert1", 0)
	if err != nil {
		t.Fatal(err)
	}
	for dev, n := range map[string]int{"room1": 1, "ws1-cam": 1, "ws9": 0} {
		ws, err := s.ExpertStreamWindows(ctx, x.ID, "site1", dev)
		if err != nil || len(ws) != n {
			t.Errorf("expert windows of %s: %v %v, want %d", dev, ws, err, n)
		}
	}
	ev, err := s.CandidateEvidence(ctx, "exam1", "ivanov")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ev {
		got = append(got, e.Source+":"+e.StreamID())
	}
	if !slices.Equal(got, []string{"webcam:site1/ws1-cam", "screen:site1/ws1-screen", "room:site1/room1"}) {
		t.Errorf("evidence streams %v", got)
	}
}
