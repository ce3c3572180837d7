package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Profile is what a staff user's record says of the person (152-FZ: no
// more than their work needs): full name, position, work phone and e-mail,
// and region.
type Profile struct {
	FullName string
	Position string
	Phone    string
	Email    string
	Region   string
}

var (
	phonePattern = regexp.MustCompile(`^\+?[0-9 ()-]{5,40}$`)
	emailPattern = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)
)

// Normalize trims p's fields and checks them: ErrInvalid names the first
// field that is too long or malformed. Every field may be empty.
func (p *Profile) Normalize() error {
	for _, f := range []struct {
		name string
		v    *string
		max  int
	}{{"full_name", &p.FullName, 200}, {"position", &p.Position, 200}, {"phone", &p.Phone, 40}, {"email", &p.Email, 200}, {"region", &p.Region, 100}} {
		*f.v = strings.TrimSpace(*f.v)
		if n := utf8.RuneCountInString(*f.v); n > f.max || !utf8.ValidString(*f.v) {
			return fmt.Errorf("%w: %s has %d characters, more than %d", ErrInvalid, f.name, n, f.max)
		}
	}
	if p.Phone != "" && !phonePattern.MatchString(p.Phone) {
		return fmt.Errorf("%w: phone %q: want digits, spaces, '+', '-', '(' and ')'", ErrInvalid, p.Phone)
	}
	if p.Email != "" && !emailPattern.MatchString(p.Email) {
		return fmt.Errorf("%w: email %q is not an e-mail address", ErrInvalid, p.Email)
	}
	return nil
}

// SetProfile replaces the profile of the user login. With org not "", the
// user must belong to organisation org (ErrNotFound otherwise): an
// organisation's admin edits its own users only. A malformed field is
// ErrInvalid.
func (s *Store) SetProfile(ctx context.Context, login, org string, p Profile) error {
	if err := p.Normalize(); err != nil {
		return fmt.Errorf("set profile of %s: %w", login, err)
	}
	tag, err := s.pool.Exec(ctx, `UPDATE users SET full_name = $3, position = $4, phone = $5, email = $6, region = $7
		WHERE login = $1 AND ($2 = '' OR org_id = $2)`, normalizeLogin(login), org, p.FullName, p.Position, p.Phone, p.Email, p.Region)
	if err != nil {
		return fmt.Errorf("set profile of %s: %w", login, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("set profile of %s: %w", login, ErrNotFound)
	}
	return nil
}

// AcceptPolicy records that user id accepted version of the privacy
// policy at now. A missing user is ErrNotFound.
func (s *Store) AcceptPolicy(ctx context.Context, id int64, version string, now time.Time) error {
	if strings.TrimSpace(version) == "" {
		return fmt.Errorf("accept privacy policy: %w: no version", ErrInvalid)
	}
	var got int64
	err := s.pool.QueryRow(ctx, `UPDATE users SET policy_version = $2, policy_accepted_at = $3 WHERE id = $1 RETURNING id`, id, version, now).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("accept privacy policy: user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("accept privacy policy: user %d: %w", id, err)
	}
	return nil
}
