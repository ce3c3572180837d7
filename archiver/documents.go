package archiver

import (
	"context"
	"errors"
	"fmt"

	"github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/evidence/facts"
	"github.com/nokstream/nokstream/internal/evidence/retention"
)

// Scans of the candidate's documents and the exam's commission protocol
// are evidence of the candidate-exam as its footage is: the archiver takes
// each one (checks its stored bytes against what the registry recorded on
// upload), gives it the retention and legal hold of every candidate-exam it
// is evidence of, lists it in the seal and so ships it in the bundle.

// takeDocuments takes the evidence documents of ce that the archiver has
// not taken yet, and decides again for those it has.
func (s *Service) takeDocuments(ctx context.Context, ce facts.EvidenceExam) error {
	docs, err := s.d.Facts.EvidenceDocuments(ctx, ce.ExamID, ce.CandidateID)
	if err != nil {
		return err
	}
	// Whether it took one is in its own store: the registry's copy of
	// that follows through the bus.
	all := make([]string, 0, len(docs))
	for _, d := range docs {
		all = append(all, d.ObjectKey)
	}
	took, err := s.d.Store.ArchiveObjectsByKeys(ctx, all)
	if err != nil {
		return err
	}
	taken := make(map[string]bool, len(took))
	for _, o := range took {
		taken[o.Key] = true
	}
	var keys []string
	for _, d := range docs {
		if taken[d.ObjectKey] {
			keys = append(keys, d.ObjectKey)
			continue
		}
		ok, detail, err := s.checkObject(ctx, d.ObjectKey, d.SHA256, d.Bytes)
		if err != nil {
			return err // blob store unreachable: retry
		}
		if !ok {
			s.m.failures.Inc()
			s.d.Log.Error("ALERT document integrity check failed", "document_id", d.ID, "detail", detail)
		}
		o := store.ArchiveObject{Key: d.ObjectKey, Kind: store.ArchiveDocument, Site: ce.Site, Source: d.Kind,
			Start: d.UploadedAt, End: d.UploadedAt, Bytes: d.Bytes, SHA256: d.SHA256, ExamID: d.ExamID,
			CandidateID: d.CandidateID, Verified: ok, DecidedAt: s.now()}
		dd, err := s.decideDocument(ctx, o, true)
		if err != nil {
			return err
		}
		if err := s.applyDecision(ctx, o, dd, true); err != nil {
			return err
		}
		setDecision(&o, dd)
		if err := s.d.Store.SaveArchiveObject(ctx, o); err != nil {
			return err
		}
		s.d.Log.Info("took document as evidence", "document_id", d.ID, "kind", d.Kind, "exam_id", ce.ExamID,
			"retain_until", dd.RetainUntil, "legal_hold", dd.LegalHold)
	}
	if len(keys) == 0 {
		return nil
	}
	objs, err := s.d.Store.ArchiveObjectsByKeys(ctx, keys)
	if err != nil {
		return err
	}
	return s.decideAndApply(ctx, objs)
}

// decideDocument decides for a document: it is kept as the longest-kept
// candidate-exam it is evidence of, and held while any of them is.
func (d *decider) decideDocument(ctx context.Context, o store.ArchiveObject, isNew bool) (retention.Decision, error) {
	ces, err := d.facts.DocumentEvidence(ctx, o.Key)
	if err != nil {
		return retention.Decision{}, err
	}
	var exams []retention.CandidateExam
	for _, ce := range ces {
		exams = append(exams, ce.CandidateExam)
	}
	if len(exams) == 0 && !isNew {
		// Evidence of nothing any more (its candidate left every exam):
		// nothing lowers a date, so keep what it has.
		return retention.Decision{RetainUntil: o.RetainUntil, LegalHold: o.LegalHold, Rule: retention.Rule(o.Rule)}, nil
	}
	return d.settings.Decide(retention.Object{Key: o.Key, End: o.End}, exams, applied(o, isNew)).At(d.now()), nil
}

// takeNewDocuments takes the documents uploaded since the last pass: each
// candidate-exam with one is decided again and, if due, sealed again (a seal
// only grows).
func (s *Service) takeNewDocuments(ctx context.Context) error {
	refs, err := s.d.Facts.PendingDocumentEvidence(ctx, s.cfg.Batch)
	if err != nil {
		return err
	}
	for _, r := range refs {
		ces, err := s.d.Facts.ExamEvidence(ctx, r.ExamID, r.CandidateID)
		if errors.Is(err, facts.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		for _, ce := range ces {
			if err := s.takeDocuments(ctx, ce); err != nil {
				return fmt.Errorf("take documents of exam %s: %w", ce.ExamID, err)
			}
			if err := s.sealIfDue(ctx, ce); err != nil {
				return err
			}
		}
	}
	return nil
}
