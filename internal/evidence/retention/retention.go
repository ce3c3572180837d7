// Package retention decides how long an archived object must be kept and
// whether it is under legal hold. It is a pure rule engine: it reads facts
// about the candidate-exams an object is evidence for, and the clock it is
// given, and does no I/O.
//
// The rules (issue 5, shared/design.md):
//
//   - An object is kept until the latest date any candidate-exam it is
//     evidence for requires. Room footage is evidence for every candidate of
//     every exam at that site and time; a webcam or screen only for the
//     candidate bound to it.
//   - A certificate keeps its evidence until it is valid no more
//     (certificate_valid_until), even once revoked: a revocation is recorded,
//     the evidence stays until the certificate's date.
//   - A result (a conclusion, or a certificate) opens the council's appeal
//     window: the evidence is kept until the window ends plus a margin
//     (appeal_window).
//   - Before any result exists, the evidence is kept for a provisional
//     period after the exam (provisional). Evidence whose result is still
//     missing when that period ends is never deleted automatically: the
//     candidate-exam is overdue evidence (overdue_evidence), and it holds
//     the object until a result is recorded, an appeal ends (appeal_closed)
//     or the council disposes of it explicitly, with a reason
//     (disposed): then it may go from the disposal on.
//   - A closed appeal keeps the evidence for the margin after it closed
//     (appeal_closed); an open appeal puts the object under legal hold
//     (appeal_open), whatever its date.
//   - Footage that is evidence for no exam is kept only for a short period
//     after it was recorded (unlinked, 152-FZ minimisation).
//   - No period is shorter than the legal floors (Floors): a shorter
//     setting is refused where it is made, and a shorter one found in
//     the facts counts as the floor.
//   - An init segment is kept as long as the longest-kept media segment that
//     uses it, and held while any of them is (serves): it is evidence only
//     with them, and they cannot be played without it.
//   - Retention is only ever extended: a decision never gives an earlier
//     date than the one already applied (never_shortened).
//
// All periods are settings per council and qualification (Policy), with
// defaults in Settings.
package retention

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Day is 24 hours: retention periods are counted in days.
const Day = 24 * time.Hour

// Rule names why an object is kept until its date. They appear in the
// archiver's database, its audit entries and `nokstream retention explain`.
type Rule string

// The rules, in the order they are explained.
const (
	RuleCertificate  Rule = "certificate_valid_until"
	RuleAppealWindow Rule = "appeal_window"
	RuleAppealClosed Rule = "appeal_closed"
	RuleAppealOpen   Rule = "appeal_open"
	RuleProvisional  Rule = "provisional"
	RuleUnlinked     Rule = "unlinked"
	RuleOverdue      Rule = "overdue_evidence"
	RuleDisposed     Rule = "disposed"
	RuleServes       Rule = "serves"
	RuleKept         Rule = "never_shortened"
)

// Policy is the set of retention periods of one council and qualification.
// A zero field takes the value of Settings.Default.
type Policy struct {
	// AppealWindow is how long after a result a candidate may appeal
	// (default 30 days).
	AppealWindow time.Duration `yaml:"appeal_window" json:"appeal_window"`
	// AppealMargin is kept beyond the end of the appeal window, and beyond
	// the closing of an appeal, so that an appeal filed on the last day
	// and a decision that is contested still find their evidence (default
	// 30 days).
	AppealMargin time.Duration `yaml:"appeal_margin" json:"appeal_margin"`
	// Provisional is how long after the exam its evidence is kept while no
	// result is recorded (default 90 days).
	Provisional time.Duration `yaml:"provisional" json:"provisional"`
}

// Floors are the legal minimum periods: no council or qualification may
// set a shorter one, and the archiver never applies a shorter one. A zero
// field sets no floor.
type Floors struct {
	AppealWindow time.Duration `yaml:"appeal_window" json:"appeal_window"`
	AppealMargin time.Duration `yaml:"appeal_margin" json:"appeal_margin"`
	Provisional  time.Duration `yaml:"provisional" json:"provisional"`
	Unlinked     time.Duration `yaml:"unlinked" json:"unlinked"`
}

