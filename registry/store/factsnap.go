package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
)

// The archiver keeps its own copy of the facts it decides retention from
// (RetentionChanged v2, docs/NOTES.md, Session 6): every change to a
// candidate-exam's facts writes a snapshot of them to the outbox in its
// transaction (enqueueFacts), every change to a council's settings or
// sites a snapshot of those (enqueueSettings), and the relay publishes a
// watermark when nothing of the topic waits (FactsWatermark).

// Reasons of RetentionChangedV2 besides RetentionChanged's.
const (
	FactsReasonBackfill      = "backfill"
	FactsReasonDocumentAdded = "document_added"
)

// factsLock serialises the snapshots of one thing (a candidate-exam, or a
// council's settings) until the transaction ends. Taken before the snapshot
// is read and its outbox id drawn, it makes outbox ids follow the order in
// which the snapshots saw the database: a later snapshot, with a higher id,
// saw every change an earlier one saw, so the archiver may keep the one with
// the highest seq and lose nothing.
func factsLock(ctx context.Context, tx pgx.Tx, what string) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 7))`, "facts:"+what); err != nil {
		return fmt.Errorf("lock facts of %s: %w", what, err)
	}
	return nil
}

// enqueueFacts writes a snapshot of the facts of candidate's exam (of every
// candidate of the exam when candidate is "") into the outbox, in tx.
func enqueueFacts(ctx context.Context, tx pgx.Tx, exam, candidate, reason string, now time.Time) error {
	cands := []string{candidate}
	if candidate == "" {
		rows, err := tx.Query(ctx, `SELECT candidate_id FROM exam_candidates WHERE exam_id = $1 ORDER BY candidate_id`, exam)
		if err != nil {
			return fmt.Errorf("list candidates of exam %s: %w", exam, err)
		}
		if cands, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return fmt.Errorf("list candidates of exam %s: %w", exam, err)
		}
	}
	for _, c := range cands {
		if err := factsLock(ctx, tx, exam+"/"+c); err != nil {
			return err
		}
		ev, ok, err := snapshotFacts(ctx, tx, exam, c)
		if err != nil {
			return err
		}
		if !ok {
			continue // not a candidate of the exam: nothing to tell
		}
		ev.Reason, ev.At = reason, now.UTC()
		if err := enqueueV2(ctx, tx, now, func(seq int64) any { ev.Seq = seq; return &ev }); err != nil {
			return fmt.Errorf("write facts of %s in exam %s: %w", c, exam, err)
		}
	}
	return nil
}

// enqueueV2 writes one message of TopicRetentionV2 into the outbox, with
// its own outbox id as seq.
func enqueueV2(ctx context.Context, tx pgx.Tx, now time.Time, build func(seq int64) any) error {
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO outbox (topic, key, value, created_at) VALUES ($1, $2, '', $3) RETURNING id`,
		events.TopicRetentionV2, events.RetentionV2Key, now).Scan(&id)
	if err != nil {
		return fmt.Errorf("write to the outbox: %w", err)
	}
	b, err := json.Marshal(build(id))
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE outbox SET value = $2 WHERE id = $1`, id, b); err != nil {
		return fmt.Errorf("write to the outbox: %w", err)
	}
	return nil
}

// snapshotFacts reads the facts of candidate's exam, in tx, with the query
// the registry's own answers use (evidenceSelect); ok is false if the
// candidate is not in the exam.
func snapshotFacts(ctx context.Context, tx pgx.Tx, exam, candidate string) (events.RetentionChangedV2, bool, error) {
	rows, err := tx.Query(ctx, evidenceSelect+` WHERE e.id = $1 AND ec.candidate_id = $2`, exam, candidate)
	if err != nil {
		return events.RetentionChangedV2{}, false, fmt.Errorf("read facts of %s in exam %s: %w", candidate, exam, err)
	}
	exams, err := pgx.CollectRows(rows, scanEvidenceExam)
	if err != nil {
		return events.RetentionChangedV2{}, false, fmt.Errorf("read facts of %s in exam %s: %w", candidate, exam, err)
	}
	if len(exams) == 0 {
		return events.RetentionChangedV2{}, false, nil
	}
	if err := addAppeals(ctx, tx, exams); err != nil {
		return events.RetentionChangedV2{}, false, err
	}
	e := exams[0]
	ev := events.RetentionChangedV2{Type: events.FactsCandidateExam, ExamID: e.ExamID, CandidateID: e.CandidateID,
		Council: e.Council, Site: e.Site, Qualification: e.Qualification, Start: e.Start.UTC(), End: e.End.UTC(),
		Webcam: e.Webcam, Screen: e.Screen, Admission: e.Admission, Result: string(e.Result), ResultAt: e.ResultAt.UTC(),
		DisposedAt: e.DisposedAt.UTC(), Appeals: []events.AppealFacts{}, Documents: []events.DocumentFacts{}}
	if e.ResultAt.IsZero() {
		ev.ResultAt = time.Time{}
	}
	if e.DisposedAt.IsZero() {
		ev.DisposedAt = time.Time{}
	}
	if c := e.Certificate; c != nil {
		ev.Certificate = &events.CertificateFacts{Number: c.Number, ValidUntil: c.ValidUntil.UTC()}
		if !c.RevokedAt.IsZero() {
			ev.Certificate.RevokedAt = c.RevokedAt.UTC()
		}
	}
	for _, a := range e.Appeals {
		af := events.AppealFacts{ID: a.ID, OpenedAt: a.OpenedAt.UTC()}
		if !a.ClosedAt.IsZero() {
			af.ClosedAt = a.ClosedAt.UTC()
		}
		ev.Appeals = append(ev.Appeals, af)
	}
	if err := tx.QueryRow(ctx, `SELECT center_id FROM exams WHERE id = $1`, exam).Scan(&ev.Center); err != nil {
		return events.RetentionChangedV2{}, false, fmt.Errorf("read center of exam %s: %w", exam, err)
	}
	rows, err = tx.Query(ctx, `
		SELECT d.id, coalesce(d.exam_id, ''), coalesce(d.candidate_id, ''), d.object_key, d.kind, d.bytes, d.sha256, d.uploaded_at
		FROM exam_candidates ec JOIN documents d ON `+documentOfCandidateExam+`
		WHERE ec.exam_id = $1 AND ec.candidate_id = $2 ORDER BY d.object_key`, exam, candidate)
	if err != nil {
		return events.RetentionChangedV2{}, false, fmt.Errorf("read documents of %s in exam %s: %w", candidate, exam, err)
	}
	docs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (events.DocumentFacts, error) {
		var d events.DocumentFacts
		err := r.Scan(&d.ID, &d.ExamID, &d.CandidateID, &d.Key, &d.Kind, &d.Bytes, &d.SHA256, &d.UploadedAt)
		d.UploadedAt = d.UploadedAt.UTC()
		return d, err
	})
	if err != nil {
		return events.RetentionChangedV2{}, false, fmt.Errorf("read documents of %s in exam %s: %w", candidate, exam, err)
	}
	ev.Documents = append(ev.Documents, docs...)
	return ev, true, nil
}

// enqueueDocumentFacts writes a snapshot of every candidate-exam the
// document id is evidence of, in tx.
func enqueueDocumentFacts(ctx context.Context, tx pgx.Tx, id string, now time.Time) error {
	rows, err := tx.Query(ctx, `SELECT ec.exam_id, ec.candidate_id FROM documents d JOIN exam_candidates ec ON `+
		documentOfCandidateExam+` WHERE d.id = $1 ORDER BY ec.exam_id, ec.candidate_id`, id)
	if err != nil {
		return fmt.Errorf("list candidate-exams of document %s: %w", id, err)
	}
	refs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[CandidateExamRef])
	if err != nil {
		return fmt.Errorf("list candidate-exams of document %s: %w", id, err)
	}
	for _, r := range refs {
		if err := enqueueFacts(ctx, tx, r.ExamID, r.CandidateID, FactsReasonDocumentAdded, now); err != nil {
			return err
		}
	}
	return nil
}

// enqueueSettings writes a snapshot of council's retention settings and
// sites into the outbox, in tx.
func enqueueSettings(ctx context.Context, tx pgx.Tx, council string, now time.Time) error {
	if err := factsLock(ctx, tx, "settings/"+council); err != nil {
		return err
	}
	ev := events.RetentionSettingsChanged{Type: events.FactsSettings, At: now.UTC(), Council: council,
		Settings: []events.CouncilSettings{}, Sites: []string{}}
	rows, err := tx.Query(ctx, `SELECT qualification_code, appeal_window_days, provisional_days, unlinked_days
		FROM retention_settings WHERE council_id = $1 ORDER BY qualification_code DESC`, council)
	if err != nil {
		return fmt.Errorf("read retention settings of %s: %w", council, err)
	}
	ev.Settings, err = pgx.CollectRows(rows, pgx.RowToStructByPos[events.CouncilSettings])
	if err != nil {
		return fmt.Errorf("read retention settings of %s: %w", council, err)
	}
	rows, err = tx.Query(ctx, `SELECT si.id FROM sites si JOIN centers c ON c.id = si.center_id WHERE c.council_id = $1 ORDER BY si.id`, council)
	if err != nil {
		return fmt.Errorf("read sites of %s: %w", council, err)
	}
	if ev.Sites, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return fmt.Errorf("read sites of %s: %w", council, err)
	}
	if ev.Settings == nil {
		ev.Settings = []events.CouncilSettings{}
	}
	if ev.Sites == nil {
		ev.Sites = []string{}
	}
	if err := enqueueV2(ctx, tx, now, func(seq int64) any { ev.Seq = seq; return &ev }); err != nil {
		return fmt.Errorf("write retention settings of %s: %w", council, err)
	}
	return nil
}

// FactsWatermark returns the watermark the relay may publish now on
// TopicRetentionV2: the last outbox id of the topic and the database's
// time, read in one snapshot. ok is false while an event of the topic waits
// to be published (another relay may be publishing it): then a watermark
// could overtake it.
func (s *Store) FactsWatermark(ctx context.Context) (w events.FactsWatermark, ok bool, err error) {
	var pending bool
	err = s.pool.QueryRow(ctx, `SELECT now(), coalesce((SELECT max(id) FROM outbox WHERE topic = $1), 0),
			EXISTS (SELECT 1 FROM outbox WHERE topic = $1 AND published_at IS NULL)`, events.TopicRetentionV2).
		Scan(&w.At, &w.Seq, &pending)
	if err != nil {
		return w, false, fmt.Errorf("read the facts watermark: %w", err)
	}
	w.Type, w.At = events.FactsWatermarkType, w.At.UTC()
	return w, !pending, nil
}

// RetentionBackfill writes into the outbox a snapshot of every
// candidate-exam's facts and of every council's settings, batch
// candidate-exams a transaction, so that an archiver that starts keeping
// its own copy learns what was there before. It is idempotent: a snapshot
// is the state, and a second one only replaces the first. progress, if not
// nil, is told after each batch how many of how many are written.
func (s *Store) RetentionBackfill(ctx context.Context, batch int, now time.Time, progress func(done, total int)) (int, error) {
	if batch <= 0 {
		return 0, fmt.Errorf("retention backfill: %w: batch %d is not positive", ErrInvalid, batch)
	}
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM exam_candidates`).Scan(&total); err != nil {
		return 0, fmt.Errorf("retention backfill: %w", err)
	}
	done := 0
	after := CandidateExamRef{}
	for {
		var page []CandidateExamRef
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT exam_id, candidate_id FROM exam_candidates WHERE (exam_id, candidate_id) > ($1, $2)
				ORDER BY exam_id, candidate_id LIMIT $3`, after.ExamID, after.CandidateID, batch)
			if err != nil {
				return err
			}
			if page, err = pgx.CollectRows(rows, pgx.RowToStructByPos[CandidateExamRef]); err != nil {
				return err
			}
			for _, r := range page {
				if err := enqueueFacts(ctx, tx, r.ExamID, r.CandidateID, FactsReasonBackfill, now); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return done, fmt.Errorf("retention backfill after %s/%s: %w", after.ExamID, after.CandidateID, err)
		}
		if len(page) == 0 {
			break
		}
		done += len(page)
		after = page[len(page)-1]
		if progress != nil {
			progress(done, max(total, done))
		}
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id FROM councils ORDER BY id`)
		if err != nil {
			return err
		}
		councils, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, c := range councils {
			if err := enqueueSettings(ctx, tx, c, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return done, fmt.Errorf("retention backfill of the councils' settings: %w", err)
	}
	return done, nil
}

// enqueueSiteSettings writes the settings snapshot of the council of center
// (whose sites' unlinked footage takes its period) after a site changed.
func enqueueSiteSettings(ctx context.Context, tx pgx.Tx, center string) error {
	var council *string
	if err := tx.QueryRow(ctx, `SELECT council_id FROM centers WHERE id = $1`, center).Scan(&council); err != nil {
		return fmt.Errorf("read council of center %s: %w", center, err)
	}
	if council == nil || *council == "" {
		return nil
	}
	return enqueueSettings(ctx, tx, *council, time.Now())
}
