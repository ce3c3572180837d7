package retention_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/evidence/retention"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func days(n int) time.Duration { return time.Duration(n) * retention.Day }

// exam returns a candidate-exam of a 4-hour exam starting at t0.
func exam(id, cand string, opts ...func(*retention.CandidateExam)) retention.CandidateExam {
	ce := retention.CandidateExam{ExamID: id, CandidateID: cand, Council: "spk1", Start: t0, End: t0.Add(4 * time.Hour)}
	for _, o := range opts {
		o(&ce)
	}
	return ce
}

func conclusion(at time.Time) func(*retention.CandidateExam) {
	return func(ce *retention.CandidateExam) { ce.Result, ce.ResultAt = retention.ResultConclusion, at }
}

func certificate(at, validUntil, revoked time.Time) func(*retention.CandidateExam) {
	return func(ce *retention.CandidateExam) {
		ce.Result, ce.ResultAt = retention.ResultCertificate, at
		ce.Certificate = &retention.Certificate{Number: "C-1", ValidUntil: validUntil, RevokedAt: revoked}
	}
}

func appeal(id string, opened, closed time.Time) func(*retention.CandidateExam) {
	return func(ce *retention.CandidateExam) {
		ce.Appeals = append(ce.Appeals, retention.Appeal{ID: id, OpenedAt: opened, ClosedAt: closed})
	}
}

func policy(p retention.Policy) func(*retention.CandidateExam) {
	return func(ce *retention.CandidateExam) { ce.Policy = p }
}

func TestDecide(t *testing.T) {
	s := retention.DefaultSettings()
	end := t0.Add(4 * time.Hour)
	obj := retention.Object{Key: "raw/site1/cam1/2026-03-02/0000000001-x.m4s", End: t0.Add(time.Hour)}
	tests := []struct {
		name     string
		exams    []retention.CandidateExam
		prev     retention.Applied
		until    time.Time
		hold     bool
		rule     retention.Rule
		explains []string // substrings of Explain
	}{
		{
			name:     "unlinked footage is kept 30 days after it ends",
			until:    obj.End.Add(days(30)),
			rule:     retention.RuleUnlinked,
			explains: []string{"no exam", "30 days"},
		},
		{
			name:  "before any result, 90 days after the exam",
			exams: []retention.CandidateExam{exam("e1", "c1")},
			until: end.Add(days(90)),
			rule:  retention.RuleProvisional,
		},
		{
			name:     "a conclusion: appeal window plus margin",
			exams:    []retention.CandidateExam{exam("e1", "c1", conclusion(t0.Add(days(10))))},
			until:    t0.Add(days(10 + 30 + 30)),
			rule:     retention.RuleAppealWindow,
			explains: []string{"conclusion of 2026-03-12", "appeal window of 30 days plus a margin of 30 days"},
		},
		{
			name: "the council's own appeal window",
			exams: []retention.CandidateExam{exam("e1", "c1", conclusion(t0.Add(days(10))),
				policy(retention.Policy{AppealWindow: days(45), AppealMargin: days(40)}))},
			until: t0.Add(days(10 + 45 + 40)),
			rule:  retention.RuleAppealWindow,
		},
		{
			name:     "a certificate: until it expires",
			exams:    []retention.CandidateExam{exam("e1", "c1", certificate(t0.Add(days(7)), t0.AddDate(3, 0, 0), time.Time{}))},
			until:    t0.AddDate(3, 0, 0),
			rule:     retention.RuleCertificate,
			explains: []string{"certificate C-1 valid until 2029-03-02T09:00:00Z"},
		},
		{
			name:     "a revoked certificate keeps its date",
			exams:    []retention.CandidateExam{exam("e1", "c1", certificate(t0.Add(days(7)), t0.AddDate(3, 0, 0), t0.AddDate(1, 0, 0)))},
			until:    t0.AddDate(3, 0, 0),
			rule:     retention.RuleCertificate,
			explains: []string{"revoked on 2027-03-02 (evidence stays until its date)"},
		},
		{
			name: "room footage: the longest of every candidate",
			exams: []retention.CandidateExam{
				exam("e1", "c1", conclusion(t0.Add(days(10)))),
				exam("e1", "c2", certificate(t0.Add(days(10)), t0.AddDate(5, 0, 0), time.Time{})),
				exam("e2", "c3"),
			},
			until:    t0.AddDate(5, 0, 0),
			rule:     retention.RuleCertificate,
			explains: []string{"exam e1, candidate c2", "exam e1, candidate c1", "exam e2, candidate c3"},
		},
		{
			name:     "an open appeal holds",
			exams:    []retention.CandidateExam{exam("e1", "c1", conclusion(t0.Add(days(10))), appeal("a1", t0.Add(days(20)), time.Time{}))},
			until:    t0.Add(days(70)),
			hold:     true,
			rule:     retention.RuleAppealWindow,
			explains: []string{"under legal hold", "appeal a1 open since 2026-03-22"},
		},
		{
			name: "a closed appeal: margin after closing",
			exams: []retention.CandidateExam{exam("e1", "c1", conclusion(t0.Add(days(10))),
				appeal("a1", t0.Add(days(20)), t0.Add(days(200))))},
			until: t0.Add(days(230)),
			rule:  retention.RuleAppealClosed,
		},
		{
			name:     "never shortened",
			exams:    []retention.CandidateExam{exam("e1", "c1", conclusion(t0.Add(days(1))))},
			prev:     retention.Applied{RetainUntil: end.Add(days(90)), Rule: retention.RuleProvisional},
			until:    end.Add(days(90)),
			rule:     retention.RuleKept,
			explains: []string{"an earlier decision (provisional)"},
		},
		{
			name:  "an earlier, shorter decision is extended",
			exams: []retention.CandidateExam{exam("e1", "c1")},
			prev:  retention.Applied{RetainUntil: obj.End.Add(days(30)), Rule: retention.RuleUnlinked},
			until: end.Add(days(90)),
			rule:  retention.RuleProvisional,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := s.Decide(obj, tt.exams, tt.prev)
			if !d.RetainUntil.Equal(tt.until) || d.LegalHold != tt.hold || d.Rule != tt.rule {
				t.Fatalf("got until %v hold %v rule %s, want %v %v %s", d.RetainUntil, d.LegalHold, d.Rule, tt.until, tt.hold, tt.rule)
			}
			text := retention.Explain(t0, obj.Key, d)
			for _, want := range tt.explains {
				if !strings.Contains(text, want) {
					t.Errorf("explanation lacks %q:\n%s", want, text)
				}
			}
			// The same facts twice give the same answer (idempotent), and
			// applying the answer and deciding again changes nothing.
			again := s.Decide(obj, tt.exams, d.Applied())
			if !again.RetainUntil.Equal(d.RetainUntil) || again.LegalHold != d.LegalHold {
				t.Fatalf("deciding again: %v %v, first %v %v", again.RetainUntil, again.LegalHold, d.RetainUntil, d.LegalHold)
			}
		})
	}
}

