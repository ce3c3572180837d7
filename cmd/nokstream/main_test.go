package main

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/testenv"
)

// TestMain runs the commands with password hashes at OWASP's minimum
// argon2id cost (--password-hash from the environment): the default's
// 64 MiB and three passes for each user added and each login were a large
// share of make test's CPU. The default is tested in registry/store.
func TestMain(m *testing.M) {
	if err := os.Setenv("NOKSTREAM_PASSWORD_HASH", "m=7168,t=5,p=1"); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// TestPasswordHashFromEnvironment: NOKSTREAM_PASSWORD_HASH (set above) sets
// the cost of the hashes `user add` makes; a cost below the minimum is
// refused with what to give instead.
func TestPasswordHashFromEnvironment(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	if err := migrateAll(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	root := rootCommand()
	root.SetArgs([]string{"user", "add", "--role", "nark", "--db", dsn, "hash.check"})
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	if err := root.ExecuteContext(ctx); err != nil {
		t.Fatalf("user add: %v", err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var phc string
	if err := conn.QueryRow(ctx, `SELECT password_hash FROM users WHERE login = 'hash.check'`).Scan(&phc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=7168,t=5,p=1$") {
		t.Errorf("user add with NOKSTREAM_PASSWORD_HASH=m=7168,t=5,p=1 stored %.40s…", phc)
	}
	root = rootCommand()
	root.SetArgs([]string{"user", "add", "--role", "nark", "--db", dsn, "--password-hash", "m=1024,t=1,p=1", "weak.hash"})
	root.SetOut(io.Discard)
	root.SetErr(io.Discard)
	if err := root.ExecuteContext(ctx); err == nil || !strings.Contains(err.Error(), "m=7168,t=5,p=1") {
		t.Errorf("user add with a cost below the minimum: %v; want it refused, naming the minimum", err)
	}
}
