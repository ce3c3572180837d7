package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
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

// roleName is what a runtime role's name may be.
var roleName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// GrantRuntime lets role, which must exist (the registry's GrantRuntime
// creates it), run the archiver on the archiver schema at ownerDSN, whose
// migrations must be applied: it may read and write the archiver's rows and
// nothing more. It may not create anything in the schema, write the schema's
// version, or delete from the log of deletions. It is idempotent; `nokstream
// migrate --runtime-role` runs it after the migrations.
func GrantRuntime(ctx context.Context, ownerDSN, role string) error {
	if !roleName.MatchString(role) {
		return fmt.Errorf("runtime role %q: use lower-case letters, digits and '_'", role)
	}
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
			return fmt.Errorf("archiver runtime role: %s: %w", strings.SplitN(q, " TO ", 2)[0], err)
		}
	}
	return nil
}
