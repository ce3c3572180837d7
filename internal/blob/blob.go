// Package blob stores media objects: raw and init segments, renditions, seals.
//
// Two implementations share the Store interface: a local directory (the
// single-machine default) and S3 through minio-go (MinIO, Ceph RGW, any S3
// with Object Lock). The interface is shaped like Thanos objstore.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nokstream/nokstream/internal/atomicfile"
)

// ErrNotFound is returned by Get and Stat when no object has the key.
var ErrNotFound = errors.New("object not found")

// ErrBadKey is returned for keys that are empty, absolute, contain ".." or
// other unsafe path elements.
var ErrBadKey = errors.New("unsafe object key")

// MaxKeyLen is the longest key, in bytes, that CheckKey accepts. It is the
// S3 limit.
const MaxKeyLen = 1024

// tempPrefix starts the name of the temporary file a Dir writes before it
// renames it into place (an object's, or a retention sidecar's through
// atomicfile). CheckKey refuses key elements with this prefix, so a
// temporary file can never be mistaken for an object.
const tempPrefix = atomicfile.TempPrefix

// Attrs describes a stored object.
type Attrs struct {
	Size    int64
	ModTime time.Time
}

// Store is an object store.
//
// Keys are '/'-separated relative paths that CheckKey accepts; every method
// refuses other keys with ErrBadKey.
type Store interface {
	// Put writes the object atomically: a reader never sees a partial object.
	// size is the exact number of bytes r yields, or -1 if unknown.
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Get opens the object for reading. The caller closes it.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat returns the object's attributes or ErrNotFound.
	Stat(ctx context.Context, key string) (Attrs, error)
	// List calls fn for every key under prefix, in lexical order.
	List(ctx context.Context, prefix string, fn func(key string) error) error
	// Delete removes the object. Deleting a missing object is not an error.
	Delete(ctx context.Context, key string) error
}

// CheckKey reports whether key is a safe object key, and if not, why, as an
// error wrapping ErrBadKey.
//
// A key is a '/'-separated relative path of at most MaxKeyLen bytes of valid
// UTF-8. It must not be absolute, have empty, "." or ".." elements, contain
// backslashes or control characters, or have an element starting with the
// reserved prefixes ".tmp-" or ".ret-" (a Dir's temporary and retention
// files). The same keys are valid in every Store, so a key
// that works on a developer's directory store works on S3 and back.
func CheckKey(key string) error {
	if reason := keyProblem(key, false); reason != "" {
		return fmt.Errorf("%w %s: %s", ErrBadKey, quoteKey(key), reason)
	}
	return nil
}

// checkPrefix reports whether prefix can start a valid key: it is empty, or
// its complete elements are valid key elements and its last, possibly partial,
// element holds no forbidden characters.
func checkPrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if reason := keyProblem(prefix, true); reason != "" {
		return fmt.Errorf("%w: prefix %s: %s", ErrBadKey, quoteKey(prefix), reason)
	}
	return nil
}

// keyProblem returns why s is not a valid key, or "" if it is. With
// isPrefix, s may end in '/' and its last element may be a partial one.
func keyProblem(s string, isPrefix bool) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > MaxKeyLen:
		return fmt.Sprintf("%d bytes long, longer than %d", len(s), MaxKeyLen)
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	case strings.HasPrefix(s, "/"):
		return "absolute path"
	case strings.Contains(s, `\`):
		return "contains a backslash"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return fmt.Sprintf("contains control character %U", r)
		}
	}
	elems := strings.Split(s, "/")
	last := len(elems) - 1
	for i, e := range elems {
		if isPrefix && i == last {
			// A partial element: "seg/00" lists "seg/0001" and "seg/0002",
			// and "seg/" (an empty last element) lists all of seg.
			break
		}
		switch {
		case e == "":
			return "empty path element"
		case e == "." || e == "..":
			return fmt.Sprintf("path element %q", e)
		case strings.HasPrefix(e, tempPrefix):
			return fmt.Sprintf("path element %q starts with the reserved prefix %q", e, tempPrefix)
		case strings.HasPrefix(e, retPrefix):
			return fmt.Sprintf("path element %q starts with the reserved prefix %q", e, retPrefix)
		}
	}
	return ""
}

// quoteKey quotes a key for an error message, shortening very long ones.
func quoteKey(key string) string {
	const shown = 80
	if len(key) > shown {
		return fmt.Sprintf("%q...", key[:shown])
	}
	return fmt.Sprintf("%q", key)
}
