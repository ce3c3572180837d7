package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nokstream/nokstream/internal/secrets"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/store"
	"github.com/nokstream/nokstream/registry/store/storetest"
)

// TestPullURLFromStdin: `device add --pull -` takes the camera URL, with its
// password, from standard input, so it shows in no command line (ps) and
// no shell history; it is stored sealed and printed nowhere.
func TestPullURLFromStdin(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(store.Migrate(ctx, dsn))
	st, err := store.Open(ctx, dsn)
	must(err)
	t.Cleanup(st.Close)
	storetest.Org(t, st, "council1", "center1", "site1")
	data := t.TempDir()
	const camera = "rtsp://admin:p%40ss%2Fword@10.0.0.9:554/live"
	args := []string{"add", "site1/room2", "--kind", "room", "--pull", "-", "--db", dsn, "--data", data}
	cmd := deviceCommand(&globalFlags{})
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(camera + "\n"))
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	must(cmd.ExecuteContext(ctx))
	for _, a := range args {
		if strings.Contains(a, "p%40ss") {
			t.Fatalf("the password is on the command line: %q", args)
		}
	}
	if strings.Contains(out.String()+errOut.String(), "p%40ss") || strings.Contains(out.String()+errOut.String(), "p@ss/word") {
		t.Errorf("the camera password was printed: %q %q", out.String(), errOut.String())
	}
	devs, err := st.PullDevices(ctx)
	must(err)
	key, err := secrets.LoadOrCreateKey(filepath.Join(data, "keys", "secrets.key"))
	must(err)
	if len(devs) != 1 {
		t.Fatalf("%d pulled devices, want 1", len(devs))
	}
	u, err := key.Open(devs[0].URLSealed, []byte("site1/room2"))
	must(err)
	if string(u) != camera {
		t.Errorf("sealed camera URL %q, want the one from standard input", u)
	}
}

// TestBlobSecretFile: the S3 secret key comes from a file, not the
// command line.
func TestBlobSecretFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "s3.secret")
	if err := os.WriteFile(path, []byte("se+cret/key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readSecretFile(path)
	if err != nil || got != "se+cret/key" {
		t.Errorf("readSecretFile: %q %v", got, err)
	}
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readSecretFile(empty); err == nil {
		t.Error("an empty secret file was accepted")
	}
}
