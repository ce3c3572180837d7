package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/pgmigrate"
)

// The database has two roles (issue 10): the owner, who runs the
// migrations and owns every table, function and trigger, and the runtime
// role the services connect as. The runtime role reads and writes rows,
// appends to the audit log and nothing more: it may not update, delete or
// truncate audit rows, alter a table, disable a trigger or create anything.
// So a service that is taken over cannot rewrite the audit trail; only the
// owner could, and the hash chain shows it (`nokstream audit verify`).

// GrantRuntime lets role, created with LOGIN (and password, if not empty)
// when it does not exist, run the services on the database at ownerDSN,
// whose migrations must be applied: it grants what the services need on
// every table, sequence and function there is, and on those the owner makes
// later, and nothing on the audit log but reading and appending. It is
// idempotent; `nokstream migrate --runtime-role` runs it after the
// migrations.
func GrantRuntime(ctx context.Context, ownerDSN, role, password string) error {
	conn, err := pgx.Connect(ctx, ownerDSN)
	if err != nil {
		return fmt.Errorf("runtime role: connect as the owner: %w", err)
	}
	defer conn.Close(ctx)
	if err := pgmigrate.EnsureRole(ctx, conn, "runtime role", role, password); err != nil {
		return err
	}
	var owner string
	if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&owner); err != nil {
		return fmt.Errorf("runtime role: %w", err)
	}
	id := pgx.Identifier{role}.Sanitize()
	ownerID := pgx.Identifier{owner}.Sanitize()
	for _, q := range []string{
		`GRANT CONNECT, TEMPORARY ON DATABASE ` + pgx.Identifier{conn.Config().Database}.Sanitize() + ` TO ` + id,
		`GRANT USAGE ON SCHEMA public TO ` + id,
		`REVOKE CREATE ON SCHEMA public FROM ` + id,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ` + id,
		`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ` + id,
		`GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO ` + id,
		`ALTER DEFAULT PRIVILEGES FOR ROLE ` + ownerID + ` IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ` + id,
		`ALTER DEFAULT PRIVILEGES FOR ROLE ` + ownerID + ` IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO ` + id,
		// The audit log: read and append only. The trigger refuses a change
		// to any role; this refuses it before the trigger, and the role
		// cannot disable the trigger, which only the owner may.
		`REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_log FROM ` + id,
		// The schema's version: read to know it is current, never written.
		`REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON goose_db_version FROM ` + id,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("runtime role: %s: %w", strings.SplitN(q, " TO ", 2)[0], err)
		}
	}
	return nil
}
