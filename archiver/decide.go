package archiver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/facts"
	"github.com/nokstream/nokstream/internal/evidence/retention"
)

// Facts are the registry's facts the decisions read: the candidate-exams
// footage and documents are evidence of. The archiver's store answers them
// from its copy (archiver/store/facts.go); an unknown candidate-exam is
// facts.ErrNotFound.
type Facts interface {
	SiteEvidence(ctx context.Context, site string, from, to time.Time) ([]facts.EvidenceExam, time.Duration, error)
	ExamEvidence(ctx context.Context, exam, candidate string) ([]facts.EvidenceExam, error)
	DocumentEvidence(ctx context.Context, key string) ([]facts.EvidenceExam, error)
}

// initUsers is the part of the archiver's store the decisions read: what
// the kept segments ask of the init segment they use.
type initUsers interface {
	InitUsage(ctx context.Context, key string) (store.InitUsage, error)
}

// decider decides the retention of archived objects from the registry's
// facts of the moment and the archiver's own records.
type decider struct {
	facts    Facts
	st       initUsers
	settings retention.Settings
	now      func() time.Time
}

// applied returns what was applied to o, zero for a new object.
func applied(o store.ArchiveObject, isNew bool) retention.Applied {
	if isNew {
		return retention.Applied{}
	}
	return retention.Applied{RetainUntil: o.RetainUntil, Rule: retention.Rule(o.Rule)}
}

// linked returns the candidate-exams the footage of a segment is evidence
// for: room footage serves every candidate of every exam at the site whose
// window it overlaps; a webcam or screen only the candidate at it.
func linked(o store.ArchiveObject, exams []facts.EvidenceExam) []retention.CandidateExam {
	var out []retention.CandidateExam
	for _, e := range exams {
		if e.Site == o.Site && o.Start.Before(e.End) && e.Start.Before(o.End) && e.Serves(o.Device, o.Source == events.SourceRoom) {
			out = append(out, e.CandidateExam)
		}
	}
	return out
}

// decideSegments decides for media segments, reading the facts once per
// site and day for the whole batch. isNew says the segments have no
// retention yet.
func (d *decider) decideSegments(ctx context.Context, objs []store.ArchiveObject, isNew bool) ([]retention.Decision, error) {
	type group struct {
		site     string
		day      time.Time
		from, to time.Time
		idx      []int
	}
	groups := map[[2]string]*group{}
	var order []*group
	for i, o := range objs {
		day := o.Start.UTC().Truncate(retention.Day)
		k := [2]string{o.Site, day.Format(time.DateOnly)}
		g := groups[k]
		if g == nil {
			g = &group{site: o.Site, day: day, from: o.Start, to: o.End}
			groups[k] = g
			order = append(order, g)
		}
		if o.Start.Before(g.from) {
			g.from = o.Start
		}
		if o.End.After(g.to) {
			g.to = o.End
		}
		g.idx = append(g.idx, i)
	}
	out := make([]retention.Decision, len(objs))
	for _, g := range order {
		exams, unlinked, err := d.facts.SiteEvidence(ctx, g.site, g.from, g.to)
		if err != nil {
			return nil, err
		}
		for _, i := range g.idx {
			o := objs[i]
			out[i] = d.settings.Decide(retention.Object{Key: o.Key, End: o.End, Unlinked: unlinked},
				linked(o, exams), applied(o, isNew)).At(d.now())
		}
	}
	return out, nil
}

// decideInit decides for an init segment from the kept segments that use
// it; extra is a segment not recorded yet that uses it too.
func (d *decider) decideInit(ctx context.Context, init store.ArchiveObject, extra *store.ArchiveObject) (retention.Decision, error) {
	u, err := d.st.InitUsage(ctx, init.Key)
	if err != nil {
		return retention.Decision{}, err
	}
	var users []retention.User
	if u.LatestKey != "" {
		users = append(users, retention.User{Key: u.LatestKey, RetainUntil: u.LatestUntil})
	}
	if u.HeldKey != "" {
		users = append(users, retention.User{Key: u.HeldKey, Hold: true})
	}
	if extra != nil {
		users = append(users, retention.User{Key: extra.Key, RetainUntil: extra.RetainUntil, Hold: extra.LegalHold})
	}
	d0 := retention.Serves(users, applied(init, init.RetainUntil.IsZero()))
	for i := range d0.Reasons {
		if d0.Reasons[i].Rule == retention.RuleServes && !d0.Reasons[i].Hold {
			d0.Reasons[i].Users = u.Users
			if extra != nil {
				d0.Reasons[i].Users++
			}
		}
	}
	return d0, nil
}

// decideSeal decides for a seal: it is kept as its candidate-exam's own
// evidence is.
func (d *decider) decideSeal(ctx context.Context, o store.ArchiveObject, isNew bool) (retention.Decision, error) {
	ces, err := d.facts.ExamEvidence(ctx, o.ExamID, o.CandidateID)
	if err != nil && !errors.Is(err, facts.ErrNotFound) {
		return retention.Decision{}, err
	}
	var exams []retention.CandidateExam
	for _, ce := range ces {
		exams = append(exams, ce.CandidateExam)
	}
	return d.settings.Decide(retention.Object{Key: o.Key, End: o.End}, exams, applied(o, isNew)).At(d.now()), nil
}

// decideObjects decides for archived objects of any kind.
func (d *decider) decideObjects(ctx context.Context, objs []store.ArchiveObject) ([]retention.Decision, error) {
	out := make([]retention.Decision, len(objs))
	var segs []store.ArchiveObject
	var segIdx []int
	for i, o := range objs {
		switch o.Kind {
		case store.ArchiveSegment, store.ArchiveRendition:
			segs = append(segs, o)
			segIdx = append(segIdx, i)
		case store.ArchiveInit:
			dd, err := d.decideInit(ctx, o, nil)
			if err != nil {
				return nil, err
			}
			out[i] = dd
		case store.ArchiveSeal:
			dd, err := d.decideSeal(ctx, o, false)
			if err != nil {
				return nil, err
			}
			out[i] = dd
		case store.ArchiveDocument:
			dd, err := d.decideDocument(ctx, o, false)
			if err != nil {
				return nil, err
			}
			out[i] = dd
		default:
			return nil, fmt.Errorf("archived object %s: unknown kind %q", o.Key, o.Kind)
		}
	}
	ds, err := d.decideSegments(ctx, segs, false)
	if err != nil {
		return nil, err
	}
	for j, i := range segIdx {
		out[i] = ds[j]
	}
	return out, nil
}
