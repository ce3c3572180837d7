package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Lease is the right to run a job that must run once across replicas (the
// archiver's sweeper): a PostgreSQL session advisory lock held on a
// connection of its own. When the holder dies, its connection closes and
// the server releases the lock at once, so another replica takes the job at
// its next try; a holder that loses its connection loses the lease, and
// notices it at its next Held.
type Lease struct {
	conn *pgx.Conn
	name string
}

func leaseKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("nokstream.lease." + name))
	return int64(h.Sum64())
}

// TryLease takes the lease called name if no one holds it, and returns nil
// (and no error) if another session does.
func (s *Store) TryLease(ctx context.Context, name string) (*Lease, error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("lease %s: %w", name, err)
	}
	conn := pc.Hijack() // its own connection: the lock lives as long as it
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, leaseKey(name)).Scan(&got); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("lease %s: %w", name, err)
	}
	if !got {
		conn.Close(context.Background())
		return nil, nil
	}
	return &Lease{conn: conn, name: name}, nil
}

// Held reports whether the lease is still held: its session answers (a
// session keeps its advisory locks until it ends, and no other can take
// them).
func (l *Lease) Held(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return l.conn.Ping(ctx) == nil
}

// Release gives the lease up.
func (l *Lease) Release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.conn.Close(ctx) // closing the session releases its locks
}
