// Package blob stores media objects: raw and init segments, renditions, seals.
//
// Two implementations share the Store interface: a local directory (the
// single-machine default) and S3 through minio-go (MinIO, Ceph RGW, any S3
// with Object Lock). The interface is shaped like Thanos objstore.
package blob

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound is returned by Get and Stat when no object has the key.
var ErrNotFound = errors.New("object not found")

// ErrBadKey is returned for keys that are empty, absolute, contain ".." or
// other unsafe path elements.
var ErrBadKey = errors.New("unsafe object key")

// Attrs describes a stored object.
type Attrs struct {
	Size    int64
	ModTime time.Time
}

// Store is an object store.
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