// DefaultFloors returns the legal floors: an appeal window of 30 days, a
// margin of 30 days, 90 days provisional, 7 days for unlinked footage.
func DefaultFloors() Floors {
	return Floors{AppealWindow: 30 * Day, AppealMargin: 30 * Day, Provisional: 90 * Day, Unlinked: 7 * Day}
}

// BelowFloorError says which period is below which floor.
type BelowFloorError struct {
	Setting string        // e.g. "provisional"
	Value   time.Duration // what was asked
	Floor   time.Duration
}

func (e *BelowFloorError) Error() string {
	return fmt.Sprintf("%s of %s is below the legal floor of %s", e.Setting, days(e.Value), days(e.Floor))
}

// Check returns a *BelowFloorError for the first period of p (and unlinked)
// below its floor. A zero period is not checked: it takes the default,
// which is checked where it is configured.
func (f Floors) Check(p Policy, unlinked time.Duration) error {
	for _, c := range []struct {
		name     string
		v, floor time.Duration
	}{
		{"appeal_window", p.AppealWindow, f.AppealWindow},
		{"appeal_margin", p.AppealMargin, f.AppealMargin},
		{"provisional", p.Provisional, f.Provisional},
		{"unlinked", unlinked, f.Unlinked},
	} {
		if c.v != 0 && c.v < c.floor {
			return &BelowFloorError{Setting: c.name, Value: c.v, Floor: c.floor}
		}
	}
	return nil
}

// Settings are the archiver's retention settings.
type Settings struct {
	// Default is the policy of every council and qualification that sets
	// no period of its own.
	Default Policy `yaml:"default" json:"default"`
	// Unlinked is how long footage that is evidence for no exam is kept
	// after it was recorded (default 30 days).
	Unlinked time.Duration `yaml:"unlinked" json:"unlinked"`
	// Floors are the legal minimum periods (DefaultFloors).
	Floors Floors `yaml:"floors" json:"floors"`
}

// DefaultSettings returns the defaults of issue 5: a 30-day appeal window
// plus a 30-day margin, 90 days provisional, 30 days for unlinked footage.
func DefaultSettings() Settings {
	return Settings{
		Default: Policy{
			AppealWindow: 30 * Day,
			AppealMargin: 30 * Day,
			Provisional:  90 * Day,
		},
		Unlinked: 30 * Day,
		Floors:   DefaultFloors(),
	}
}

