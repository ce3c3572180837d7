package retention_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/evidence/retention"
)

// TestOverdueEvidence: evidence of a candidate-exam without a result is
// never deletable; once the provisional period ends it is held as overdue
// evidence until a result, an appeal's end or the council's disposal.
func TestOverdueEvidence(t *testing.T) {
	s := retention.DefaultSettings()
	obj := retention.Object{Key: "raw/site1/ws1-cam/1.m4s", End: t0.Add(time.Hour)}
	provEnd := t0.Add(4*time.Hour + days(90))
	after := provEnd.Add(days(400))
	cases := []struct {
		name      string
		ce        retention.CandidateExam
		held      bool
		deletable bool
		explains  string
	}{
		{name: "no result", ce: exam("e1", "c1"), held: true, explains: "OVERDUE EVIDENCE"},
		{name: "a result came", ce: exam("e1", "c1", conclusion(provEnd.Add(days(1)))), deletable: true},
		{name: "an appeal ended", ce: exam("e1", "c1", appeal("a1", t0.Add(days(5)), t0.Add(days(20)))), deletable: true},
		{name: "an appeal is open", ce: exam("e1", "c1", appeal("a1", t0.Add(days(5)), time.Time{})), held: true},
		{name: "disposed of by the council", ce: exam("e1", "c1", func(ce *retention.CandidateExam) { ce.DisposedAt = provEnd.Add(days(3)) }),
			deletable: true, explains: "disposed of the evidence"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plain := s.Decide(obj, []retention.CandidateExam{c.ce}, retention.Applied{})
			d := plain.At(after)
			if d.LegalHold != c.held || d.Deletable(after) != c.deletable || plain.Deletable(after) != c.deletable {
				t.Errorf("at %v: hold %v deletable %v (before At: %v), want hold %v deletable %v", after, d.LegalHold,
					d.Deletable(after), plain.Deletable(after), c.held, c.deletable)
			}
			if text := retention.Explain(after, obj.Key, d); !strings.Contains(text, c.explains) {
				t.Errorf("explain does not say %q:\n%s", c.explains, text)
			}
		})
	}
	// Before the provisional period ends, a missing result is not yet
	// overdue: no hold, and not deletable either.
	d := s.Decide(obj, []retention.CandidateExam{exam("e1", "c1")}, retention.Applied{})
	if at := d.At(provEnd.Add(-time.Second)); at.LegalHold || at.Deletable(provEnd.Add(-time.Second)) || len(at.Overdue()) != 0 {
		t.Errorf("before the provisional period ends: %+v", at)
	}
	if at := d.At(provEnd); !at.LegalHold || len(at.Overdue()) != 1 || at.Overdue()[0].CandidateID != "c1" {
		t.Errorf("when the provisional period ends: %+v, want held as overdue evidence of c1", at)
	}
	// Footage of no exam keeps its short period.
	u := s.Decide(obj, nil, retention.Applied{}).At(after)
	if u.LegalHold || !u.Deletable(obj.End.Add(s.Unlinked)) || u.Rule != retention.RuleUnlinked {
		t.Errorf("unlinked footage: %+v", u)
	}
}

// TestFloors: a period below a legal floor is refused, naming the floor, and
// one found in the facts counts as the floor.
func TestFloors(t *testing.T) {
	f := retention.DefaultFloors()
	for _, c := range []struct {
		p        retention.Policy
		unlinked time.Duration
		setting  string
		floor    time.Duration
	}{
		{p: retention.Policy{AppealWindow: days(29)}, setting: "appeal_window", floor: days(30)},
		{p: retention.Policy{AppealMargin: days(1)}, setting: "appeal_margin", floor: days(30)},
		{p: retention.Policy{Provisional: days(89)}, setting: "provisional", floor: days(90)},
		{unlinked: days(6), setting: "unlinked", floor: days(7)},
	} {
		err := f.Check(c.p, c.unlinked)
		var bf *retention.BelowFloorError
		if !errors.As(err, &bf) || bf.Setting != c.setting || bf.Floor != c.floor || !strings.Contains(err.Error(), "legal floor") {
			t.Errorf("%+v %v: %v, want below the %s floor of %v", c.p, c.unlinked, err, c.setting, c.floor)
		}
	}
	if err := f.Check(retention.Policy{AppealWindow: days(30), AppealMargin: days(30), Provisional: days(90)}, days(7)); err != nil {
		t.Errorf("at the floors: %v", err)
	}
	s := retention.DefaultSettings()
	s.Default.Provisional = days(60)
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "provisional of 60 days is below the legal floor of 90 days") {
		t.Errorf("archiver defaults below the floor: %v", err)
	}
	// A council's period stored below the floor counts as the floor.
	s = retention.DefaultSettings()
	ce := exam("e1", "c1", conclusion(t0.Add(days(1))), func(ce *retention.CandidateExam) {
		ce.Policy = retention.Policy{AppealWindow: days(5)}
	})
	d := s.Decide(retention.Object{Key: "k", End: t0}, []retention.CandidateExam{ce}, retention.Applied{})
	if want := t0.Add(days(1 + 30 + 30)); !d.RetainUntil.Equal(want) {
		t.Errorf("a 5-day window below the floor: until %v, want %v", d.RetainUntil, want)
	}
}
