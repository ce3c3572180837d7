package store

import (
	"context"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
)

// TestCompactLayoutMigration: an index of the wide layout (before
// migration 00120) reads the same, row for row and column for column,
// through the view segments after it, including rows the compact layout
// stores differently (an object key not of ingest's form, hashes that are
// not lowercase hex, a sequence of more than ten digits, footage in the
// default partition); and the moved rows are still found by key, deleted
// by key and recognised when their events come again.
func TestCompactLayoutMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 111); err != nil {
		t.Fatal(err)
	}
	hex := func(c byte) string { return string(slices.Repeat([]byte{c}, 64)) }
	at := time.Date(2026, 3, 2, 23, 59, 58, 123456000, time.UTC)
	type row struct {
		id, key, sha, prev, chain string
		seq                       int64
		at                        time.Time
		node                      string
	}
	rows := []row{
		{"01JNQ0000000000000000000A1", "", hex('a'), hex('0'), hex('b'), 0, at, "node-1"},
		{"01JNQ0000000000000000000A2", "", hex('c'), hex('b'), hex('d'), 1, at.Add(6 * time.Second), "node-1"},
		{"01JNQ0000000000000000000A3", "", hex('e'), hex('d'), hex('f'), 12345678901, at.Add(12 * time.Second), "node-2"},
		{"01JNQ0000000000000000000A4", "legacy/site1/cam1/4.m4s", hex('1'), hex('f'), hex('2'), 3, at.Add(18 * time.Second), "node-2"},
		{"01JNQ0000000000000000000A5", "", "ABCDEF" + hex('a')[6:], hex('2'), "not hex " + hex('z')[8:], 4, at.Add(24 * time.Second), "node-2"},
		// No partition for 2040: the default partition.
		{"01JNQ0000000000000000000A6", "", hex('3'), hex('4'), hex('5'), 5, time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC), "node-2"},
	}
	for _, r := range rows {
		key := r.key
		if key == "" {
			key = events.SegmentObjectKey("site1", "cam1", r.at, r.seq, r.id)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO segments (segment_id, stream_id, source, site, device, sequence, start_at,
			duration, end_at, codecs, bytes, sha256, prev_chain, chain, object_key, init_key, init_sha256, init_bytes, ingest_node,
			discontinuity, salvaged, independent)
			VALUES ($1, 'site1/cam1', 'room', 'site1', 'cam1', $2::bigint, $3, 6.02, $3::timestamptz + interval '6.02 s',
				'{avc1.64001f,mp4a.40.2}', 1000 + $2::bigint, $4, $5, $6, $7, 'raw/site1/cam1/init/' || $8::text || '.mp4', $8::text, 812,
				$9, $2::bigint = 0, $2::bigint = 3, $2::bigint <> 4)`,
			r.id, r.seq, r.at, r.sha, r.prev, r.chain, key, hex('9'), r.node); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO segment_ids (segment_id, start_at) VALUES ($1, $2)`, r.id, r.at); err != nil {
			t.Fatal(err)
		}
	}
	snapshot := func() []string {
		t.Helper()
		rs, err := db.QueryContext(ctx, `SELECT s::text FROM segments s ORDER BY segment_id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var out []string
		for rs.Next() {
			var v string
			if err := rs.Scan(&v); err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		return out
	}
	before := snapshot()
	if len(before) != len(rows) {
		t.Fatalf("%d rows before, want %d", len(before), len(rows))
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatalf("migrate to the compact layout: %v", err)
	}
	after := snapshot()
	if !slices.Equal(before, after) {
		t.Errorf("the rows read differently after the migration:\nbefore %q\nafter  %q", before, after)
	}
	var stored, profiles int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FILTER (WHERE object_key IS NOT NULL OR hashes_text IS NOT NULL),
		(SELECT count(*) FROM segment_profiles) FROM segment_rows`).Scan(&stored, &profiles); err != nil {
		t.Fatal(err)
	}
	if stored != 2 || profiles != 2 {
		t.Errorf("%d rows keep a key or hashes as text (want 2: the legacy key, the hashes not hex), %d profiles (want 2 nodes)", stored, profiles)
	}

	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, r := range rows {
		g, err := s.SegmentByID(ctx, r.id)
		if err != nil {
			t.Fatal(err)
		}
		if g.SHA256 != r.sha || g.PrevChain != r.prev || g.Chain != r.chain {
			t.Errorf("row %d: hashes %q %q %q, want them as they were", i, g.SHA256, g.PrevChain, g.Chain)
		}
		o, err := s.ObjectByKey(ctx, g.ObjectKey)
		if err != nil || o.Init || o.SegmentID != r.id || o.SHA256 != r.sha {
			t.Errorf("row %d: object %s: %+v %v", i, g.ObjectKey, o, err)
		}
		// The same event again is the same segment, not a conflict.
		e := g.SegmentClosed
		if inserted, err := s.IndexSegment(ctx, &e); err != nil || inserted {
			t.Errorf("row %d: its event again: %v %v", i, inserted, err)
		}
	}
	if o, err := s.ObjectByKey(ctx, "raw/site1/cam1/init/"+hex('9')+".mp4"); err != nil || !o.Init || o.Bytes != 812 || o.Site != "site1" {
		t.Errorf("the init segment: %+v %v", o, err)
	}
	// A key naming an indexed segment's id in another form is not it.
	if _, err := s.ObjectByKey(ctx, "raw/site1/cam1/2026-03-02/0000000009-"+rows[0].id+".m4s"); err == nil {
		t.Error("a key of the right id and the wrong sequence was found")
	}
	// Deleted by the sweeper: the legacy key and an ingest one.
	for _, key := range []string{rows[3].key, events.SegmentObjectKey("site1", "cam1", rows[1].at, 1, rows[1].id)} {
		if _, err := s.RecordDeletion(ctx, &events.ObjectDeleted{ObjectKey: key, Kind: "segment", StreamID: "site1/cam1",
			SHA256: hex('1'), Bytes: 1, DeletedAt: time.Now(), Rule: "test", Archiver: "t"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ObjectByKey(ctx, key); err == nil {
			t.Errorf("%s is still indexed after its deletion", key)
		}
	}
	if n := len(snapshot()); n != len(rows)-2 {
		t.Errorf("%d rows after two deletions, want %d", n, len(rows)-2)
	}
}
