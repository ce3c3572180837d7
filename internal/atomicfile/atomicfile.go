// Package atomicfile writes files so that a crash leaves either the old
// content or the new one under a name, never a part: the bytes go to a
// temporary file in the same directory, which is fsynced, renamed over the
// target (or linked to it, for a file that must not exist yet), and then the
// directory is fsynced so that the new name itself survives a crash. It is
// the one implementation of that sequence in the tree: the spool, the local
// bus, the blob directory's retention sidecars, the seal key, pinned keys,
// exported bundles and the simulator's credentials all use it.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// TempPrefix starts the name of every temporary file this package makes.
// A directory scanner skips such names: a crash may leave one behind.
const TempPrefix = ".tmp-"

// File is a temporary file that takes a path's place on Commit. Until then
// readers of the path see what was there before.
type File struct {
	f    *os.File
	path string
	perm fs.FileMode
	done bool
}

// Create starts replacing path: it creates a temporary file in path's
// directory, which the caller writes, then Commits with mode perm, or
// Aborts. The directory must exist.
func Create(path string, perm fs.FileMode) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), TempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &File{f: f, path: path, perm: perm}, nil
}

// Write writes to the temporary file.
func (f *File) Write(p []byte) (int, error) { return f.f.Write(p) }

// Name returns the temporary file's path.
func (f *File) Name() string { return f.f.Name() }

// Commit gives the temporary file its mode, fsyncs it, renames it over the
// path and fsyncs the directory. After an error the temporary file is gone
// and the path is as it was before Create (or, if only the directory's
// fsync failed, already the new content).
func (f *File) Commit() error {
	return f.finish(func(tmp string) error { return os.Rename(tmp, f.path) })
}

// commitNew is Commit for a path that must not exist yet: the temporary
// file is linked to it, which fails with fs.ErrExist if something is there.
func (f *File) commitNew() error {
	return f.finish(func(tmp string) error {
		if err := os.Link(tmp, f.path); err != nil {
			return err
		}
		return os.Remove(tmp)
	})
}

func (f *File) finish(place func(tmp string) error) (err error) {
	if f.done {
		return fmt.Errorf("write %s: already committed or aborted", f.path)
	}
	f.done = true
	tmp := f.f.Name()
	err = errors.Join(f.f.Chmod(f.perm), f.f.Sync())
	err = errors.Join(err, f.f.Close())
	if err == nil {
		err = place(tmp)
	}
	if err != nil {
		if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			err = errors.Join(err, rmErr)
		}
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return SyncDir(filepath.Dir(f.path))
}

// Abort drops the temporary file, leaving the path as it was. It does
// nothing after Commit, so that it may be deferred.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	_ = f.f.Close()           // Its content is dropped.
	_ = os.Remove(f.f.Name()) // A leftover carries TempPrefix.
}

// WriteFile replaces path with data, with mode perm: the old content or the
// new survives a crash, never a mix.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}

// WriteNew writes data to path, with mode perm, only if nothing is there:
// otherwise it returns an error that is fs.ErrExist and leaves the file
// alone. Of two processes writing the same path at once, exactly one wins,
// and the path never holds a part of either's data.
func WriteNew(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.commitNew()
}

// SyncDir fsyncs a directory, making the creation, removal or renaming of
// its entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
