package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/registry/store"
)

// readyExam is world's exam after it ended, with both candidates admitted,
// the commission protocol recorded and approved by one appointed expert.
func readyExam(t *testing.T, s *store.Store) (end time.Time) {
	t.Helper()
	ctx := context.Background()
	world(t, s)
	end = examDay.Add(4 * time.Hour)
	for _, c := range []string{"ivanov", "petrov"} {
		must(t, s.SetAdmission(ctx, "exam1", c, true, "", 0, examDay))
	}
	doc := &store.Document{ExamID: "exam1", Kind: "protocol", Filename: "protocol.pdf", ContentType: "application/pdf",
		Bytes: 1, SHA256: strings.Repeat("0", 64), ObjectKey: store.DocumentKey("exam1", "p1")}
	must(t, s.AddDocument(ctx, doc))
	must(t, s.SetProtocol(ctx, store.Protocol{ExamID: "exam1", Number: "17/2025", SignedOn: end, Document: *doc, UploadedAt: end}))
	_, err := s.AddUser(ctx, "expert-a", store.RoleExpert, "council1")
	must(t, err)
	x, err := s.AppointExpert(ctx, "exam1", "expert-a", 0)
	must(t, err)
	must(t, s.ApproveProtocol(ctx, "exam1", x.ID, true, "", end))
	return end
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, err, sentinel error, says string) {
	t.Helper()
	if !errors.Is(err, sentinel) || !strings.Contains(err.Error(), says) {
		t.Errorf("%s: %v, want %v saying %q", what, err, sentinel, says)
	}
}

func cardState(t *testing.T, s *store.Store, cand string) string {
	t.Helper()
	r, err := s.Result(context.Background(), "exam1", cand)
	must(t, err)
	return r.State
}

var councilProtocol = store.ApprovalProtocol{Number: "СПК-5", Date: examDay.AddDate(0, 0, 2), Link: "https://council1.example/p/5"}

