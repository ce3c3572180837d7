package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

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
	runtime := asRole(t, owner, role, "runtime-test-role")
	if err := store.Migrate(ctx, runtime); err != nil {
		t.Fatalf("migrate as the runtime role on a current schema: %v, want nothing to do", err)
	}
	s, err := store.Open(ctx, runtime)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	key := archiverWork(t, s, "the runtime role")
	refused(t, runtime, "the runtime role",
		`DELETE FROM archiver.deletions`,
		`TRUNCATE archiver.deletions`,
		`DELETE FROM archiver.goose_db_version`,
		`INSERT INTO archiver.goose_db_version (version_id, is_applied) VALUES (99999, true)`,
		`CREATE TABLE archiver.scratch (id int)`,
		`ALTER TABLE archiver.archive_objects DROP CONSTRAINT archive_objects_kind_check`,
		`DROP TABLE archiver.seals`,
	)
	if d, err := s.Deletion(ctx, key); err != nil || d.ReportedAt == nil {
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
