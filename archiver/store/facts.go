package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/facts"
	"github.com/nokstream/nokstream/internal/evidence/retention"
)

// The archiver's copy of the registry's facts (migration 00011): it answers
// what the archiver's decisions ask (SiteEvidence, ExamEvidence,
// DocumentEvidence, EvidenceDocuments, PendingDocumentEvidence,
// OverdueEvidence) as the registry's store would, from the snapshots of
// topic nokstream.retention.v2.

// SaveFacts keeps the snapshot ev of a candidate-exam's facts unless the
// copy holds one with the same or a higher seq (delivery in any order, and
// twice, leaves the newest). It reports whether the copy holds ev now (kept
// now, or before: a redelivery), false when it holds a newer one.
func (s *Store) SaveFacts(ctx context.Context, ev *events.RetentionChangedV2) (bool, error) {
	b, err := json.Marshal(ev)
	if err != nil {
		return false, fmt.Errorf("save facts of %s/%s: %w", ev.ExamID, ev.CandidateID, err)
	}
	closed := false
	for _, a := range ev.Appeals {
		closed = closed || !a.ClosedAt.IsZero()
	}
	kept := false
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `
			INSERT INTO archiver.candidate_exams AS c (exam_id, candidate_id, seq, council, site, starts_at, ends_at,
				has_result, disposed, appeal_closed, facts)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
			ON CONFLICT (exam_id, candidate_id) DO UPDATE SET seq = EXCLUDED.seq, council = EXCLUDED.council,
				site = EXCLUDED.site, starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at,
				has_result = EXCLUDED.has_result, disposed = EXCLUDED.disposed, appeal_closed = EXCLUDED.appeal_closed,
				facts = EXCLUDED.facts, received_at = now()
			WHERE c.seq < EXCLUDED.seq`,
			ev.ExamID, ev.CandidateID, ev.Seq, ev.Council, ev.Site, ev.Start, ev.End,
			ev.Result != "", !ev.DisposedAt.IsZero(), closed, b)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var seq int64
			err := tx.QueryRow(ctx, `SELECT seq FROM archiver.candidate_exams WHERE exam_id = $1 AND candidate_id = $2`,
				ev.ExamID, ev.CandidateID).Scan(&seq)
			kept = seq == ev.Seq
			return err
		}
		kept = true
		if _, err := tx.Exec(ctx, `DELETE FROM archiver.candidate_exam_documents WHERE exam_id = $1 AND candidate_id = $2`,
			ev.ExamID, ev.CandidateID); err != nil {
			return err
		}
		for _, d := range ev.Documents {
			if _, err := tx.Exec(ctx, `INSERT INTO archiver.candidate_exam_documents (object_key, exam_id, candidate_id)
				VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, d.Key, ev.ExamID, ev.CandidateID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("save facts of %s/%s: %w", ev.ExamID, ev.CandidateID, err)
	}
	return kept, nil
}

// SaveSettings keeps a council's settings unless the copy holds a snapshot
// with the same or a higher seq. It reports whether ev was kept.
func (s *Store) SaveSettings(ctx context.Context, ev *events.RetentionSettingsChanged) (bool, error) {
	b, err := json.Marshal(ev.Settings)
	if err != nil {
		return false, fmt.Errorf("save retention settings of %s: %w", ev.Council, err)
	}
	sites := ev.Sites
	if sites == nil {
		sites = []string{}
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO archiver.retention_settings AS r (council, seq, settings, sites) VALUES ($1, $2, $3, $4)
		ON CONFLICT (council) DO UPDATE SET seq = EXCLUDED.seq, settings = EXCLUDED.settings, sites = EXCLUDED.sites
		WHERE r.seq < EXCLUDED.seq`, ev.Council, ev.Seq, b, sites)
	if err != nil {
		return false, fmt.Errorf("save retention settings of %s: %w", ev.Council, err)
	}
	return tag.RowsAffected() == 1, nil
}

