package archiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/facts"
)

// HandleRetention handles one RetentionChanged event: it recomputes the
// retention of every object of the candidate-exam (of every candidate of the
// exam when the event names none), and seals the candidate-exam if its
// result is recorded. The same event twice changes nothing more.
func (s *Service) HandleRetention(ctx context.Context, m bus.Message) error {
	var ev events.RetentionChanged
	if err := json.Unmarshal(m.Value, &ev); err != nil {
		return bus.Permanent(fmt.Errorf("decode retention event: %w", err))
	}
	if ev.ExamID == "" {
		return bus.Permanent(fmt.Errorf("retention event %s: no exam_id", ev.EventID))
	}
	ces, err := s.d.Facts.ExamEvidence(ctx, ev.ExamID, ev.CandidateID)
	if errors.Is(err, facts.ErrNotFound) {
		s.d.Log.Warn("retention event for an unknown candidate-exam", "exam_id", ev.ExamID,
			"candidate_id", ev.CandidateID, "reason", ev.Reason)
		return nil
	}
	if err != nil {
		return err
	}
	for _, ce := range ces {
		if err := s.Recompute(ctx, ce); err != nil {
			return err
		}
		if err := s.sealIfDue(ctx, ce); err != nil {
			return err
		}
	}
	return nil
}

// Recompute decides again, from the registry's facts of now, the retention
// of every kept object of a candidate-exam: the candidate's webcam and
// screen and the room cameras of the site during the exam window (raw
// segments and their renditions and thumbnails), their init segments, and
// the candidate-exam's seals. It works in batches of
// Config.Batch objects.
func (s *Service) Recompute(ctx context.Context, ce facts.EvidenceExam) error {
	var inits []string
	after := ""
	for {
		page, err := s.d.Store.ArchivedFootage(ctx, ce.Site, ce.Start, ce.End, after, s.cfg.Batch)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		n := len(page)
		after = page[n-1].Key
		objs := slices.DeleteFunc(page, func(o store.ArchiveObject) bool {
			return !ce.Serves(o.Device, o.Source == events.SourceRoom)
		})
		ds, err := s.decideSegments(ctx, objs, false)
		if err != nil {
			return err
		}
		if err := s.applyBatch(ctx, objs, ds); err != nil {
			return err
		}
		for _, o := range objs {
			if !slices.Contains(inits, o.InitKey) {
				inits = append(inits, o.InitKey)
			}
		}
		if n < s.cfg.Batch {
			break
		}
	}
	for i := 0; i < len(inits); i += s.cfg.Batch {
		objs, err := s.d.Store.ArchiveObjectsByKeys(ctx, inits[i:min(i+s.cfg.Batch, len(inits))])
		if err != nil {
			return err
		}
		if err := s.decideAndApply(ctx, objs); err != nil {
			return err
		}
	}
	if err := s.takeDocuments(ctx, ce); err != nil {
		return err
	}
	seals, err := s.d.Store.SealObjects(ctx, ce.ExamID, ce.CandidateID)
	if err != nil {
		return err
	}
	return s.decideAndApply(ctx, seals)
}

func (s *Service) decideAndApply(ctx context.Context, objs []store.ArchiveObject) error {
	objs = slices.DeleteFunc(objs, func(o store.ArchiveObject) bool { return o.DeletedAt != nil })
	if len(objs) == 0 {
		return nil
	}
	ds, err := s.decideObjects(ctx, objs)
	if err != nil {
		return err
	}
	return s.applyBatch(ctx, objs, ds)
}
