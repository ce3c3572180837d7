package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nokstream/nokstream/internal/atomicfile"
)

// Dir is a Store in a local directory, the single-machine default. A key maps
// to the file of the same relative path under the root.
//
// Objects are written to a temporary file in the destination directory,
// fsynced, made read-only (0444: evidence is never edited in place) and
// renamed into place, and then the directory is fsynced, so after Put returns
// the object survives a crash and no reader ever sees part of one.
//
// Unlike S3, a Dir cannot hold both "a" and "a/b": "a" cannot be a file and a
// directory at once. Put of the second one fails.
//
// A Dir is a Retainer: it keeps each object's retain-until date and legal
// hold in a sidecar file next to it (see SetRetention), refuses to delete an
// object before that date or under hold, and refuses other bytes under its
// key, with ErrRetained.
type Dir struct {
	root string
	now  func() time.Time
	// mu orders retention changes, deletes and the renaming of a Put into
	// place, so that a delete never races a hold being set.
	mu sync.Mutex
}

var _ Store = (*Dir)(nil)

// NewDir returns a Store in root, creating the directory if it is missing.
func NewDir(root string, opts ...DirOption) (*Dir, error) {
	if root == "" {
		return nil, errors.New("open blob directory: empty path")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open blob directory %s: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("open blob directory %s: %w", abs, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("open blob directory %s: %w", abs, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("open blob directory %s: not a directory", abs)
	}
	d := &Dir{root: abs, now: time.Now}
	for _, o := range opts {
		o(d)
	}
	return d, nil
}

// Put writes the object atomically and durably, replacing any object with the
// same key. If size is not -1, a body of any other length is refused and
// nothing is stored.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("put object: %w", err)
	}
	if err := d.put(ctx, key, r, size); err != nil {
		return fmt.Errorf("put object %s: %w", key, err)
	}
	return nil
}

