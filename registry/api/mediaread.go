package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/registry/store"
)

// verifyObject reads a stored media object once, as a stream, and checks its
// size and SHA-256 against the index: evidence that differs from what
// ingest announced is never served as if it were the original. Memory stays
// bounded whatever the object's size (a segment may be up to 256 MiB).
func (s *Server) verifyObject(ctx context.Context, o store.Object) error {
	rc, err := s.blobs.Get(ctx, o.Key)
	if errors.Is(err, blob.ErrNotFound) {
		s.log.Warn("indexed media object missing from the blob store", "object_key", o.Key, "segment_id", o.SegmentID)
		return errorf(http.StatusNotFound, "media object is indexed but not stored")
	}
	if err != nil {
		return fmt.Errorf("get media object %s: %w", o.Key, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(rc, o.Bytes+1))
	if err != nil {
		return fmt.Errorf("read media object %s: %w", o.Key, err)
	}
	if n != o.Bytes || !strings.EqualFold(hex.EncodeToString(h.Sum(nil)), o.SHA256) {
		s.log.Error("media object does not match its index", "object_key", o.Key, "segment_id", o.SegmentID,
			"bytes", n, "want_bytes", o.Bytes)
		return errorf(http.StatusInternalServerError, "stored media object does not match its index")
	}
	return nil
}

// objectReader is an io.ReadSeeker over a stored object of a known size for
// http.ServeContent: a Seek only records the offset, and the next Read opens
// the object there (seeking the blob store's reader when it can, else
// skipping), so a Range request reads only up to its end and nothing is held
// in memory.
type objectReader struct {
	ctx  context.Context
	get  func(ctx context.Context, key string) (io.ReadCloser, error)
	key  string
	size int64
	off  int64 // of the next Read
	rc   io.ReadCloser
	at   int64 // position of rc
}

func (r *objectReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return r.off, fmt.Errorf("seek %s: bad whence %d", r.key, whence)
	}
	if offset < 0 {
		return r.off, fmt.Errorf("seek %s: negative offset %d", r.key, offset)
	}
	r.off = offset
	return offset, nil
}

func (r *objectReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	if r.rc != nil && r.at != r.off {
		if err := r.Close(); err != nil {
			return 0, err
		}
	}
	if r.rc == nil {
		rc, err := r.get(r.ctx, r.key)
		if err != nil {
			return 0, fmt.Errorf("get media object %s: %w", r.key, err)
		}
		r.rc, r.at = rc, 0
		if r.off > 0 {
			if sk, ok := rc.(io.Seeker); ok {
				if _, err := sk.Seek(r.off, io.SeekStart); err != nil {
					return 0, fmt.Errorf("seek media object %s: %w", r.key, err)
				}
			} else if _, err := io.CopyN(io.Discard, rc, r.off); err != nil {
				return 0, fmt.Errorf("skip to %d in media object %s: %w", r.off, r.key, err)
			}
			r.at = r.off
		}
	}
	if rest := r.size - r.off; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := r.rc.Read(p)
	r.off += int64(n)
	r.at += int64(n)
	if errors.Is(err, io.EOF) && r.off < r.size {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// Close closes the open reader, if any.
func (r *objectReader) Close() error {
	if r.rc == nil {
		return nil
	}
	err := r.rc.Close()
	r.rc = nil
	return err
}
