package retention_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/evidence/retention"
)

// TestPropertyRetention generates random histories of exam sites and checks,
// at every step, that no object is deletable before its due date and that
// expired, unheld footage is deleted by the sweeper within its delay.
//
// Each history has one or two sites, each with room cameras recording all
// day and workstations whose webcams record during exams; exams at the same
// site overlap, so one room segment is evidence for several candidates, and
// some footage belongs to no exam. Over the following years, results are
// recorded (certificates, conclusions), certificates are extended and
// revoked, results are returned for rework and recorded again, appeals are
// opened and closed (some upheld, turning a conclusion into a certificate),
// and exams are registered late. Time only moves forward.
//
// The system under test is a model of the archiver that uses the real rules:
// it decides each object's retention on arrival (SegmentClosed) and
// recomputes every object of a candidate-exam when the registry says it
// changed (RetentionChanged, sometimes delivered twice), applying the answer
// to a store that behaves like S3 Object Lock in COMPLIANCE mode (retain-until
// only extended, deletes refused before it and under hold). The sweeper runs
// its two phases with retention.Sweep: mark what has expired, and delete
// after the delay if, recomputed from the facts of that moment, it still
// may be.
//
// The oracle is written independently: for every object, the latest date
// any past state of the facts required (a due date only grows) and whether
// an appeal holds it now. At every step: no object is deleted before its due
// date or under hold, nor sooner than the sweeper's delay after it; every applied and stored retain-until equals the due
// date and the stored hold equals the oracle's; the store never refuses a
// delete the sweeper tries; and every object past its due date plus the
// sweeper's delay (and one pass) with no hold is gone.
func TestPropertyRetention(t *testing.T) {
	t.Parallel()
	n := 10000
	if testing.Short() {
		n = 1000
	}
	seeds := make(chan uint64)
	var mu sync.Mutex
	var failures []string
	var stats simStats
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for seed := range seeds {
				sim := newSim(seed)
				err := sim.run()
				mu.Lock()
				stats.add(sim.stats)
				if err != nil && len(failures) < 5 {
					failures = append(failures, fmt.Sprintf("seed %d: %v\n%s", seed, err, sim.trace()))
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		seeds <- uint64(i) + 1
	}
	close(seeds)
	wg.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d histories: %+v", n, stats)
	// The histories must exercise what they claim to.
	if stats.Deleted == 0 || stats.Holds == 0 || stats.Unmarked == 0 || stats.Revoked == 0 || stats.Extended == 0 ||
		stats.Rework == 0 || stats.Upheld == 0 || stats.LateExams == 0 || stats.Unlinked == 0 || stats.Shared == 0 ||
		stats.Overdue == 0 || stats.Disposed == 0 {
		t.Errorf("histories do not cover every case: %+v", stats)
	}
}

const grid = time.Hour // every time in a history is a whole hour

type simStats struct {
	Objects, Deleted, Holds, Unmarked, Revoked, Extended, Rework, Upheld, LateExams, Unlinked, Shared, Events int
	Overdue, Disposed                                                                                         int
}

func (s *simStats) add(o simStats) {
	s.Objects += o.Objects
	s.Deleted += o.Deleted
	s.Holds += o.Holds
	s.Unmarked += o.Unmarked
	s.Revoked += o.Revoked
	s.Extended += o.Extended
	s.Rework += o.Rework
	s.Upheld += o.Upheld
	s.LateExams += o.LateExams
	s.Unlinked += o.Unlinked
	s.Shared += o.Shared
	s.Events += o.Events
	s.Overdue += o.Overdue
	s.Disposed += o.Disposed
}

type simExam struct {
	id         string
	site       int
	start, end time.Time
	known      bool // registered in the registry
	cands      []*simCand
}

type simCand struct {
	exam   *simExam
	device string // the workstation whose webcam is this candidate's
	facts  retention.CandidateExam
}

type simObject struct {
	key        string
	site       int
	device     string
	room       bool
	start, end time.Time
	init       *simObject   // the init segment a media segment uses
	users      []*simObject // for an init: the segments that use it
	arrival    time.Time
	arrived    bool

	// The archiver's database row, and the object-locked store.
	applied     retention.Applied
	appliedHold bool
	markedAt    time.Time
	deleted     bool
	storeUntil  time.Time
	storeHold   bool

	// The oracle.
	due time.Time
}

func (o *simObject) isInit() bool { return o.users != nil }

type simEvent struct {
	at    time.Time
	order int // tie-break: generation order
	what  string
	apply func() []*simCand // changes the facts, returns the candidate-exams to recompute
}

type sim struct {
	rng      *rand.Rand
	settings retention.Settings
	delay    time.Duration
	now      time.Time
	exams    []*simExam
	objects  []*simObject
	events   []simEvent
	log      []string
	stats    simStats

	// Scratch of links and facts, which the oracle calls for every object
	// at every step: what they return is valid until their next call.
	linkBuf, candBuf []*simCand
	factBuf          []*retention.CandidateExam
}

func newSim(seed uint64) *sim {
	s := &sim{rng: rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15))}
	s.generate()
	return s
}