func (d *Dir) put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := d.path(key)
	dir := filepath.Dir(name)
	f, err := d.createTemp(dir)
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	closed, renamed := false, false
	defer func() {
		if err == nil || renamed {
			return
		}
		// The temporary file is abandoned; report what stops its cleanup.
		if !closed {
			err = errors.Join(err, f.Close())
		}
		if rmErr := os.Remove(tmp); rmErr != nil && !errors.Is(rmErr, fs.ErrNotExist) {
			err = errors.Join(err, rmErr)
		}
	}()

	if err := writeBody(ctx, f, r, size); err != nil {
		return fmt.Errorf("write body: %w", err)
	}
	// Read-only from the start: the object is never writable under its key.
	if err := f.Chmod(0o444); err != nil {
		return fmt.Errorf("make read-only: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	d.mu.Lock()
	same, err := d.checkReplaceLocked(key, tmp)
	if err == nil && !same {
		err = os.Rename(tmp, name)
		if err != nil {
			err = fmt.Errorf("rename into place: %w", err)
		}
		renamed = err == nil
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	if same {
		// The object is under retention and has these very bytes: an
		// upload retried. Keep it; drop the copy.
		if err := os.Remove(tmp); err != nil {
			return fmt.Errorf("remove duplicate upload: %w", err)
		}
		return nil
	}
	return atomicfile.SyncDir(dir)
}

// createTemp creates a temporary file in dir, creating dir if it is missing.
func (d *Dir) createTemp(dir string) (*os.File, error) {
	for attempt := 0; ; attempt++ {
		f, err := os.CreateTemp(dir, tempPrefix+"*")
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 10 {
			return f, err
		}
		// The directory is missing: never made, or pruned by a concurrent
		// Delete of its last object since it was made. A Delete may also
		// prune a parent while mkdirs makes the path (fresh run 71: "mkdir
		// …/race/d: no such file or directory"): that is the same race,
		// tried again.
		if err := d.mkdirs(dir); err != nil && (!errors.Is(err, fs.ErrNotExist) || attempt == 10) {
			return nil, err
		}
	}
}

// mkdirs makes dir and its missing parents under the root, and fsyncs the
// parent of each directory it makes so that the new path survives a crash.
func (d *Dir) mkdirs(dir string) error {
	rel, err := filepath.Rel(d.root, dir)
	if err != nil {
		return err
	}
	cur := d.root
	for elem := range strings.SplitSeq(rel, string(filepath.Separator)) {
		parent := cur
		cur = filepath.Join(cur, elem)
		err := os.Mkdir(cur, 0o750)
		switch {
		case err == nil:
			if err := atomicfile.SyncDir(parent); err != nil {
				return err
			}
		case errors.Is(err, fs.ErrExist):
			// Made earlier, or by a concurrent Put. If it is a file, the
			// caller's create fails with a clear error.
		default:
			return err
		}
	}
	return nil
}

// writeBody copies r to f. If size is not -1, r must yield exactly size bytes.
func writeBody(ctx context.Context, f *os.File, r io.Reader, size int64) error {
	src := ctxReader{ctx: ctx, r: r}
	if size < 0 {
		_, err := io.Copy(f, src)
		return err
	}
	n, err := io.Copy(f, io.LimitReader(src, size))
	if err != nil {
		return err
	}
	if n < size {
		return fmt.Errorf("body ended after %d of %d bytes", n, size)
	}
	var extra [1]byte
	m, err := io.ReadFull(src, extra[:])
	if m > 0 {
		return fmt.Errorf("body longer than %d bytes", size)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// ctxReader stops reading once ctx ends, so a cancelled Put stops copying.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Get opens the object for reading. The caller closes it.
func (d *Dir) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, fmt.Errorf("get object: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get object %s: %w", key, err)
	}
	f, err := os.Open(d.path(key))
	if err != nil {
		return nil, fmt.Errorf("get object %s: %w", key, notFound(err))
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		// A directory holding other objects: no object has this key.
		err = ErrNotFound
	}
	if err != nil {
		_ = f.Close() // Opened read-only: closing loses nothing.
		return nil, fmt.Errorf("get object %s: %w", key, err)
	}
	return f, nil
}

// Stat returns the object's size and modification time, or ErrNotFound.
func (d *Dir) Stat(ctx context.Context, key string) (Attrs, error) {
	if err := CheckKey(key); err != nil {
		return Attrs{}, fmt.Errorf("stat object: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Attrs{}, fmt.Errorf("stat object %s: %w", key, err)
	}
	fi, err := os.Stat(d.path(key))
	if err != nil {
		return Attrs{}, fmt.Errorf("stat object %s: %w", key, notFound(err))
	}
	if !fi.Mode().IsRegular() {
		return Attrs{}, fmt.Errorf("stat object %s: %w", key, ErrNotFound)
	}
	return Attrs{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List calls fn for every key that starts with prefix, in lexical (byte)
// order, the order S3 lists in. It stops at the first error fn returns and
// returns it. Temporary files of unfinished Puts are not objects and are
// skipped.
func (d *Dir) List(ctx context.Context, prefix string, fn func(key string) error) error {
	if err := checkPrefix(prefix); err != nil {
		return fmt.Errorf("list objects: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("list objects %q: %w", prefix, err)
	}
	// Start in the deepest directory the prefix names in full.
	base := prefix[:strings.LastIndexByte(prefix, '/')+1]
	if err := d.walk(ctx, base, prefix, fn); err != nil {
		return fmt.Errorf("list objects %q: %w", prefix, err)
	}
	return nil
}

// walk lists the directory of keys starting with dirKey ("" or ending in '/').
//
// Sorting each directory's entries by name is not enough for lexical key
// order: "a.c" sorts before "a/b" because '.' < '/', but the directory "a"
// sorts before the file "a.c". So a directory sorts as its name plus '/'.
// No two entries of one directory can then be prefixes of each other, so
// sorting on these names puts every key under one entry before every key
// under the next.
func (d *Dir) walk(ctx context.Context, dirKey, prefix string, fn func(key string) error) error {
	entries, err := os.ReadDir(filepath.Join(d.root, filepath.FromSlash(dirKey)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil // No such directory, or pruned since the parent was read.
		}
		return err
	}
	type item struct {
		key string
		dir bool
	}
	items := make([]item, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, tempPrefix) || strings.HasPrefix(name, retPrefix) || (!e.IsDir() && !e.Type().IsRegular()) {
			continue
		}
		if keyProblem(dirKey+name, false) != "" {
			continue // Not written by a Store; no Store method could use it.
		}
		it := item{key: dirKey + name, dir: e.IsDir()}
		if it.dir {
			it.key += "/"
		}
		if strings.HasPrefix(it.key, prefix) || (it.dir && strings.HasPrefix(prefix, it.key)) {
			items = append(items, it)
		}
	}
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.key, b.key) })
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		if it.dir {
			err = d.walk(ctx, it.key, prefix, fn)
		} else {
			err = fn(it.key)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the object and then the directories it leaves empty, up to
// the root. Deleting a missing object is not an error. An object under
// retention or legal hold is not deleted: Delete returns an error wrapping
// ErrRetained.
func (d *Dir) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("delete object: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete object %s: %w", key, err)
	}
	name := d.path(key)
	d.mu.Lock()
	fi, err := os.Lstat(name)
	switch {
	case err != nil && errors.Is(notFound(err), ErrNotFound):
		err = d.removeRetentionLocked(key) // Left by a crash, if any.
		d.mu.Unlock()
		if err != nil {
			return fmt.Errorf("delete object %s: %w", key, err)
		}
		return nil
	case err != nil:
		d.mu.Unlock()
		return fmt.Errorf("delete object %s: %w", key, err)
	case fi.IsDir():
		d.mu.Unlock()
		return nil // A directory of other objects: no object has this key.
	}
	if err := d.checkDeleteLocked(key); err != nil {
		d.mu.Unlock()
		return fmt.Errorf("delete object %s: %w", key, err)
	}
	err = os.Remove(name)
	if err == nil || errors.Is(err, fs.ErrNotExist) {
		err = d.removeRetentionLocked(key)
	}
	d.mu.Unlock()
	if err != nil {
		return fmt.Errorf("delete object %s: %w", key, err)
	}
	if err := d.prune(filepath.Dir(name)); err != nil {
		return fmt.Errorf("delete object %s: %w", key, err)
	}
	return nil
}

// prune fsyncs dir, then removes it and its parents up to the root for as
// long as they are empty, fsyncing the parent of each one it removes.
func (d *Dir) prune(dir string) error {
	for {
		if err := atomicfile.SyncDir(dir); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // Pruned by a concurrent Delete.
			}
			return err
		}
		if dir == d.root || !strings.HasPrefix(dir, d.root+string(filepath.Separator)) {
			return nil
		}
		err := os.Remove(dir)
		switch {
		case err == nil:
		case errors.Is(err, syscall.ENOTEMPTY), errors.Is(err, syscall.EEXIST), errors.Is(err, fs.ErrNotExist):
			return nil // Still in use, or pruned by a concurrent Delete.
		default:
			return fmt.Errorf("remove empty directory: %w", err)
		}
		dir = filepath.Dir(dir)
	}
}

// Ping reports whether the root directory is there, for readiness checks.
func (d *Dir) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ping blob directory %s: %w", d.root, err)
	}
	fi, err := os.Stat(d.root)
	if err != nil {
		return fmt.Errorf("ping blob directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("ping blob directory %s: not a directory", d.root)
	}
	return nil
}

// path returns the file of a key that CheckKey accepted.
func (d *Dir) path(key string) string {
	return filepath.Join(d.root, filepath.FromSlash(key))
}

// notFound turns the errors of a missing file into ErrNotFound. ENOTDIR means
// an element of the path is a file: "a/b" when "a" is an object.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return ErrNotFound
	}
	return err
}
