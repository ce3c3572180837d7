// Package pgmigrate is what the services' stores share to migrate their
// PostgreSQL schemas from embedded goose migrations (Up): the versions a
// build embeds, and the check a runtime role makes instead of migrating (it
// may not change the schema, so on a current schema it has nothing to do,
// and on an old one it says who must migrate). The registry's store
// (schema public) and the archiver's (schema archiver) each call it with
// their own migrations.
package pgmigrate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Schema is one schema's migrations.
type Schema struct {
	// Name is the PostgreSQL schema: "public", "archiver".
	Name string
	// VersionTable is goose's record of its versions, qualified when it
	// is not in the search path: "goose_db_version",
	// "archiver.goose_db_version".
	VersionTable string
	// Migrations holds the migrations, named NNNNN_what.sql, at its
	// root.
	Migrations fs.FS
	// Label names the schema in errors: "schema", "archiver schema".
	Label string
}

// Versions returns the schema versions of the migrations in fsys: the
// numbers their file names start with.
func Versions(fsys fs.FS) ([]int64, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var out []int64
	for _, e := range entries {
		num, _, ok := strings.Cut(path.Base(e.Name()), "_")
		if !ok || e.IsDir() {
			continue
		}
		if v, err := strconv.ParseInt(num, 10, 64); err == nil {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no migrations embedded")
	}
	return out, nil
}

// RuntimeUpToDate reports whether the user of conn may not change s (a
// runtime role: it may neither create in the schema nor, before the schema
// exists, create the schema) and, if so, whether every migration of s in
// this build is applied: then there is nothing to migrate, and nothing a
// migration could do. A runtime role on an older schema gets an error
// saying to migrate as the owner. A role that may not even use the schema
// (another service's, `nokstream migrate --archiver-role`) has nothing to
// keep current in it: runtime, and no error.
func RuntimeUpToDate(ctx context.Context, conn *pgx.Conn, s Schema) (runtime bool, err error) {
	var exists, create, usage bool
	if err := conn.QueryRow(ctx, `SELECT to_regnamespace($1) IS NOT NULL,
			CASE WHEN to_regnamespace($1) IS NULL THEN has_database_privilege(current_database(), 'CREATE')
				ELSE has_schema_privilege($1, 'CREATE') END,
			CASE WHEN to_regnamespace($1) IS NULL THEN false ELSE has_schema_privilege($1, 'USAGE') END`, s.Name).Scan(&exists, &create, &usage); err != nil {
		return false, err
	}
	if create {
		return false, nil
	}
	if exists && !usage {
		return true, nil
	}
	want, err := Versions(s.Migrations)
	if err != nil {
		return true, err
	}
	missing := want
	if exists {
		err = conn.QueryRow(ctx, `SELECT coalesce(array_agg(v ORDER BY v), '{}') FROM unnest($1::bigint[]) v
			WHERE NOT EXISTS (SELECT 1 FROM `+s.VersionTable+` g WHERE g.version_id = v AND g.is_applied)`, want).Scan(&missing)
		if err != nil {
			missing = want
		}
	}
	if len(missing) > 0 {
		return true, fmt.Errorf("the database lacks %d of this build's %d %s versions (first %d), and %s may not migrate it: "+
			"run `nokstream migrate --db <the owner's URL>` first", len(missing), len(want), s.Label, missing[0], conn.Config().User)
	}
	return true, nil
}

// Up brings schema s in the database at dsn up to its newest version,
// creating the schema first if it is missing. It is a no-op on an
// up-to-date schema, and safe to run from several processes at once: they
// take turns on PostgreSQL's advisory lock. As a runtime role, which may
// not change the schema, it only checks that the schema is current
// (RuntimeUpToDate). Migrations made on branches land in any order; each
// is independent of those numbered near it, so a database that has a later
// one still takes an earlier one it lacks.
func Up(ctx context.Context, dsn string, s Schema) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("parse database dsn: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	runtime, err := RuntimeUpToDate(ctx, conn, s)
	if runtime || err != nil {
		conn.Close(ctx)
		return err
	}
	var exists bool
	err = conn.QueryRow(ctx, `SELECT to_regnamespace($1) IS NOT NULL`, s.Name).Scan(&exists)
	if err == nil && !exists {
		_, err = conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{s.Name}.Sanitize())
		var pg *pgconn.PgError
		if errors.As(err, &pg) && pg.Code == "23505" { // two creators at once: 23505 on pg_namespace
			err = nil
		}
	}
	conn.Close(ctx)
	if err != nil {
		return fmt.Errorf("create schema %s: %w", s.Name, err)
	}
	// The provider's Close only closes db, so this is all the cleanup.
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("create lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, s.Migrations,
		goose.WithTableName(s.VersionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithAllowOutofOrder(true),
	)
	if err != nil {
		return fmt.Errorf("load migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}
