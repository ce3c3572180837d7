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

// TestArchiverRole: the archiver's own role, granted by `nokstream migrate
// --archiver-role`, does the archiver's work in its schema (objects,
// deletions, records and their reports) and reaches nothing of the
// registry's: reading candidates or writing the audit log is refused; it
// cannot erase the log of deletions or change the schema either. The
// services' runtime role, which ran the archiver before, now reaches nothing
// in the archiver's schema, and still does the registry's work.
func TestArchiverRole(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	owner := testenv.Postgres(t)
	if err := regstore.Migrate(ctx, owner); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, owner); err != nil {
		t.Fatal(err)
	}
	const runtimeRole, archiverRole = "nokstream_app_role_test", "nokstream_archiver_role_test"
	if err := regstore.GrantRuntime(ctx, owner, runtimeRole, "runtime-test-role"); err != nil {
		t.Fatal(err)
	}
	// As an installation that ran everything as the runtime role would.
	if err := store.GrantRuntime(ctx, owner, runtimeRole); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := store.GrantArchiver(ctx, owner, archiverRole, "archiver-test-role", runtimeRole); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.GrantArchiver(ctx, owner, runtimeRole, "", runtimeRole); err == nil {
		t.Error("the runtime role was made the archiver's role too")
	}
	as := func(role, password string) string {
		u, err := url.Parse(owner)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword(role, password) // testenv's private cluster asks TCP clients for a password
		return u.String()
	}
	archiverDSN := as(archiverRole, "archiver-test-role")
	if err := store.Migrate(ctx, archiverDSN); err != nil {
		t.Fatalf("migrate as the archiver's role on a current schema: %v, want nothing to do", err)
	}
	s, err := store.Open(ctx, archiverDSN)
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
		t.Fatalf("archive a segment as the archiver's role: %v", err)
	}
	if err := s.RecordDeletion(ctx, seg.Key, at, []byte(`{"rule":"unlinked"}`)); err != nil {
		t.Fatalf("record a deletion as the archiver's role: %v", err)
	}
	if err := s.DeletionReported(ctx, seg.Key, at); err != nil {
		t.Fatalf("record its report as the archiver's role: %v", err)
	}
	if n, err := s.ReportRecords(ctx, 10, at, func(context.Context, string, []byte) error { return nil }); err != nil || n != 3 {
		t.Fatalf("publish the records as the archiver's role: %d, %v", n, err)
	}
	refused := func(dsn, who string, attacks ...string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		for _, attack := range attacks {
			_, err := conn.Exec(ctx, attack)
			var pg *pgconn.PgError
			if !errors.As(err, &pg) || pg.Code != "42501" {
				t.Errorf("as %s, %q: %v, want permission denied", who, attack, err)
			}
		}
	}
	refused(archiverDSN, "the archiver's role",
		`SELECT * FROM public.candidates`,
		`SELECT * FROM public.documents`,
		`INSERT INTO public.audit_log (actor_login, action, object) VALUES ('archiver', 'archive.delete', 'x')`,
		`UPDATE public.segments SET bytes = 0`,
		`DELETE FROM archiver.deletions`,
		`INSERT INTO archiver.goose_db_version (version_id, is_applied) VALUES (99999, true)`,
		`CREATE TABLE archiver.scratch (id int)`,
		`CREATE TABLE public.scratch (id int)`,
	)
	runtimeDSN := as(runtimeRole, "runtime-test-role")
	refused(runtimeDSN, "the runtime role",
		`SELECT * FROM archiver.archive_objects`,
		`SELECT * FROM archiver.records`,
		`INSERT INTO archiver.deletions (object_key, deleted_at, detail) VALUES ('x', now(), '{}')`,
	)
	// The runtime role still does the registry's work.
	rs, err := regstore.Open(ctx, runtimeDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	if _, err := rs.LatestSeal(ctx, "e1", "c1"); !errors.Is(err, regstore.ErrNotFound) {
		t.Errorf("the runtime role reads the registry's copies: %v, want ErrNotFound", err)
	}
}
