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

// archiverRole is the archiver's own database role in the split
// installations (issue 12, step (d)): rows in schema archiver, nothing of
// the registry's; the runtime role then has nothing in schema archiver.
const archiverRole = "nokstream_archiver"

// archiverPassword is archiverRole's password on the test cluster, shared
// as runtimePassword is.
const archiverPassword = "e2e-archiver-role" //nolint:gosec // a throwaway role of a test cluster

// archiverDSN gives the archiver a role of its own on the database at owner
// (`nokstream migrate --runtime-role … --archiver-role …`) and returns
// owner's DSN with that role as user.
func archiverDSN(t *testing.T, owner string) string {
	t.Helper()
	dir := t.TempDir()
	pwFile, apwFile := filepath.Join(dir, "runtime.password"), filepath.Join(dir, "archiver.password")
	for f, pw := range map[string]string{pwFile: runtimePassword, apwFile: archiverPassword} {
		if err := os.WriteFile(f, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cli(t, []string{"NOKSTREAM_DB=" + owner}, "migrate", "--runtime-role", runtimeRole, "--runtime-password-file", pwFile,
		"--archiver-role", archiverRole, "--archiver-password-file", apwFile)
	u, err := url.Parse(owner)
	if err != nil {
		t.Fatalf("database URL %q: %v", owner, err)
	}
	u.User = url.UserPassword(archiverRole, archiverPassword)
	return u.String()
}