func (s *sim) hours(lo, hi int) time.Duration {
	return time.Duration(lo+s.rng.IntN(hi-lo+1)) * time.Hour
}
func (s *sim) days(lo, hi int) time.Duration {
	return time.Duration(lo+s.rng.IntN(hi-lo+1)) * retention.Day
}
func (s *sim) chance(p float64) bool { return s.rng.Float64() < p }

func (s *sim) logf(format string, args ...any) {
	if len(s.log) < 400 {
		s.log = append(s.log, s.now.Format("2006-01-02T15")+" "+fmt.Sprintf(format, args...))
	}
}

func (s *sim) trace() string { return strings.Join(s.log, "\n") }

func (s *sim) event(at time.Time, what string, apply func() []*simCand) {
	s.events = append(s.events, simEvent{at: at, order: len(s.events), what: what, apply: apply})
}

// generate makes the day of recording and the years of facts that follow.
func (s *sim) generate() {
	day := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC).Add(s.days(0, 300))
	s.now = day
	s.settings = retention.DefaultSettings()
	s.settings.Unlinked = s.days(7, 30)
	// The histories draw periods below the legal floors too, to cover
	// more dates; the floors are tested on their own.
	s.settings.Floors = retention.Floors{}
	s.delay = s.hours(1, 72)
	policies := []retention.Policy{{}, {AppealWindow: s.days(14, 60), AppealMargin: s.days(1, 30), Provisional: s.days(30, 120)}}

	sites := 1 + s.rng.IntN(2)
	for site := range sites {
		// Exams: 1 to 3 at the site, some overlapping, each with up to 3
		// candidates at free workstations.
		busy := map[string][]*simExam{}
		for e := range 1 + s.rng.IntN(3) {
			start := day.Add(s.hours(6, 16))
			ex := &simExam{id: fmt.Sprintf("e%d%d", site, e), site: site, start: start, end: start.Add(s.hours(1, 4)), known: true}
			for c := range 1 + s.rng.IntN(3) {
				dev := ""
				for w := range 4 {
					name := fmt.Sprintf("ws%d", w)
					if !slices.ContainsFunc(busy[name], func(o *simExam) bool { return o.start.Before(ex.end) && ex.start.Before(o.end) }) {
						dev = name
						busy[name] = append(busy[name], ex)
						break
					}
				}
				if dev == "" {
					break
				}
				cand := &simCand{exam: ex, device: dev, facts: retention.CandidateExam{
					ExamID: ex.id, CandidateID: fmt.Sprintf("%s-c%d", ex.id, c), Start: ex.start, End: ex.end,
					Policy: policies[s.rng.IntN(len(policies))],
				}}
				ex.cands = append(ex.cands, cand)
			}
			if s.chance(0.15) {
				ex.known = false
				s.stats.LateExams++
				s.event(ex.end.Add(s.days(0, 20)), "register exam "+ex.id, func() []*simCand {
					ex.known = true
					return ex.cands
				})
			}
			s.exams = append(s.exams, ex)
			for _, c := range ex.cands {
				s.generateFacts(c)
			}
		}
		// Room cameras record the whole day in segments of 1 to 3 hours,
		// with a new init segment now and then.
		for cam := range 1 + s.rng.IntN(2) {
			dev := fmt.Sprintf("cam%d", cam)
			var init *simObject
			for t := day; t.Before(day.Add(24 * time.Hour)); {
				end := t.Add(s.hours(1, 3))
				if init == nil || s.chance(0.1) {
					init = s.addInit(site, dev, true)
				}
				s.addSegment(site, dev, true, t, end, init)
				t = end
			}
		}
		// Webcams record during their candidate's exam, in one or two
		// segments, and now and then outside any exam (a test).
		for _, ex := range s.exams {
			if ex.site != site {
				continue
			}
			for _, c := range ex.cands {
				init := s.addInit(site, c.device, false)
				if mid := ex.start.Add(ex.end.Sub(ex.start) / 2).Truncate(grid); s.chance(0.5) && mid.After(ex.start) {
					s.addSegment(site, c.device, false, ex.start, mid, init)
					s.addSegment(site, c.device, false, mid, ex.end, init)
				} else {
					s.addSegment(site, c.device, false, ex.start, ex.end, init)
				}
			}
		}
		if s.chance(0.5) {
			init := s.addInit(site, "ws3", false)
			start := day.Add(s.hours(0, 4))
			s.addSegment(site, "ws3", false, start, start.Add(time.Hour), init)
		}
	}
	slices.SortStableFunc(s.events, func(a, b simEvent) int { return a.at.Compare(b.at) })
}