// Validate reports what is wrong with s.
func (s Settings) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"default.appeal_window", s.Default.AppealWindow},
		{"default.appeal_margin", s.Default.AppealMargin},
		{"default.provisional", s.Default.Provisional},
		{"unlinked", s.Unlinked},
		{"floors.appeal_window", s.Floors.AppealWindow},
		{"floors.appeal_margin", s.Floors.AppealMargin},
		{"floors.provisional", s.Floors.Provisional},
		{"floors.unlinked", s.Floors.Unlinked},
	} {
		if f.d < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", f.name, f.d))
		}
	}
	if s.Default.Provisional == 0 {
		errs = append(errs, errors.New("default.provisional is zero: evidence of an exam without a result would be deletable at once"))
	}
	if s.Unlinked == 0 {
		errs = append(errs, errors.New("unlinked is zero: footage would be deletable as soon as it is recorded"))
	}
	if err := s.Floors.Check(s.Default, s.Unlinked); err != nil {
		errs = append(errs, fmt.Errorf("default: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("retention settings: %w", err)
	}
	return nil
}

// resolve fills the zero fields of p from the defaults, and raises a
// period below its floor to the floor (a setting made before the floor).
func (s Settings) resolve(p Policy) Policy {
	if p.AppealWindow <= 0 {
		p.AppealWindow = s.Default.AppealWindow
	}
	if p.AppealMargin <= 0 {
		p.AppealMargin = s.Default.AppealMargin
	}
	if p.Provisional <= 0 {
		p.Provisional = s.Default.Provisional
	}
	p.AppealWindow = max(p.AppealWindow, s.Floors.AppealWindow)
	p.AppealMargin = max(p.AppealMargin, s.Floors.AppealMargin)
	p.Provisional = max(p.Provisional, s.Floors.Provisional)
	return p
}

// ResultKind is what an exam ended in for a candidate.
type ResultKind string

// Result kinds. ResultNone is "no result recorded yet".
const (
	ResultNone        ResultKind = ""
	ResultCertificate ResultKind = "certificate" // свидетельство
	ResultConclusion  ResultKind = "conclusion"  // заключение: the exam was failed
)

// Certificate is the certificate issued on a candidate-exam.
type Certificate struct {
	Number string `json:"number"`
	// ValidUntil is the end of validity after every extension. A revoked
	// certificate keeps the date it had: evidence stays until then.
	ValidUntil time.Time `json:"valid_until"`
	// RevokedAt is when it was revoked, zero if it was not.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Appeal is an appeal filed against a candidate's exam.
type Appeal struct {
	ID       string    `json:"id"`
	OpenedAt time.Time `json:"opened_at"`
	// ClosedAt is when the appeal was closed (decided and closed), zero
	// while it is open.
	ClosedAt time.Time `json:"closed_at,omitzero"`
}

// Open reports whether the appeal is still open.
func (a Appeal) Open() bool { return a.ClosedAt.IsZero() }

// CandidateExam is what the registry knows of one candidate's exam that
// bears on retention.
type CandidateExam struct {
	ExamID        string `json:"exam_id"`
	CandidateID   string `json:"candidate_id"`
	Council       string `json:"council,omitempty"`
	Qualification string `json:"qualification,omitempty"`
	// Start and End are the exam window.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Result is what the exam ended in, ResultNone while nothing is recorded.
	Result ResultKind `json:"result,omitempty"`
	// ResultAt is when the result was issued: the date of the conclusion
	// or of the certificate. The appeal window runs from it.
	ResultAt    time.Time    `json:"result_at,omitzero"`
	Certificate *Certificate `json:"certificate,omitempty"`
	Appeals     []Appeal     `json:"appeals,omitempty"`
	// Policy holds the periods of the exam's council and qualification;
	// zero fields take the defaults.
	Policy Policy `json:"policy,omitzero"`
	// DisposedAt is when the council disposed of the evidence of a
	// candidate-exam whose result is missing (zero if it did not): from
	// then on the missing result no longer holds it.
	DisposedAt time.Time `json:"disposed_at,omitzero"`
}

// Applied is the retention already applied to an object: the date and the
// rule that gave it. Zero for a new object.
type Applied struct {
	RetainUntil time.Time `json:"retain_until,omitzero"`
	Rule        Rule      `json:"rule,omitempty"`
}

// Object is what the engine needs to know of the object itself.
type Object struct {
	Key string `json:"key"`
	// End is when the footage in it ends. The unlinked period runs from it.
	End time.Time `json:"end"`
	// Unlinked is the unlinked period of the council of the site that
	// recorded it; zero takes Settings.Unlinked.
	Unlinked time.Duration `json:"unlinked,omitempty"`
}

// Reason is what one candidate-exam (or the absence of any) asks of an
// object.
type Reason struct {
	ExamID      string    `json:"exam_id,omitempty"`
	CandidateID string    `json:"candidate_id,omitempty"`
	Rule        Rule      `json:"rule"`
	Until       time.Time `json:"until,omitzero"`
	// Hold is set when an open appeal holds the object; Until is then
	// zero: a hold lasts until the appeal is closed.
	Hold bool `json:"hold,omitempty"`
	// Ref names the certificate (its number) or the appeal (its id) of
	// the rule, if any.
	Ref string `json:"ref,omitempty"`
	// At is the date the rule counts from: the end of the exam or of the
	// footage, the result, the certificate's validity, the appeal's
	// opening or closing.
	At time.Time `json:"at,omitzero"`
	// Period is what the rule adds to At (the appeal window for
	// appeal_window; the margin for appeal_closed).
	Period time.Duration `json:"period,omitempty"`
	// Margin is the margin added after the appeal window (appeal_window).
	Margin time.Duration `json:"margin,omitempty"`
	// RevokedAt is set on certificate_valid_until when the certificate was
	// revoked.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// Result is the result kind, for appeal_window.
	Result ResultKind `json:"result,omitempty"`
	// Kept is the rule an earlier decision kept the object by
	// (never_shortened).
	Kept Rule `json:"kept,omitempty"`
	// Users is how many kept segments use an init segment (serves).
	Users int `json:"users,omitempty"`
	// Pending is set on provisional when the result is missing and nothing
	// released the evidence: from Until on, the candidate-exam is overdue
	// evidence and holds the object (Decision.At).
	Pending bool `json:"pending,omitempty"`
}

// Detail says in words what the reason is.
func (r Reason) Detail() string {
	switch r.Rule {
	case RuleCertificate:
		s := fmt.Sprintf("certificate %s valid until %s", r.Ref, stamp(r.Until))
		if !r.RevokedAt.IsZero() {
			s += fmt.Sprintf(", revoked on %s (evidence stays until its date)", date(r.RevokedAt))
		}
		return s
	case RuleAppealWindow:
		return fmt.Sprintf("%s of %s: appeal window of %s plus a margin of %s", r.Result, date(r.At), days(r.Period), days(r.Margin))
	case RuleAppealClosed:
		return fmt.Sprintf("appeal %s closed on %s, plus a margin of %s", r.Ref, date(r.At), days(r.Period))
	case RuleAppealOpen:
		return fmt.Sprintf("appeal %s open since %s: legal hold until it is closed", r.Ref, date(r.At))
	case RuleProvisional:
		s := fmt.Sprintf("no result yet: kept %s after the exam ended (%s)", days(r.Period), date(r.At))
		if r.Pending {
			s += "; if no result comes by then, it is held as overdue evidence"
		}
		return s
	case RuleOverdue:
		return fmt.Sprintf("overdue evidence: no result since the provisional period ended on %s: held until a result, "+
			"an appeal's end or the council's disposal", date(r.At))
	case RuleDisposed:
		return fmt.Sprintf("the council disposed of the evidence of a missing result on %s", date(r.At))
	case RuleUnlinked:
		return fmt.Sprintf("evidence for no exam: kept %s after the footage ends (%s)", days(r.Period), date(r.At))
	case RuleServes:
		if r.Hold {
			return fmt.Sprintf("segment %s, which uses it, is under legal hold", r.Ref)
		}
		return fmt.Sprintf("used by %d kept segment(s); the latest kept is %s", r.Users, r.Ref)
	case RuleKept:
		if r.Kept != "" && r.Kept != RuleKept {
			return fmt.Sprintf("an earlier decision (%s) kept it until then, and retention is never shortened", r.Kept)
		}
		return "an earlier decision kept it until then, and retention is never shortened"
	}
	return string(r.Rule)
}

// Decision is the retention an object is owed.
type Decision struct {
	// RetainUntil is the earliest time the object may be deleted.
	RetainUntil time.Time `json:"retain_until"`
	// LegalHold is set while an appeal against a candidate-exam the object
	// is evidence for is open.
	LegalHold bool `json:"legal_hold"`
	// Rule is the rule that set RetainUntil.
	Rule Rule `json:"rule"`
	// Pending is set while a candidate-exam it is evidence for has no
	// result and nothing released it: such evidence is never deletable.
	Pending bool `json:"pending,omitempty"`
	// Reasons lists what every candidate-exam asks, holds first and then
	// latest first, and the
	// unlinked rule when there is none. An earlier, longer decision that
	// is kept appears as a RuleKept reason.
	Reasons []Reason `json:"reasons"`
}

// Deletable reports whether the object may be deleted at now: it is past its
// retain-until date, under no hold, and evidence of no candidate-exam whose
// result is missing.
func (d Decision) Deletable(now time.Time) bool {
	return !d.LegalHold && !d.Pending && !now.Before(d.RetainUntil)
}

// At returns the decision as it stands at now: every candidate-exam whose
// result is still missing after its provisional period is overdue
// evidence, and holds the object (a RuleOverdue reason, listed first).
func (d Decision) At(now time.Time) Decision {
	var held []Reason
	for _, r := range d.Reasons {
		if r.Pending && !now.Before(r.Until) {
			held = append(held, Reason{ExamID: r.ExamID, CandidateID: r.CandidateID, Rule: RuleOverdue, Hold: true, At: r.Until})
		}
	}
	if len(held) == 0 {
		return d
	}
	d.LegalHold = true
	d.Reasons = append(held, d.Reasons...)
	return d
}

// Overdue returns the overdue_evidence reasons of a decision made At a
// time: the candidate-exams whose missing result holds the object.
func (d Decision) Overdue() []Reason {
	var out []Reason
	for _, r := range d.Reasons {
		if r.Rule == RuleOverdue {
			out = append(out, r)
		}
	}
	return out
}

// Applied returns what to record as applied once the decision is carried
// out.
func (d Decision) Applied() Applied { return Applied{RetainUntil: d.RetainUntil, Rule: d.Rule} }

// Decide returns the retention obj is owed, given the candidate-exams it is
// evidence for (none for unlinked footage) and the retention already
// applied to it. It never returns a date earlier than prev.RetainUntil.
func (s Settings) Decide(obj Object, exams []CandidateExam, prev Applied) Decision {
	reasons := make([]Reason, 0, 3*len(exams)+2)
	for _, ce := range exams {
		reasons = s.examReasons(reasons, ce)
	}
	if len(exams) == 0 {
		period := obj.Unlinked
		if period <= 0 {
			period = s.Unlinked
		}
		reasons = append(reasons, Reason{Rule: RuleUnlinked, Until: obj.End.Add(period), At: obj.End, Period: period})
	}
	var d Decision
	for _, r := range reasons {
		if r.Hold {
			d.LegalHold = true
		}
		if r.Pending {
			d.Pending = true
		}
		if r.Until.After(d.RetainUntil) {
			d.RetainUntil, d.Rule = r.Until, r.Rule
		}
	}
	if prev.RetainUntil.After(d.RetainUntil) {
		d.RetainUntil, d.Rule = prev.RetainUntil, RuleKept
		reasons = append(reasons, Reason{Rule: RuleKept, Until: prev.RetainUntil, Kept: prev.Rule})
	}
	slices.SortStableFunc(reasons, func(a, b Reason) int {
		if a.Hold != b.Hold {
			if a.Hold {
				return -1
			}
			return 1
		}
		if c := b.Until.Compare(a.Until); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.ExamID, b.ExamID), cmp.Compare(a.CandidateID, b.CandidateID))
	})
	d.Reasons = reasons
	return d
}

