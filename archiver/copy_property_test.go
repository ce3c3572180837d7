package archiver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/archiver"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/facts"
	"github.com/nokstream/nokstream/internal/evidence/retention"
	"github.com/nokstream/nokstream/registry/store"
	"github.com/nokstream/nokstream/registry/store/storetest"
)

// registryFacts answers the archiver's questions from the registry's own
// tables, as the archiver did before it kept a copy: the reference the copy
// is checked against.
type registryFacts struct{ st *store.Store }

func (r registryFacts) SiteEvidence(ctx context.Context, site string, from, to time.Time) ([]facts.EvidenceExam, time.Duration, error) {
	return r.st.SiteEvidence(ctx, site, from, to)
}

func (r registryFacts) ExamEvidence(ctx context.Context, exam, candidate string) ([]facts.EvidenceExam, error) {
	out, err := r.st.ExamEvidence(ctx, exam, candidate)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w", facts.ErrNotFound)
	}
	return out, err
}

func (r registryFacts) DocumentEvidence(ctx context.Context, key string) ([]facts.EvidenceExam, error) {
	return r.st.DocumentEvidence(ctx, key)
}

func (r registryFacts) OverdueEvidence(ctx context.Context, now time.Time, def, floor time.Duration) ([]facts.OverdueEvidence, error) {
	return r.st.OverdueEvidence(ctx, store.Scope{}, now, def, floor)
}

// TestFactsCopyDecidesAsTheRegistry generates random histories of a
// registry — exams of two councils' qualifications at one center (a
// multi-industry one), with candidates at workstations, admissions, results
// (certificates and conclusions), certificates extended and revoked,
// appeals opened, decided and closed, documents of candidates, of exams and
// of candidate-exams, retention settings of each council and of its
// qualification, disposals of overdue evidence, and footage — and checks,
// after every few changes, that the archiver's copy of the facts, fed the
// registry's RetentionChanged v2 messages shuffled and with old ones
// delivered again, answers every question of the archiver exactly as the
// registry's tables do, and that the archiver's decisions for every
// archived object and every candidate-exam (Explain: the rules applied to
// those answers) are the same on both.
func TestFactsCopyDecidesAsTheRegistry(t *testing.T) {
	t.Parallel()
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, seed)
			for step := range 60 {
				w.change()
				if step%12 == 11 {
					w.check()
				}
			}
		})
	}
}

type world struct {
	t      *testing.T
	e      *env
	c      *clock
	rng    *rand.Rand
	exams  []string
	ces    [][2]string
	certs  []string
	opened []string // appeals not closed
	docs   []string
	objs   []string
	n      int
}

