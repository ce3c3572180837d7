package pgmigrate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// roleName is what a service role's name may be.
var roleName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// EnsureRole makes role a plain login role that a store's grants can
// limit, on conn, connected as the owner of the schemas: it is created with
// LOGIN (and password, if not empty) when it does not exist, and given
// password when it does. It refuses a name that is not plain lower case,
// the owner itself and a superuser (no grant limits one); what names the
// role in errors. The owner needs CREATEROLE to create one.
func EnsureRole(ctx context.Context, conn *pgx.Conn, what, role, password string) error {
	if !roleName.MatchString(role) {
		return fmt.Errorf("%s %q: use lower-case letters, digits and '_'", what, role)
	}
	var owner string
	if err := conn.QueryRow(ctx, `SELECT current_user`).Scan(&owner); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if owner == role {
		return fmt.Errorf("%s %q is the owner (the user of --db): give the services another role", what, role)
	}
	var exists, super bool
	if err := conn.QueryRow(ctx, `SELECT count(*) > 0, coalesce(bool_or(rolsuper), false) FROM pg_roles WHERE rolname = $1`, role).
		Scan(&exists, &super); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if super {
		return fmt.Errorf("%s %q is a superuser, which no grant can limit: give the services a plain role", what, role)
	}
	id := pgx.Identifier{role}.Sanitize()
	if !exists {
		create := `CREATE ROLE ` + id + ` LOGIN`
		if password != "" {
			create += ` PASSWORD ` + quoteLiteral(password)
		}
		if _, err := conn.Exec(ctx, create); err != nil && !isDuplicateObject(err) {
			return fmt.Errorf("%s: create %s (the owner needs CREATEROLE, or create it yourself): %w", what, role, err)
		}
	} else if password != "" {
		if err := alterPassword(ctx, conn, id, password); err != nil {
			return fmt.Errorf("%s: set the password of %s: %w", what, role, err)
		}
	}
	return nil
}

// alterPassword sets the password of the role id. A role is one row of the
// cluster's shared catalogue, and PostgreSQL refuses the second of two
// concurrent updates of it ("tuple concurrently updated", XX000) rather than
// waiting: two installations migrating on one cluster at the same moment
// (two replicas of a migrate job, two tests) would fail on it. The update
// is idempotent, so it is tried again, a few times, after a short pause.
func alterPassword(ctx context.Context, conn *pgx.Conn, id, password string) error {
	var err error
	for attempt := 1; attempt <= 20; attempt++ {
		if _, err = conn.Exec(ctx, `ALTER ROLE `+id+` PASSWORD `+quoteLiteral(password)); !isConcurrentUpdate(err) {
			return err
		}
		t := time.NewTimer(time.Duration(attempt) * time.Duration(5+rand.IntN(20)) * time.Millisecond) //nolint:gosec // a jitter, not a secret
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return err
}

// isConcurrentUpdate: PostgreSQL refused an update of a catalogue row that
// another transaction updated at the same moment.
func isConcurrentUpdate(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "XX000" && strings.Contains(pg.Message, "tuple concurrently updated")
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// isDuplicateObject: the role exists (42710), or another migrate created
// it at the same moment (23505 on pg_authid's name index).
func isDuplicateObject(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "42710" || pg.Code == "23505")
}