// generateFacts schedules what happens to one candidate's exam after it.
func (s *sim) generateFacts(c *simCand) {
	f := &c.facts
	ex := c.exam
	if !s.chance(0.85) {
		// Never a result: overdue evidence once the provisional period
		// ends, until the council disposes of it, if it does.
		prov := f.Policy.Provisional
		if prov == 0 {
			prov = s.settings.Default.Provisional
		}
		s.stats.Overdue++
		if s.chance(0.5) {
			s.stats.Disposed++
			at := ex.end.Add(prov).Add(s.days(0, 60)).Add(s.hours(1, 23))
			s.event(at, "dispose "+f.CandidateID, func() []*simCand {
				f.DisposedAt = at
				return []*simCand{c}
			})
		}
		return
	}
	at := ex.end.Add(s.days(0, 40))
	cert := s.chance(0.55)
	validity := time.Duration(1+2*s.rng.IntN(3)) * 365 * retention.Day
	record := func(at time.Time, cert bool) {
		s.event(at, "result "+f.CandidateID, func() []*simCand {
			f.ResultAt = at
			if cert {
				f.Result = retention.ResultCertificate
				f.Certificate = &retention.Certificate{Number: "N-" + f.CandidateID, ValidUntil: at.Add(validity)}
			} else {
				f.Result = retention.ResultConclusion
				f.Certificate = nil
			}
			return []*simCand{c}
		})
	}
	record(at, cert)
	if s.chance(0.07) {
		// Returned for rework: the result is withdrawn and recorded again.
		s.stats.Rework++
		back := at.Add(s.days(1, 10))
		s.event(back, "rework "+f.CandidateID, func() []*simCand {
			f.Result, f.ResultAt, f.Certificate = retention.ResultNone, time.Time{}, nil
			return []*simCand{c}
		})
		at = back.Add(s.days(1, 30))
		record(at, cert)
	}
	if cert {
		until := at.Add(validity)
		if s.chance(0.3) {
			s.stats.Extended++
			ext := at.Add(time.Duration(s.rng.Int64N(int64(validity))).Truncate(grid))
			more := time.Duration(1+s.rng.IntN(3)) * 365 * retention.Day
			s.event(ext, "extend "+f.CandidateID, func() []*simCand {
				f.Certificate.ValidUntil = f.Certificate.ValidUntil.Add(more)
				return []*simCand{c}
			})
			until = until.Add(more)
		}
		if s.chance(0.2) {
			s.stats.Revoked++
			rev := at.Add(time.Duration(s.rng.Int64N(int64(until.Sub(at)))).Truncate(grid))
			s.event(rev, "revoke "+f.CandidateID, func() []*simCand {
				f.Certificate.RevokedAt = rev
				return []*simCand{c}
			})
		}
		return
	}
	// A conclusion: an appeal within the council's window, maybe a second.
	window := f.Policy.AppealWindow
	if window == 0 {
		window = s.settings.Default.AppealWindow
	}
	for i := range 2 {
		if !s.chance(0.5) {
			return
		}
		s.stats.Holds++
		opened := at.Add(time.Duration(s.rng.Int64N(int64(window))).Truncate(grid))
		id := fmt.Sprintf("%s-a%d", f.CandidateID, i)
		s.event(opened, "open appeal "+id, func() []*simCand {
			f.Appeals = append(f.Appeals, retention.Appeal{ID: id, OpenedAt: opened})
			return []*simCand{c}
		})
		if !s.chance(0.85) {
			return // still open at the end of the history
		}
		closed := opened.Add(s.days(1, 150))
		upheld := s.chance(0.4)
		if upheld {
			s.stats.Upheld++
		}
		s.event(closed, "close appeal "+id, func() []*simCand {
			for j := range f.Appeals {
				if f.Appeals[j].ID == id {
					f.Appeals[j].ClosedAt = closed
				}
			}
			if upheld {
				f.Result, f.ResultAt = retention.ResultCertificate, closed
				f.Certificate = &retention.Certificate{Number: "N-" + f.CandidateID, ValidUntil: closed.Add(3 * 365 * retention.Day)}
			}
			return []*simCand{c}
		})
		if upheld {
			return
		}
		at = closed
	}
}

