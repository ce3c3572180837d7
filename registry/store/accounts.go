package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Kinds of organisation, as OrgSuspension and Organisation name them.
const (
	OrgCouncil = "council"
	OrgCenter  = "center"
	OrgSite    = "site"
)

// orgTables are the table of each kind of organisation.
var orgTables = map[string]string{OrgCouncil: "councils", OrgCenter: "centers", OrgSite: "sites"}

// Organisation is a council, center or site as the accounts pages list it.
type Organisation struct {
	Kind    string // OrgCouncil, OrgCenter or OrgSite
	ID      string
	Name    string
	Parent  string // the council of a center, the center of a site
	Council string // the council the organisation belongs to ("" for a site of no center)
	// CouncilName is the name of Council: a council lists the centers of
	// other councils that it authorised, whose records it does not read.
	CouncilName string
	Users       int // its accounts (experts of a council or center included)
	// Suspension is set while NARK has suspended the organisation.
	Suspension *OrgSuspension
}

// OrgSuspension is NARK's suspension of an organisation.
type OrgSuspension struct {
	Reason  string
	By      string // the login of the NARK operator
	At      time.Time
	ByID    int64
	OrgKind string
	OrgID   string
}

// SetOrgSuspended suspends the organisation kind/id (a reason is required)
// or reactivates it, on behalf of user by at now. While suspended, its
// users (and a center's sites' users) can neither log in nor use a
// session: their sessions end at once, and the logins whose sessions ended
// are returned so that caches can drop them. Its data is untouched.
// Suspending a suspended organisation or reactivating an active one
// changes nothing. An unknown organisation is ErrNotFound, a bad kind
// ErrInvalid.
func (s *Store) SetOrgSuspended(ctx context.Context, kind, id string, suspended bool, reason string, by int64, now time.Time) ([]string, error) {
	table, ok := orgTables[kind]
	if !ok {
		return nil, fmt.Errorf("suspend organisation: %w: kind %q is not council, center or site", ErrInvalid, kind)
	}
	reason = strings.TrimSpace(reason)
	if suspended && reason == "" {
		return nil, fmt.Errorf("suspend %s %s: %w: a suspension needs a reason", kind, id, ErrInvalid)
	}
	var ended []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE id = $1)`, id).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return ErrNotFound
		}
		if !suspended {
			_, err := tx.Exec(ctx, `DELETE FROM org_suspensions WHERE kind = $1 AND org_id = $2`, kind, id)
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO org_suspensions (kind, org_id, reason, suspended_by, suspended_at)
			VALUES ($1, $2, $3, nullif($4, 0), $5) ON CONFLICT (kind, org_id) DO NOTHING`, kind, id, reason, by, now); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `DELETE FROM sessions s USING users u
			WHERE u.id = s.user_id AND org_suspended(u.role, u.org_id) RETURNING u.login`)
		if err != nil {
			return err
		}
		logins, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, l := range logins {
			if !seen[l] {
				seen[l] = true
				ended = append(ended, l)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("set %s %s suspended=%v: %w", kind, id, suspended, err)
	}
	return ended, nil
}

// OrgFilter selects organisations: those of Scope, of Kind (any if ""),
// whose id or name contains Query (not case-sensitive), a page of Limit
// from Offset.
type OrgFilter struct {
	Scope         Scope
	Kind          string
	Query         string
	Limit, Offset int
}

