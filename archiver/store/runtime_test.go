package store_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/testenv"
	regstore "github.com/nokstream/nokstream/registry/store"
)

// TestRuntimeRole: the services' runtime role, granted by `nokstream
// migrate --runtime-role`, does the archiver's work in its schema (objects,
// deletions, their reports) but cannot erase the log of deletions, write
// the schema's version or change the schema; and on a schema this build is
// ahead of, it is told to run the owner's migration.
func TestRuntimeRole(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	owner := testenv.Postgres(t)
	if err := regstore.Migrate(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, owner); err != nil {
		t.Fatal(err)
	}
	const role = "nokstream_archiver_runtime_test"
	if err := regstore.GrantRuntime(ctx, owner, role, "runtime-test-role"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := store.GrantRuntime(ctx, owner, role); err != nil {
			t.Fatal(err)
		}
	}
	u, err := url.Parse(owner)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "runtime-test-role") // testenv's private cluster asks TCP clients for a password
	runtime := u.String()
	if err := store.Migrate(ctx, runtime); err != nil {
		t.Fatalf("migrate as the runtime role on a current schema: %v, want nothing to do", err)
	}
	s, err := store.Open(ctx, runtime)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	seg := store.ArchiveObject{Key: "site1/cam1/000001.m4s", Kind: store.ArchiveSegment, StreamID: "site1/cam1", Site: "site1",
		Start: at, End: at.Add(6 * time.Second), InitKey: "site1/cam1/init.mp4", RetainUntil: at, Rule: "unlinked", DecidedAt: at}
	init := store.ArchiveObject{Key: seg.InitKey, Kind: store.ArchiveInit, StreamID: "site1/cam1", Site: "site1",
		Start: seg.Start, End: seg.End, RetainUntil: at, Rule: "serves", DecidedAt: at}
	if err := s.SaveArchivedSegment(ctx, seg, init, store.StreamChain{StreamID: "site1/cam1", Chain: strings.Repeat("0", 64),
		SegmentID: "s1"}); err != nil {
		t.Fatalf("archive a segment as the runtime role: %v", err)
	}
	if err := s.RecordDeletion(ctx, seg.Key, at, []byte(`{"rule":"unlinked"}`)); err != nil {
		t.Fatalf("record a deletion as the runtime role: %v", err)
	}
	if err := s.DeletionReported(ctx, seg.Key, at); err != nil {
		t.Fatalf("record its report as the runtime role: %v", err)
	}
	if n, err := s.ReportRecords(ctx, 10, at, func(context.Context, string, []byte) error { return nil }); err != nil || n != 3 {
		t.Fatalf("publish the records of the segment, its init and its deletion as the runtime role: %d, %v", n, err)
	}

	conn, err := pgx.Connect(ctx, runtime)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, attack := range []string{
		`DELETE FROM archiver.deletions`,
		`TRUNCATE archiver.deletions`,
		`DELETE FROM archiver.goose_db_version`,
		`INSERT INTO archiver.goose_db_version (version_id, is_applied) VALUES (99999, true)`,
		`CREATE TABLE archiver.scratch (id int)`,
		`ALTER TABLE archiver.archive_objects DROP CONSTRAINT archive_objects_kind_check`,
		`DROP TABLE archiver.seals`,
	} {
		_, err := conn.Exec(ctx, attack)
		var pg *pgconn.PgError
		if !errors.As(err, &pg) || pg.Code != "42501" {
			t.Errorf("as the runtime role, %q: %v, want permission denied", attack, err)
		}
	}
	if d, err := s.Deletion(ctx, seg.Key); err != nil || d.ReportedAt == nil {
		t.Errorf("the deletion after the attempts: %+v, %v; want it kept, reported", d, err)
	}

	// A build ahead of the schema: the runtime role is told what to do.
	oc, err := pgx.Connect(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close(context.Background())
	if _, err := oc.Exec(ctx, `DELETE FROM archiver.goose_db_version WHERE version_id = (SELECT max(version_id) FROM archiver.goose_db_version)`); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, runtime); err == nil || !strings.Contains(err.Error(), "nokstream migrate --db") {
		t.Errorf("migrate as the runtime role on an old schema: %v, want an error that says to migrate as the owner", err)
	}
}
