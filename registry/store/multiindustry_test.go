package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/evidence/retention"
	"github.com/nokstream/nokstream/registry/store"
)

// TestMultiIndustryCenter: council2 authorises center1 (council1's) for its
// qualification. Each council sees the center and its site, and only the
// exams, candidates, cards, deadlines and footage windows of its own
// qualifications; approvals, the register and retention follow the exam's
// council; a qualification the center is not authorised for is refused,
// and a withdrawal stops new exams without re-attributing old ones.
func TestMultiIndustryCenter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	world(t, s) // exam1: council1's qualification 40.00800.01 at center1/site1, ivanov and petrov
	// council2 has no appeals commission yet: a precondition of its approvals only.
	if _, err := s.SaveCouncil(ctx, store.Council{ID: "council2", Name: "СПК в строительстве"}); err != nil {
		t.Fatal(err)
	}
	const code2 = "16.03700.02"
	if _, err := s.SaveQualification(ctx, store.Qualification{Code: code2, CouncilID: "council2", Name: "Монтажник", ValidityYears: 5,
		Tools: []store.AssessmentTool{{Reference: "ОС-16.037-02", Link: "https://nok.example/os/2"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveCandidate(ctx, store.Candidate{ID: "sidorov", CenterID: "center1", LastName: "Сидоров", FirstName: "Семён",
		SNILS: "112-233-446 96"}); err != nil {
		t.Fatal(err)
	}
	start2 := examDay.Add(5 * time.Hour)
	exam2 := func(id string) *store.Exam {
		return &store.Exam{ID: id, CenterID: "center1", SiteID: "site1", Qualification: code2, Start: start2, End: start2.Add(2 * time.Hour)}
	}

	// Not authorised: refused, with the reason.
	if err := s.CreateExam(ctx, exam2("exam2")); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("exam of a qualification center1 is not authorised for: %v, want ErrInvalid", err)
	}
	// A council authorises only for its own qualifications.
	if _, err := s.AuthoriseCenter(ctx, "center1", "council1", []string{code2}, 0); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("council1 authorising for council2's qualification: %v, want ErrInvalid", err)
	}
	if _, err := s.AuthoriseCenter(ctx, "nowhere", "council2", []string{code2}, 0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("authorising an unknown center: %v, want ErrNotFound", err)
	}
	added, err := s.AuthoriseCenter(ctx, "center1", "council2", []string{code2}, 0)
	if err != nil || !slices.Equal(added, []string{code2}) {
		t.Fatalf("authorise: %v %v", added, err)
	}
	if added, err := s.AuthoriseCenter(ctx, "center1", "council2", []string{code2}, 0); err != nil || len(added) != 0 {
		t.Fatalf("authorise again: %v %v, want nothing added", added, err)
	}
	// The home council re-sets its own list: council2's authorisation stays.
	if _, err := s.SaveCenter(ctx, mustCenter(t, s, "center1", []string{"40.00800.01"})); err != nil {
		t.Fatal(err)
	}
	c, err := s.Center(ctx, "center1")
	if err != nil {
		t.Fatal(err)
	}
	if c.CouncilID != "council1" || !slices.Equal(c.Councils, []string{"council2"}) || len(c.Authorisations) != 2 ||
		!slices.Contains(c.Qualifications, code2) {
		t.Fatalf("center1 = home %s, councils %v, authorisations %+v", c.CouncilID, c.Councils, c.Authorisations)
	}

	e2 := exam2("exam2")
	if err := s.CreateExam(ctx, e2); err != nil {
		t.Fatal(err)
	}
	if e2.CouncilID != "council2" {
		t.Fatalf("exam2's council = %q, want council2 (its qualification's authorisation)", e2.CouncilID)
	}
	if err := s.AddExamCandidate(ctx, "exam2", "sidorov", "ws1-cam", "ws1-screen", examDay.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct{ exam, cand string }{{"exam1", "ivanov"}, {"exam2", "sidorov"}} {
		if err := s.SetAdmission(ctx, x.exam, x.cand, true, "", 0, examDay.Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
	}

	c1, c2 := store.Scope{Council: "council1"}, store.Scope{Council: "council2"}
	// Both councils see the center and its site.
	for _, sc := range []store.Scope{c1, c2} {
		centers, err := s.Centers(ctx, sc)
		if err != nil || len(centers) != 1 || centers[0].ID != "center1" {
			t.Fatalf("centers of %s = %v, %v", sc.Council, centers, err)
		}
		sites, err := s.Sites(ctx, sc)
		if err != nil || len(sites) != 1 || sites[0].ID != "site1" || !sites[0].Owner().SeenByCouncil(sc.Council) {
			t.Fatalf("sites of %s = %v, %v", sc.Council, sites, err)
		}
	}
	if centers, err := s.Centers(ctx, store.Scope{Council: "council3"}); err != nil || len(centers) != 0 {
		t.Fatalf("centers of an unrelated council = %v, %v", centers, err)
	}

	// Exams: each council its own, in lists and by id.
	examIDs := func(sc store.Scope) []string {
		list, err := s.Exams(ctx, sc, time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range list {
			ids = append(ids, e.ID)
		}
		return ids
	}
	if got := examIDs(c1); !slices.Equal(got, []string{"exam1"}) {
		t.Errorf("council1's exams = %v, want exam1 only", got)
	}
	if got := examIDs(c2); !slices.Equal(got, []string{"exam2"}) {
		t.Errorf("council2's exams = %v, want exam2 only", got)
	}
	if got := examIDs(store.Scope{Center: "center1"}); !slices.Equal(got, []string{"exam1", "exam2"}) {
		t.Errorf("center1's exams = %v, want both", got)
	}
	for _, x := range []struct {
		exam, sees, not string
	}{{"exam1", "council1", "council2"}, {"exam2", "council2", "council1"}} {
		o, err := s.ExamOwner(ctx, x.exam)
		if err != nil {
			t.Fatal(err)
		}
		if !o.SeenByCouncil(x.sees) || o.SeenByCouncil(x.not) {
			t.Errorf("%s's owner %+v: want seen by %s only", x.exam, o, x.sees)
		}
	}

	// Candidates: by the councils of their exams.
	candIDs := func(sc store.Scope) []string {
		list, err := s.Candidates(ctx, sc)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, k := range list {
			ids = append(ids, k.ID)
		}
		return ids
	}
	if got := candIDs(c1); !slices.Equal(got, []string{"ivanov", "petrov"}) {
		t.Errorf("council1's candidates = %v", got)
	}
	if got := candIDs(c2); !slices.Equal(got, []string{"sidorov"}) {
		t.Errorf("council2's candidates = %v", got)
	}
	found, total, err := s.SearchCandidates(ctx, store.CandidateSearch{Scope: c1, Query: "112-233", BySNILS: true, Limit: 10})
	if err != nil || total != 1 || found[0].ID != "ivanov" {
		t.Errorf("council1's СНИЛС search = %v (%d), %v: want ivanov, not council2's sidorov", found, total, err)
	}
	if k, err := s.Candidate(ctx, "sidorov"); err != nil || k.Owner().SeenByCouncil("council1") || !k.Owner().SeenByCouncil("council2") {
		t.Errorf("sidorov's owner %+v, %v: want council2's only", k.Owner(), err)
	}

	// Deadlines of the council's decision: each its own exam.
	after := start2.Add(3 * time.Hour)
	for _, x := range []struct {
		sc   store.Scope
		exam string
	}{{c1, "exam1"}, {c2, "exam2"}} {
		ds, err := s.Deadlines(ctx, x.sc, after, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 || ds[0].ExamID != x.exam || ds[0].CouncilID != x.sc.Council {
			t.Errorf("deadlines of %s = %+v, want %s's only", x.sc.Council, ds, x.exam)
		}
	}

	// Approval preconditions follow the exam's council: council2 has no
	// appeals commission, council1 has.
	hasCommission := func(exam string) bool {
		pre, err := s.ResultPreconditions(ctx, exam)
		if err != nil {
			t.Fatal(err)
		}
		return !slices.ContainsFunc(pre, func(p store.Precondition) bool { return p.Code == store.PreconditionCommission })
	}
	if !hasCommission("exam1") || hasCommission("exam2") {
		t.Errorf("commission precondition: exam1 met %v, exam2 met %v; want council1's met, council2's not", hasCommission("exam1"), hasCommission("exam2"))
	}

	// Footage: the room camera's windows carry each exam's council.
	ws, err := s.StreamExamWindows(ctx, "site1", "room1")
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[0].Council != "council1" || ws[1].Council != "council2" || !ws[1].Start.Equal(start2) {
		t.Errorf("room1's exam windows = %+v", ws)
	}
	if ws, err := s.StreamExamWindows(ctx, "site1", "ws2-cam"); err != nil || len(ws) != 1 || ws[0].Council != "council1" {
		t.Errorf("ws2-cam's windows = %+v, %v: petrov's, exam1 only", ws, err)
	}

	// Retention facts follow the exam's council: its overrides apply.
	if err := s.SetRetentionSettings(ctx, "council2", "", store.RetentionSettings{AppealWindowDays: 30, ProvisionalDays: 200, UnlinkedDays: 30}, 0); err != nil {
		t.Fatal(err)
	}
	facts, _, err := s.SiteEvidence(ctx, "site1", examDay, after)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range facts {
		want, days := "council1", time.Duration(0)
		if f.ExamID == "exam2" {
			want, days = "council2", 200*retention.Day
		}
		if f.Council != want || f.Policy.Provisional != days {
			t.Errorf("facts of %s/%s: council %s, provisional %v; want %s, %v", f.ExamID, f.CandidateID, f.Council, f.Policy.Provisional, want, days)
		}
	}
	if f, err := s.CandidateExamFacts(ctx, "exam2", "sidorov"); err != nil || f.CouncilID != "council2" {
		t.Errorf("exam2/sidorov facts council = %q, %v", f.CouncilID, err)
	}

	// The public register names the exam's council.
	cert := &store.Result{ExamID: "exam2", CandidateID: "sidorov", Kind: store.ResultCertificate, CertificateNumber: "16.03700.02.00001",
		IssuedOn: after}
	if _, err := s.SaveCouncil(ctx, store.Council{ID: "council2", Name: "СПК в строительстве", Commission: store.Commission{
		Members: []string{"Кузнецов К. К."}, Address: "Москва", Email: "a@council2.example", Phones: []string{"+7 495 333-33-33"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordResult(ctx, cert, 0, after); err != nil {
		t.Fatal(err)
	}
	pub, err := s.RegisterCertificates(ctx, cert.CertificateNumber, "")
	if err != nil || len(pub) != 1 || pub[0].Council != "council2" || pub[0].Center != "center1" {
		t.Errorf("public check = %+v, %v: want council2's certificate of center1", pub, err)
	}

	// Withdrawal: no new exam; exam2 stays council2's, and council2 still
	// sees the center it has exams at.
	if err := s.WithdrawAuthorisation(ctx, "center1", "council1", code2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("council1 withdrawing council2's authorisation: %v, want ErrNotFound", err)
	}
	if err := s.WithdrawAuthorisation(ctx, "center1", "council2", code2); err != nil {
		t.Fatal(err)
	}
	if err := s.WithdrawAuthorisation(ctx, "center1", "council2", code2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("withdraw twice: %v, want ErrNotFound", err)
	}
	if err := s.CreateExam(ctx, exam2("exam3")); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("exam after the withdrawal: %v, want ErrInvalid", err)
	}
	if e, err := s.Exam(ctx, "exam2"); err != nil || e.CouncilID != "council2" {
		t.Fatalf("exam2 after the withdrawal: council %q, %v", e.CouncilID, err)
	}
	if c, err := s.Center(ctx, "center1"); err != nil || !c.Owner().SeenByCouncil("council2") || slices.Contains(c.Qualifications, code2) {
		t.Fatalf("center1 after the withdrawal: %+v, %v", c, err)
	}
}
