package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/registry/store"
)

// TestRetentionBackfill: the backfill writes one snapshot of every
// candidate-exam's facts and one of every council's settings to the
// outbox, reporting its progress, and running it again writes the same
// facts again (with higher seqs). The relay's watermark waits while any of
// them is unpublished, and then covers the last of them.
func TestRetentionBackfill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	world(t, s)
	if err := s.SetAdmission(ctx, "exam1", "ivanov", false, "не явился", 0, examDay); err != nil {
		t.Fatal(err)
	}
	drain := func() (snaps map[string]events.RetentionChangedV2, settings []string, last int64) {
		t.Helper()
		snaps = map[string]events.RetentionChangedV2{}
		if _, err := s.RelayOutbox(ctx, 1000, time.Now(), func(_ context.Context, e store.OutboxEvent) error {
			if e.Topic != events.TopicRetentionV2 {
				return nil
			}
			m, err := events.DecodeFacts(e.Value)
			switch {
			case err != nil:
				return err
			case m.Exam != nil:
				snaps[m.Exam.ExamID+"/"+m.Exam.CandidateID] = *m.Exam
			case m.Settings != nil:
				settings = append(settings, m.Settings.Council)
			}
			last = e.ID
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return snaps, settings, last
	}
	drain() // what the changes above wrote

	backfill := func() (int, []int) {
		t.Helper()
		var seen []int
		n, err := s.RetentionBackfill(ctx, 1, time.Now(), func(done, total int) {
			if total != 2 {
				t.Errorf("backfill progress: %d of %d, want of 2", done, total)
			}
			seen = append(seen, done)
		})
		if err != nil {
			t.Fatal(err)
		}
		return n, seen
	}
	n, progress := backfill()
	if n != 2 || len(progress) != 2 || progress[1] != 2 {
		t.Fatalf("backfill: %d candidate-exams, progress %v; want 2, reported after each", n, progress)
	}
	if _, ok, err := s.FactsWatermark(ctx); err != nil || ok {
		t.Errorf("watermark with the backfill unpublished: ok %v, %v; want none", ok, err)
	}
	first, settings, last := drain()
	if len(first) != 2 || first["exam1/ivanov"].Admission != store.AdmissionRefused || first["exam1/petrov"].Site != "site1" ||
		first["exam1/ivanov"].Reason != store.FactsReasonBackfill {
		t.Errorf("backfilled snapshots %+v, want ivanov's (refused) and petrov's", first)
	}
	if len(settings) != 1 || settings[0] != "council1" {
		t.Errorf("backfilled settings of %v, want council1's", settings)
	}
	if w, ok, err := s.FactsWatermark(ctx); err != nil || !ok || w.Seq != last {
		t.Errorf("watermark after the relay: %+v ok %v, %v; want seq %d", w, ok, err, last)
	}

	// Again: the same facts, newer seqs.
	backfill()
	again, _, _ := drain()
	for k, a := range first {
		b := again[k]
		if b.Seq <= a.Seq {
			t.Errorf("%s backfilled again with seq %d after %d", k, b.Seq, a.Seq)
		}
		a.Seq, a.At, b.Seq, b.At = 0, time.Time{}, 0, time.Time{}
		if a.Admission != b.Admission || a.Site != b.Site || a.Start != b.Start || len(a.Appeals) != len(b.Appeals) ||
			a.Council != b.Council || a.Result != b.Result {
			t.Errorf("%s backfilled again differs:\n%+v\n%+v", k, a, b)
		}
	}
}
