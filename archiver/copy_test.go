package archiver_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	astore "github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/facts"
)

// copyFacts is what the archiver's tests decide from: the archiver's own
// copy of the registry's facts (its store), brought up to date before each
// read with every RetentionChanged v2 message the registry wrote to its
// outbox since, as a consumer of events.TopicRetentionV2 with no lag holds
// it. So every test of the archiver decides on the copy, fed by the
// registry's own snapshots, and none on the registry's tables.
type copyFacts struct {
	*astore.Store
	pool *pgxpool.Pool // the registry's database, to read its outbox

	mu   sync.Mutex
	last int64 // the last outbox id taken
	// frozen stops the syncing: the copy falls behind the registry.
	frozen atomic.Bool
	// watermarked makes FactsWatermark the store's, the newest
	// watermark it consumed, instead of the end of time.
	watermarked atomic.Bool
}

func newCopyFacts(t *testing.T, dsn string, ast *astore.Store) *copyFacts {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &copyFacts{Store: ast, pool: pool}
}

// sync feeds the copy every v2 message of the outbox it has not had yet.
func (c *copyFacts) sync(ctx context.Context) error {
	if c.frozen.Load() {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	rows, err := c.pool.Query(ctx, `SELECT id, value FROM outbox WHERE topic = $1 AND id > $2 ORDER BY id`,
		events.TopicRetentionV2, c.last)
	if err != nil {
		return err
	}
	type row struct {
		id    int64
		value []byte
	}
	msgs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.id, &x.value)
		return x, err
	})
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := feedCopy(ctx, c.Store, m.value); err != nil {
			return fmt.Errorf("outbox %d: %w", m.id, err)
		}
		c.last = m.id
	}
	return nil
}

// feedCopy hands one v2 message to the copy, as HandleFacts does.
func feedCopy(ctx context.Context, ast *astore.Store, value []byte) error {
	m, err := events.DecodeFacts(value)
	if err != nil {
		return err
	}
	switch {
	case m.Exam != nil:
		_, err = ast.SaveFacts(ctx, m.Exam)
	case m.Settings != nil:
		_, err = ast.SaveSettings(ctx, m.Settings)
	default:
		err = ast.SaveWatermark(ctx, m.Watermark, time.Now())
	}
	return err
}

func (c *copyFacts) SiteEvidence(ctx context.Context, site string, from, to time.Time) ([]facts.EvidenceExam, time.Duration, error) {
	if err := c.sync(ctx); err != nil {
		return nil, 0, err
	}
	return c.Store.SiteEvidence(ctx, site, from, to)
}

func (c *copyFacts) ExamEvidence(ctx context.Context, exam, candidate string) ([]facts.EvidenceExam, error) {
	if err := c.sync(ctx); err != nil {
		return nil, err
	}
	return c.Store.ExamEvidence(ctx, exam, candidate)
}

func (c *copyFacts) DocumentEvidence(ctx context.Context, key string) ([]facts.EvidenceExam, error) {
	if err := c.sync(ctx); err != nil {
		return nil, err
	}
	return c.Store.DocumentEvidence(ctx, key)
}

func (c *copyFacts) EvidenceDocuments(ctx context.Context, exam, candidate string) ([]facts.EvidenceDocument, error) {
	if err := c.sync(ctx); err != nil {
		return nil, err
	}
	return c.Store.EvidenceDocuments(ctx, exam, candidate)
}

func (c *copyFacts) PendingDocumentEvidence(ctx context.Context, limit int) ([]facts.CandidateExamRef, error) {
	if err := c.sync(ctx); err != nil {
		return nil, err
	}
	return c.Store.PendingDocumentEvidence(ctx, limit)
}

func (c *copyFacts) OverdueEvidence(ctx context.Context, now time.Time, defaultProvisional, floor time.Duration) ([]facts.OverdueEvidence, error) {
	if err := c.sync(ctx); err != nil {
		return nil, err
	}
	return c.Store.OverdueEvidence(ctx, now, defaultProvisional, floor)
}

// FactsWatermark: the copy is current (sync runs before every read), so
// the watermark is the end of time, unless the test asks for the store's
// own (TestStaleFactsDeleteNothing).
func (c *copyFacts) FactsWatermark(ctx context.Context) (events.FactsWatermark, error) {
	if c.watermarked.Load() {
		return c.Store.FactsWatermark(ctx)
	}
	return events.FactsWatermark{Type: events.FactsWatermarkType, At: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}, nil
}
