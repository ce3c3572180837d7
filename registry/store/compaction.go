package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The segment index's covering index (segment_rows_stream_start) is
// written by every stream at once: each stream's entries grow at the end of
// its own range of the index, so the page that takes them splits in half
// again and again, and a stream's pages end up half full and scattered
// among every other stream's. At 100 M rows that made ~280 bytes a row
// where a built index takes ~177, and an exam's media reads a third more
// pages than it would. A month that is no longer written is rebuilt once
// (REINDEX CONCURRENTLY: reads and writes go on), which lays each stream's
// entries out dense and in order.
//
// Only the schema's owner may rebuild an index, and REINDEX CONCURRENTLY
// cannot run in a function (a transaction), so this is an owner's command
// (`nokstream index compact`), run like the migrations, not something the
// services' runtime role can do.

// CompactionGrace is how long after a month ends its partition is left to
// late footage (a site's spool uploads what it held while offline) before
// it is rebuilt; what arrives later still is indexed, only less densely.
const CompactionGrace = 7 * 24 * time.Hour

// CompactedPartition is one partition's rebuild.
type CompactedPartition struct {
	Partition string
	Index     string
	// Rows is the partition's row count as PostgreSQL estimates it (before
	// the rebuild, from its last ANALYZE; after, the rows the rebuild read).
	Rows                    int64
	BytesBefore, BytesAfter int64
	Took                    time.Duration
}

// CompactSegmentIndex rebuilds the covering index of each monthly
// partition of the segment index that ended at least grace before now and
// has not been rebuilt (segment_index_compactions), oldest first, connected
// to ownerDSN as the schema's owner. It reports each partition to progress
// (if not nil) as it starts (Took zero) and ends, and returns those it
// rebuilt. A rebuild needs free disk for the new index beside the old one,
// up to the old one's size (BytesBefore); a rebuild that fails leaves the
// old index as it was, and its unfinished copy is dropped. Only one runs at
// a time: another is refused.
func CompactSegmentIndex(ctx context.Context, ownerDSN string, now time.Time, grace time.Duration,
	progress func(CompactedPartition)) ([]CompactedPartition, error) {
	conn, err := pgx.Connect(ctx, ownerDSN)
	if err != nil {
		return nil, fmt.Errorf("compact the segment index: connect as the owner: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext('nokstream_compact_segment_index'))`).Scan(&locked); err != nil {
		return nil, fmt.Errorf("compact the segment index: %w", err)
	}
	if !locked {
		return nil, errors.New("compact the segment index: another compaction is running on this database; wait for it to end")
	}
	// The partitions' indexes under the covering index, with their months
	// (from the partition's bound, not its name), not yet rebuilt.
	rows, err := conn.Query(ctx, `SELECT t.relname, i.relname, greatest(t.reltuples, 0)::bigint, pg_relation_size(i.oid),
			(regexp_match(pg_get_expr(t.relpartbound, t.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
		FROM pg_inherits h
		JOIN pg_class i ON i.oid = h.inhrelid
		JOIN pg_index x ON x.indexrelid = i.oid
		JOIN pg_class t ON t.oid = x.indrelid
		WHERE h.inhparent = 'segment_rows_stream_start'::regclass AND t.relispartition
			AND pg_get_expr(t.relpartbound, t.oid) <> 'DEFAULT'
			AND NOT EXISTS (SELECT 1 FROM segment_index_compactions c WHERE c.partition = t.relname)
		ORDER BY 5`)
	if err != nil {
		return nil, fmt.Errorf("compact the segment index: list partitions: %w", err)
	}
	var todo []CompactedPartition
	var c CompactedPartition
	var end *time.Time // NULL: a bound with no end (MAXVALUE), never closed
	_, err = pgx.ForEachRow(rows, []any{&c.Partition, &c.Index, &c.Rows, &c.BytesBefore, &end}, func() error {
		if end != nil && !end.Add(grace).After(now) {
			todo = append(todo, c)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("compact the segment index: list partitions: %w", err)
	}
	var done []CompactedPartition
	for _, p := range todo {
		if progress != nil {
			progress(p)
		}
		// What an earlier run that was killed half way left.
		if err := dropUnfinishedRebuild(ctx, ownerDSN, p.Partition, p.Index); err != nil {
			return done, fmt.Errorf("compact the segment index: %w", err)
		}
		t0 := time.Now()
		if _, err := conn.Exec(ctx, `REINDEX INDEX CONCURRENTLY `+pgx.Identifier{p.Index}.Sanitize()); err != nil {
			if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "42501" {
				return done, fmt.Errorf("compact the segment index: only the schema's owner may rebuild an index; "+
					"connect as the owner, as for nokstream migrate: %w", err)
			}
			if cerr := dropUnfinishedRebuild(ctx, ownerDSN, p.Partition, p.Index); cerr != nil {
				err = errors.Join(err, cerr)
			}
			return done, fmt.Errorf("compact the segment index: rebuild %s (%d MB; it needs about as much free disk): %w",
				p.Index, p.BytesBefore>>20, err)
		}
		p.Took = time.Since(t0)
		err := conn.QueryRow(ctx, `INSERT INTO segment_index_compactions (partition, rows, bytes_before, bytes_after)
			SELECT $1, greatest(reltuples, 0)::bigint, $2, pg_relation_size(oid) FROM pg_class WHERE oid = $3::regclass
			ON CONFLICT (partition) DO UPDATE SET compacted_at = now(), rows = excluded.rows,
				bytes_before = excluded.bytes_before, bytes_after = excluded.bytes_after
			RETURNING rows, bytes_after`, p.Partition, p.BytesBefore, pgx.Identifier{p.Index}.Sanitize()).Scan(&p.Rows, &p.BytesAfter)
		if err != nil {
			return done, fmt.Errorf("compact the segment index: record %s: %w", p.Partition, err)
		}
		done = append(done, p)
		if progress != nil {
			progress(p)
		}
	}
	return done, nil
}

// dropUnfinishedRebuild drops what a REINDEX CONCURRENTLY of index on table
// partition left when it failed: an invalid copy named …_ccnew (the name
// shortened to fit), which every write to the partition would otherwise
// keep up to date for nothing. It connects anew: the failed statement's connection may be gone
// with its context. Dropping it waits for the partition's writers of the
// moment, as the rebuild did.
func dropUnfinishedRebuild(ctx context.Context, ownerDSN, partition, index string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, ownerDSN)
	if err != nil {
		return fmt.Errorf("drop the unfinished copy of %s: %w", index, err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
		WHERE x.indrelid = $1::regclass AND NOT x.indisvalid AND i.relname ~ '_ccnew[0-9]*$'`,
		pgx.Identifier{partition}.Sanitize())
	if err != nil {
		return fmt.Errorf("drop the unfinished copy of %s: %w", index, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("drop the unfinished copy of %s: %w", index, err)
	}
	for _, n := range names {
		if _, err := conn.Exec(ctx, `DROP INDEX CONCURRENTLY IF EXISTS `+pgx.Identifier{n}.Sanitize()); err != nil {
			return fmt.Errorf("drop the unfinished copy %s (run the compaction again, which drops it first): %w", n, err)
		}
	}
	return nil
}
