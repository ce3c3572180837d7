package blob

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

var _ Retainer = (*S3)(nil)

// SetRetention sets Object Lock retention in COMPLIANCE mode on every version
// of the object, to until, where that extends it. In COMPLIANCE mode nobody,
// root included, can shorten it or delete the version before the date; the
// bucket must have been created with Object Lock (NewS3 with CreateBucket
// does so).
//
// Every version is locked because Delete removes every version: an older
// version left unlocked would be deletable, and a newer one (an upload
// retried by ingest) is the same bytes under the same key.
func (s *S3) SetRetention(ctx context.Context, key string, until time.Time) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("set retention: %w", err)
	}
	name := s.prefix + key
	versions, err := s.versions(ctx, name)
	if err != nil {
		return fmt.Errorf("set retention of %s: %w", key, err)
	}
	// S3 keeps dates to the second; round up so that the object is never
	// kept less than asked.
	until = until.UTC().Truncate(time.Second).Add(ceilSecond(until))
	mode := minio.Compliance
	for _, v := range versions {
		cur, err := s.retainUntil(ctx, name, v)
		if err != nil {
			return fmt.Errorf("set retention of %s version %s: %w", key, v, err)
		}
		if !until.After(cur) {
			continue // Only ever extended.
		}
		err = s.client.PutObjectRetention(ctx, s.bucket, name, minio.PutObjectRetentionOptions{
			Mode: &mode, RetainUntilDate: &until, VersionID: v,
		})
		if err != nil {
			return fmt.Errorf("set retention of %s version %s until %s: %w", key, v, until.Format(time.RFC3339), err)
		}
	}
	return nil
}

// ceilSecond returns one second if t has a fraction of a second, else zero.
func ceilSecond(t time.Time) time.Duration {
	if t.Truncate(time.Second).Equal(t) {
		return 0
	}
	return time.Second
}

// SetLegalHold sets or lifts the legal hold on every version of the object.
func (s *S3) SetLegalHold(ctx context.Context, key string, on bool) error {
	if err := CheckKey(key); err != nil {
		return fmt.Errorf("set legal hold: %w", err)
	}
	name := s.prefix + key
	versions, err := s.versions(ctx, name)
	if err != nil {
		return fmt.Errorf("set legal hold on %s: %w", key, err)
	}
	status := minio.LegalHoldDisabled
	if on {
		status = minio.LegalHoldEnabled
	}
	for _, v := range versions {
		err := s.client.PutObjectLegalHold(ctx, s.bucket, name, minio.PutObjectLegalHoldOptions{VersionID: v, Status: &status})
		if err != nil {
			return fmt.Errorf("set legal hold %s on %s version %s: %w", status, key, v, err)
		}
	}
	return nil
}

// Retention returns the retain-until date and legal hold of the object's
// current version.
func (s *S3) Retention(ctx context.Context, key string) (time.Time, bool, error) {
	if err := CheckKey(key); err != nil {
		return time.Time{}, false, fmt.Errorf("get retention: %w", err)
	}
	name := s.prefix + key
	info, err := s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("get retention of %s: %w", key, mapS3Err(err))
	}
	until, err := s.retainUntil(ctx, name, info.VersionID)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("get retention of %s: %w", key, err)
	}
	status, err := s.client.GetObjectLegalHold(ctx, s.bucket, name, minio.GetObjectLegalHoldOptions{VersionID: info.VersionID})
	if err != nil && !noLockConfig(err) {
		return time.Time{}, false, fmt.Errorf("get legal hold of %s: %w", key, mapS3Err(err))
	}
	hold := err == nil && status != nil && *status == minio.LegalHoldEnabled
	return until, hold, nil
}

// retainUntil returns a version's retain-until date, zero if it has none.
func (s *S3) retainUntil(ctx context.Context, name, version string) (time.Time, error) {
	_, until, err := s.client.GetObjectRetention(ctx, s.bucket, name, version)
	switch {
	case err != nil && noLockConfig(err):
		return time.Time{}, nil
	case err != nil:
		return time.Time{}, mapS3Err(err)
	case until == nil:
		return time.Time{}, nil
	}
	return *until, nil
}

// versions lists the version ids of the object under name, delete markers
// left out, or ErrNotFound if it has none.
func (s *S3) versions(ctx context.Context, name string) ([]string, error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel() // Stops the listing at the first other key.
	var out []string
	opts := minio.ListObjectsOptions{Prefix: name, Recursive: true, WithVersions: true}
	for obj := range s.client.ListObjectsIter(lctx, s.bucket, opts) {
		if obj.Err != nil {
			return nil, fmt.Errorf("list versions: %w", obj.Err)
		}
		if obj.Key > name {
			break // Versions come in key order; the rest are other keys.
		}
		if obj.Key == name && !obj.IsDeleteMarker {
			out = append(out, obj.VersionID)
		}
	}
	// minio-go ends the listing quietly when ctx ends: it is not complete.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

// noLockConfig reports whether err says the version has no retention or
// legal hold set.
func noLockConfig(err error) bool {
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError":
		return true
	}
	return false
}

// retainedErr wraps ErrRetained around the server's refusal to delete a
// version under retention or legal hold: MinIO answers InvalidRequest "Object
// is WORM protected", AWS AccessDenied "... protected by object lock"; the
// same codes for other causes (credentials) are left alone.
func retainedErr(err error) error {
	resp := minio.ToErrorResponse(err)
	msg := strings.ToLower(resp.Message)
	if (resp.Code == "AccessDenied" || resp.Code == "InvalidRequest") &&
		(strings.Contains(msg, "worm") || strings.Contains(msg, "object lock")) {
		return fmt.Errorf("%w: %w", ErrRetained, err)
	}
	return err
}
