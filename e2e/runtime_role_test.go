package e2e

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"
)

// runtimeRole is the database role the e2e services run as: migrations
// run as the owner (the test cluster's user), the services as a role that
// owns nothing and cannot rewrite the audit log (issue 10), as `make run`
// and a real deployment do.
const runtimeRole = "nokstream_app"

// runtimePassword is runtimeRole's password on the test cluster. The role is
// the cluster's, shared by every test that runs beside this one, so each sets
// the same password: one test's migrate must not lock out another's
// services. The private cluster testenv starts asks TCP clients for a
// password (scram-sha-256); `make test`'s trusts them.
const runtimePassword = "e2e-runtime-role" //nolint:gosec // a throwaway role of a test cluster

// runtimeDSN migrates the database at owner as its owner, lets runtimeRole
// run the services on it, and returns owner's DSN with that role as user.
func runtimeDSN(t *testing.T, owner string) string {
	t.Helper()
	pwFile := filepath.Join(t.TempDir(), "runtime.password")
	if err := os.WriteFile(pwFile, []byte(runtimePassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli(t, []string{"NOKSTREAM_DB=" + owner}, "migrate", "--runtime-role", runtimeRole, "--runtime-password-file", pwFile)
	u, err := url.Parse(owner)
	if err != nil {
		t.Fatalf("database URL %q: %v", owner, err)
	}
	u.User = url.UserPassword(runtimeRole, runtimePassword)
	return u.String()
}
