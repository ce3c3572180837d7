package atomicfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nokstream/nokstream/internal/atomicfile"
)

// names lists a directory.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestWriteFileReplaces: the file holds the new bytes with the mode asked
// for, and no temporary file is left beside it.
func TestWriteFileReplaces(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "offsets.json")
	for _, tc := range []struct {
		data string
		perm fs.FileMode
	}{{"first", 0o640}, {"second, longer than the first", 0o600}, {"3", 0o444}} {
		if err := atomicfile.WriteFile(path, []byte(tc.data), tc.perm); err != nil {
			t.Fatalf("write %q: %v", tc.data, err)
		}
		if got := read(t, path); got != tc.data {
			t.Fatalf("after writing %q the file holds %q", tc.data, got)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != tc.perm {
			t.Errorf("mode %v, want %v", fi.Mode().Perm(), tc.perm)
		}
		if got := names(t, dir); len(got) != 1 || got[0] != "offsets.json" {
			t.Fatalf("directory holds %q, want only offsets.json", got)
		}
	}
}

// TestUncommittedLeavesOld: until Commit, the path keeps its old content (a
// crash before Commit loses nothing); Abort drops the new bytes and the
// temporary file, and the temporary file carries TempPrefix so that a
// scanner skips one a crash left.
func TestUncommittedLeavesOld(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	if err := atomicfile.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := atomicfile.Create(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("new, half written")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, path); got != "old" {
		t.Fatalf("before Commit the file holds %q, want the old content", got)
	}
	if base := filepath.Base(f.Name()); !strings.HasPrefix(base, atomicfile.TempPrefix) || filepath.Dir(f.Name()) != dir {
		t.Errorf("temporary file %s: want it in %s, named with %q", f.Name(), dir, atomicfile.TempPrefix)
	}
	f.Abort()
	f.Abort() // Deferred after an explicit one: harmless.
	if got := read(t, path); got != "old" {
		t.Fatalf("after Abort the file holds %q, want the old content", got)
	}
	if got := names(t, dir); len(got) != 1 {
		t.Fatalf("after Abort the directory holds %q", got)
	}
	if err := f.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	if got := read(t, path); got != "old" {
		t.Fatalf("a Commit after Abort changed the file to %q", got)
	}
}

// TestWriteFileErrors: a write that cannot happen names the path and
// leaves nothing behind.
func TestWriteFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-dir", "f.json")
	if err := atomicfile.WriteFile(missing, []byte("x"), 0o600); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("write into a missing directory: %v, want an error naming %s", err, missing)
	}
	// The target is a directory: the rename fails, the temporary goes.
	target := filepath.Join(dir, "a-directory")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "inside"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(target, []byte("x"), 0o600); err == nil || !strings.Contains(err.Error(), target) {
		t.Fatalf("write over a directory: %v, want an error naming %s", err, target)
	}
	if got := names(t, dir); len(got) != 1 || got[0] != "a-directory" {
		t.Fatalf("after the failed writes the directory holds %q", got)
	}
}

// TestWriteNewOnce: WriteNew creates a file only where there is none; of
// many writers racing for one path exactly one wins, the others get
// fs.ErrExist, and the file holds the winner's whole content.
func TestWriteNewOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "seal.ed25519")
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = atomicfile.WriteNew(path, []byte(strings.Repeat(string(rune('a'+i)), 4096)), 0o600)
		}()
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("writers %d and %d both created the file", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, fs.ErrExist):
			t.Fatalf("writer %d: %v, want fs.ErrExist", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no writer created the file")
	}
	if got, want := read(t, path), strings.Repeat(string(rune('a'+won)), 4096); got != want {
		t.Fatalf("the file holds %d bytes not all of the winner's", len(got))
	}
	if got := names(t, dir); len(got) != 1 {
		t.Fatalf("the directory holds %q, want only the file", got)
	}
}
