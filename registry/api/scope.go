package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// This file is the one place that decides who sees what. Every object of
// the registry has an Owner (store.Owner): the council, center and site it
// belongs to and, for what belongs to an exam, the exam and its experts.
//
//   - A NARK operator sees everything.
//   - A council user sees what belongs to its council: its centers, their
//     sites, exams, candidates, results and appeals. A multi-industry
//     center (authorised by further councils for their qualifications) is
//     seen by each of its councils, with its sites; its exams, and what
//     belongs to them, only by the exam's council (store.examCouncil); its
//     candidates by the councils of their exams; its footage by the
//     council of the exam it is evidence for, and outside other councils'
//     exams by the home council (canSee). Only the home council changes
//     the center and its sites.
//   - A center user sees what belongs to its center.
//   - A site user sees what belongs to its site: its exams and devices.
//   - An expert sees the exams they are appointed to and what belongs to
//     them (candidates of the exam, evidence, protocol, reviews), and
//     nothing else.
//   - A candidate (exam token) sees only their own exam session.
//
// What a caller may not see answers 404, as if it did not exist, so that ids
// cannot be probed. What a caller sees but whose role may not change answers
// 403. Listings are filtered by the same rule: scopeOf narrows the query,
// and visible is checked again on every row.

// candidateFields are the personal data of a candidate, beyond the name,
// that a role reads (152-FZ: no more than the purpose needs).
type candidateFields struct {
	document bool // the identity document's type and number
	snils    bool // СНИЛС
	contacts bool // e-mail and phone
}

// candidateFieldsOf returns what of a candidate role reads, in lists and
// single reads alike: an expert reviews the procedure and needs the name
// only; a site checks identity and needs the identity document too; the
// center that registers candidates, its council and NARK read everything.
func candidateFieldsOf(role string) candidateFields {
	switch role {
	case store.RoleNARK, store.RoleCouncil, store.RoleCenter:
		return candidateFields{document: true, snils: true, contacts: true}
	case store.RoleSite:
		return candidateFields{document: true}
	}
	return candidateFields{}
}

// visible reports whether u may see an object owned by o.
func visible(u store.User, o store.Owner) bool {
	switch u.Role {
	case store.RoleNARK:
		return true
	case store.RoleCouncil:
		return o.SeenByCouncil(u.OrgID)
	case store.RoleCenter:
		return u.OrgID != "" && o.Center == u.OrgID
	case store.RoleSite:
		return u.OrgID != "" && o.Site == u.OrgID
	case store.RoleExpert:
		return o.HasExpert(u.ID)
	}
	return false
}

// scopeOf returns the store.Scope that narrows a listing to what u may see:
// visible in the form the store filters by.
func scopeOf(u store.User) store.Scope {
	switch u.Role {
	case store.RoleNARK:
		return store.Scope{}
	case store.RoleCouncil:
		return store.Scope{Council: u.OrgID, None: u.OrgID == ""}
	case store.RoleCenter:
		return store.Scope{Center: u.OrgID, None: u.OrgID == ""}
	case store.RoleSite:
		return store.Scope{Site: u.OrgID, None: u.OrgID == ""}
	case store.RoleExpert:
		return store.Scope{Expert: u.ID}
	}
	return store.Scope{None: true}
}

// allow returns nil if c may act on an object owned by o with a role among
// roles (any role when none are given): a 404 naming what when c may not
// see it, a 403 when c sees it but its role may not do this.
func allow(c *caller, o store.Owner, what string, roles ...string) error {
	if c == nil || c.exam != nil || !visible(c.user, o) {
		return errorf(http.StatusNotFound, "unknown %s", what)
	}
	if len(roles) > 0 && !slices.Contains(roles, c.user.Role) {
		return errorf(http.StatusForbidden, "a %s user may not do this", c.user.Role)
	}
	if len(roles) > 0 && c.user.Role == store.RoleCouncil && o.Council != c.user.OrgID {
		// A council that only authorised a multi-industry center (or sees
		// a candidate through its exams) reads; the owner changes.
		return errorf(http.StatusForbidden, "council %s may not change this: it belongs to council %s", c.user.OrgID, o.Council)
	}
	return nil
}