// TestCardWorkflow walks result cards through every state of the
// procedure and every refusal: wrong order, missing precondition, late.
func TestCardWorkflow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	end := readyExam(t, s)
	day := func(n int) time.Time { return end.Add(time.Duration(n) * 24 * time.Hour) }
	cert := &store.Result{ExamID: "exam1", CandidateID: "ivanov", Kind: store.ResultCertificate, CertificateNumber: "40.00800.01.000001", IssuedOn: day(1)}
	concl := &store.Result{ExamID: "exam1", CandidateID: "petrov", Kind: store.ResultConclusion, IssuedOn: day(1), Conclusion: "не сдана практическая часть"}

	_, err := s.SaveCard(ctx, cert, 0, examDay.Add(time.Hour))
	wantErr(t, "a card during the exam", err, store.ErrState, "the exam ends at")
	if created, err := s.SaveCard(ctx, cert, 0, day(1)); err != nil || !created {
		t.Fatalf("first card: %v %v", created, err)
	}
	if st := cardState(t, s, "ivanov"); st != store.CardDraft {
		t.Errorf("new card is %s, want draft", st)
	}
	dup := &store.Result{ExamID: "exam1", CandidateID: "petrov", Kind: store.ResultCertificate, CertificateNumber: cert.CertificateNumber, IssuedOn: day(1)}
	_, err = s.SaveCard(ctx, dup, 0, day(1))
	wantErr(t, "a number in use", err, store.ErrExists, "is in use")
	_, err = s.Certificate(ctx, cert.CertificateNumber)
	wantErr(t, "a draft's certificate in the register", err, store.ErrNotFound, "not found")

	// Wrong order: nothing to decide before the center submits.
	err = s.RecordDecision(ctx, &store.Decision{ExamID: "exam1", Decision: store.DecisionApproved, Protocol: councilProtocol, DecidedAt: day(1)})
	wantErr(t, "approval before submission", err, store.ErrState, "submits its cards first")
	// Every admitted candidate needs a card.
	_, err = s.SubmitCards(ctx, "exam1", 0, day(1))
	var pe *store.PreconditionError
	if !errors.As(err, &pe) || len(pe.Unmet) != 1 || pe.Unmet[0].Code != store.PreconditionCards || !strings.Contains(pe.Unmet[0].Message, "petrov") {
		t.Errorf("submission without petrov's card: %v", err)
	}
	_, err = s.SaveCard(ctx, concl, 0, day(1))
	must(t, err)
	if n, err := s.SubmitCards(ctx, "exam1", 0, day(2)); err != nil || n != 2 {
		t.Fatalf("submission: %d %v", n, err)
	}
	_, err = s.SubmitCards(ctx, "exam1", 0, day(2))
	wantErr(t, "second submission", err, store.ErrState, "nothing to submit")
	_, err = s.SaveCard(ctx, cert, 0, day(2))
	wantErr(t, "editing a submitted card", err, store.ErrState, "only a draft or a returned card changes")

	// Approval needs the council's protocol, and every precondition.
	err = s.RecordDecision(ctx, &store.Decision{ExamID: "exam1", Decision: store.DecisionApproved, DecidedAt: day(3)})
	wantErr(t, "approval without the council's protocol", err, store.ErrInvalid, "number and date")
	bad := councilProtocol
	bad.Link = "council1.example/p/5"
	err = s.RecordDecision(ctx, &store.Decision{ExamID: "exam1", Decision: store.DecisionApproved, Protocol: bad, DecidedAt: day(3)})
	wantErr(t, "approval with a bad link", err, store.ErrInvalid, "not an http(s) URL")
	site, err := s.Site(ctx, "site1")
	must(t, err)
	bare := site
	bare.Email, bare.Phones = "", nil
	_, err = s.SaveSite(ctx, bare)
	must(t, err)
	must(t, s.AddAssessmentTool(ctx, "40.00800.01", store.AssessmentTool{Reference: "ОС-2", Link: "ftp:/nowhere"}))
	err = s.RecordDecision(ctx, &store.Decision{ExamID: "exam1", Decision: store.DecisionApproved, Protocol: councilProtocol, DecidedAt: day(3)})
	if !errors.As(err, &pe) {
		t.Fatalf("approval with unmet preconditions: %v", err)
	}
	var codes []string
	for _, p := range pe.Unmet {
		codes = append(codes, p.Code)
	}
	if !slices.Equal(codes, []string{store.PreconditionToolLinks, store.PreconditionSite}) || !strings.Contains(pe.Error(), "e-mail, phone") {
		t.Errorf("unmet preconditions %v: %v", codes, pe)
	}
	_, err = s.SaveSite(ctx, site)
	must(t, err)
	must(t, s.AddAssessmentTool(ctx, "40.00800.01", store.AssessmentTool{Reference: "ОС-2", Link: "https://nok.example/os/2"}))

	// Returned: the center edits and resubmits.
	err = s.RecordDecision(ctx, &store.Decision{ExamID: "exam1", Decision: store.DecisionReturned, DecidedAt: day(3)})
	wantErr(t, "returned without a reason", err, store.ErrInvalid, "needs a comment")
	must(t, s.RecordDecision(ctx, &store.Decision{ExamID: "exam1", Decision: store.DecisionReturned, Comment: "неверная дата", DecidedAt: day(3)}))
	if st := cardState(t, s, "ivanov"); st != store.CardReturned {
		t.Errorf("returned card is %s", st)
	}
	cert.IssuedOn = day(4)
	_, err = s.SaveCard(ctx, cert, 0, day(4))
	must(t, err)
	err = s.RecordDecision(ctx, &store.Decision{ExamID: "exam1", Decision: store.DecisionApproved, Protocol: councilProtocol, DecidedAt: day(4)})
	wantErr(t, "approval with the cards not resubmitted", err, store.ErrState, "submits its cards first")
	if n, err := s.SubmitCards(ctx, "exam1", 0, day(4)); err != nil || n != 2 {
		t.Fatalf("resubmission: %d %v", n, err)
	}
	d := &store.Decision{ExamID: "exam1", Decision: store.DecisionApproved, Protocol: councilProtocol, DecidedAt: day(5)}
	must(t, s.RecordDecision(ctx, d))
	if !slices.Equal(d.Cards, []string{"ivanov", "petrov"}) {
		t.Errorf("approval moved %v", d.Cards)
	}
	got, err := s.Certificate(ctx, cert.CertificateNumber)
	if err != nil || got.State != store.CardApproved || got.ValidUntil.IsZero() {
		t.Errorf("approved certificate in the register: %+v %v", got, err)
	}
	ds, _, err := s.ExamDecisions(ctx, "exam1")
	must(t, err)
	if last := ds[len(ds)-1]; last.Protocol.Number != "СПК-5" || last.Protocol.Link != councilProtocol.Link {
		t.Errorf("the approval's protocol %+v", last.Protocol)
	}
	// The approval is in the outbox for the archiver: certificate issued.
	var reasons []string
	_, err = s.RelayOutbox(ctx, 100, day(5), func(_ context.Context, e store.OutboxEvent) error {
		var rc events.RetentionChanged
		if err := json.Unmarshal(e.Value, &rc); err != nil {
			return err
		}
		if rc.CandidateID == "ivanov" {
			reasons = append(reasons, rc.Reason)
		}
		return nil
	})
	must(t, err)
	if !slices.Contains(reasons, events.RetentionCertificateIssued) {
		t.Errorf("retention events of ivanov %v, want certificate_issued", reasons)
	}

	// NARK: ivanov verified, petrov not; a named card not approved is refused.
	err = s.RecordVerification(ctx, store.Verification{ExamID: "exam1", Verified: false, Candidates: []string{"petrov"}, VerifiedAt: day(6)})
	wantErr(t, "not verified without a reason", err, store.ErrInvalid, "needs a comment")
	must(t, s.RecordVerification(ctx, store.Verification{ExamID: "exam1", Verified: false, Comment: "нет подписи", Candidates: []string{"petrov"}, VerifiedAt: day(6)}))
	err = s.RecordVerification(ctx, store.Verification{ExamID: "exam1", Verified: true, Candidates: []string{"petrov"}, VerifiedAt: day(6)})
	wantErr(t, "verifying a card not approved", err, store.ErrState, "nothing to verify")
	// Late: the approval was on day 5 (Moscow), so day 5+7 is the last day.
	late := store.DueAfter(d.DecidedAt, store.VerificationDays)
	err = s.RecordVerification(ctx, store.Verification{ExamID: "exam1", Verified: true, VerifiedAt: late})
	wantErr(t, "late verification", err, store.ErrState, "late")
	must(t, s.RecordVerification(ctx, store.Verification{ExamID: "exam1", Verified: true, VerifiedAt: late, LateReason: "проверка документов"}))
	if a, b := cardState(t, s, "ivanov"), cardState(t, s, "petrov"); a != store.CardVerified || b != store.CardNotVerified {
		t.Errorf("after NARK: ivanov %s, petrov %s", a, b)
	}
	_, err = s.SaveCard(ctx, cert, 0, late)
	wantErr(t, "the center editing a verified card", err, store.ErrState, "only by NARK's correction")

	// The council returns petrov's card late: it needs a reason for the delay.
	lateCouncil := store.DueAfter(end, store.SubmissionDays)
	err = s.RecordDecision(ctx, &store.Decision{ExamID: "exam1", Decision: store.DecisionReturned, Comment: "исправить", DecidedAt: lateCouncil})
	wantErr(t, "late decision", err, store.ErrState, "late")
	must(t, s.RecordDecision(ctx, &store.Decision{ExamID: "exam1", Decision: store.DecisionReturned, Comment: "исправить",
		LateReason: "замечания НАРК", DecidedAt: lateCouncil}))
	if st := cardState(t, s, "petrov"); st != store.CardReturned {
		t.Errorf("petrov after the council's return: %s", st)
	}

	// Registration of what NARK verified.
	_, err = s.RegisterCards(ctx, "exam1", []string{"petrov"}, 0, lateCouncil)
	wantErr(t, "registering an unverified card", err, store.ErrState, "nothing to register")
	reg, err := s.RegisterCards(ctx, "exam1", nil, 0, lateCouncil)
	if err != nil || !slices.Equal(reg, []string{"ivanov"}) {
		t.Fatalf("registration: %v %v", reg, err)
	}

	// NARK corrects the registered card, with a reason; the history says what changed.
	_, err = s.CorrectCard(ctx, store.Correction{ExamID: "exam1", CandidateID: "ivanov", CertificateNumber: "40.00800.01.000009", At: lateCouncil})
	wantErr(t, "correction without a reason", err, store.ErrInvalid, "needs a reason")
	_, err = s.CorrectCard(ctx, store.Correction{ExamID: "exam1", CandidateID: "petrov", Conclusion: "иное", Reason: "опечатка", At: lateCouncil})
	wantErr(t, "correcting a returned card", err, store.ErrState, "only verified or registered")
	changes, err := s.CorrectCard(ctx, store.Correction{ExamID: "exam1", CandidateID: "ivanov", CertificateNumber: "40.00800.01.000009",
		Reason: "опечатка в номере", At: lateCouncil})
	must(t, err)
	if _, ok := changes["certificate_number"]; !ok {
		t.Errorf("changes %v", changes)
	}
	if _, err := s.Certificate(ctx, cert.CertificateNumber); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the old number after the correction: %v", err)
	}
	got, err = s.Certificate(ctx, "40.00800.01.000009")
	if err != nil || got.State != store.CardRegistered || got.Changes[len(got.Changes)-1].Change != store.CertificateCorrected {
		t.Errorf("corrected certificate %+v %v", got, err)
	}
	hist, err := s.CardHistory(ctx, "exam1", "ivanov")
	must(t, err)
	var path []string
	for _, h := range hist {
		path = append(path, h.From+">"+h.To)
	}
	want := []string{">draft", "draft>submitted", "submitted>returned", "returned>draft", "draft>submitted", "submitted>approved",
		"approved>verified", "verified>registered", "registered>registered"}
	if !slices.Equal(path, want) {
		t.Errorf("history %v, want %v", path, want)
	}
	if last := hist[len(hist)-1]; last.Reason != "опечатка в номере" || last.Changes["certificate_number"] == nil {
		t.Errorf("correction in the history: %+v", last)
	}
}