func (s *sim) addInit(site int, dev string, room bool) *simObject {
	o := &simObject{key: fmt.Sprintf("raw/s%d/%s/init/%d.mp4", site, dev, len(s.objects)), site: site, device: dev, room: room,
		users: []*simObject{}}
	s.objects = append(s.objects, o)
	return o
}

func (s *sim) addSegment(site int, dev string, room bool, start, end time.Time, init *simObject) {
	o := &simObject{key: fmt.Sprintf("raw/s%d/%s/%d.m4s", site, dev, len(s.objects)), site: site, device: dev, room: room,
		start: start, end: end, init: init, arrival: end}
	init.users = append(init.users, o)
	s.objects = append(s.objects, o)
	s.event(end, "segment "+o.key, nil)
}

// links is the registry's side, as the oracle sees it: the candidate-exams a
// media segment is evidence for. Room footage serves every candidate of
// every registered exam at the site overlapping it; a webcam only the
// candidate at that workstation.
func (s *sim) links(o *simObject) []*simCand {
	out := s.linkBuf[:0]
	for _, ex := range s.exams {
		if !ex.known || ex.site != o.site || !o.start.Before(ex.end) || !ex.start.Before(o.end) {
			continue
		}
		for _, c := range ex.cands {
			if o.room || c.device == o.device {
				out = append(out, c)
			}
		}
	}
	s.linkBuf = out[:0]
	return out
}

// facts returns the candidate-exams and the end of footage of an object:
// for an init segment, the union over the kept segments that use it.
func (s *sim) facts(o *simObject) ([]*retention.CandidateExam, time.Time) {
	cands := s.candBuf[:0]
	end := o.end
	if o.isInit() {
		for _, u := range o.users {
			// A deleted segment needs its init no more.
			if u.arrived && !u.deleted {
				cands = append(cands, s.links(u)...)
				end = later(end, u.end)
			}
		}
	} else {
		cands = append(cands, s.links(o)...)
	}
	out := s.factBuf[:0]
	for _, c := range cands {
		if !slices.ContainsFunc(out, func(x *retention.CandidateExam) bool { return x.CandidateID == c.facts.CandidateID }) {
			out = append(out, &c.facts)
		}
	}
	s.candBuf, s.factBuf = cands[:0], out[:0]
	return out, end
}