func TestSweep(t *testing.T) {
	due := t0.Add(days(30))
	expired := retention.Decision{RetainUntil: due}
	held := retention.Decision{RetainUntil: due, LegalHold: true}
	delay := 24 * time.Hour
	tests := []struct {
		name   string
		now    time.Time
		d      retention.Decision
		marked time.Time
		want   retention.SweepAction
	}{
		{"not yet due", due.Add(-time.Second), expired, time.Time{}, retention.SweepKeep},
		{"due: mark", due, expired, time.Time{}, retention.SweepMark},
		{"marked, delay not over", due.Add(delay - time.Second), expired, due, retention.SweepKeep},
		{"marked, delay over: delete", due.Add(delay), expired, due, retention.SweepDelete},
		{"held: never marked", due.Add(days(900)), held, time.Time{}, retention.SweepKeep},
		{"held after the mark: unmark", due.Add(delay), held, due, retention.SweepUnmark},
		{"extended after the mark: unmark", due.Add(delay), retention.Decision{RetainUntil: due.Add(days(1000))}, due, retention.SweepUnmark},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retention.Sweep(tt.now, tt.d, tt.marked, delay); got != tt.want {
				t.Fatalf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSettingsValidate(t *testing.T) {
	if err := retention.DefaultSettings().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	bad := retention.DefaultSettings()
	bad.Unlinked = 0
	bad.Default.AppealWindow = -time.Hour
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "unlinked is zero") || !strings.Contains(err.Error(), "appeal_window") {
		t.Fatalf("got %v, want both problems named", err)
	}
}