// SaveWatermark records a consumed watermark if it is newer than the one
// recorded.
func (s *Store) SaveWatermark(ctx context.Context, w *events.FactsWatermark, now time.Time) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO archiver.facts_watermark AS w (seq, at, received_at) VALUES ($1, $2, $3)
		ON CONFLICT (one) DO UPDATE SET seq = greatest(w.seq, EXCLUDED.seq), at = EXCLUDED.at, received_at = EXCLUDED.received_at
		WHERE w.at < EXCLUDED.at`, w.Seq, w.At, now)
	if err != nil {
		return fmt.Errorf("save the facts watermark: %w", err)
	}
	return nil
}

// FactsWatermark returns the newest watermark consumed: the copy holds
// every fact the registry committed before its At. Zero if none came yet.
func (s *Store) FactsWatermark(ctx context.Context) (events.FactsWatermark, error) {
	w := events.FactsWatermark{Type: events.FactsWatermarkType}
	err := s.pool.QueryRow(ctx, `SELECT seq, at FROM archiver.facts_watermark`).Scan(&w.Seq, &w.At)
	if errors.Is(err, pgx.ErrNoRows) {
		return events.FactsWatermark{}, nil
	}
	if err != nil {
		return events.FactsWatermark{}, fmt.Errorf("read the facts watermark: %w", err)
	}
	return w, nil
}

// settingsOf reads the settings of councils, by council.
func (s *Store) settingsOf(ctx context.Context, councils []string) (map[string]facts.Settings, error) {
	out := map[string]facts.Settings{}
	if len(councils) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT council, settings FROM archiver.retention_settings WHERE council = ANY($1)`, councils)
	if err != nil {
		return nil, fmt.Errorf("read retention settings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		var st facts.Settings
		if err := rows.Scan(&c, &st); err != nil {
			return nil, fmt.Errorf("read retention settings: %w", err)
		}
		out[c] = st
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read retention settings: %w", err)
	}
	return out, nil
}

// evidenceExams reads the snapshots a query selects (its one column is
// facts) as candidate-exams under their councils' settings.
func (s *Store) evidenceExams(ctx context.Context, what, q string, args ...any) ([]facts.EvidenceExam, error) {
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read facts of %s: %w", what, err)
	}
	snaps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (events.RetentionChangedV2, error) {
		var ev events.RetentionChangedV2
		err := r.Scan(&ev)
		return ev, err
	})
	if err != nil {
		return nil, fmt.Errorf("read facts of %s: %w", what, err)
	}
	var councils []string
	for _, ev := range snaps {
		if !slices.Contains(councils, ev.Council) {
			councils = append(councils, ev.Council)
		}
	}
	settings, err := s.settingsOf(ctx, councils)
	if err != nil {
		return nil, err
	}
	out := make([]facts.EvidenceExam, 0, len(snaps))
	for i := range snaps {
		out = append(out, facts.FromSnapshot(&snaps[i], settings[snaps[i].Council]))
	}
	return out, nil
}

// SiteEvidence returns every candidate-exam of an exam at site whose window
// overlaps [from, to), with its appeals, and the unlinked period the site's
// council sets (zero for the archiver's default): the registry store's
// answer, from the copy.
func (s *Store) SiteEvidence(ctx context.Context, site string, from, to time.Time) ([]facts.EvidenceExam, time.Duration, error) {
	exams, err := s.evidenceExams(ctx, "site "+site, `SELECT facts FROM archiver.candidate_exams
		WHERE site = $1 AND starts_at < $3 AND ends_at > $2 ORDER BY starts_at, exam_id, candidate_id`, site, from, to)
	if err != nil {
		return nil, 0, err
	}
	var st facts.Settings
	err = s.pool.QueryRow(ctx, `SELECT settings FROM archiver.retention_settings WHERE sites @> ARRAY[$1]::text[]
		ORDER BY seq DESC LIMIT 1`, site).Scan(&st)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, 0, fmt.Errorf("read unlinked period of site %s: %w", site, err)
	}
	return exams, st.Unlinked(), nil
}

// ExamEvidence returns the candidate-exams of exam: the one of candidate,
// or every candidate's when candidate is "". One the copy does not hold is
// facts.ErrNotFound.
func (s *Store) ExamEvidence(ctx context.Context, exam, candidate string) ([]facts.EvidenceExam, error) {
	exams, err := s.evidenceExams(ctx, "exam "+exam, `SELECT facts FROM archiver.candidate_exams
		WHERE exam_id = $1 AND ($2 = '' OR candidate_id = $2) ORDER BY candidate_id`, exam, candidate)
	if err != nil {
		return nil, err
	}
	if len(exams) == 0 {
		return nil, fmt.Errorf("read facts of exam %s candidate %q: %w", exam, candidate, facts.ErrNotFound)
	}
	return exams, nil
}

// DocumentEvidence returns the candidate-exams the document stored under
// key is evidence of; none for a document of none.
func (s *Store) DocumentEvidence(ctx context.Context, key string) ([]facts.EvidenceExam, error) {
	return s.evidenceExams(ctx, "document "+key, `SELECT c.facts FROM archiver.candidate_exam_documents d
		JOIN archiver.candidate_exams c USING (exam_id, candidate_id)
		WHERE d.object_key = $1 ORDER BY c.exam_id, c.candidate_id`, key)
}

