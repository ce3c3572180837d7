package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// built is the nokstream binary, built once for the package.
var built struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// nokstreamBinary builds ./cmd/nokstream once (cgo and the FFmpeg libraries,
// as `make build` does) and returns its path.
func nokstreamBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		dir, err := os.MkdirTemp("", "nokstream-deploy-bin")
		if err != nil {
			built.err = err
			return
		}
		built.path = filepath.Join(dir, "nokstream")
		cmd := exec.Command("go", "build", "-o", built.path, "../cmd/nokstream")
		built.out, built.err = cmd.CombinedOutput()
	})
	if built.err != nil {
		t.Fatalf("build nokstream: %v\n%s", built.err, built.out)
	}
	return built.path
}

var helpFlag = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9-]+)\b`)

// flagsCache holds the flags of each subcommand, from its --help.
var flagsCache struct {
	mu    sync.Mutex
	flags map[string]map[string]bool
}

// subcommandFlags returns the flags `nokstream <cmd> --help` lists,
// the global ones included.
func subcommandFlags(t *testing.T, cmd string) map[string]bool {
	t.Helper()
	flagsCache.mu.Lock()
	defer flagsCache.mu.Unlock()
	if f, ok := flagsCache.flags[cmd]; ok {
		return f
	}
	var stdout, stderr bytes.Buffer
	c := exec.Command(nokstreamBinary(t), append(strings.Fields(cmd), "--help")...)
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("nokstream %s --help: %v\n%s", cmd, err, stderr.String())
	}
	f := map[string]bool{}
	for _, m := range helpFlag.FindAllStringSubmatch(stdout.String(), -1) {
		f[m[1]] = true
	}
	if len(f) < 3 {
		t.Fatalf("nokstream %s --help lists %d flags; is %q a subcommand?\n%s", cmd, len(f), cmd, stdout.String())
	}
	if flagsCache.flags == nil {
		flagsCache.flags = map[string]map[string]bool{}
	}
	flagsCache.flags[cmd] = f
	return f
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.path != "" {
		os.RemoveAll(filepath.Dir(built.path))
	}
	os.Exit(code)
}

// lockedBuffer collects a child's output from its two pipes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
