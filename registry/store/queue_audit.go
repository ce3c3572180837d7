package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// AuditFilter selects entries of the audit log for AuditTrail. The
// conditions given all apply.
type AuditFilter struct {
	// Object keeps entries about this object: exactly it, or below it
	// ("exam1" also matches "exam1/cand1").
	Object string
	// Org keeps entries about the organisation (its id as the object)
	// and entries by the users that belong to it.
	Org string
	// User keeps entries by the user with this login. (What was done to
	// an account is found by its object, as the action that did it names
	// it.)
	User string
	// Before, when not 0, keeps entries with ids below it: pass the last
	// id of a page to get the next.
	Before int64
	// Limit is the most entries returned, 1 to 500; 100 when 0.
	Limit int
}

// AuditTrail returns entries of the audit log that f selects, newest first.
func (s *Store) AuditTrail(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.Limit > 500 {
		return nil, fmt.Errorf("audit trail: %w: limit %d is above 500", ErrInvalid, f.Limit)
	}
	if f.User != "" {
		f.User = normalizeLogin(f.User)
	}
	rows, err := s.pool.Query(ctx, `
		SELECT a.id, a.at, coalesce(a.actor_id, 0), a.actor_login, a.action, a.object, a.remote_addr, a.purpose, a.detail
		FROM audit_log a
		WHERE ($1 = '' OR a.object = $1 OR a.object LIKE replace(replace($1, '%', '\%'), '_', '\_') || '/%')
			AND ($2 = '' OR a.object = $2 OR a.actor_id = ANY(ARRAY(SELECT u.id FROM users u WHERE u.org_id = $2)))
			AND ($3 = '' OR a.actor_id = (SELECT u.id FROM users u WHERE u.login = $3))
			AND ($4 = 0 OR a.id < $4)
		ORDER BY a.id DESC LIMIT $5`, f.Object, f.Org, f.User, f.Before, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("audit trail: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (AuditEntry, error) {
		var e AuditEntry
		err := row.Scan(&e.ID, &e.At, &e.ActorID, &e.ActorLogin, &e.Action, &e.Object, &e.RemoteAddr, &e.Purpose, &e.Detail)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit trail: %w", err)
	}
	return out, nil
}
