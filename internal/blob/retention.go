package blob

import (
	"context"
	"errors"
	"time"
)

// ErrRetained is returned when an object cannot be deleted, or replaced by
// other bytes, because it is under retention or legal hold.
var ErrRetained = errors.New("object under retention or legal hold")

// Retainer is implemented by stores that can keep objects from being deleted:
// S3 with Object Lock (COMPLIANCE mode), and Dir, which enforces the same
// rules itself. The archiver applies the retention the law requires through
// it.
type Retainer interface {
	// SetRetention makes the object undeletable until the given time. It
	// only ever extends: an earlier time than the one the object already
	// has changes nothing and is not an error.
	SetRetention(ctx context.Context, key string, until time.Time) error
	// SetLegalHold puts the object under legal hold, or lifts it. A held
	// object cannot be deleted whatever its retain-until date.
	SetLegalHold(ctx context.Context, key string, on bool) error
	// Retention returns the object's retain-until date (zero if it has
	// none) and whether it is under legal hold, or ErrNotFound.
	Retention(ctx context.Context, key string) (until time.Time, hold bool, err error)
}
