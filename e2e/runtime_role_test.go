package e2e

import (
	"net/url"
	"testing"
)

// runtimeRole is the database role the e2e services run as: migrations
// run as the owner (the test cluster's user), the services as a role that
// owns nothing and cannot rewrite the audit log (issue 10), as `make run`
// and a real deployment do.
const runtimeRole = "nokstream_app"

// runtimeDSN migrates the database at owner as its owner, lets runtimeRole
// run the services on it, and returns owner's DSN with that role as user.
func runtimeDSN(t *testing.T, owner string) string {
	t.Helper()
	cli(t, []string{"NOKSTREAM_DB=" + owner}, "migrate", "--runtime-role", runtimeRole)
	u, err := url.Parse(owner)
	if err != nil {
		t.Fatalf("database URL %q: %v", owner, err)
	}
	u.User = url.User(runtimeRole)
	return u.String()
}
