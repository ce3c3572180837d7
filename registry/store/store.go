// Package store is the registry's PostgreSQL store, and the only place in
// nokstream that holds SQL: sites and their devices with publish secrets,
// staff users with argon2id passwords and their sessions, the segment index
// filled from SegmentClosed events (partitioned by month), the append-only
// audit log (with the deletions the archiver reports), and the НОК domain: councils,
// qualifications, centers, candidates, exams, admissions and exam
// passwords, results, appeals, reviews, retention settings, and the outbox
// of events (orgs.go, candidates.go, exams.go, examauth.go, results.go,
// appeals.go, reviews.go, evidence.go, outbox.go).
//
// The schema is versioned by goose migrations embedded from migrations/;
// Migrate applies them. Open connects a pgx pool to an already migrated
// database.
package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors that callers branch on. Others are wrapped database errors.
var (
	// ErrExists is returned when adding something that already exists.
	ErrExists = errors.New("already exists")
	// ErrNotFound is returned when the thing asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnknownDevice is returned for a device that is not registered
	// (ingest answers 401, as for wrong credentials, so that device names
	// cannot be probed).
	ErrUnknownDevice = errors.New("unknown device")
	// ErrBadCredentials is returned for a wrong login, password, device
	// secret or session token, without saying which part was wrong (ingest
	// and the API answer 401).
	ErrBadCredentials = errors.New("bad credentials")
	// ErrInvalid is returned, wrapped with the reason, for input that can
	// never be stored: a bad name, role or kind, a short password, a
	// malformed event.
	ErrInvalid = errors.New("invalid")
	// ErrConflict is returned when an event reuses the id of an indexed
	// segment but describes different bytes: a bug or tampering, never a
	// harmless duplicate.
	ErrConflict = errors.New("conflicts with the indexed segment")
)

// namePattern is what site and device names look like: they are path
// elements of stream URLs and object keys.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidName reports whether s is a valid site or device name: 1 to 63
// lowercase letters, digits, '_' or '-', starting with a letter or digit.
func ValidName(s string) bool { return namePattern.MatchString(s) }

// Store is the registry's database. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool

	// hashing bounds the concurrent argon2id computations, each of which
	// takes argonMemory of RAM, so that a burst of logins cannot exhaust it.
	hashing chan struct{}
	// hashes counts the argon2id computations.
	hashes atomic.Uint64
	// hashing costs new password hashes (SetPasswordHashing).
	hashCost PasswordHashing

	// dummyOnce computes dummyHash, which Login verifies against when the
	// login does not exist, so that a missing user takes as long as a wrong
	// password.
	dummyOnce sync.Once
	dummyHash string
	dummyErr  error

	// profiles caches segment_profiles: profileKey → profile_id, and
	// profileRows profile_id → *segmentProfile; each holds at most
	// maxCachedProfiles (counted in profileIDs and profileRowsN).
	profiles, profileRows    sync.Map
	profileIDs, profileRowsN atomic.Int64
}

// Open returns a Store on the database at dsn, which Migrate has brought up
// to date. It does not connect yet: connections are made as needed, so a
// service starts while PostgreSQL is down and catches up when it returns.
// Ping tells whether the database is reachable.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse database dsn: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	return &Store{
		pool: pool,
		// The API bounds logins further (Config.AuthConcurrency), with a
		// short wait and then 503; this bound covers every other caller.
		hashing:  make(chan struct{}, max(1, runtime.GOMAXPROCS(0))),
		hashCost: DefaultPasswordHashing(),
	}, nil
}

// SetPasswordHashing sets the cost of the password hashes made from now on
// (DefaultPasswordHashing until then). Call it before the store is used.
func (s *Store) SetPasswordHashing(p PasswordHashing) error {
	if err := p.Validate(); err != nil {
		return err
	}
	s.hashCost = p
	return nil
}

// Close closes every connection. It waits for queries in progress.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation.
func isUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23505"
}
