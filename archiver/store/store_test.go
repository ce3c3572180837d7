package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/testenv"
	regstore "github.com/nokstream/nokstream/registry/store"
)

// open returns the archiver's store on a fresh database migrated as
// `nokstream migrate` does it: the registry's migrations, then the
// archiver's.
func open(t *testing.T) (*store.Store, string) {
	t.Helper()
	dsn := testenv.Postgres(t)
	if err := regstore.Migrate(t.Context(), dsn); err != nil {
		t.Fatalf("migrate the registry: %v", err)
	}
	if err := store.Migrate(t.Context(), dsn); err != nil {
		t.Fatalf("migrate the archiver: %v", err)
	}
	s, err := store.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, dsn
}

func exec(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestMigrateMovesTheArchiversTables: a database made before the archiver
// had its own schema keeps every archived object, seal, chain and check,
// now in schema archiver; none is left in the registry's schema; the
// deletions made before count as reported (their audit entries are in the
// registry's log); and migrating again changes nothing.
func TestMigrateMovesTheArchiversTables(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dsn := testenv.Postgres(t)
	if err := regstore.Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate the registry: %v", err)
	}
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	sum := strings.Repeat("ab", 32)
	exec(t, dsn, `INSERT INTO archive_objects (object_key, kind, stream_id, site, start_at, end_at, sha256, chain, retain_until, rule, decided_at)
		VALUES ('site1/cam1/000001.m4s', 'segment', 'site1/cam1', 'site1', $1, $1, $2, $2, $1, 'certificate', $1)`, at, sum)
	exec(t, dsn, `INSERT INTO archive_objects (object_key, kind, stream_id, site, start_at, end_at, sha256, chain, retain_until, rule, decided_at, deleted_at)
		VALUES ('site1/cam1/000000.m4s', 'segment', 'site1/cam1', 'site1', $1, $1, $2, $2, $1, 'unlinked', $1, $1)`, at, sum)
	exec(t, dsn, `INSERT INTO seals (exam_id, candidate_id, version, manifest_key, signature_key, merkle_root, key_id, objects, bytes, sealed_at)
		VALUES ('e1', 'c1', 1, 'seals/e1/c1/0001/manifest.json', 'seals/e1/c1/0001/manifest.sig', $1, 'k1', 3, 300, $2)`, sum, at)
	exec(t, dsn, `INSERT INTO stream_chains (stream_id, sequence, chain, segment_id) VALUES ('site1/cam1', 1, $1, 's1')`, sum)
	exec(t, dsn, `INSERT INTO segment_checks (segment_id, ok, detail, checker) VALUES ('s1', true, 'size and sha256 match', 'archiver')`)

	for range 2 {
		if err := store.Migrate(ctx, dsn); err != nil {
			t.Fatalf("migrate the archiver: %v", err)
		}
	}
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if o, err := s.ArchiveObject(ctx, "site1/cam1/000001.m4s"); err != nil || o.Rule != "certificate" || o.SHA256 != sum {
		t.Errorf("archived segment after the move: %+v, %v", o, err)
	}
	if sl, err := s.LatestSeal(ctx, "e1", "c1"); err != nil || sl.Version != 1 || sl.Objects != 3 {
		t.Errorf("seal after the move: %+v, %v", sl, err)
	}
	if c, err := s.StreamChain(ctx, "site1/cam1"); err != nil || c.Sequence != 1 || c.Chain != sum {
		t.Errorf("chain after the move: %+v, %v", c, err)
	}
	if cs, err := s.SegmentChecks(ctx, "s1"); err != nil || len(cs) != 1 || !cs[0].OK {
		t.Errorf("checks after the move: %+v, %v", cs, err)
	}
	if d, err := s.Deletion(ctx, "site1/cam1/000000.m4s"); err != nil || d.ReportedAt == nil {
		t.Errorf("a deletion made before the move: %+v, %v; want it recorded as reported", d, err)
	}
	// What was kept before reaches the registry as records too: both
	// objects (the deleted one as deleted) and the seal, each valid.
	var p published
	if n, err := report(t, s, &p, 0); err != nil || n != 3 || len(p.objects) != 2 || len(p.seals) != 1 {
		t.Errorf("records of what was kept before: %d, %v, %+v; want 2 objects and a seal", n, err, p)
	} else if p.objects[0].DeletedAt == nil || p.objects[1].DeletedAt != nil || p.seals[0].Version != 1 || p.objects[0].Seq == p.objects[1].Seq {
		t.Errorf("records of what was kept before: %+v %+v %+v", p.objects[0], p.objects[1], p.seals[0])
	}
	if ds, err := s.UnreportedDeletions(ctx, 10); err != nil || len(ds) != 0 {
		t.Errorf("unreported deletions after the move: %+v, %v", ds, err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var left []string
	if err := conn.QueryRow(ctx, `SELECT coalesce(array_agg(tablename::text ORDER BY tablename), '{}') FROM pg_tables
		WHERE schemaname = 'public' AND tablename IN ('archive_objects', 'seals', 'stream_chains', 'segment_checks', 'deletions')`).
		Scan(&left); err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("the archiver's tables %v are still in the registry's schema", left)
	}
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("the archiver's migrations: %v, %v", files, err)
	}
	var versions int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM archiver.goose_db_version WHERE version_id > 0 AND is_applied`).
		Scan(&versions); err != nil || versions != len(files) {
		t.Errorf("archiver schema versions applied: %d, %v; want %d, one per migration (migrating twice applies nothing twice)",
			versions, err, len(files))
	}
}

func TestSegmentChecks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := open(t)
	if err := s.RecordSegmentCheck(ctx, "seg-1", true, "", "archiver@node1"); err != nil {
		t.Fatalf("record: %v", err)
	}
	if err := s.RecordSegmentCheck(ctx, "seg-1", false, "sha256 mismatch", "archiver@node1"); err != nil {
		t.Fatalf("record: %v", err)
	}
	checks, err := s.SegmentChecks(ctx, "seg-1")
	if err != nil {
		t.Fatalf("checks: %v", err)
	}
	if len(checks) != 2 || !checks[0].OK || checks[1].OK || checks[1].Detail != "sha256 mismatch" {
		t.Errorf("got checks %+v", checks)
	}
}

// TestDeletionLog: a deletion is recorded with its detail and stays
// unreported until the registry has it; recording it again changes
// nothing.
func TestDeletionLog(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, _ := open(t)
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	seg := store.ArchiveObject{Key: "site1/cam1/000001.m4s", Kind: store.ArchiveSegment, StreamID: "site1/cam1", Site: "site1",
		Start: at, End: at.Add(6 * time.Second), SHA256: strings.Repeat("ab", 32), InitKey: "site1/cam1/init.mp4",
		RetainUntil: at, Rule: "unlinked", DecidedAt: at}
	init := store.ArchiveObject{Key: seg.InitKey, Kind: store.ArchiveInit, StreamID: "site1/cam1", Site: "site1",
		Start: seg.Start, End: seg.End, RetainUntil: at, Rule: "serves", DecidedAt: at}
	if err := s.SaveArchivedSegment(ctx, seg, init, store.StreamChain{}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDeletion(ctx, seg.Key, at, []byte(`{"rule":"unlinked"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordDeletion(ctx, seg.Key, at.Add(time.Hour), []byte(`{"rule":"other"}`)); err != nil {
		t.Fatal(err)
	}
	o, err := s.ArchiveObject(ctx, seg.Key)
	if err != nil || o.DeletedAt == nil || !o.DeletedAt.Equal(at) {
		t.Fatalf("deleted object: %+v, %v", o, err)
	}
	ds, err := s.UnreportedDeletions(ctx, 10)
	if err != nil || len(ds) != 1 || ds[0].Key != seg.Key || !strings.Contains(string(ds[0].Detail), "unlinked") {
		t.Fatalf("unreported deletions: %+v, %v", ds, err)
	}
	if err := s.DeletionReported(ctx, seg.Key, at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if ds, err := s.UnreportedDeletions(ctx, 10); err != nil || len(ds) != 0 {
		t.Errorf("unreported deletions after the report: %+v, %v", ds, err)
	}
	if _, err := s.Deletion(ctx, init.Key); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deletion of an object never deleted: %v, want ErrNotFound", err)
	}
}
