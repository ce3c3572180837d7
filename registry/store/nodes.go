package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Node is a registered ingest node: it asks the registry's node API with
// its token instead of reading the database.
type Node struct {
	Name      string
	CreatedAt time.Time
	RotatedAt time.Time // when its current token was issued
	RevokedAt time.Time // zero unless revoked
	LastSeen  time.Time // zero until it has asked; updated about once a minute
	LastAddr  string
}

// Revoked reports whether the node's token is refused.
func (n Node) Revoked() bool { return !n.RevokedAt.IsZero() }

// AddNode registers the ingest node name with the hash of its token
// (nodeapi.HashToken). A registered node, even revoked, is ErrExists: give
// it a new token with RotateNode.
func (s *Store) AddNode(ctx context.Context, name string, tokenHash []byte) error {
	if !ValidName(name) {
		return fmt.Errorf("add node %q: %w: use lowercase letters, digits, '-' and '_'", name, ErrInvalid)
	}
	if len(tokenHash) == 0 {
		return fmt.Errorf("add node %s: %w: no token hash", name, ErrInvalid)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO ingest_nodes (name, token_hash) VALUES ($1, $2)`, name, tokenHash)
	if isUniqueViolation(err) {
		return fmt.Errorf("add node %s: %w", name, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("add node %s: %w", name, err)
	}
	return nil
}

// RotateNode gives a registered node a new token hash and lifts a
// revocation; the old token stops working at once. An unknown node is
// ErrNotFound.
func (s *Store) RotateNode(ctx context.Context, name string, tokenHash []byte) error {
	if len(tokenHash) == 0 {
		return fmt.Errorf("rotate node %s: %w: no token hash", name, ErrInvalid)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE ingest_nodes SET token_hash = $2, rotated_at = now(), revoked_at = NULL WHERE name = $1`,
		name, tokenHash)
	if err != nil {
		return fmt.Errorf("rotate node %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("rotate node %s: %w", name, ErrNotFound)
	}
	return nil
}

// RevokeNode makes the node's token refused from now on. An unknown node is
// ErrNotFound; revoking a revoked node changes nothing.
func (s *Store) RevokeNode(ctx context.Context, name string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE ingest_nodes SET revoked_at = coalesce(revoked_at, now()) WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("revoke node %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke node %s: %w", name, ErrNotFound)
	}
	return nil
}

// Nodes returns the registered ingest nodes by name.
func (s *Store) Nodes(ctx context.Context) ([]Node, error) {
	rows, err := s.pool.Query(ctx, `SELECT name, created_at, rotated_at, revoked_at, last_seen, last_addr FROM ingest_nodes ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Node, error) {
		var n Node
		var revoked, seen *time.Time
		err := r.Scan(&n.Name, &n.CreatedAt, &n.RotatedAt, &revoked, &seen, &n.LastAddr)
		if revoked != nil {
			n.RevokedAt = *revoked
		}
		if seen != nil {
			n.LastSeen = *seen
		}
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// NodeToken returns the token hash of a node and whether it is revoked. An
// unknown node is ErrNotFound.
func (s *Store) NodeToken(ctx context.Context, name string) (hash []byte, revoked bool, err error) {
	err = s.pool.QueryRow(ctx, `SELECT token_hash, revoked_at IS NOT NULL FROM ingest_nodes WHERE name = $1`, name).Scan(&hash, &revoked)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, fmt.Errorf("node %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, false, fmt.Errorf("read node %s: %w", name, err)
	}
	return hash, revoked, nil
}

// NodeSeen records that the node asked from addr at at.
func (s *Store) NodeSeen(ctx context.Context, name, addr string, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE ingest_nodes SET last_seen = $2, last_addr = $3 WHERE name = $1`, name, at, addr); err != nil {
		return fmt.Errorf("node %s seen: %w", name, err)
	}
	return nil
}

// NodeAuthFailure is the count of failed node authentications of one node
// (or "" when the token named none) for one reason in one minute, with the
// last client address seen.
type NodeAuthFailure struct {
	Minute   time.Time
	Node     string
	Reason   string
	LastAddr string
	Count    int
}

// AuditNodeAuthFailures adds the counts of fs to the node authentication
// audit: one row per minute, node and reason.
func (s *Store) AuditNodeAuthFailures(ctx context.Context, fs []NodeAuthFailure) error {
	if len(fs) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, f := range fs {
		b.Queue(`INSERT INTO node_auth_audit (minute, node, reason, last_addr, count) VALUES (date_trunc('minute', $1::timestamptz), $2, $3, $4, $5)
			ON CONFLICT (minute, node, reason) DO UPDATE SET count = node_auth_audit.count + EXCLUDED.count, last_addr = EXCLUDED.last_addr`,
			f.Minute, f.Node, f.Reason, f.LastAddr, f.Count)
	}
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("audit node authentication failures: %w", err)
	}
	return nil
}

// NodeAuthFailures returns the node authentication audit since since,
// oldest first.
func (s *Store) NodeAuthFailures(ctx context.Context, since time.Time) ([]NodeAuthFailure, error) {
	rows, err := s.pool.Query(ctx, `SELECT minute, node, reason, last_addr, count FROM node_auth_audit
		WHERE minute >= date_trunc('minute', $1::timestamptz) ORDER BY minute, node, reason`, since)
	if err != nil {
		return nil, fmt.Errorf("read node authentication audit: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (NodeAuthFailure, error) {
		var f NodeAuthFailure
		err := r.Scan(&f.Minute, &f.Node, &f.Reason, &f.LastAddr, &f.Count)
		return f, err
	})
	if err != nil {
		return nil, fmt.Errorf("read node authentication audit: %w", err)
	}
	return out, nil
}
