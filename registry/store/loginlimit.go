package store

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Kinds of login that AttemptLogin counts apart.
const (
	LoginStaff = "staff" // a staff user's login and password
	LoginExam  = "exam"  // a candidate's exam password: counted per address only
)

// LoginLimits are the limits AttemptLogin enforces. Every count is of
// attempts let through to a password check that did not succeed, within
// Window.
type LoginLimits struct {
	// PerLoginAddress failures of one login from one client address are
	// free; each further one doubles the wait after the last, from Backoff
	// up to Window.
	PerLoginAddress int
	Backoff         time.Duration
	// PerAddress failures from one address, whatever the login.
	PerAddress int
	// PerLogin failures of one login from any address: past it, addresses
	// the login never succeeded from wait until the oldest failure leaves
	// the window, and those it has succeeded from get one attempt per
	// KnownInterval, so that strangers slow the right user down but do not
	// lock them out.
	PerLogin      int
	KnownInterval time.Duration
	Window        time.Duration
}

// Throttled is the error of an attempt refused by a limit: it must not be
// checked before RetryAfter.
type Throttled struct {
	// Rule is the limit that refused: "login-address" (the login from
	// this address), "login" (the login from every address) or "address"
	// (the address, whatever the login).
	Rule       string
	RetryAfter time.Duration
}

func (t *Throttled) Error() string {
	return fmt.Sprintf("too many failed logins (%s limit): retry after %v", t.Rule, t.RetryAfter)
}

// AttemptLogin counts an attempt of kind to log in as login from client
// address addr at now, before the password is checked, and returns its id;
// or, when a limit of lim is reached, a *Throttled error and counts
// nothing. The check and the count are one transaction that holds a lock
// of the login and one of the address, so that attempts made at once are
// counted one after the other: n parallel attempts get at most the limit
// through. An attempt counts as a failure until LoginSucceeded or
// CancelLoginAttempt. login is ignored for LoginExam.
func (s *Store) AttemptLogin(ctx context.Context, kind, login, addr string, now time.Time, lim LoginLimits) (int64, error) {
	if kind == LoginExam {
		login = ""
	} else {
		login = normalizeLogin(login)
	}
	var id int64
	var refused *Throttled
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		refused = nil
		keys := []int64{lockKey("login-addr", kind, addr)}
		if login != "" {
			keys = append(keys, lockKey("login", kind, login))
		}
		// A fixed order of locks: no two attempts wait for each other.
		slices.Sort(keys)
		for _, k := range keys {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, k); err != nil {
				return err
			}
		}
		since := now.Add(-lim.Window)
		if _, err := tx.Exec(ctx, `DELETE FROM login_attempts WHERE kind = $1 AND (addr = $2 OR ($3 <> '' AND login = $3)) AND at <= $4`,
			kind, addr, login, since); err != nil {
			return err
		}
		var nPair, nAddr, nLogin int
		var lastPair, oldestAddr, oldestLogin *time.Time
		err := tx.QueryRow(ctx, `
			SELECT count(*) FILTER (WHERE login = $3 AND addr = $2), max(at) FILTER (WHERE login = $3 AND addr = $2),
			       count(*) FILTER (WHERE addr = $2), min(at) FILTER (WHERE addr = $2),
			       count(*) FILTER (WHERE login = $3), min(at) FILTER (WHERE login = $3)
			FROM login_attempts WHERE kind = $1 AND (addr = $2 OR ($3 <> '' AND login = $3)) AND at > $4`,
			kind, addr, login, since).Scan(&nPair, &lastPair, &nAddr, &oldestAddr, &nLogin, &oldestLogin)
		if err != nil {
			return err
		}
		refuse := func(rule string, until time.Time) {
			if wait := until.Sub(now); wait > 0 && (refused == nil || wait > refused.RetryAfter) {
				refused = &Throttled{Rule: rule, RetryAfter: wait}
			}
		}
		if nAddr >= lim.PerAddress && oldestAddr != nil {
			refuse("address", oldestAddr.Add(lim.Window))
		}
		if login != "" {
			if nPair >= lim.PerLoginAddress && lastPair != nil {
				refuse("login-address", lastPair.Add(backoff(lim, nPair-lim.PerLoginAddress)))
			}
			if nLogin >= lim.PerLogin && oldestLogin != nil {
				var known bool
				if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM login_known_addrs WHERE login = $1 AND addr = $2)`,
					login, addr).Scan(&known); err != nil {
					return err
				}
				switch {
				case !known:
					refuse("login", oldestLogin.Add(lim.Window))
				case lastPair != nil:
					refuse("login-address", lastPair.Add(lim.KnownInterval))
				}
			}
		}
		if refused != nil {
			return nil
		}
		return tx.QueryRow(ctx, `INSERT INTO login_attempts (kind, login, addr, at) VALUES ($1, $2, $3, $4) RETURNING id`,
			kind, login, addr, now).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("count login attempt: %w", err)
	}
	if refused != nil {
		return 0, refused
	}
	return id, nil
}

// backoff is the wait after the last failure once n failures past the free
// ones were made: Backoff doubled n times, at most Window.
func backoff(lim LoginLimits, n int) time.Duration {
	d := lim.Backoff
	for range n {
		if d >= lim.Window {
			break
		}
		d *= 2
	}
	return min(d, lim.Window)
}

// lockKey is the advisory lock of one limit key.
func lockKey(parts ...string) int64 {
	h := fnv.New64a()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

// LoginSucceeded forgets attempt id, which succeeded. For a staff login it
// also forgets the failures of login from addr and remembers addr as an
// address login has succeeded from.
func (s *Store) LoginSucceeded(ctx context.Context, id int64, kind, login, addr string, now time.Time) error {
	login = normalizeLogin(login)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM login_attempts WHERE id = $1 OR ($2 = 'staff' AND kind = $2 AND login = $3 AND addr = $4)`,
			id, kind, login, addr); err != nil {
			return err
		}
		if kind != LoginStaff {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO login_known_addrs (login, addr, last_at) VALUES ($1, $2, $3)
			ON CONFLICT (login, addr) DO UPDATE SET last_at = excluded.last_at`, login, addr, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("record successful login: %w", err)
	}
	return nil
}

// CancelLoginAttempt forgets attempt id, whose password was never checked.
func (s *Store) CancelLoginAttempt(ctx context.Context, id int64) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM login_attempts WHERE id = $1`, id); err != nil {
		return fmt.Errorf("cancel login attempt: %w", err)
	}
	return nil
}

