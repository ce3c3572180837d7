package store

import (
	"context"
	"fmt"
)

// checkUserOrg checks that orgID is an organisation a user of role may
// belong to: none for NARK, a council, center or site for those roles, and
// none, a council or a center for an expert.
func (s *Store) checkUserOrg(ctx context.Context, role, orgID string) error {
	if orgID == "" {
		switch role {
		case RoleNARK, RoleExpert:
			return nil
		default:
			return fmt.Errorf("%w: a %s user needs an organisation (--org), the %s they belong to", ErrInvalid, role, role)
		}
	}
	var query, want string
	switch role {
	case RoleNARK:
		return fmt.Errorf("%w: a NARK operator belongs to no organisation", ErrInvalid)
	case RoleCouncil:
		query, want = `SELECT EXISTS (SELECT 1 FROM councils WHERE id = $1)`, "council"
	case RoleCenter:
		query, want = `SELECT EXISTS (SELECT 1 FROM centers WHERE id = $1)`, "center"
	case RoleSite:
		query, want = `SELECT EXISTS (SELECT 1 FROM sites WHERE id = $1 AND center_id IS NOT NULL)`, "site of a center"
	case RoleExpert:
		query, want = `SELECT EXISTS (SELECT 1 FROM councils WHERE id = $1) OR EXISTS (SELECT 1 FROM centers WHERE id = $1)`, "council or center"
	}
	var ok bool
	if err := s.pool.QueryRow(ctx, query, orgID).Scan(&ok); err != nil {
		return fmt.Errorf("look up organisation %s: %w", orgID, err)
	}
	if !ok {
		return fmt.Errorf("%w: no %s %q: create it with 'nokstream org add'", ErrNotFound, want, orgID)
	}
	return nil
}
