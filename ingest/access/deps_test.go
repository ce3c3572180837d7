package access_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestIngestImportsNoOtherService: ingest holds no database and talks to
// the registry only through its node API (internal/nodeapi), so no package
// of ingest links another service's package or a PostgreSQL driver
// (`go list -deps` of every ingest package, tests excluded).
func TestIngestImportsNoOtherService(t *testing.T) {
	t.Parallel()
	const module = "github.com/nokstream/nokstream/"
	out, err := exec.Command("go", "list", "-deps", module+"ingest/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	ingest := 0
	for _, p := range deps {
		if strings.HasPrefix(p, module+"ingest") {
			ingest++
		}
		for _, banned := range []string{module + "registry/", module + "archiver/", module + "transcoder/", module + "cmd/", "github.com/jackc/"} {
			if strings.HasPrefix(p+"/", banned) {
				t.Errorf("ingest depends on %s", p)
			}
		}
	}
	if ingest < 5 || !strings.Contains(string(out), module+"internal/nodeapi") {
		t.Fatalf("go list -deps listed %d ingest packages and no internal/nodeapi: not the ingest tree?\n%s", ingest, out)
	}
}
