package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

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
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	err = pgmigrate.Up(ctx, dsn, pgmigrate.Schema{Name: "public", VersionTable: "goose_db_version", Migrations: fsys,
		Label: "schema"})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