// EvidenceDocuments returns the documents that are evidence of candidate's
// exam, in object-key order, with what the archiver recorded of each.
func (s *Store) EvidenceDocuments(ctx context.Context, exam, candidate string) ([]facts.EvidenceDocument, error) {
	var ev events.RetentionChangedV2
	err := s.pool.QueryRow(ctx, `SELECT facts FROM archiver.candidate_exams WHERE exam_id = $1 AND candidate_id = $2`,
		exam, candidate).Scan(&ev)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list evidence documents of exam %s candidate %s: %w", exam, candidate, err)
	}
	keys := make([]string, 0, len(ev.Documents))
	for _, d := range ev.Documents {
		keys = append(keys, d.Key)
	}
	objs, err := s.ArchiveObjectsByKeys(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("list evidence documents of exam %s candidate %s: %w", exam, candidate, err)
	}
	byKey := map[string]ArchiveObject{}
	for _, o := range objs {
		byKey[o.Key] = o
	}
	out := make([]facts.EvidenceDocument, 0, len(ev.Documents))
	for _, d := range ev.Documents {
		o, archived := byKey[d.Key]
		out = append(out, facts.EvidenceDocument{ID: d.ID, CandidateID: d.CandidateID, ExamID: d.ExamID, Kind: d.Kind,
			ObjectKey: d.Key, Bytes: d.Bytes, SHA256: d.SHA256, UploadedAt: d.UploadedAt,
			Archived: archived, Verified: o.Verified, DeletedAt: o.DeletedAt})
	}
	slices.SortFunc(out, func(a, b facts.EvidenceDocument) int { return cmp.Compare(a.ObjectKey, b.ObjectKey) })
	return out, nil
}

// PendingDocumentEvidence returns up to limit candidate-exams that have an
// evidence document the archiver has not taken yet.
func (s *Store) PendingDocumentEvidence(ctx context.Context, limit int) ([]facts.CandidateExamRef, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT DISTINCT d.exam_id, d.candidate_id FROM archiver.candidate_exam_documents d
		WHERE NOT EXISTS (SELECT 1 FROM archiver.archive_objects a WHERE a.object_key = d.object_key)
		ORDER BY d.exam_id, d.candidate_id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list candidate-exams with new documents: %w", err)
	}
	refs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[facts.CandidateExamRef])
	if err != nil {
		return nil, fmt.Errorf("list candidate-exams with new documents: %w", err)
	}
	return refs, nil
}

// OverdueEvidence returns the candidate-exams whose evidence is overdue at
// now: no result, no appeal ended, no disposal, and the provisional period
// after the exam (the council's or qualification's, at least floor, else
// defaultProvisional) over. Oldest due first.
func (s *Store) OverdueEvidence(ctx context.Context, now time.Time, defaultProvisional, floor time.Duration) ([]facts.OverdueEvidence, error) {
	rows, err := s.pool.Query(ctx, `SELECT facts FROM archiver.candidate_exams
		WHERE NOT has_result AND NOT disposed AND NOT appeal_closed AND ends_at <= $1`, now)
	if err != nil {
		return nil, fmt.Errorf("list overdue evidence: %w", err)
	}
	snaps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (events.RetentionChangedV2, error) {
		var ev events.RetentionChangedV2
		err := r.Scan(&ev)
		return ev, err
	})
	if err != nil {
		return nil, fmt.Errorf("list overdue evidence: %w", err)
	}
	var councils []string
	for _, ev := range snaps {
		if !slices.Contains(councils, ev.Council) {
			councils = append(councils, ev.Council)
		}
	}
	settings, err := s.settingsOf(ctx, councils)
	if err != nil {
		return nil, err
	}
	var out []facts.OverdueEvidence
	for _, ev := range snaps {
		days := max(settings[ev.Council].ProvisionalDays(ev.Qualification, int(defaultProvisional/retention.Day)), int(floor/retention.Day))
		o := facts.OverdueEvidence{ExamID: ev.ExamID, CandidateID: ev.CandidateID, CouncilID: ev.Council, CenterID: ev.Center,
			SiteID: ev.Site, Qualification: ev.Qualification, ExamEnd: ev.End, ProvisionalDays: days,
			Due: ev.End.Add(time.Duration(days) * retention.Day)}
		if !o.Due.After(now) {
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b facts.OverdueEvidence) int {
		return cmp.Or(a.Due.Compare(b.Due), cmp.Compare(a.ExamID, b.ExamID), cmp.Compare(a.CandidateID, b.CandidateID))
	})
	return out, nil
}