// LoginAuditRow is the count of one action by one login from one address
// in one minute.
type LoginAuditRow struct {
	Minute time.Time
	Action string
	Login  string
	Addr   string
	Count  int
}

// AuditLogin counts action ("auth.login_failed", "auth.login_throttled",
// …) by login from addr in the minute of at: one row per action, login,
// address and minute, so that a flood of attempts adds rows no faster
// than minutes pass.
func (s *Store) AuditLogin(ctx context.Context, at time.Time, action, login, addr string) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO login_audit (minute, action, login, addr, count) VALUES (date_trunc('minute', $1::timestamptz), $2, $3, $4, 1)
		ON CONFLICT (minute, action, login, addr) DO UPDATE SET count = login_audit.count + 1`, at, action, login, addr)
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// LoginAudit returns the aggregated login audit since since, oldest first.
func (s *Store) LoginAudit(ctx context.Context, since time.Time) ([]LoginAuditRow, error) {
	rows, err := s.pool.Query(ctx, `SELECT minute, action, login, addr, count FROM login_audit WHERE minute >= date_trunc('minute', $1::timestamptz)
		ORDER BY minute, action, login, addr`, since)
	if err != nil {
		return nil, fmt.Errorf("read login audit: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LoginAuditRow, error) {
		var a LoginAuditRow
		err := r.Scan(&a.Minute, &a.Action, &a.Login, &a.Addr, &a.Count)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read login audit: %w", err)
	}
	return out, nil
}

// IsThrottled reports whether err is a *Throttled and returns it.
func IsThrottled(err error) (*Throttled, bool) {
	var t *Throttled
	ok := errors.As(err, &t)
	return t, ok
}
