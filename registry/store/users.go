package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Roles of staff users (shared/design.md, "Who uses it").
const (
	RoleNARK    = "nark"    // NARK operator: reads everything
	RoleCouncil = "council" // council (СПК)
	RoleCenter  = "center"  // assessment center (ЦОК)
	RoleSite    = "site"    // exam site (ЭП)
	RoleExpert  = "expert"  // expert reviewing recordings
)

// MinPasswordLength is the fewest characters a chosen password may have.
const MinPasswordLength = 12

// loginPattern is what a login looks like after lowercasing: a name or an
// e-mail address.
var loginPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._@+-]{0,127}$`)

// User is a staff user.
type User struct {
	ID    int64
	Login string
	Role  string
	// OrgID is the organisation the user belongs to (a council, center or
	// site id), or "" for none (NARK).
	OrgID              string
	MustChangePassword bool
	PasswordChangedAt  time.Time
	CreatedAt          time.Time
	Disabled           bool
	// DisabledBy is the role of whoever disabled the account (RoleNARK or
	// the role of the organisation's admin), "" when it is not disabled.
	DisabledBy string
	// OrgAdmin is set for a user who manages the accounts of their
	// organisation (SetUserDisabledBy).
	OrgAdmin bool
	// OrgSuspended is set while NARK has suspended the user's organisation
	// (SetOrgSuspended): the user can neither log in nor use a session.
	OrgSuspended bool
	Profile      Profile
	// PolicyVersion is the version of the privacy policy the user accepted
	// ("" for none), at PolicyAcceptedAt.
	PolicyVersion    string
	PolicyAcceptedAt time.Time
}

// userColumns are the columns scanUser reads, in its order.
const userColumns = `u.id, u.login, u.role, coalesce(u.org_id, ''), u.must_change_password, u.password_changed_at, u.created_at, u.disabled,
	u.disabled_by, u.org_admin, org_suspended(u.role, u.org_id), u.full_name, u.position, u.phone, u.email, u.region,
	u.policy_version, coalesce(u.policy_accepted_at, 'epoch')`

// userActive is the condition on users u of a user who may log in and use
// a session: not disabled, and their organisation not suspended.
const userActive = `NOT u.disabled AND NOT org_suspended(u.role, u.org_id)`

// scanUser scans userColumns (and then extra) into a User.
func scanUser(row pgx.Row, extra ...any) (User, error) {
	var u User
	dest := append([]any{&u.ID, &u.Login, &u.Role, &u.OrgID, &u.MustChangePassword, &u.PasswordChangedAt, &u.CreatedAt, &u.Disabled,
		&u.DisabledBy, &u.OrgAdmin, &u.OrgSuspended, &u.Profile.FullName, &u.Profile.Position, &u.Profile.Phone, &u.Profile.Email, &u.Profile.Region,
		&u.PolicyVersion, &u.PolicyAcceptedAt}, extra...)
	if u.PolicyVersion == "" {
		u.PolicyAcceptedAt = time.Time{}
	}
	err := row.Scan(dest...)
	return u, err
}

// normalizeLogin returns the canonical form of a login: logins are not
// case-sensitive.
func normalizeLogin(login string) string { return strings.ToLower(strings.TrimSpace(login)) }

// AddUser creates a user with a temporary password and returns it. The user
// must change it at the first login before anything else works. orgID is
// the user's organisation: none for a NARK operator, the council, center or
// site of a user of that role, and optionally a council or center for an
// expert (ErrInvalid otherwise, ErrNotFound if it does not exist). An
// existing login is ErrExists.
func (s *Store) AddUser(ctx context.Context, login, role, orgID string) (tempPassword string, err error) {
	login = normalizeLogin(login)
	if !loginPattern.MatchString(login) {
		return "", fmt.Errorf("add user: %w: login %q: want 1-128 of a-z, 0-9, '.', '_', '@', '+', '-', starting with a letter or digit", ErrInvalid, login)
	}
	switch role {
	case RoleNARK, RoleCouncil, RoleCenter, RoleSite, RoleExpert:
	default:
		return "", fmt.Errorf("add user %s: %w: role %q is not nark, council, center, site or expert", login, ErrInvalid, role)
	}
	if orgID != "" && !ValidName(orgID) {
		return "", fmt.Errorf("add user %s: %w: organisation id %q", login, ErrInvalid, orgID)
	}
	if err := s.checkUserOrg(ctx, role, orgID); err != nil {
		return "", fmt.Errorf("add user %s: %w", login, err)
	}
	tempPassword = newTempPassword()
	hash, err := s.hashPassword(ctx, tempPassword)
	if err != nil {
		return "", fmt.Errorf("add user %s: %w", login, err)
	}
	_, err = s.pool.Exec(ctx,
		`INSERT INTO users (login, role, org_id, password_hash, must_change_password) VALUES ($1, $2, nullif($3, ''), $4, true)`,
		login, role, orgID, hash)
	if isUniqueViolation(err) {
		return "", fmt.Errorf("add user %s: %w", login, ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("add user %s: %w", login, err)
	}
	return tempPassword, nil
}

// ResetPassword gives a user a new temporary password, ends every session
// of the user, and returns the password. It must be changed at the next
// login. A missing user is ErrNotFound.
func (s *Store) ResetPassword(ctx context.Context, login string) (tempPassword string, err error) {
	login = normalizeLogin(login)
	tempPassword = newTempPassword()
	hash, err := s.hashPassword(ctx, tempPassword)
	if err != nil {
		return "", fmt.Errorf("reset password of %s: %w", login, err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `UPDATE users SET password_hash = $2, must_change_password = true WHERE login = $1 RETURNING id`,
			login, hash).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, id)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("reset password of %s: %w", login, err)
	}
	return tempPassword, nil
}

// SetUserDisabled disables (or enables again) the user login as NARK
// does. Disabling ends every session of the user, and with them the signed
// links they made. A missing user is ErrNotFound.
func (s *Store) SetUserDisabled(ctx context.Context, login string, disabled bool) error {
	return s.SetUserDisabledBy(ctx, login, disabled, RoleNARK, "")
}

// SetUserDisabledBy disables (or enables again) the user login on behalf
// of a user of role byRole. With org not "", the user must belong to
// organisation org (ErrNotFound otherwise): an organisation's admin
// manages its own users only, and may not enable an account that NARK
// disabled (ErrState). Disabling ends every session of the user at once.
func (s *Store) SetUserDisabledBy(ctx context.Context, login string, disabled bool, byRole, org string) error {
	login = normalizeLogin(login)
	by := ""
	if disabled {
		by = byRole
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id int64
		var was string
		err := tx.QueryRow(ctx, `SELECT id, disabled_by FROM users WHERE login = $1 AND ($2 = '' OR org_id = $2) FOR UPDATE`, login, org).Scan(&id, &was)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if byRole != RoleNARK && was == RoleNARK {
			return fmt.Errorf("%w: NARK suspended this account; only NARK reactivates it", ErrState)
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET disabled = $2, disabled_by = $3 WHERE id = $1`, id, disabled, by); err != nil || !disabled {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("set user %s disabled=%v: %w", login, disabled, err)
	}
	return nil
}

