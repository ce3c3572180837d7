package archiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/retention"
)

// SweepStats counts what one sweeper pass did.
type SweepStats struct {
	Marked, Unmarked, Deleted, Refused int
	// Stale is how many objects the sweeper would have deleted but kept
	// marked: its copy of the registry's facts is not newer than their
	// mark (no watermark since), or its newest watermark is older than
	// Config.FactsMaxAge.
	Stale int
	Bytes int64
	// Overdue is how many candidate-exams are overdue evidence: their
	// result is missing after the provisional period, and their evidence
	// is held (nokstream_archiver_overdue_evidence).
	Overdue int
}

// Sweep runs one pass of the sweeper, in two phases, each safe to re-run
// after a crash:
//
//  1. Mark: every object whose recorded retain-until date has passed and
//     that is under no hold is decided again from the registry's facts of
//     now; if it may still be deleted it is marked, else its new retention
//     is applied.
//  2. Delete: every object marked at least Config.SweepDelay ago is decided
//     again; if it may still be deleted it is deleted from the blob store
//     (which refuses if its lock says otherwise), and the deletion is
//     recorded with the rule that allowed it, and reported to the registry
//     (its audit log and segment index);
//     if not, the mark is dropped and the new retention applied. An init
//     segment goes only once no kept segment uses it.
//
// The sweeper deletes only what the rules allow; nothing else deletes, and
// it never deletes to make room.
func (s *Service) Sweep(ctx context.Context) (SweepStats, error) {
	start := time.Now()
	defer func() { s.m.sweep.Observe(time.Since(start).Seconds()) }()
	var st SweepStats
	if err := s.reportDeletions(ctx); err != nil {
		return st, err
	}
	if _, err := s.ReportRecords(ctx); err != nil && ctx.Err() == nil {
		// They stay queued: runRecords, or the next pass, publishes them.
		s.d.Log.Warn("records not published to the registry yet; will retry", "err", err)
	}
	if err := s.takeNewDocuments(ctx); err != nil {
		return st, err
	}
	now := s.now()
	overdue, err := s.d.Facts.OverdueEvidence(ctx, now, s.cfg.Retention.Default.Provisional, s.cfg.Retention.Floors.Provisional)
	if err != nil {
		return st, err
	}
	s.m.overdue.Set(float64(len(overdue)))
	st.Overdue = len(overdue)
	// Phase 1. Every object listed leaves the list: it is marked, or its
	// new date or hold is recorded. An object whose decision cannot be
	// recorded stops the pass.
	for {
		due, err := s.d.Store.DueObjects(ctx, now, s.cfg.Batch)
		if err != nil {
			return st, err
		}
		if len(due) == 0 {
			break
		}
		ds, err := s.decideObjects(ctx, due)
		if err != nil {
			return st, err
		}
		var keep []store.ArchiveObject
		var keepDs []retention.Decision
		for i, o := range due {
			switch retention.Sweep(now, ds[i], time.Time{}, s.cfg.SweepDelay) {
			case retention.SweepMark:
				if err := s.d.Store.MarkObject(ctx, o.Key, now); err != nil {
					return st, err
				}
				st.Marked++
				s.m.swept.WithLabelValues("mark").Inc()
			default:
				keep, keepDs = append(keep, o), append(keepDs, ds[i])
			}
		}
		if err := s.applyBatch(ctx, keep, keepDs); err != nil {
			return st, err
		}
		// Footage that became overdue evidence is held now: so are the
		// init segments it uses.
		var inits []string
		for i, o := range keep {
			if keepDs[i].LegalHold && !o.LegalHold && o.InitKey != "" && !slices.Contains(inits, o.InitKey) {
				inits = append(inits, o.InitKey)
			}
		}
		if len(inits) > 0 {
			objs, err := s.d.Store.ArchiveObjectsByKeys(ctx, inits)
			if err != nil {
				return st, err
			}
			if err := s.decideAndApply(ctx, objs); err != nil {
				return st, err
			}
		}
		if len(due) < s.cfg.Batch {
			break
		}
	}
	// Phase 2. The facts are the archiver's copy: it deletes only what was
	// marked before the newest watermark it consumed, so that no fact the
	// registry had committed at the mark is missing from the decision, and
	// only while that watermark is recent (cfg.FactsMaxAge), so that a copy
	// lagging behind the registry (an appeal opened an hour ago, not yet
	// consumed) deletes nothing.
	wm, err := s.d.Facts.FactsWatermark(ctx)
	if err != nil {
		return st, err
	}
	current := now.Sub(wm.At) <= s.cfg.FactsMaxAge
	staleLogged := false
	for {
		marked, err := s.d.Store.MarkedObjects(ctx, now.Add(-s.cfg.SweepDelay), s.cfg.Batch)
		if err != nil || len(marked) == 0 {
			return st, err
		}
		ds, err := s.decideObjects(ctx, marked)
		if err != nil {
			return st, err
		}
		progress := false
		for i, o := range marked {
			action := retention.Sweep(now, ds[i], deref(o.MarkedAt), s.cfg.SweepDelay)
			if action == retention.SweepDelete && (!current || !wm.At.After(deref(o.MarkedAt))) {
				// Stale facts: keep the mark, decide again at the next pass.
				action = retention.SweepKeep
				st.Stale++
				s.m.swept.WithLabelValues("stale").Inc()
				if !staleLogged {
					staleLogged = true
					s.d.Log.Warn("the copy of the registry's facts is older than the sweeper's marks or than facts_max_age: deleting none of those",
						"facts_watermark", wm.At, "facts_max_age", s.cfg.FactsMaxAge, "facts_seq", wm.Seq, "object_key", o.Key, "marked_at", deref(o.MarkedAt))
				}
			}
			if action == retention.SweepDelete && o.Kind == store.ArchiveInit {
				u, err := s.d.Store.InitUsage(ctx, o.Key)
				if err != nil {
					return st, err
				}
				if u.Users > 0 {
					action = retention.SweepKeep // it goes with its last segment
				}
			}
			switch action {
			case retention.SweepDelete:
				deleted, err := s.delete(ctx, o, ds[i], now)
				if err != nil {
					return st, err
				}
				if deleted {
					st.Deleted++
					st.Bytes += o.Bytes
					progress = true
				} else {
					st.Refused++
				}
			case retention.SweepUnmark:
				b := decisionJSON(ds[i])
				if err := s.applyDecision(ctx, o, ds[i], false); err != nil {
					return st, err
				}
				err := s.d.Store.SetArchiveRetention(ctx, []store.RetentionUpdate{{Key: o.Key, RetainUntil: ds[i].RetainUntil,
					LegalHold: ds[i].LegalHold, Rule: string(ds[i].Rule), Decision: b, DecidedAt: now, Unmark: true}})
				if err != nil {
					return st, err
				}
				st.Unmarked++
				progress = true
				s.m.swept.WithLabelValues("unmark").Inc()
			}
		}
		if len(marked) < s.cfg.Batch || !progress {
			return st, nil
		}
	}
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// delete deletes one expired object and records it. It reports false if the
// blob store refused because the object is still locked there: the object
// stays marked, and the refusal is an error in the log.
func (s *Service) delete(ctx context.Context, o store.ArchiveObject, d retention.Decision, now time.Time) (bool, error) {
	err := s.d.Blob.Delete(ctx, o.Key)
	if errors.Is(err, blob.ErrRetained) {
		s.m.swept.WithLabelValues("refused").Inc()
		s.d.Log.Error("the blob store refused to delete an object the rules let go: its lock is longer than the registry's answer",
			"object_key", o.Key, "retain_until", d.RetainUntil, "err", err)
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("delete %s: %w", o.Key, err)
	}
	ev := events.ObjectDeleted{ObjectKey: o.Key, Kind: o.Kind, StreamID: o.StreamID, Bytes: o.Bytes, SHA256: o.SHA256,
		Rule: string(d.Rule), RetainUntil: d.RetainUntil, MarkedAt: deref(o.MarkedAt), DeletedAt: now, Archiver: s.cfg.Node,
		Reasons: make([]events.DeletionReason, 0, len(d.Reasons))}
	for _, r := range d.Reasons {
		ev.Reasons = append(ev.Reasons, events.DeletionReason{Rule: string(r.Rule), Until: r.Until, ExamID: r.ExamID,
			CandidateID: r.CandidateID, Detail: r.Detail()})
	}
	detail, err := json.Marshal(ev)
	if err != nil {
		return false, fmt.Errorf("record deletion of %s: %w", o.Key, err)
	}
	if err := s.d.Store.RecordDeletion(ctx, o.Key, now, detail); err != nil {
		return false, err
	}
	if err := s.report(ctx, store.Deletion{Key: o.Key, DeletedAt: now, Detail: detail}); err != nil && ctx.Err() == nil {
		// Recorded in the archiver's log of deletions: the next pass
		// reports it.
		s.d.Log.Warn("deletion not reported to the registry yet; the next sweep will", "object_key", o.Key, "err", err)
	}
	s.m.swept.WithLabelValues("delete").Inc()
	s.m.sweptBytes.Add(float64(o.Bytes))
	s.d.Log.Info("deleted expired object", "object_key", o.Key, "rule", d.Rule, "retain_until", d.RetainUntil)
	return true, nil
}

// reportDeletions reports to the registry the deletions it has not
// recorded yet: those whose report a crash or an outage interrupted.
func (s *Service) reportDeletions(ctx context.Context) error {
	for {
		ds, err := s.d.Store.UnreportedDeletions(ctx, s.cfg.Batch)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if err := s.report(ctx, d); err != nil {
				return err
			}
		}
		if len(ds) < s.cfg.Batch {
			return nil
		}
	}
}

// report hands the registry a deletion: it publishes the recorded
// events.ObjectDeleted on events.TopicArchive, from which the registry
// writes its audit log (action archive.delete, with the rule that allowed
// it) and drops the object from its segment index, once however often it
// is told. Then the archiver records it as reported.
func (s *Service) report(ctx context.Context, d store.Deletion) error {
	if s.d.Bus == nil {
		return fmt.Errorf("report deletion of %s: no bus", d.Key)
	}
	if err := s.d.Bus.Publish(ctx, events.TopicArchive, d.Key, d.Detail); err != nil {
		return fmt.Errorf("report deletion of %s: %w", d.Key, err)
	}
	return s.d.Store.DeletionReported(ctx, d.Key, s.now())
}
