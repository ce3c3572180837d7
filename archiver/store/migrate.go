package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/pgmigrate"
)

// migrations holds the archiver schema's versions, applied in the order of
// their numbers. A released migration is never edited: a change is a new
// file.
//
//go:embed migrations/*.sql
var migrations embed.FS

// versionTable is goose's record of the archiver schema's versions, apart
// from the registry's public.goose_db_version.
const versionTable = Schema + ".goose_db_version"

// Migrate brings the archiver's schema in the database at dsn up to the
// newest version, creating the schema first if it is missing. The
// registry's migrations must have run before (they made the tables that the
// first version moves here). It is a no-op on an up-to-date schema, and
// safe to run from several processes at once: they take turns on
// PostgreSQL's advisory lock. As a runtime role (GrantRuntime), which may not
// change the schema, it only checks that the schema is current.
func Migrate(ctx context.Context, dsn string) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate archiver schema: %w", err)
	}
	err = pgmigrate.Up(ctx, dsn, pgmigrate.Schema{Name: Schema, VersionTable: versionTable, Migrations: fsys,
		Label: "archiver schema"})
	if err != nil {
		return fmt.Errorf("migrate archiver schema: %w", err)
	}
	return nil
}

// GrantRuntime lets role, which must exist (the registry's GrantRuntime
// creates it), run the archiver on the archiver schema at ownerDSN, whose
// migrations must be applied: it may read and write the archiver's rows and
// nothing more. It may not create anything in the schema, write the schema's
// version, or delete from the log of deletions. It is idempotent; `nokstream
// migrate --runtime-role` runs it after the migrations, unless the archiver
// has a role of its own (GrantArchiver).
func GrantRuntime(ctx context.Context, ownerDSN, role string) error {
	conn, err := pgx.Connect(ctx, ownerDSN)
	if err != nil {
		return fmt.Errorf("archiver runtime role: connect as the owner: %w", err)
	}
	defer conn.Close(ctx)
	var owner string
	if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&owner); err != nil {
		return fmt.Errorf("archiver runtime role: %w", err)
	}
	if owner == role {
		return fmt.Errorf("runtime role %q is the owner (the user of --db): give the services another role", role)
	}
	return grantSchema(ctx, conn, "archiver runtime role", owner, role)
}

// GrantArchiver makes role the archiver's own database role (issue 12,
// step (d)) on the database at ownerDSN, whose migrations must be applied:
// created with LOGIN (and password, if not empty) when it does not exist,
// it may read and write the archiver's rows as GrantRuntime's role may, and
// nothing in the registry's schema: no table, sequence or function of
// public. If runtimeRole is not empty, the services' runtime role loses
// what GrantRuntime gave it on the archiver's schema: then each service
// reaches only its own tables. It is idempotent; `nokstream migrate
// --archiver-role` runs it after the migrations.
func GrantArchiver(ctx context.Context, ownerDSN, role, password, runtimeRole string) error {
	conn, err := pgx.Connect(ctx, ownerDSN)
	if err != nil {
		return fmt.Errorf("archiver role: connect as the owner: %w", err)
	}
	defer conn.Close(ctx)
	if err := pgmigrate.EnsureRole(ctx, conn, "archiver role", role, password); err != nil {
		return err
	}
	if role == runtimeRole {
		return fmt.Errorf("archiver role %q is the runtime role: give the archiver a role of its own", role)
	}
	var owner string
	if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&owner); err != nil {
		return fmt.Errorf("archiver role: %w", err)
	}
	id := pgx.Identifier{role}.Sanitize()
	for _, q := range []string{
		`GRANT CONNECT ON DATABASE ` + pgx.Identifier{conn.Config().Database}.Sanitize() + ` TO ` + id,
		// Nothing of the registry's: if the role had rows there (it ran
		// the services before), it has them no more.
		`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ` + id,
		`REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM ` + id,
		`REVOKE ALL ON ALL FUNCTIONS IN SCHEMA public FROM ` + id,
		`REVOKE CREATE ON SCHEMA public FROM ` + id,
		`ALTER DEFAULT PRIVILEGES FOR ROLE ` + pgx.Identifier{owner}.Sanitize() + ` IN SCHEMA public REVOKE ALL ON TABLES FROM ` + id,
		`ALTER DEFAULT PRIVILEGES FOR ROLE ` + pgx.Identifier{owner}.Sanitize() + ` IN SCHEMA public REVOKE ALL ON SEQUENCES FROM ` + id,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("archiver role: %s: %w", strings.SplitN(q, " TO ", 2)[0], err)
		}
	}
	if err := grantSchema(ctx, conn, "archiver role", owner, role); err != nil {
		return err
	}
	if runtimeRole == "" {
		return nil
	}
	rid, ownerID := pgx.Identifier{runtimeRole}.Sanitize(), pgx.Identifier{owner}.Sanitize()
	for _, q := range []string{
		`REVOKE ALL ON ALL TABLES IN SCHEMA ` + Schema + ` FROM ` + rid,
		`REVOKE ALL ON ALL SEQUENCES IN SCHEMA ` + Schema + ` FROM ` + rid,
		`REVOKE ALL ON SCHEMA ` + Schema + ` FROM ` + rid,
		`ALTER DEFAULT PRIVILEGES FOR ROLE ` + ownerID + ` IN SCHEMA ` + Schema + ` REVOKE ALL ON TABLES FROM ` + rid,
		`ALTER DEFAULT PRIVILEGES FOR ROLE ` + ownerID + ` IN SCHEMA ` + Schema + ` REVOKE ALL ON SEQUENCES FROM ` + rid,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("archiver role: take the archiver's schema from the runtime role: %s: %w", strings.SplitN(q, " FROM ", 2)[0], err)
		}
	}
	return nil
}

// grantSchema lets role read and write the archiver's rows: no DDL in the
// schema, no writes to its version, no erasing the log of deletions.
func grantSchema(ctx context.Context, conn *pgx.Conn, what, owner, role string) error {
	id, ownerID := pgx.Identifier{role}.Sanitize(), pgx.Identifier{owner}.Sanitize()
	for _, q := range []string{
		`GRANT USAGE ON SCHEMA ` + Schema + ` TO ` + id,
		`REVOKE CREATE ON SCHEMA ` + Schema + ` FROM ` + id,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ` + Schema + ` TO ` + id,
		`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA ` + Schema + ` TO ` + id,
		`ALTER DEFAULT PRIVILEGES FOR ROLE ` + ownerID + ` IN SCHEMA ` + Schema + ` GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ` + id,
		`ALTER DEFAULT PRIVILEGES FOR ROLE ` + ownerID + ` IN SCHEMA ` + Schema + ` GRANT USAGE, SELECT ON SEQUENCES TO ` + id,
		// The log of deletions is appended to and marked reported, never
		// erased.
		`REVOKE DELETE, TRUNCATE, REFERENCES, TRIGGER ON ` + Schema + `.deletions FROM ` + id,
		// The schema's version: read to know it is current, never written.
		`REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ` + versionTable + ` FROM ` + id,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %s: %w", what, strings.SplitN(q, " TO ", 2)[0], err)
		}
	}
	return nil
}
