// Package store is the archiver's PostgreSQL store: its own schema,
// `archiver`, with its own migrations (migrations/, versioned in
// archiver.goose_db_version apart from the registry's). It holds what the
// archiver decides and does: every archived object with the retention
// applied to it and the sweeper's marks, the last verified hash-chain value
// of each stream, the seals of candidate-exams, the checks of stored
// segments, the log of deletions (and which of them the registry has
// recorded), and the sweeper's lease. No SQL here touches a registry table.
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors that callers branch on. Others are wrapped database errors.
var (
	// ErrNotFound is returned when the thing asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when adding something that already exists.
	ErrExists = errors.New("already exists")
)

// Schema is the PostgreSQL schema of the archiver's tables.
const Schema = "archiver"

// Store is the archiver's database. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

// Open returns a Store on the database at dsn, whose archiver schema
// Migrate has brought up to date. It does not connect yet: connections are
// made as needed, so the archiver starts while PostgreSQL is down and
// catches up when it returns.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse archiver database dsn: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open archiver database pool: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes every connection. It waits for queries in progress.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping archiver database: %w", err)
	}
	return nil
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation.
func isUniqueViolation(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23505"
}
