package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// envNotFlags are NOKSTREAM_* settings read from the environment directly,
// not through a flag; each must be read in cmd/nokstream.
var envNotFlags = []string{"NOKSTREAM_KAFKA_TOPIC_PREFIX"}

// checkEnv fails for every NOKSTREAM_* name in env that is not a flag of
// `nokstream <cmd>`: the binary ignores such a setting without a word, so a
// misspelt or misplaced one would silently do nothing.
func checkEnv(t *testing.T, where, cmd string, env []string) {
	t.Helper()
	flags := subcommandFlags(t, cmd)
	for _, name := range env {
		if !strings.HasPrefix(name, "NOKSTREAM_") {
			continue
		}
		if isEnvNotFlag(t, name) {
			continue
		}
		flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(name, "NOKSTREAM_")), "_", "-")
		if !flags[flag] {
			t.Errorf("%s: %s sets --%s, which `nokstream %s` does not have", where, name, flag, cmd)
		}
	}
}

func isEnvNotFlag(t *testing.T, name string) bool {
	t.Helper()
	for _, n := range envNotFlags {
		if n != name {
			continue
		}
		files, err := filepath.Glob("../cmd/nokstream/*.go")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), `os.Getenv("`+name+`")`) {
				return true
			}
		}
		t.Errorf("%s is listed as read from the environment, but cmd/nokstream does not read it", name)
		return true
	}
	return false
}
