package store_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/store"
	"github.com/nokstream/nokstream/registry/store/storetest"
)

// rolePassword is the test roles' password: testenv's private cluster asks
// TCP clients for one (scram-sha-256), make test's trusts them.
const rolePassword = "runtime-test-role" //nolint:gosec // a throwaway role of a test cluster

// asRole returns dsn with its user replaced by role (and rolePassword).
func asRole(t *testing.T, dsn, role string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, rolePassword)
	return u.String()
}

// TestRuntimeRole: the services' runtime role does the services' work
// (organisations, the audit log, the segment index and its partitions)
// but cannot rewrite the audit trail by any of the ways its owner could:
// update, delete or truncate rows, disable or drop the triggers, replace
// their functions, or change the schema's recorded version; and, on a
// schema this build is ahead of, it is told to run the owner's migration.
func TestRuntimeRole(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	owner := testenv.Postgres(t)
	if err := store.Migrate(ctx, owner); err != nil {
		t.Fatal(err)
	}
	const role = "nokstream_runtime_test"
	for range 2 { // idempotent
		if err := store.GrantRuntime(ctx, owner, role, rolePassword); err != nil {
			t.Fatal(err)
		}
	}
	runtime := asRole(t, owner, role)
	if err := store.Migrate(ctx, runtime); err != nil {
		t.Fatalf("migrate as the runtime role on a current schema: %v, want nothing to do", err)
	}
	st, err := store.Open(ctx, runtime)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	storetest.Org(t, st, "spk1", "cok1", "site1")
	for i := range 3 {
		if err := st.Audit(ctx, store.AuditEntry{At: time.Now(), ActorLogin: "operator", Action: "test.append",
			Object: "object/" + string(rune('a'+i))}); err != nil {
			t.Fatalf("append to the audit log as the runtime role: %v", err)
		}
	}
	if _, err := st.EnsureSegmentPartitions(ctx, time.Now().AddDate(3, 0, 0)); err != nil {
		t.Fatalf("make the segment index's partitions as the runtime role: %v", err)
	}

	conn, err := pgx.Connect(ctx, runtime)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, attack := range []string{
		`UPDATE audit_log SET action = 'nothing.happened' WHERE id = (SELECT max(id) FROM audit_log)`,
		`DELETE FROM audit_log WHERE id = (SELECT max(id) FROM audit_log)`,
		`TRUNCATE audit_log`,
		`ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change`,
		`ALTER TABLE audit_log DISABLE TRIGGER ALL`,
		`DROP TRIGGER audit_log_chain ON audit_log`,
		`ALTER TABLE audit_log DROP COLUMN hash`,
		`CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
		`CREATE TABLE audit_log_copy (LIKE audit_log)`,
		`DELETE FROM goose_db_version`,
		`ALTER ROLE ` + role + ` SUPERUSER`,
	} {
		_, err := conn.Exec(ctx, attack)
		var pg *pgconn.PgError
		if !errors.As(err, &pg) || (pg.Code != "42501" && pg.Code != "42P01") {
			t.Errorf("as the runtime role, %q: %v, want permission denied", attack, err)
		}
	}
	brk, head, err := st.VerifyAuditLog(ctx, nil)
	if err != nil || brk != nil || head.Rows < 3 {
		t.Errorf("audit chain after the attempts: break %v, head %+v, %v; want intact", brk, head, err)
	}

	// Rebuilding the segment index is the owner's (nokstream index
	// compact): the runtime role is told so, and the owner may.
	if _, err := st.EnsureSegmentPartitions(ctx, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CompactSegmentIndex(ctx, runtime, time.Now(), store.CompactionGrace, nil); err == nil ||
		!strings.Contains(err.Error(), "only the schema's owner") {
		t.Errorf("compact the segment index as the runtime role: %v, want an error that says to connect as the owner", err)
	}
	if done, err := store.CompactSegmentIndex(ctx, owner, time.Now(), store.CompactionGrace, nil); err != nil || len(done) < 4 {
		t.Errorf("compact the segment index as the owner: %d rebuilt, %v; want 2024's first four months", len(done), err)
	}

	// A build ahead of the schema: the runtime role is told what to do.
	oc, err := pgx.Connect(ctx, owner)
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close(ctx)
	if _, err := oc.Exec(ctx, `DELETE FROM goose_db_version WHERE version_id = (SELECT max(version_id) FROM goose_db_version)`); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, runtime); err == nil || !strings.Contains(err.Error(), "nokstream migrate --db") {
		t.Errorf("migrate as the runtime role on an old schema: %v, want an error that says to migrate as the owner", err)
	}

	// A superuser of its own: the owner's name differs between make test's
	// cluster and testenv's private one.
	if _, err := oc.Exec(ctx, `DO $$ BEGIN CREATE ROLE nokstream_super_test SUPERUSER; EXCEPTION WHEN duplicate_object THEN NULL; END $$`); err != nil {
		t.Fatal(err)
	}
	if err := store.GrantRuntime(ctx, owner, "nokstream_super_test", ""); err == nil || !strings.Contains(err.Error(), "superuser") {
		t.Errorf("a superuser as the runtime role: %v, want refused as a superuser", err)
	}
}