// requirement is the oracle: what the law asks of the object now, written
// from the rules of issue 5 without the engine.
func (s *sim) requirement(o *simObject) (due time.Time, held bool) {
	due, held, _ = s.requirementLoose(o)
	return due, held
}

// requirementLoose is requirement, and whether the hold may be either way:
// overdue evidence must be held from the time the object would have gone
// at the latest, and may be held as soon as an archiver decision sees it
// overdue.
func (s *sim) requirementLoose(o *simObject) (due time.Time, held, loose bool) {
	if o.isInit() {
		// An init segment is held while a kept segment that uses it is.
		due, _, _ = s.requirementOf(o)
		for _, u := range o.users {
			if u.arrived && !u.deleted {
				_, h, l := s.requirementOf(u)
				held, loose = held || h, loose || l
			}
		}
		return due, held, loose && !held
	}
	return s.requirementOf(o)
}

func (s *sim) requirementOf(o *simObject) (due time.Time, held, loose bool) {
	exams, end := s.facts(o)
	overdue := false
	if len(exams) == 0 {
		return end.Add(s.settings.Unlinked), false, false
	}
	for _, ce := range exams {
		window, margin, prov := s.settings.Default.AppealWindow, s.settings.Default.AppealMargin, s.settings.Default.Provisional
		if ce.Policy.AppealWindow != 0 {
			window, margin, prov = ce.Policy.AppealWindow, ce.Policy.AppealMargin, ce.Policy.Provisional
		}
		if ce.Result == retention.ResultNone {
			due = later(due, ce.End.Add(prov))
			appealEnded := slices.ContainsFunc(ce.Appeals, func(a retention.Appeal) bool { return !a.ClosedAt.IsZero() })
			switch {
			case !ce.DisposedAt.IsZero():
				due = later(due, ce.DisposedAt)
			case !appealEnded && !s.now.Before(ce.End.Add(prov)):
				overdue = true
			}
		} else {
			due = later(due, ce.ResultAt.Add(window+margin))
		}
		if ce.Certificate != nil {
			due = later(due, ce.Certificate.ValidUntil)
		}
		for _, a := range ce.Appeals {
			if a.ClosedAt.IsZero() {
				held = true
			} else {
				due = later(due, a.ClosedAt.Add(margin))
			}
		}
	}
	// Overdue evidence is never deleted automatically: it is held from
	// the time the object would have gone.
	switch {
	case overdue && !s.now.Before(later(due, o.due)):
		held = true
	case overdue && !held:
		loose = true
	}
	return due, held, loose
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// updateOracle folds the present facts into every arrived object's due
// date.
func (s *sim) updateOracle() {
	for _, o := range s.objects {
		if o.arrived && !o.deleted {
			due, _ := s.requirement(o)
			o.due = later(o.due, due)
		}
	}
}

// decide is the archiver's decision for o from the present facts: for a
// media segment, from the candidate-exams it is evidence for; for an init
// segment, from the retention applied to the kept segments that use it.
func (s *sim) decide(o *simObject) retention.Decision {
	if o.isInit() {
		return retention.Serves(s.users(o), o.applied)
	}
	facts, end := s.facts(o)
	exams := make([]retention.CandidateExam, len(facts))
	for i, f := range facts {
		exams[i] = *f
	}
	return s.settings.Decide(retention.Object{Key: o.key, End: end}, exams, o.applied).At(s.now)
}

// users are the kept segments that use an init segment.
func (s *sim) users(o *simObject) []retention.User {
	var out []retention.User
	for _, u := range o.users {
		if u.arrived && !u.deleted {
			out = append(out, retention.User{Key: u.key, RetainUntil: u.applied.RetainUntil, Hold: u.appliedHold})
		}
	}
	return out
}

// apply records a decision and applies it to the store as Object Lock does:
// retain-until only ever extended, hold set or lifted.
func (s *sim) apply(o *simObject, d retention.Decision) {
	o.applied, o.appliedHold = d.Applied(), d.LegalHold
	if d.RetainUntil.After(o.storeUntil) {
		o.storeUntil = d.RetainUntil
	}
	o.storeHold = d.LegalHold
}

// affected is the archiver's side of RetentionChanged: every arrived object
// of a candidate-exam, found from the exam (its site and window, the
// candidate's workstation), and the init segments they use.
func (s *sim) affected(c *simCand) []*simObject {
	ex := c.exam
	var out, inits []*simObject
	for _, o := range s.objects {
		if !o.arrived || o.deleted || o.isInit() || o.site != ex.site || !o.start.Before(ex.end) || !ex.start.Before(o.end) {
			continue
		}
		if o.room || o.device == c.device {
			out = append(out, o)
			if !slices.Contains(inits, o.init) {
				inits = append(inits, o.init)
			}
		}
	}
	return append(out, inits...)
}

func (s *sim) run() error {
	for _, ev := range s.events {
		if err := s.advance(ev.at); err != nil {
			return err
		}
		s.now = ev.at
		s.stats.Events++
		if ev.apply == nil { // a segment arrives: SegmentClosed
			o := s.objects[slices.IndexFunc(s.objects, func(o *simObject) bool { return "segment "+o.key == ev.what })]
			o.arrived = true
			s.stats.Objects++
			if !o.init.arrived {
				o.init.arrived = true
				s.stats.Objects++
			}
			s.updateOracle()
			if len(s.links(o)) > 1 {
				s.stats.Shared++
			}
			if len(s.links(o)) == 0 {
				s.stats.Unlinked++
			}
			s.apply(o, s.decide(o))
			s.apply(o.init, s.decide(o.init))
			s.logf("%s: until %s hold %v", ev.what, o.applied.RetainUntil.Format(time.DateOnly), o.appliedHold)
		} else { // the registry changed: RetentionChanged for each candidate-exam
			cands := ev.apply()
			s.updateOracle()
			s.logf("%s", ev.what)
			for _, c := range cands {
				objs := s.affected(c) // segments first, then their inits
				for _, o := range objs {
					s.apply(o, s.decide(o))
				}
				if s.chance(0.2) { // delivered twice: nothing changes
					for _, o := range objs {
						before := o.applied
						s.apply(o, s.decide(o))
						if o.applied != before {
							return fmt.Errorf("%s: deciding %s twice changed %v to %v", ev.what, o.key, before, o.applied)
						}
					}
				}
			}
		}
		if err := s.check(); err != nil {
			return fmt.Errorf("after %s: %w", ev.what, err)
		}
	}
	// Run the sweeper long enough for everything unheld to expire.
	var last time.Time
	for _, o := range s.objects {
		last = later(last, o.due)
	}
	return s.advance(last.Add(s.delay + 2*grid))
}

// advance runs the sweeper's passes until to. A pass at an hour when nothing
// can have expired or reached its delay does nothing, so only the passes at
// hours that matter are run.
func (s *sim) advance(to time.Time) error {
	for {
		var next time.Time
		for _, o := range s.objects {
			if !o.arrived || o.deleted {
				continue
			}
			var at time.Time
			switch {
			case !o.markedAt.IsZero():
				at = o.markedAt.Add(s.delay)
			case !o.appliedHold:
				at = o.applied.RetainUntil
			default:
				continue
			}
			at = ceilGrid(at)
			if !at.After(s.now) {
				at = s.now.Add(grid)
			}
			if next.IsZero() || at.Before(next) {
				next = at
			}
		}
		if next.IsZero() || next.After(to) {
			return nil
		}
		s.now = next
		if err := s.sweep(); err != nil {
			return err
		}
		if err := s.check(); err != nil {
			return fmt.Errorf("after the sweep: %w", err)
		}
	}
}

func ceilGrid(t time.Time) time.Time {
	if c := t.Truncate(grid); c.Before(t) {
		return c.Add(grid)
	}
	return t
}

// sweep is one pass of the sweeper: phase one marks what the stored dates
// say has expired, phase two deletes what was marked the delay ago; both
// decide from the facts of now.
func (s *sim) sweep() error {
	// Media segments first, so that an init whose last segments go in this
	// pass goes with them.
	order := slices.Clone(s.objects)
	slices.SortStableFunc(order, func(a, b *simObject) int {
		if a.isInit() == b.isInit() {
			return 0
		}
		if a.isInit() {
			return 1
		}
		return -1
	})
	for _, o := range order {
		if !o.arrived || o.deleted {
			continue
		}
		candidate := !o.markedAt.IsZero() || (!o.appliedHold && !s.now.Before(o.applied.RetainUntil))
		if !candidate {
			continue
		}
		d := s.decide(o)
		action := retention.Sweep(s.now, d, o.markedAt, s.delay)
		if action == retention.SweepDelete && o.isInit() && len(s.users(o)) > 0 {
			action = retention.SweepKeep // an init goes only after its last segment
		}
		switch action {
		case retention.SweepKeep:
			if o.markedAt.IsZero() {
				// Phase one records what it decided: a new date, or a
				// hold (overdue evidence), and the hold reaches the
				// init segment the footage uses.
				hold := o.appliedHold
				s.apply(o, d)
				if d.LegalHold && !hold && !o.isInit() {
					s.apply(o.init, s.decide(o.init))
				}
			}
		case retention.SweepMark:
			o.markedAt = s.now
		case retention.SweepUnmark:
			o.markedAt = time.Time{}
			s.stats.Unmarked++
			s.apply(o, d)
		case retention.SweepDelete:
			if s.now.Before(o.storeUntil) || o.storeHold {
				return fmt.Errorf("the store refused to delete %s: retain-until %s, hold %v", o.key, o.storeUntil, o.storeHold)
			}
			if o.isInit() && slices.ContainsFunc(o.users, func(u *simObject) bool { return u.arrived && !u.deleted }) {
				return fmt.Errorf("init %s deleted while segments that use it are kept", o.key)
			}
			o.deleted = true
			s.stats.Deleted++
			s.logf("delete %s (due %s)", o.key, o.due.Format(time.DateOnly))
			if _, held := s.requirement(o); held || s.now.Before(o.due) {
				return fmt.Errorf("deleted %s before its due date %s (held %v)", o.key, o.due, held)
			}
			if s.now.Before(o.due.Add(s.delay)) {
				return fmt.Errorf("deleted %s at %s, less than the delay %s after its due date %s: a mark must stand that long", o.key, s.now, s.delay, o.due)
			}
		}
	}
	return nil
}

// check holds at every step.
func (s *sim) check() error {
	for _, o := range s.objects {
		if !o.arrived || o.deleted {
			continue
		}
		_, held, loose := s.requirementLoose(o)
		switch {
		case !o.applied.RetainUntil.Equal(o.due) || !o.storeUntil.Equal(o.due):
			return fmt.Errorf("%s: applied retain-until %s, stored %s, due %s", o.key, o.applied.RetainUntil, o.storeUntil, o.due)
		case o.storeHold != o.appliedHold || (!loose && o.storeHold != held):
			return fmt.Errorf("%s: hold applied %v, stored %v, want %v", o.key, o.appliedHold, o.storeHold, held)
		case !held && !s.now.Before(o.due.Add(s.delay+grid)):
			return fmt.Errorf("%s: due %s, delay %s, not deleted by %s", o.key, o.due, s.delay, s.now)
		case !o.markedAt.IsZero() && (held || s.now.Before(o.due)):
			// A mark stands only while phase two would still delete.
			d := s.decide(o)
			if d.Deletable(s.now) {
				return fmt.Errorf("%s: deletable by the rules at %s, before its due date %s", o.key, s.now, o.due)
			}
		}
	}
	return nil
}