// User is a media segment that needs an init segment, with the retention
// applied to it.
type User struct {
	Key         string    `json:"key"`
	RetainUntil time.Time `json:"retain_until"`
	Hold        bool      `json:"hold,omitempty"`
}

// Serves decides for an init segment: it is kept until the latest date of
// the kept segments that use it, held while any of them is held, and never
// less than prev. With no users left its date stays prev; the sweeper
// deletes it only once no kept segment uses it.
func Serves(users []User, prev Applied) Decision {
	var d Decision
	var top User
	for _, u := range users {
		if u.Hold && !d.LegalHold {
			d.LegalHold = true
			d.Reasons = append(d.Reasons, Reason{Rule: RuleServes, Hold: true, Ref: u.Key})
		}
		if u.RetainUntil.After(top.RetainUntil) {
			top = u
		}
	}
	if top.Key != "" {
		d.RetainUntil, d.Rule = top.RetainUntil, RuleServes
		d.Reasons = append(d.Reasons, Reason{Rule: RuleServes, Until: top.RetainUntil, Ref: top.Key, Users: len(users)})
	}
	if prev.RetainUntil.After(d.RetainUntil) || d.Rule == "" {
		d.RetainUntil, d.Rule = prev.RetainUntil, RuleKept
		d.Reasons = append(d.Reasons, Reason{Rule: RuleKept, Until: prev.RetainUntil, Kept: prev.Rule})
	}
	return d
}

