package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuditEntry is one line of the append-only audit log: who did what to which
// object, when, from where and why.
type AuditEntry struct {
	ID         int64     // assigned by Audit
	At         time.Time // zero means the database's now
	ActorID    int64     // user id, or 0 for none (a failed login, a service)
	ActorLogin string
	Action     string // e.g. "media.get", "auth.login"
	Object     string // e.g. a stream id or an object key
	RemoteAddr string
	Purpose    string // why, as the actor declared it
	Detail     map[string]any
}

// Audit appends e to the audit log. The log cannot be changed afterwards:
// the database refuses updates and deletes.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	detail := []byte("{}")
	if len(e.Detail) > 0 {
		var err error
		if detail, err = json.Marshal(e.Detail); err != nil {
			return fmt.Errorf("audit %s: encode detail: %w", e.Action, err)
		}
	}
	var at *time.Time
	if !e.At.IsZero() {
		at = &e.At
	}
	var actor *int64
	if e.ActorID != 0 {
		actor = &e.ActorID
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO audit_log (at, actor_id, actor_login, action, object, remote_addr, purpose, detail)
		VALUES (coalesce($1, now()), $2, $3, $4, $5, $6, $7, $8)`,
		at, actor, e.ActorLogin, e.Action, e.Object, e.RemoteAddr, e.Purpose, detail)
	if err != nil {
		return fmt.Errorf("audit %s: %w", e.Action, err)
	}
	return nil
}

// AuditLog returns up to limit entries with ids above afterID, oldest first:
// pass the last id seen to page through the log.
func (s *Store) AuditLog(ctx context.Context, afterID int64, limit int) ([]AuditEntry, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT id, at, coalesce(actor_id, 0), actor_login, action, object, remote_addr, purpose, detail
		FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2`, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := row.Scan(&e.ID, &e.At, &e.ActorID, &e.ActorLogin, &e.Action, &e.Object, &e.RemoteAddr, &e.Purpose, &e.Detail)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return entries, nil
}
