package archiver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

	"github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/evidence/retention"
)

// applyDecision applies d to the stored object o: its retain-until date
// where d extends what o has (every date for a new object), and its legal
// hold where that changes. The blob store is changed before the database, so
// that a crash in between is repaired by deciding again. An object missing
// from the store has nothing to lock; the check on arrival reported it.
func (s *Service) applyDecision(ctx context.Context, o store.ArchiveObject, d retention.Decision, isNew bool) error {
	if o.DeletedAt != nil {
		return nil
	}
	if (isNew || d.RetainUntil.After(o.RetainUntil)) && d.RetainUntil.After(s.now()) {
		err := s.d.Blob.SetRetention(ctx, o.Key, d.RetainUntil)
		switch {
		case errors.Is(err, blob.ErrNotFound):
			s.d.Log.Warn("cannot lock a missing object", "object_key", o.Key)
			return nil
		case err != nil:
			s.m.applyErrors.WithLabelValues("retention").Inc()
			return fmt.Errorf("apply retention to %s: %w", o.Key, err)
		}
		s.m.applied.WithLabelValues("retain_until").Inc()
	}
	if (isNew && d.LegalHold) || (!isNew && d.LegalHold != o.LegalHold) {
		err := s.d.Blob.SetLegalHold(ctx, o.Key, d.LegalHold)
		switch {
		case errors.Is(err, blob.ErrNotFound):
			s.d.Log.Warn("cannot hold a missing object", "object_key", o.Key)
			return nil
		case err != nil:
			s.m.applyErrors.WithLabelValues("hold").Inc()
			return fmt.Errorf("apply legal hold to %s: %w", o.Key, err)
		}
		change := "release"
		if d.LegalHold {
			change = "hold"
		}
		s.m.applied.WithLabelValues(change).Inc()
	}
	return nil
}

// applyBatch applies decisions to objects already archived, Parallel at a
// time, and records those that changed in one transaction.
func (s *Service) applyBatch(ctx context.Context, objs []store.ArchiveObject, ds []retention.Decision) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.Parallel)
	changed := make([]bool, len(objs))
	for i := range objs {
		o, d := objs[i], ds[i]
		if !d.RetainUntil.After(o.RetainUntil) && d.LegalHold == o.LegalHold {
			// Nothing to apply; record the rule if it changed, so that
			// the row says why.
			changed[i] = string(d.Rule) != o.Rule
			continue
		}
		changed[i] = true
		g.Go(func() error { return s.applyDecision(gctx, o, d, false) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	now := s.now()
	var updates []store.RetentionUpdate
	for i, o := range objs {
		if !changed[i] {
			continue
		}
		b := decisionJSON(ds[i])
		updates = append(updates, store.RetentionUpdate{Key: o.Key, RetainUntil: ds[i].RetainUntil,
			LegalHold: ds[i].LegalHold, Rule: string(ds[i].Rule), Decision: b, DecidedAt: now})
	}
	return s.d.Store.SetArchiveRetention(ctx, updates)
}

// storedReasons is how many reasons of a decision are kept in the database:
// the holds and the latest dates, enough to say why an object was kept or
// deleted; explain recomputes the rest from the registry.
const storedReasons = 4

// decisionJSON encodes a decision for archive_objects.decision.
func decisionJSON(d retention.Decision) []byte {
	if len(d.Reasons) > storedReasons {
		d.Reasons = d.Reasons[:storedReasons]
	}
	b, _ := json.Marshal(d) // Plain data: never fails.
	return b
}
