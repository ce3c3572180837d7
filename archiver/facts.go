package archiver

import (
	"context"
	"errors"
	"fmt"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/facts"
)

// HandleFacts handles one message of events.TopicRetentionV2, with which
// the archiver keeps its own copy of the registry's facts (docs/NOTES.md,
// Session 6):
//
//   - a candidate-exam's snapshot (events.RetentionChangedV2) replaces the
//     one kept if its seq is higher; then, unless a newer one is kept, the
//     retention of every object of the candidate-exam is decided again and
//     it is sealed if due;
//   - a council's settings (events.RetentionSettingsChanged) replace the
//     ones kept if their seq is higher; the objects they bear on are
//     decided again when they come due;
//   - a watermark (events.FactsWatermark) records that the copy holds every
//     fact the registry committed before its time: the sweeper deletes
//     nothing it marked after the newest watermark.
//
// The same message twice, or messages in any order, leave the newest of
// each.
func (s *Service) HandleFacts(ctx context.Context, m bus.Message) error {
	msg, err := events.DecodeFacts(m.Value)
	if err != nil {
		return bus.Permanent(err)
	}
	switch {
	case msg.Exam != nil:
		kept, err := s.d.Store.SaveFacts(ctx, msg.Exam)
		if err != nil || !kept {
			return err
		}
		ces, err := s.d.Facts.ExamEvidence(ctx, msg.Exam.ExamID, msg.Exam.CandidateID)
		if errors.Is(err, facts.ErrNotFound) {
			return nil // the archiver reads facts elsewhere, which do not know it yet
		}
		if err != nil {
			return fmt.Errorf("facts of %s/%s: %w", msg.Exam.ExamID, msg.Exam.CandidateID, err)
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
	case msg.Settings != nil:
		_, err := s.d.Store.SaveSettings(ctx, msg.Settings)
		return err
	default:
		return s.d.Store.SaveWatermark(ctx, msg.Watermark, s.now())
	}
}
