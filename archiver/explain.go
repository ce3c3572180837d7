package archiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/facts"
	"github.com/nokstream/nokstream/internal/evidence/retention"
)

// ExplainFacts is what Explain reads of the registry's facts; the
// archiver's store, with its copy of them, is one.
type ExplainFacts interface {
	Facts
	OverdueEvidence(ctx context.Context, now time.Time, defaultProvisional, floor time.Duration) ([]facts.OverdueEvidence, error)
}

// ExplainStore is what Explain reads of the archiver's records;
// *store.Store is one.
type ExplainStore interface {
	initUsers
	ArchiveObject(ctx context.Context, key string) (store.ArchiveObject, error)
	ArchivedSegments(ctx context.Context, site string, from, to time.Time, afterKey string, limit int) ([]store.ArchiveObject, error)
	LatestSeal(ctx context.Context, exam, candidate string) (store.Seal, error)
	SealObjects(ctx context.Context, exam, candidate string) ([]store.ArchiveObject, error)
}

// ExplainOverdue lists the candidate-exams whose evidence is overdue at
// now: their result is missing after the provisional period, and their
// evidence is held until a result, an appeal's end or the council's
// disposal (POST /api/v1/exams/{exam}/candidates/{candidate}/evidence/disposal).
func ExplainOverdue(ctx context.Context, fs ExplainFacts, settings retention.Settings, now time.Time) (string, error) {
	list, err := fs.OverdueEvidence(ctx, now, settings.Default.Provisional, settings.Floors.Provisional)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d candidate-exam(s) of overdue evidence at %s\n", len(list), now.UTC().Format(time.RFC3339))
	for _, o := range list {
		fmt.Fprintf(&b, "  %s/%s: council %s, site %s: exam ended %s, no result since the provisional period (%d days) ended %s "+
			"(%d days overdue): held until a result, an appeal's end or the council's disposal\n",
			o.ExamID, o.CandidateID, o.CouncilID, o.SiteID, o.ExamEnd.UTC().Format(time.RFC3339), o.ProvisionalDays,
			o.Due.UTC().Format(time.RFC3339), int(now.Sub(o.Due).Hours()/24))
	}
	return b.String(), nil
}

// Explain says why target is kept until when, or why and when it was
// deleted: target is an archived object's key, or "<exam>/<candidate>" for
// a candidate-exam. It shows what was applied and what the rules give from
// the registry's facts of now.
func Explain(ctx context.Context, fs ExplainFacts, st ExplainStore, settings retention.Settings, now time.Time, target string) (string, error) {
	d := &decider{facts: fs, st: st, settings: settings, now: func() time.Time { return now }}
	o, err := st.ArchiveObject(ctx, target)
	if err == nil {
		return explainObject(ctx, d, o, now)
	}
	if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	exam, cand, ok := strings.Cut(target, "/")
	if !ok || strings.Contains(cand, "/") {
		return "", fmt.Errorf("%s: no archived object has this key (a candidate-exam is <exam>/<candidate>)", target)
	}
	ces, err := fs.ExamEvidence(ctx, exam, cand)
	if errors.Is(err, facts.ErrNotFound) {
		return "", fmt.Errorf("%s: no archived object has this key, and no candidate-exam this name", target)
	}
	if err != nil {
		return "", err
	}
	return explainExam(ctx, d, st, ces[0], now)
}

