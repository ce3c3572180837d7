package store_test

import (
	"errors"
	"testing"

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
	archiverDSN := asRole(t, owner, archiverRole, "archiver-test-role")
	if err := store.Migrate(ctx, archiverDSN); err != nil {
		t.Fatalf("migrate as the archiver's role on a current schema: %v, want nothing to do", err)
	}
	s, err := store.Open(ctx, archiverDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	archiverWork(t, s, "the archiver's role")
	refused(t, archiverDSN, "the archiver's role",
		`SELECT * FROM public.candidates`,
		`SELECT * FROM public.documents`,
		`INSERT INTO public.audit_log (actor_login, action, object) VALUES ('archiver', 'archive.delete', 'x')`,
		`UPDATE public.segment_rows SET bytes = 0`,
		`DELETE FROM archiver.deletions`,
		`INSERT INTO archiver.goose_db_version (version_id, is_applied) VALUES (99999, true)`,
		`CREATE TABLE archiver.scratch (id int)`,
		`CREATE TABLE public.scratch (id int)`,
	)
	runtimeDSN := asRole(t, owner, runtimeRole, "runtime-test-role")
	refused(t, runtimeDSN, "the runtime role",
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