// examReasons appends what one candidate-exam asks: the dates its result,
// certificate and appeals require, and a hold for each open appeal.
func (s Settings) examReasons(out []Reason, ce CandidateExam) []Reason {
	p := s.resolve(ce.Policy)
	base := Reason{ExamID: ce.ExamID, CandidateID: ce.CandidateID}
	switch ce.Result {
	case ResultNone:
		r := base
		r.Rule, r.Until, r.At, r.Period = RuleProvisional, ce.End.Add(p.Provisional), ce.End, p.Provisional
		// A missing result holds the evidence until a result, an
		// appeal's end or the council's disposal.
		r.Pending = ce.DisposedAt.IsZero() && !slices.ContainsFunc(ce.Appeals, func(a Appeal) bool { return !a.Open() })
		out = append(out, r)
		if !ce.DisposedAt.IsZero() {
			r := base
			r.Rule, r.Until, r.At = RuleDisposed, ce.DisposedAt, ce.DisposedAt
			out = append(out, r)
		}
	default:
		at := ce.ResultAt
		if at.IsZero() {
			// A result without a date: count from the exam, the
			// earliest it can have been issued.
			at = ce.End
		}
		r := base
		r.Rule, r.Until, r.At, r.Period, r.Margin, r.Result = RuleAppealWindow, at.Add(p.AppealWindow).Add(p.AppealMargin),
			at, p.AppealWindow, p.AppealMargin, ce.Result
		out = append(out, r)
	}
	if c := ce.Certificate; c != nil && !c.ValidUntil.IsZero() {
		r := base
		r.Rule, r.Until, r.At, r.Ref, r.RevokedAt = RuleCertificate, c.ValidUntil, c.ValidUntil, c.Number, c.RevokedAt
		out = append(out, r)
	}
	for _, a := range ce.Appeals {
		r := base
		r.Ref = a.ID
		if a.Open() {
			// A hold has no date: it lasts until the appeal is closed,
			// and then the appeal_closed margin runs.
			r.Rule, r.Hold, r.At = RuleAppealOpen, true, a.OpenedAt
		} else {
			r.Rule, r.Until, r.At, r.Period = RuleAppealClosed, a.ClosedAt.Add(p.AppealMargin), a.ClosedAt, p.AppealMargin
		}
		out = append(out, r)
	}
	return out
}

