package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
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
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("migrate archiver schema: parse database dsn: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("migrate archiver schema: connect: %w", err)
	}
	runtime, err := runtimeUpToDate(ctx, conn)
	if runtime || err != nil {
		conn.Close(ctx)
		if err != nil {
			return fmt.Errorf("migrate archiver schema: %w", err)
		}
		return nil
	}
	_, err = conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+Schema)
	conn.Close(ctx)
	if err != nil && !isUniqueViolation(err) { // two creators at once: 23505 on pg_namespace
		return fmt.Errorf("migrate archiver schema: create schema %s: %w", Schema, err)
	}
	// The provider's Close only closes db, so this is all the cleanup.
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate archiver schema: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migrate archiver schema: create lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithTableName(versionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithAllowOutofOrder(true),
	)
	if err != nil {
		return fmt.Errorf("migrate archiver schema: load migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate archiver schema: apply migrations: %w", err)
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

// embeddedVersions are the schema versions this build has.
func embeddedVersions() ([]int64, error) {
	entries, err := fs.ReadDir(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, e := range entries {
		num, _, ok := strings.Cut(path.Base(e.Name()), "_")
		if !ok {
			continue
		}
		if v, err := strconv.ParseInt(num, 10, 64); err == nil {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no archiver migrations embedded")
	}
	return out, nil
}

// runtimeUpToDate reports whether the user of conn may not change the
// archiver's schema (a runtime role: it may neither create in the schema
// nor, before the schema exists, create the schema) and, if so, whether
// every archiver migration of this build is applied.
func runtimeUpToDate(ctx context.Context, conn *pgx.Conn) (runtime bool, err error) {
	var exists, create bool
	if err := conn.QueryRow(ctx, `SELECT to_regnamespace($1) IS NOT NULL,
			CASE WHEN to_regnamespace($1) IS NULL THEN has_database_privilege(current_database(), 'CREATE')
				ELSE has_schema_privilege($1, 'CREATE') END`, Schema).Scan(&exists, &create); err != nil {
		return false, err
	}
	if create {
		return false, nil
	}
	want, err := embeddedVersions()
	if err != nil {
		return true, err
	}
	missing := want
	if exists {
		err = conn.QueryRow(ctx, `SELECT coalesce(array_agg(v ORDER BY v), '{}') FROM unnest($1::bigint[]) v
			WHERE NOT EXISTS (SELECT 1 FROM `+versionTable+` g WHERE g.version_id = v AND g.is_applied)`, want).Scan(&missing)
		if err != nil {
			missing = want
		}
	}
	if len(missing) > 0 {
		return true, fmt.Errorf("the database lacks %d of this build's %d archiver schema versions (first %d), and %s may not migrate it: "+
			"run `nokstream migrate --db <the owner's URL>` first", len(missing), len(want), missing[0], conn.Config().User)
	}
	return true, nil
}