func explainObject(ctx context.Context, d *decider, o store.ArchiveObject, now time.Time) (string, error) {
	var b strings.Builder
	switch o.Kind {
	case store.ArchiveSegment:
		fmt.Fprintf(&b, "%s\n  %s segment %d of stream %s, footage %s to %s\n", o.Key, o.Source, o.Sequence, o.StreamID,
			o.Start.UTC().Format(time.RFC3339), o.End.UTC().Format(time.RFC3339))
	case store.ArchiveInit:
		fmt.Fprintf(&b, "%s\n  init segment of stream %s, used by footage from %s to %s\n", o.Key, o.StreamID,
			o.Start.UTC().Format(time.RFC3339), o.End.UTC().Format(time.RFC3339))
	case store.ArchiveDocument:
		owner := "candidate " + o.CandidateID
		if o.CandidateID == "" {
			owner = "exam " + o.ExamID
		}
		fmt.Fprintf(&b, "%s\n  %s document of %s, uploaded %s, evidence of that candidate's or exam's candidate-exams\n",
			o.Key, o.Source, owner, o.Start.UTC().Format(time.RFC3339))
	default:
		fmt.Fprintf(&b, "%s\n  seal of exam %s, candidate %s\n", o.Key, o.ExamID, o.CandidateID)
	}
	hold := "no legal hold"
	if o.LegalHold {
		hold = "under legal hold"
	}
	fmt.Fprintf(&b, "  applied: retain until %s (rule %s), %s; decided %s\n", o.RetainUntil.UTC().Format(time.RFC3339),
		o.Rule, hold, o.DecidedAt.UTC().Format(time.RFC3339))
	if o.DeletedAt != nil {
		var dec retention.Decision
		_ = json.Unmarshal(o.Decision, &dec) // Shown as far as it reads.
		fmt.Fprintf(&b, "  DELETED by the sweeper on %s, marked on %s: retention had expired on %s under rule %s\n",
			o.DeletedAt.UTC().Format(time.RFC3339), deref(o.MarkedAt).UTC().Format(time.RFC3339),
			o.RetainUntil.UTC().Format(time.RFC3339), o.Rule)
		for _, r := range dec.Reasons {
			fmt.Fprintf(&b, "  - %s\n", r.Detail())
		}
		b.WriteString("  (the audit log has the deletion: action archive.delete, object " + o.Key + ")\n")
		return b.String(), nil
	}
	if o.MarkedAt != nil {
		fmt.Fprintf(&b, "  marked for deletion on %s\n", o.MarkedAt.UTC().Format(time.RFC3339))
	}
	ds, err := d.decideObjects(ctx, []store.ArchiveObject{o})
	if err != nil {
		return "", err
	}
	b.WriteString("  the rules today:\n")
	for line := range strings.SplitSeq(strings.TrimRight(retention.Explain(now, o.Key, ds[0]), "\n"), "\n") {
		if strings.HasPrefix(line, " ") {
			b.WriteString("  " + line + "\n")
		}
	}
	return b.String(), nil
}

func explainExam(ctx context.Context, d *decider, st ExplainStore, ce facts.EvidenceExam, now time.Time) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "exam %s, candidate %s: site %s, %s to %s, council %s, qualification %s\n", ce.ExamID, ce.CandidateID,
		ce.Site, ce.Start.UTC().Format(time.RFC3339), ce.End.UTC().Format(time.RFC3339), ce.Council, ce.Qualification)
	own := d.settings.Decide(retention.Object{Key: "its evidence", End: ce.End}, []retention.CandidateExam{ce.CandidateExam}, retention.Applied{}).At(now)
	for line := range strings.SplitSeq(strings.TrimRight(retention.Explain(now, "  what this candidate-exam asks of its evidence:", own), "\n"), "\n") {
		b.WriteString(line + "\n")
	}
	var n, longer int
	var latest store.ArchiveObject
	after := ""
	for {
		page, err := st.ArchivedSegments(ctx, ce.Site, ce.Start, ce.End, after, 1000)
		if err != nil {
			return "", err
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].Key
		for _, o := range page {
			if !ce.Serves(o.Device, o.Source == events.SourceRoom) {
				continue
			}
			n++
			if o.RetainUntil.After(own.RetainUntil) {
				longer++
			}
			if o.RetainUntil.After(latest.RetainUntil) {
				latest = o
			}
		}
		if len(page) < 1000 {
			break
		}
	}
	fmt.Fprintf(&b, "  %d kept media segments of the candidate's webcam and screen and of the site's room cameras in the window\n", n)
	if longer > 0 {
		fmt.Fprintf(&b, "  %d of them are kept longer, for other candidate-exams they are evidence for; the latest, %s, until %s (rule %s):\n"+
			"    run `nokstream retention explain %s` for its reasons\n", longer, latest.Key,
			latest.RetainUntil.UTC().Format(time.RFC3339), latest.Rule, latest.Key)
	}
	if seal, err := st.LatestSeal(ctx, ce.ExamID, ce.CandidateID); err == nil {
		fmt.Fprintf(&b, "  sealed (version %d) on %s: %d objects, Merkle root %s, key %s, manifest %s\n", seal.Version,
			seal.SealedAt.UTC().Format(time.RFC3339), seal.Objects, seal.MerkleRoot, seal.KeyID, seal.ManifestKey)
	} else if errors.Is(err, store.ErrNotFound) {
		b.WriteString("  not sealed yet (a seal is made once a result is recorded)\n")
	} else {
		return "", err
	}
	return b.String(), nil
}