// Organisations returns a page of the organisations f selects, councils
// first, then centers, then sites, each by name, and how many f selects in
// all.
func (s *Store) Organisations(ctx context.Context, f OrgFilter) ([]Organisation, int, error) {
	var a args
	// A council sees its own record, and the centers (and their sites) it
	// sees on the centers page: its own, those it authorised and those it
	// has exams at.
	seen := centerSeenBy("o.center_id", "o.council_id")
	where := f.Scope.where(scopeColumns{council: "o.council_id", center: "o.center_id", site: "o.site_id",
		councilCond: func(p string) string {
			return "(o.council_id = " + p + " OR (o.kind <> 'council' AND " + seen(p) + "))"
		}}, &a)
	kind, query := a.add(f.Kind), a.add(likePattern(f.Query))
	from := `WITH o AS (
			SELECT 'council' AS kind, c.id, c.name, '' AS parent, c.id AS council_id, '' AS center_id, '' AS site_id, 0 AS ord FROM councils c
			UNION ALL SELECT 'center', c.id, c.name, c.council_id, c.council_id, c.id, '', 1 FROM centers c
			UNION ALL SELECT 'site', t.id, coalesce(nullif(t.name, ''), t.id), coalesce(t.center_id, ''), coalesce(c.council_id, ''),
				coalesce(t.center_id, ''), t.id, 2 FROM sites t LEFT JOIN centers c ON c.id = t.center_id)
		`
	cond := ` WHERE ` + where + ` AND (` + kind + ` = '' OR o.kind = ` + kind + `) AND (o.id ILIKE ` + query + ` OR o.name ILIKE ` + query + `)`
	var total int
	if err := s.pool.QueryRow(ctx, from+`SELECT count(*) FROM o`+cond, a...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count organisations: %w", err)
	}
	rows, err := s.pool.Query(ctx, from+`SELECT o.kind, o.id, o.name, o.parent, o.council_id, coalesce(h.name, ''),
			(SELECT count(*) FROM users x WHERE x.org_id = o.id AND (x.role = o.kind OR (x.role = 'expert' AND o.kind <> 'site')))::int,
			s.reason, s.suspended_at, coalesce(s.suspended_by, 0), coalesce(u.login, '')
		FROM o LEFT JOIN councils h ON h.id = o.council_id LEFT JOIN org_suspensions s ON s.kind = o.kind AND s.org_id = o.id LEFT JOIN users u ON u.id = s.suspended_by`+cond+`
		ORDER BY o.ord, o.name, o.id LIMIT `+a.add(pageLimit(f.Limit))+` OFFSET `+a.add(max(f.Offset, 0)), a...)
	if err != nil {
		return nil, 0, fmt.Errorf("list organisations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Organisation, error) {
		var o Organisation
		var reason *string
		var at *time.Time
		var byID int64
		var by string
		if err := r.Scan(&o.Kind, &o.ID, &o.Name, &o.Parent, &o.Council, &o.CouncilName, &o.Users, &reason, &at, &byID, &by); err != nil {
			return o, err
		}
		if reason != nil && at != nil {
			o.Suspension = &OrgSuspension{Reason: *reason, At: *at, By: by, ByID: byID, OrgKind: o.Kind, OrgID: o.ID}
		}
		return o, nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("list organisations: %w", err)
	}
	return out, total, nil
}

// AccountFilter selects accounts: of organisation Org (every account if
// ""), whose login, name or e-mail contains Query (not case-sensitive), a
// page of Limit from Offset.
type AccountFilter struct {
	Org           string
	Query         string
	Limit, Offset int
}

// Accounts returns a page of the accounts f selects, by login, and how
// many f selects in all.
func (s *Store) Accounts(ctx context.Context, f AccountFilter) ([]User, int, error) {
	var a args
	cond := `(` + a.add(f.Org) + ` = '' OR u.org_id = ` + a.add(f.Org) + `) AND (u.login ILIKE ` + a.add(likePattern(f.Query)) + accountSearch(&a, f.Query) + `)`
	var total int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM users u WHERE `+cond, a...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count accounts: %w", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users u WHERE `+cond+` ORDER BY u.login LIMIT `+
		a.add(pageLimit(f.Limit))+` OFFSET `+a.add(max(f.Offset, 0)), a...)
	if err != nil {
		return nil, 0, fmt.Errorf("list accounts: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (User, error) { return scanUser(r) })
	if err != nil {
		return nil, 0, fmt.Errorf("list accounts: %w", err)
	}
	return out, total, nil
}

// accountSearch is the rest of the account search's condition beyond the
// login: the full name and the e-mail.
func accountSearch(a *args, q string) string {
	p := a.add(likePattern(q))
	return ` OR u.full_name ILIKE ` + p + ` OR u.email ILIKE ` + p
}

// SetOrgAdmin makes the user login an admin of their organisation, who
// manages its accounts, or no longer one. Only a council, center or site
// user can be one (ErrInvalid); a missing user is ErrNotFound.
func (s *Store) SetOrgAdmin(ctx context.Context, login string, admin bool) error {
	login = normalizeLogin(login)
	var org *string
	err := s.pool.QueryRow(ctx, `UPDATE users SET org_admin = $2 WHERE login = $1 AND ($2 = false OR (org_id IS NOT NULL AND role IN ('council', 'center', 'site'))) RETURNING org_id`, login, admin).Scan(&org)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := s.UserByLogin(ctx, login); err != nil {
			return fmt.Errorf("set admin %s: %w", login, err)
		}
		return fmt.Errorf("set admin %s: %w: only a council, center or site user of an organisation can be its admin", login, ErrInvalid)
	}
	if err != nil {
		return fmt.Errorf("set admin %s: %w", login, err)
	}
	return nil
}

// MaxPage is the most rows one page of a listing holds.
const MaxPage = 200

// pageLimit is limit within 1..MaxPage, 50 when not given.
func pageLimit(limit int) int {
	switch {
	case limit <= 0:
		return 50
	case limit > MaxPage:
		return MaxPage
	}
	return limit
}

// likePattern is an ILIKE pattern that matches text containing q
// literally.
func likePattern(q string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.TrimSpace(q)) + "%"
}