func newWorld(t *testing.T, seed uint64) *world {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	e := newEnv(t, dirStore(t, c), archiver.DefaultConfig(), c)
	e.facts.frozen.Store(true) // the copy gets only what check feeds it
	ctx := t.Context()
	if _, err := e.st.AddDevice(ctx, "site1", "ws3-cam", store.KindWebcam); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.AddDevice(ctx, "site1", "ws3-scr", store.KindScreen); err != nil {
		t.Fatal(err)
	}
	// A second council authorises the center for its qualification q2
	// (a multi-industry center): exams of q2 are spk2's, with its settings.
	storetest.Org(t, e.st, "spk2", "", "")
	if _, err := e.st.SaveQualification(ctx, store.Qualification{Code: "q2", CouncilID: "spk2", Name: "Монтажник", ValidityYears: 5,
		Tools: []store.AssessmentTool{{Reference: "ОС-2", Link: "https://example.org/os2"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.AuthoriseCenter(ctx, "cok1", "spk2", []string{"q2"}, 0); err != nil {
		t.Fatal(err)
	}
	for i, k := range []string{"c3", "c4"} {
		if _, err := e.st.SaveCandidate(ctx, store.Candidate{ID: k, CenterID: "cok1", LastName: "Петров", FirstName: "Пётр",
			Document: fmt.Sprintf("паспорт 4600 00000%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	return &world{t: t, e: e, c: c, rng: rand.New(rand.NewPCG(seed, 12))}
}

func (w *world) pick(n int) int { return w.rng.IntN(n) }

// change makes one random change to the registry, or stores footage. A
// change the registry refuses (a workstation taken, an appeal on an
// appeal, disposal of evidence that is not overdue) changes nothing, as
// for a user.
func (w *world) change() {
	t, e, ctx := w.t, w.e, w.t.Context()
	w.c.Set(w.c.Now().Add(time.Duration(w.pick(10*24)) * time.Hour))
	now := w.c.Now()
	w.n++
	switch op := w.pick(12); {
	case op < 3 || len(w.ces) == 0:
		id := fmt.Sprintf("e%d", w.n)
		start := now.Add(time.Duration(w.pick(72)-36) * time.Hour).Truncate(time.Hour)
		if err := e.st.CreateExam(ctx, &store.Exam{ID: id, CenterID: "cok1", SiteID: "site1", Qualification: []string{"q1", "q2"}[w.pick(2)],
			Start: start, End: start.Add(time.Duration(1+w.pick(4)) * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		w.exams = append(w.exams, id)
		for _, k := range []string{"c1", "c2", "c3", "c4"} {
			if w.pick(2) == 0 {
				continue
			}
			ws := fmt.Sprintf("ws%d", 1+w.pick(3))
			if e.st.AddExamCandidate(ctx, id, k, ws+"-cam", ws+"-scr", start.Add(-time.Hour)) != nil {
				continue
			}
			w.ces = append(w.ces, [2]string{id, k})
			if w.pick(4) > 0 {
				_ = e.st.SetAdmission(ctx, id, k, w.pick(5) > 0, "не явился", 0, start)
			}
		}
	case op == 3:
		ce := w.ces[w.pick(len(w.ces))]
		r := &store.Result{ExamID: ce[0], CandidateID: ce[1], Kind: store.ResultConclusion, Conclusion: "не сдал", IssuedOn: now}
		if w.pick(2) == 0 {
			r.Kind, r.Conclusion, r.CertificateNumber = store.ResultCertificate, "", fmt.Sprintf("01.00000.%02d", w.n)
		}
		if e.st.RecordResult(ctx, r, 0, now) == nil && r.Kind == store.ResultCertificate {
			w.certs = append(w.certs, r.CertificateNumber)
		}
	case op == 4:
		ce := w.ces[w.pick(len(w.ces))]
		a := &store.Appeal{ExamID: ce[0], CandidateID: ce[1], Reason: "нарушена процедура"}
		if e.st.OpenAppeal(ctx, a, 0, now) == nil {
			w.opened = append(w.opened, a.ID)
		}
	case op == 5 && len(w.opened) > 0:
		i := w.pick(len(w.opened))
		id := w.opened[i]
		_ = e.st.DecideAppeal(ctx, id, []string{store.AppealRejected, store.AppealUpheld}[w.pick(2)], "решение", 0, now)
		if w.pick(3) > 0 && e.st.CloseAppeal(ctx, id, 0, now) == nil {
			w.opened = slices.Delete(w.opened, i, i+1)
		}
	case op == 6 && len(w.certs) > 0:
		n := w.certs[w.pick(len(w.certs))]
		if w.pick(2) == 0 {
			_ = e.st.ExtendCertificate(ctx, n, now.AddDate(4, 0, 0), "продление", 0, now)
		} else {
			_ = e.st.RevokeCertificate(ctx, n, "подлог", 0, now)
		}
	case op == 7:
		council := []string{"spk1", "spk2"}[w.pick(2)]
		q := []string{"", map[string]string{"spk1": "q1", "spk2": "q2"}[council]}[w.pick(2)]
		rs := store.RetentionSettings{AppealWindowDays: w.pick(60), ProvisionalDays: 1 + w.pick(120), UnlinkedDays: 1 + w.pick(60)}
		if err := e.st.SetRetentionSettings(ctx, council, q, rs, 0); err != nil {
			t.Fatal(err)
		}
	case op == 8:
		ce := w.ces[w.pick(len(w.ces))]
		cand, exam := ce[1], ce[0]
		switch w.pick(3) {
		case 0:
			exam = ""
		case 1:
			cand = ""
		}
		w.docs = append(w.docs, e.document(cand, exam, "scan", []byte(fmt.Sprintf("скан %d", w.n)), nil))
	case op == 9:
		ce := w.ces[w.pick(len(w.ces))]
		_ = e.st.DisposeEvidence(ctx, store.Disposal{ExamID: ce[0], CandidateID: ce[1], Reason: "результата не будет",
			DisposedAt: now}, 90*day, 0)
	default:
		dev := []string{"cam1", "ws1-cam", "ws2-scr", "ws3-cam"}[w.pick(4)]
		src := map[string]string{"cam1": events.SourceRoom, "ws1-cam": events.SourceWebcam, "ws2-scr": events.SourceScreen,
			"ws3-cam": events.SourceWebcam}[dev]
		var at time.Time
		if len(w.exams) > 0 && w.pick(3) > 0 {
			exam, err := e.st.Exam(ctx, w.exams[w.pick(len(w.exams))])
			if err != nil {
				t.Fatal(err)
			}
			at = exam.Start.Add(time.Duration(w.pick(int(exam.End.Sub(exam.Start)/time.Minute))) * time.Minute)
		} else {
			at = now.Add(-time.Duration(w.pick(48)) * time.Hour)
		}
		ev := e.segment(dev, src, at, 6*time.Second)
		e.deliver(ev)
		w.objs = append(w.objs, ev.ObjectKey, ev.InitKey)
	}
}

// feed hands the copy every v2 message of the outbox in a random order,
// a third of them twice.
func (w *world) feed() int {
	t, ctx := w.t, w.t.Context()
	rows, err := w.e.facts.pool.Query(ctx, `SELECT value FROM outbox WHERE topic = $1`, events.TopicRetentionV2)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		t.Fatal(err)
	}
	all := slices.Clone(msgs)
	for _, m := range msgs {
		if w.pick(3) == 0 {
			all = append(all, m)
		}
	}
	w.rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for _, m := range all {
		if err := feedCopy(ctx, w.e.ast, m); err != nil {
			t.Fatal(err)
		}
	}
	return len(all)
}

// same fails the test if the registry's answer and the copy's differ.
func (w *world) same(what string, reg, cp any, regErr, cpErr error) {
	w.t.Helper()
	if (regErr == nil) != (cpErr == nil) || (regErr != nil && errors.Is(regErr, facts.ErrNotFound) != errors.Is(cpErr, facts.ErrNotFound)) {
		w.t.Fatalf("%s: the registry says %v, the copy %v", what, regErr, cpErr)
	}
	a, err := json.Marshal(reg)
	if err != nil {
		w.t.Fatal(err)
	}
	b, err := json.Marshal(cp)
	if err != nil {
		w.t.Fatal(err)
	}
	// No answer is no answer, whether nil or empty.
	if string(a) == "[]" {
		a = []byte("null")
	}
	if string(b) == "[]" {
		b = []byte("null")
	}
	if !bytes.Equal(a, b) {
		w.t.Fatalf("%s differs:\nthe registry: %s\nthe copy:     %s", what, a, b)
	}
}

func (w *world) check() {
	t, e, ctx := w.t, w.e, w.t.Context()
	n := w.feed()
	reg, cp := registryFacts{e.st}, e.ast
	now := w.c.Now()
	questions := 0
	for _, x := range w.exams {
		for _, k := range []string{"", "c1", "c2", "c3", "c4"} {
			a, aerr := reg.ExamEvidence(ctx, x, k)
			b, berr := cp.ExamEvidence(ctx, x, k)
			w.same("ExamEvidence "+x+"/"+k, a, b, aerr, berr)
			questions++
		}
		exam, err := e.st.Exam(ctx, x)
		if err != nil {
			t.Fatal(err)
		}
		for _, win := range [][2]time.Time{{exam.Start, exam.End}, {exam.Start.Add(-day), exam.Start.Add(time.Minute)},
			{exam.End.Add(-time.Minute), exam.End.Add(2 * day)}} {
			a, au, aerr := reg.SiteEvidence(ctx, "site1", win[0], win[1])
			b, bu, berr := cp.SiteEvidence(ctx, "site1", win[0], win[1])
			w.same(fmt.Sprintf("SiteEvidence %v", win), []any{a, au}, []any{b, bu}, aerr, berr)
			questions++
		}
	}
	for _, ce := range w.ces {
		a, aerr := e.st.EvidenceDocuments(ctx, ce[0], ce[1])
		var conv []facts.EvidenceDocument
		for _, d := range a {
			conv = append(conv, facts.EvidenceDocument{ID: d.ID, CandidateID: d.CandidateID, ExamID: d.ExamID, Kind: d.Kind,
				ObjectKey: d.ObjectKey, Bytes: d.Bytes, SHA256: d.SHA256, UploadedAt: d.UploadedAt, Archived: d.Archived,
				Verified: d.Verified, DeletedAt: d.DeletedAt})
		}
		b, berr := cp.EvidenceDocuments(ctx, ce[0], ce[1])
		if len(b) == 0 {
			b = nil
		}
		w.same("EvidenceDocuments "+ce[0]+"/"+ce[1], conv, b, aerr, berr)
		text := func(f archiver.ExplainFacts) (string, error) {
			return archiver.Explain(ctx, f, e.ast, retention.DefaultSettings(), now, ce[0]+"/"+ce[1])
		}
		at, aerr := text(reg)
		bt, berr := text(cp)
		w.same("the decision for candidate-exam "+ce[0]+"/"+ce[1], at, bt, aerr, berr)
		questions += 2
	}
	for _, k := range w.docs {
		a, aerr := reg.DocumentEvidence(ctx, k)
		b, berr := cp.DocumentEvidence(ctx, k)
		if len(b) == 0 {
			b = nil
		}
		w.same("DocumentEvidence "+k, a, b, aerr, berr)
		questions++
	}
	for _, k := range w.objs {
		at, aerr := archiver.Explain(ctx, reg, e.ast, retention.DefaultSettings(), now, k)
		bt, berr := archiver.Explain(ctx, cp, e.ast, retention.DefaultSettings(), now, k)
		w.same("the decision for "+k, at, bt, aerr, berr)
		questions++
	}
	for _, at := range []time.Time{now, now.Add(100 * day)} {
		for _, floor := range []time.Duration{0, 60 * day} {
			a, aerr := reg.OverdueEvidence(ctx, at, 90*day, floor)
			b, berr := cp.OverdueEvidence(ctx, at, 90*day, floor)
			w.same(fmt.Sprintf("OverdueEvidence at %v, floor %v", at, floor), a, b, aerr, berr)
			questions++
		}
	}
	t.Logf("%d messages fed, %d questions answered alike (%d exams, %d candidate-exams, %d documents, %d objects)",
		n, questions, len(w.exams), len(w.ces), len(w.docs), len(w.objs))
}