// Login checks a login and password and returns the user. A missing user, a
// wrong password, a disabled user and one of a suspended organisation are
// all ErrBadCredentials, and take the same time.
func (s *Store) Login(ctx context.Context, login, password string) (User, error) {
	login = normalizeLogin(login)
	var phc string
	u, err := scanUser(s.pool.QueryRow(ctx,
		`SELECT `+userColumns+`, u.password_hash FROM users u WHERE u.login = $1`, login), &phc)
	if errors.Is(err, pgx.ErrNoRows) {
		dummy, err := s.dummy()
		if err != nil {
			return User{}, fmt.Errorf("log in: %w", err)
		}
		if _, err := s.verifyPassword(ctx, dummy, password); err != nil {
			return User{}, fmt.Errorf("log in: %w", err)
		}
		return User{}, fmt.Errorf("log in: %w", ErrBadCredentials)
	}
	if err != nil {
		return User{}, fmt.Errorf("log in: %w", err)
	}
	ok, err := s.verifyPassword(ctx, phc, password)
	if err != nil {
		return User{}, fmt.Errorf("log in user %d: %w", u.ID, err)
	}
	if !ok || u.Disabled || u.OrgSuspended {
		return User{}, fmt.Errorf("log in: %w", ErrBadCredentials)
	}
	return u, nil
}

// ChangePassword replaces the password of user id after checking the old
// one (ErrBadCredentials if wrong). The new password must have at least
// MinPasswordLength characters and differ from the old one (ErrInvalid). It
// clears must_change_password and ends every session of the user: the
// caller creates a new one.
func (s *Store) ChangePassword(ctx context.Context, id int64, oldPassword, newPassword string) error {
	if n := utf8.RuneCountInString(newPassword); n < MinPasswordLength {
		return fmt.Errorf("change password: %w: new password has %d characters, fewer than %d", ErrInvalid, n, MinPasswordLength)
	}
	if newPassword == oldPassword {
		return fmt.Errorf("change password: %w: new password is the old one", ErrInvalid)
	}
	var phc string
	err := s.pool.QueryRow(ctx, `SELECT password_hash FROM users WHERE id = $1 AND NOT disabled`, id).Scan(&phc)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("change password of user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("change password of user %d: %w", id, err)
	}
	ok, err := s.verifyPassword(ctx, phc, oldPassword)
	if err != nil {
		return fmt.Errorf("change password of user %d: %w", id, err)
	}
	if !ok {
		return fmt.Errorf("change password of user %d: %w", id, ErrBadCredentials)
	}
	hash, err := s.hashPassword(ctx, newPassword)
	if err != nil {
		return fmt.Errorf("change password of user %d: %w", id, err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The old hash in the WHERE clause makes two concurrent changes
		// safe: only the first one that checked the old password wins.
		tag, err := tx.Exec(ctx,
			`UPDATE users SET password_hash = $2, must_change_password = false, password_changed_at = now()
			 WHERE id = $1 AND password_hash = $3`, id, hash, phc)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrBadCredentials
		}
		_, err = tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("change password of user %d: %w", id, err)
	}
	return nil
}

