package blob

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/nokstream/nokstream/internal/atomicfile"
)

var _ Retainer = (*Dir)(nil)

// retPrefix starts the name of the sidecar file that holds an object's
// retention, next to the object: "a/b/.ret-c.m4s" for "a/b/c.m4s". CheckKey
// refuses key elements with this prefix, and List skips them.
const retPrefix = ".ret-"

// DirOption configures a Dir.
type DirOption func(*Dir)

// WithClock sets the clock a Dir compares retain-until dates with
// (time.Now by default).
func WithClock(now func() time.Time) DirOption {
	return func(d *Dir) { d.now = now }
}

// dirRetention is the content of a sidecar file.
type dirRetention struct {
	RetainUntil time.Time `json:"retain_until,omitzero"`
	LegalHold   bool      `json:"legal_hold,omitempty"`
}

func (r dirRetention) locked(now time.Time) bool { return r.LegalHold || now.Before(r.RetainUntil) }

// SetRetention records that the object may not be deleted before until,
// where that extends what it has. A Dir enforces it itself: Delete refuses,
// and Put refuses other bytes under the key, until then. The files are
// read-only (0444) already; what a Dir cannot stop is someone with access
// to the directory removing them by hand.
func (d *Dir) SetRetention(ctx context.Context, key string, until time.Time) error {
	return d.updateRetention(ctx, "set retention", key, func(r *dirRetention) bool {
		if !until.After(r.RetainUntil) {
			return false // Only ever extended.
		}
		r.RetainUntil = until.UTC()
		return true
	})
}

// SetLegalHold puts the object under legal hold, or lifts it.
func (d *Dir) SetLegalHold(ctx context.Context, key string, on bool) error {
	return d.updateRetention(ctx, "set legal hold", key, func(r *dirRetention) bool {
		if r.LegalHold == on {
			return false
		}
		r.LegalHold = on
		return true
	})
}

// Retention returns the object's retain-until date and legal hold.
func (d *Dir) Retention(ctx context.Context, key string) (time.Time, bool, error) {
	if err := CheckKey(key); err != nil {
		return time.Time{}, false, fmt.Errorf("get retention: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return time.Time{}, false, fmt.Errorf("get retention of %s: %w", key, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.statLocked(key); err != nil {
		return time.Time{}, false, fmt.Errorf("get retention of %s: %w", key, err)
	}
	r, err := d.readRetention(key)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("get retention of %s: %w", key, err)
	}
	return r.RetainUntil, r.LegalHold, nil
}

func (d *Dir) updateRetention(ctx context.Context, what, key string, change func(*dirRetention) bool) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s of %s: %w", what, key, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := d.statLocked(key); err != nil {
		return fmt.Errorf("%s of %s: %w", what, key, err)
	}
	r, err := d.readRetention(key)
	if err != nil {
		return fmt.Errorf("%s of %s: %w", what, key, err)
	}
	if !change(&r) {
		return nil
	}
	if err := d.writeRetention(key, r); err != nil {
		return fmt.Errorf("%s of %s: %w", what, key, err)
	}
	return nil
}

// statLocked returns the object's file info, or ErrNotFound.
func (d *Dir) statLocked(key string) (fs.FileInfo, error) {
	fi, err := os.Stat(d.path(key))
	if err != nil {
		return nil, notFound(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, ErrNotFound
	}
	return fi, nil
}

// retentionPath returns the sidecar file of a key.
func (d *Dir) retentionPath(key string) string {
	name := d.path(key)
	return filepath.Join(filepath.Dir(name), retPrefix+filepath.Base(name))
}

// readRetention reads a key's sidecar; a missing one is no retention.
func (d *Dir) readRetention(key string) (dirRetention, error) {
	var r dirRetention
	b, err := os.ReadFile(d.retentionPath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("read retention: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		// A damaged sidecar must not free the object: treat it as held.
		return dirRetention{LegalHold: true}, fmt.Errorf("read retention %s: %w", d.retentionPath(key), err)
	}
	return r, nil
}

// writeRetention replaces a key's sidecar atomically and durably, read-only.
func (d *Dir) writeRetention(key string, r dirRetention) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(d.retentionPath(key), b, 0o444); err != nil {
		return fmt.Errorf("write retention: %w", err)
	}
	return nil
}

// checkReplaceLocked decides whether the file tmp may replace the object
// under key. An object under retention or hold may only be "replaced" by the
// same bytes (an upload retried), which leaves it as it is: same reports
// that, and the caller drops tmp. A sidecar left by a deleted object is
// removed.
func (d *Dir) checkReplaceLocked(key, tmp string) (same bool, err error) {
	r, err := d.readRetention(key)
	if err != nil {
		return false, err
	}
	if _, statErr := d.statLocked(key); errors.Is(statErr, ErrNotFound) {
		if r != (dirRetention{}) {
			// Left by a Delete that crashed between removing the
			// object and its sidecar: the object had expired.
			if err := os.Remove(d.retentionPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return false, err
			}
		}
		return false, nil
	}
	if !r.locked(d.now()) {
		return false, nil
	}
	a, err := fileSHA256(d.path(key))
	if err != nil {
		return false, err
	}
	b, err := fileSHA256(tmp)
	if err != nil {
		return false, err
	}
	if !bytes.Equal(a, b) {
		return false, fmt.Errorf("%w: other bytes under the same key are refused", ErrRetained)
	}
	return true, nil
}

// checkDeleteLocked returns ErrRetained if the object may not be deleted yet.
func (d *Dir) checkDeleteLocked(key string) error {
	r, err := d.readRetention(key)
	if err != nil {
		return err
	}
	now := d.now()
	switch {
	case r.LegalHold:
		return fmt.Errorf("%w: under legal hold", ErrRetained)
	case now.Before(r.RetainUntil):
		return fmt.Errorf("%w: retained until %s", ErrRetained, r.RetainUntil.Format(time.RFC3339))
	}
	return nil
}

// removeRetentionLocked removes a deleted object's sidecar.
func (d *Dir) removeRetentionLocked(key string) error {
	if err := os.Remove(d.retentionPath(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close() // Read-only: closing loses nothing.
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