// TestMoscowDeadlines checks the calendar days counted in Moscow time: an
// exam ending at 17:00 MSK on 3 March is due by the end of 17 March MSK
// (21:00 UTC), and the overdue list and flags follow.
func TestMoscowDeadlines(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	end := readyExam(t, s)
	due := time.Date(2025, 3, 17, 21, 0, 0, 0, time.UTC)
	if got := store.DueAfter(end, store.SubmissionDays); !got.Equal(due) {
		t.Fatalf("council due %v, want %v", got, due)
	}
	// An exam ending at 23:30 MSK counts from that Moscow day, not the UTC one.
	if got := store.DueAfter(time.Date(2025, 3, 3, 20, 30, 0, 0, time.UTC), 7); !got.Equal(time.Date(2025, 3, 10, 21, 0, 0, 0, time.UTC)) {
		t.Errorf("due after 23:30 MSK: %v", got)
	}
	check := func(now time.Time, overdueOnly bool, want ...string) {
		t.Helper()
		ds, err := s.Deadlines(ctx, store.Scope{}, now, overdueOnly)
		must(t, err)
		var got []string
		for _, d := range ds {
			got = append(got, d.Kind)
			if !d.Due.Equal(due) && d.Kind == store.DeadlineSubmission {
				t.Errorf("council due %v, want %v", d.Due, due)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("deadlines at %v (overdue only %v): %v, want %v", now, overdueOnly, got, want)
		}
	}
	check(examDay, false)
	check(end.Add(time.Hour), false, store.DeadlineSubmission)
	check(due.Add(-time.Second), true)
	check(due, true, store.DeadlineSubmission)
	for _, r := range []*store.Result{
		{ExamID: "exam1", CandidateID: "ivanov", Kind: store.ResultCertificate, CertificateNumber: "N-1", IssuedOn: end},
		{ExamID: "exam1", CandidateID: "petrov", Kind: store.ResultConclusion, IssuedOn: end, Conclusion: "не сдал"},
	} {
		_, err := s.SaveCard(ctx, r, 0, end.Add(time.Hour))
		must(t, err)
	}
	_, err := s.SubmitCards(ctx, "exam1", 0, end.Add(time.Hour))
	must(t, err)
	check(end.Add(2*time.Hour), false, store.DeadlineSubmission)
	approved := end.Add(48 * time.Hour) // 5 March, 17:00 MSK
	must(t, s.RecordDecision(ctx, &store.Decision{ExamID: "exam1", Decision: store.DecisionApproved, Protocol: councilProtocol, DecidedAt: approved}))
	nark := time.Date(2025, 3, 12, 21, 0, 0, 0, time.UTC) // the start of 13 March MSK
	check(approved, false, store.DeadlineVerification)
	check(nark.Add(-time.Second), true)
	check(nark, true, store.DeadlineVerification)
	must(t, s.RecordVerification(ctx, store.Verification{ExamID: "exam1", Verified: true, VerifiedAt: nark.Add(-time.Second)}))
	check(nark.Add(30*24*time.Hour), false)
	// Scoped: another council sees none of it.
	if ds, err := s.Deadlines(ctx, store.Scope{Council: "council9"}, end.Add(20*24*time.Hour), false); err != nil || len(ds) != 0 {
		t.Errorf("deadlines of another council: %v %v", ds, err)
	}
}