// SweepAction is what the sweeper does with an object at one pass.
type SweepAction int

// Sweep actions.
const (
	// SweepKeep: nothing to do.
	SweepKeep SweepAction = iota
	// SweepMark: the object has expired; mark it, and delete it at a pass
	// at least the delay later if it is still expired then.
	SweepMark
	// SweepUnmark: the object was marked, but its retention was extended
	// or it was put under hold since; drop the mark.
	SweepUnmark
	// SweepDelete: the object was marked at least the delay ago and is
	// still deletable; delete it.
	SweepDelete
)

func (a SweepAction) String() string {
	switch a {
	case SweepMark:
		return "mark"
	case SweepUnmark:
		return "unmark"
	case SweepDelete:
		return "delete"
	}
	return "keep"
}

// Sweep is the sweeper's two-phase rule for one object at now: d is the
// decision recomputed from the registry's facts at this pass (never the
// stored date alone), markedAt when the object was marked (zero if it is
// not), and delay how long a mark must stand before the object is deleted.
func Sweep(now time.Time, d Decision, markedAt time.Time, delay time.Duration) SweepAction {
	switch {
	case !d.Deletable(now) && markedAt.IsZero():
		return SweepKeep
	case !d.Deletable(now):
		return SweepUnmark
	case markedAt.IsZero():
		return SweepMark
	case now.Sub(markedAt) >= delay:
		return SweepDelete
	}
	return SweepKeep
}

// Explain renders a decision for an operator, one line per reason.
func Explain(now time.Time, key string, d Decision) string {
	var b strings.Builder
	state := "kept until " + stamp(d.RetainUntil)
	switch {
	case d.LegalHold && len(d.Overdue()) > 0:
		state = "OVERDUE EVIDENCE: under legal hold while a result is missing; otherwise " + state
	case d.LegalHold:
		state = "under legal hold (an appeal is open); otherwise " + state
	case d.Pending:
		state += ", and held after that while a result is missing"
	case d.Deletable(now):
		state = "expired on " + stamp(d.RetainUntil) + ": the sweeper may delete it"
	}
	fmt.Fprintf(&b, "%s\n  %s (rule %s)\n", key, state, d.Rule)
	for _, r := range d.Reasons {
		who := "no exam"
		if r.ExamID != "" {
			who = "exam " + r.ExamID + ", candidate " + r.CandidateID
		}
		until := "until " + stamp(r.Until)
		if r.Until.IsZero() {
			until = "hold"
		}
		fmt.Fprintf(&b, "  - %s: %s %s: %s\n", who, r.Rule, until, r.Detail())
	}
	return b.String()
}

func date(t time.Time) string  { return t.UTC().Format(time.DateOnly) }
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// days renders a period in days when it is whole days.
func days(d time.Duration) string {
	if d%Day == 0 {
		n := d / Day
		if n == 1 {
			return "1 day"
		}
		return fmt.Sprintf("%d days", n)
	}
	return d.String()
}
