package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/nokstream/nokstream/internal/pgmigrate"
)

// migrations holds the schema versions, applied in the order of their
// numbers. A released migration is never edited: a change is a new file.
//
//go:embed migrations/*.sql
var migrations embed.FS

// Migrate brings the database at dsn up to the newest schema version. It is a
// no-op on an up-to-date database, and safe to run from several processes at
// once: they take turns on a PostgreSQL advisory lock. As a runtime role
// (GrantRuntime), which may not change the schema, it only checks that the
// schema is current.
func Migrate(ctx context.Context, dsn string) error {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("migrate: parse database dsn: %w", err)
	}
	// A runtime role (GrantRuntime) cannot migrate; on a current schema it
	// has nothing to do, which is what every service start asks.
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("migrate: connect: %w", err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		conn.Close(ctx)
		return fmt.Errorf("migrate: %w", err)
	}
	runtime, err := pgmigrate.RuntimeUpToDate(ctx, conn, pgmigrate.Schema{Name: "public", VersionTable: "goose_db_version",
		Migrations: fsys, Label: "schema"})
	conn.Close(ctx)
	if runtime || err != nil {
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		return nil
	}
	// The provider's Close only closes db, so this is all the cleanup.
	db := stdlib.OpenDB(*cfg)
	defer db.Close()

	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migrate: create lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		// Migrations made on branches land in any order; each is
		// independent of those numbered near it, so a database that has a
		// later one still takes an earlier one it lacks.
		goose.WithAllowOutofOrder(true),
	)
	if err != nil {
		return fmt.Errorf("migrate: load migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("migrate: apply migrations: %w", err)
	}
	return nil
}
