package blob_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nokstream/nokstream/internal/blob"
)

// files returns every file and directory under root, relative to it.
func files(t *testing.T, root string) []string {
	t.Helper()
	var got []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != root {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			got = append(got, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func newDir(t *testing.T) (*blob.Dir, string) {
	t.Helper()
	root := t.TempDir()
	d, err := blob.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	return d, root
}

// Evidence must not be edited in place: an object is read-only on disk from
// the moment it appears, and stays so when replaced.
func TestDirObjectsAreReadOnly(t *testing.T) {
	t.Parallel()
	d, root := newDir(t)
	for _, content := range []string{"original", "replacement"} {
		put(t, d, "exam/1/seg.m4s", []byte(content))
		path := filepath.Join(root, "exam", "1", "seg.m4s")
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o444 {
			t.Errorf("object mode = %v, want -r--r--r--", fi.Mode())
		}
		if os.Geteuid() != 0 { // Root writes to read-only files regardless.
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err == nil {
				_ = f.Close()
				t.Errorf("object %s opened for writing", path)
			} else if !errors.Is(err, fs.ErrPermission) {
				t.Errorf("open for writing = %v, want permission denied", err)
			}
		}
		if got := string(get(t, d, "exam/1/seg.m4s")); got != content {
			t.Errorf("Get = %q, want %q", got, content)
		}
	}
}

func TestDirLeavesNoTemporaryFiles(t *testing.T) {
	t.Parallel()
	d, root := newDir(t)
	put(t, d, "a/ok", []byte("ok"))
	if err := d.Put(t.Context(), "a/short", strings.NewReader("abc"), 4); err == nil {
		t.Error("Put of 3 bytes with size 4 succeeded")
	}
	if err := d.Put(t.Context(), "a/long", strings.NewReader("abcde"), 4); err == nil {
		t.Error("Put of 5 bytes with size 4 succeeded")
	}
	if got, want := files(t, root), []string{"a", "a/ok"}; !slices.Equal(got, want) {
		t.Errorf("files after failed Puts = %q, want %q", got, want)
	}
}

// A Put interrupted by a crash leaves its temporary file behind; it is not an
// object.
func TestDirSkipsTemporaryFiles(t *testing.T) {
	t.Parallel()
	d, root := newDir(t)
	put(t, d, "a/ok", []byte("ok"))
	for _, name := range []string{".tmp-123", "a/.tmp-456"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := list(t, d, ""); !slices.Equal(got, []string{"a/ok"}) {
		t.Errorf("List = %q, want [a/ok]", got)
	}
}

func TestDirDeletePrunesEmptyDirectories(t *testing.T) {
	t.Parallel()
	d, root := newDir(t)
	put(t, d, "a/b/c/1", []byte("1"))
	put(t, d, "a/x", []byte("x"))
	if err := d.Delete(t.Context(), "a/b/c/1"); err != nil {
		t.Fatal(err)
	}
	if got, want := files(t, root), []string{"a", "a/x"}; !slices.Equal(got, want) {
		t.Errorf("files = %q, want %q", got, want)
	}
	if err := d.Delete(t.Context(), "a/x"); err != nil {
		t.Fatal(err)
	}
	if got := files(t, root); len(got) != 0 {
		t.Errorf("files = %q, want none", got)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("root removed: %v", err)
	}
}

// A directory cannot be a file too: the second Put fails with a clear error
// instead of clobbering the first object.
func TestDirFileAndDirectoryConflict(t *testing.T) {
	t.Parallel()
	d, _ := newDir(t)
	put(t, d, "a", []byte("file"))
	if err := d.Put(t.Context(), "a/b", strings.NewReader("x"), 1); err == nil {
		t.Error(`Put("a/b") over the object "a" succeeded`)
	}
	put(t, d, "c/d", []byte("x"))
	if err := d.Put(t.Context(), "c", strings.NewReader("x"), 1); err == nil {
		t.Error(`Put("c") over the directory of "c/d" succeeded`)
	}
	if got := string(get(t, d, "a")); got != "file" {
		t.Errorf("Get(a) = %q, want file", got)
	}
}

func TestNewDir(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "new", "root")
	d, err := blob.NewDir(root)
	if err != nil {
		t.Fatalf("NewDir of a missing directory: %v", err)
	}
	if err := d.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	if err := d.Ping(t.Context()); err == nil {
		t.Error("Ping succeeded with the root removed")
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := blob.NewDir(file); err == nil {
		t.Error("NewDir of a file succeeded")
	}
	if _, err := blob.NewDir(""); err == nil {
		t.Error(`NewDir("") succeeded`)
	}
}