// allowRole returns nil if c's role is among roles, for actions that create
// something in c's own organisation; a 403 otherwise.
func allowRole(c *caller, roles ...string) error {
	if c == nil || c.exam != nil || !slices.Contains(roles, c.user.Role) {
		role := "candidate"
		if c != nil && c.exam == nil {
			role = c.user.Role
		}
		return errorf(http.StatusForbidden, "a %s user may not do this", role)
	}
	if c.user.OrgID == "" && c.user.Role != store.RoleNARK && c.user.Role != store.RoleExpert {
		return errorf(http.StatusForbidden, "user %s belongs to no organisation", c.user.Login)
	}
	return nil
}

// canSee reports whether u may see the footage of stream <site>/<device>
// in [from, to) and its media. A NARK operator sees every stream; a
// council, center or site user the streams of the sites they see; an
// expert a stream that is evidence for an exam they are appointed to, and
// only inside that exam's window. within says how [from, to) must relate to
// an expert's window: contained (a requested range) or overlapping (one
// segment, which may straddle the window's edge). A zero from and to (an
// init segment, which holds no footage) needs only some window.
func (s *Server) canSee(ctx context.Context, u store.User, site, device string, from, to time.Time, contained bool) (bool, error) {
	return canSeeIn(ctx, s.db.scope, u, site, device, from, to, contained)
}

// scopeLookups is what canSee reads of the store: the media route reads it
// through a short-lived cache (mediaread.go).
type scopeLookups interface {
	ExpertStreamWindows(ctx context.Context, expert int64, site, device string) ([]store.Window, error)
	StreamExamWindows(ctx context.Context, site, device string) ([]store.ExamWindow, error)
	Site(ctx context.Context, id string) (store.Site, error)
}

// inWindows reports whether [from, to) is inside one of windows (contained)
// or overlaps one; a zero from and to needs only some window.
func inWindows(windows []store.Window, from, to time.Time, contained bool) bool {
	for _, w := range windows {
		switch {
		case from.IsZero() && to.IsZero():
			return true
		case contained && !from.Before(w.Start) && !to.After(w.End):
			return true
		case !contained && from.Before(w.End) && to.After(w.Start):
			return true
		}
	}
	return false
}

// councilSees reports whether council may see footage [from, to) of stream
// <site>/<device> of a site it sees: inside the windows of its own exams
// there (footage may be evidence for two councils' exams at once), or, for
// the site's home council, footage that overlaps no other council's exam.
func councilSees(ctx context.Context, l scopeLookups, council string, st store.Site, device string, from, to time.Time, contained bool) (bool, error) {
	windows, err := l.StreamExamWindows(ctx, st.ID, device)
	if err != nil {
		return false, err
	}
	var own []store.Window
	for _, w := range windows {
		if w.Council == council {
			own = append(own, w.Window)
		}
	}
	if inWindows(own, from, to, contained) {
		return true, nil
	}
	if st.CouncilID != council {
		return false, nil
	}
	for _, w := range windows {
		if w.Council == council {
			continue
		}
		if from.IsZero() && to.IsZero() {
			continue // an init segment holds no footage
		}
		if from.Before(w.End) && to.After(w.Start) {
			return false, nil
		}
	}
	return true, nil
}

// canSeeIn is canSee reading l.
func canSeeIn(ctx context.Context, l scopeLookups, u store.User, site, device string, from, to time.Time, contained bool) (bool, error) {
	switch u.Role {
	case store.RoleNARK:
		return true, nil
	case store.RoleExpert:
		windows, err := l.ExpertStreamWindows(ctx, u.ID, site, device)
		if err != nil {
			return false, err
		}
		return inWindows(windows, from, to, contained), nil
	}
	st, err := l.Site(ctx, site)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !visible(u, st.Owner()) {
		return false, nil
	}
	if u.Role == store.RoleCouncil {
		return councilSees(ctx, l, u.OrgID, st, device, from, to, contained)
	}
	return true, nil
}