// UserByID returns the user with id, or ErrNotFound.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, fmt.Errorf("get user %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("get user %d: %w", id, err)
	}
	return u, nil
}

// UserByLogin returns the user with login, or ErrNotFound.
func (s *Store) UserByLogin(ctx context.Context, login string) (User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.login = $1`, normalizeLogin(login)))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, fmt.Errorf("get user by login: %w", ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("get user by login: %w", err)
	}
	return u, nil
}

// CreateSession starts a session of user id that lasts ttl from now and
// returns its bearer token and expiry. Only the token's SHA-256 is stored.
// The user's sessions that expired by now are removed.
func (s *Store) CreateSession(ctx context.Context, id int64, now time.Time, ttl time.Duration) (token string, expires time.Time, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", time.Time{}, fmt.Errorf("create session of user %d: generate token: %w", id, err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	expires = now.Add(ttl)
	th := tokenHash(token)
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1 AND expires_at <= $2`, id, now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx,
			`INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)`,
			th, id, now, expires)
		return err
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("create session of user %d: %w", id, err)
	}
	return token, expires, nil
}

// UserByToken returns the user whose session token is token. An unknown or
// expired (at now) token, a disabled user or one of a suspended
// organisation is ErrBadCredentials.
func (s *Store) UserByToken(ctx context.Context, token string, now time.Time) (User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx,
		`SELECT `+userColumns+` FROM sessions s JOIN users u ON u.id = s.user_id
		 WHERE s.token_hash = $1 AND s.expires_at > $2 AND `+userActive,
		tokenHash(token), now))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, fmt.Errorf("check session token: %w", ErrBadCredentials)
	}
	if err != nil {
		return User{}, fmt.Errorf("check session token: %w", err)
	}
	return u, nil
}

// SessionByToken is UserByToken that also returns the id of the session,
// which signed links name so that ending the session revokes them.
func (s *Store) SessionByToken(ctx context.Context, token string, now time.Time) (User, int64, error) {
	var sid int64
	u, err := scanUser(s.pool.QueryRow(ctx,
		`SELECT `+userColumns+`, s.id FROM sessions s JOIN users u ON u.id = s.user_id
		 WHERE s.token_hash = $1 AND s.expires_at > $2 AND `+userActive,
		tokenHash(token), now), &sid)
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, 0, fmt.Errorf("check session token: %w", ErrBadCredentials)
	}
	if err != nil {
		return User{}, 0, fmt.Errorf("check session token: %w", err)
	}
	return u, sid, nil
}

// UserBySession returns user uid if session sid is still one of theirs at
// now: not expired, not ended by logout, a password change or reset, and
// the user not disabled, nor their organisation suspended. Otherwise it is
// ErrBadCredentials.
func (s *Store) UserBySession(ctx context.Context, sid, uid int64, now time.Time) (User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx,
		`SELECT `+userColumns+` FROM sessions s JOIN users u ON u.id = s.user_id
		 WHERE s.id = $1 AND s.user_id = $2 AND s.expires_at > $3 AND `+userActive, sid, uid, now))
	if errors.Is(err, pgx.ErrNoRows) {
		return User{}, fmt.Errorf("check session %d: %w", sid, ErrBadCredentials)
	}
	if err != nil {
		return User{}, fmt.Errorf("check session %d: %w", sid, err)
	}
	return u, nil
}

// DeleteSession ends the session of token. Ending an unknown session is not
// an error.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE token_hash = $1`, tokenHash(token)); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// tokenHash is what the sessions table keeps of a token.
func tokenHash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// hashPassword hashes under the concurrency bound of s.hashing.
func (s *Store) hashPassword(ctx context.Context, password string) (string, error) {
	if err := s.acquireHashing(ctx); err != nil {
		return "", err
	}
	defer func() { <-s.hashing }()
	s.hashes.Add(1)
	return hashPassword(s.hashCost, password)
}

// verifyPassword verifies under the concurrency bound of s.hashing.
func (s *Store) verifyPassword(ctx context.Context, phc, password string) (bool, error) {
	if err := s.acquireHashing(ctx); err != nil {
		return false, err
	}
	defer func() { <-s.hashing }()
	s.hashes.Add(1)
	return verifyPassword(phc, password)
}

func (s *Store) acquireHashing(ctx context.Context) error {
	select {
	case s.hashing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait to hash password: %w", ctx.Err())
	}
}

// PasswordHashes returns how many argon2id hashes s has computed, to check
// or to set a password: each costs argonMemory and a core for a moment.
func (s *Store) PasswordHashes() uint64 { return s.hashes.Load() }

// dummy returns a hash to verify against when a login does not exist.
func (s *Store) dummy() (string, error) {
	s.dummyOnce.Do(func() {
		s.dummyHash, s.dummyErr = hashPassword(s.hashCost, newTempPassword())
	})
	return s.dummyHash, s.dummyErr
}
