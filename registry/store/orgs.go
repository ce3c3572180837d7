package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // checkTimeZone: the same zones on every machine

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
)

// Commission is a council's appeals commission (апелляционная комиссия).
type Commission struct {
	Members []string
	Address string // postal address
	Email   string
	Phones  []string
}

// Missing returns what the commission lacks of what the registry procedure
// requires before a result may be entered: members, postal address, e-mail
// and a phone. Nil means complete.
func (c Commission) Missing() []string {
	var m []string
	if len(cleanList(c.Members)) == 0 {
		m = append(m, "members")
	}
	if strings.TrimSpace(c.Address) == "" {
		m = append(m, "postal address")
	}
	if strings.TrimSpace(c.Email) == "" {
		m = append(m, "e-mail")
	}
	if len(cleanList(c.Phones)) == 0 {
		m = append(m, "phone")
	}
	return m
}

// Council is a council for professional qualifications (СПК).
type Council struct {
	ID         string
	Name       string
	Commission Commission
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Owner returns where the council sits: at its own top.
func (c Council) Owner() Owner { return Owner{Council: c.ID} }

// Center is an assessment center (ЦОК) authorised by its council for a list
// of qualifications. A multi-industry center keeps its home council
// (CouncilID) and is authorised by further councils for qualifications of
// theirs (Authorisations): each of them sees its basic details and only the
// exams of its own qualifications.
type Center struct {
	ID        string
	CouncilID string
	// CouncilName is the home council's name (read only): whoever sees
	// the center sees it, though a council that authorised the center
	// does not read the home council's record.
	CouncilName    string
	Name           string
	Head           string // full name of the head
	Website        string // official site
	LegalAddress   string
	ActualAddress  string // where it really works (фактический адрес)
	PostalAddress  string
	Email          string
	Phones         []string
	Qualifications []string // codes the councils authorised it for, by any council
	// Authorisations are the center's authorisations, by council and
	// qualification (read only: SaveCenter sets its home council's,
	// AuthoriseCenter and WithdrawAuthorisation any council's).
	Authorisations []Authorisation
	// Councils are the councils that see the center besides its home
	// council: those that authorised it, or have exams there (read only).
	Councils  []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Owner returns where the center sits.
func (c Center) Owner() Owner { return Owner{Council: c.CouncilID, Councils: c.Councils, Center: c.ID} }

// MissingDetails returns the required details the center lacks before a
// result of its exams may be entered: head, official site, legal address,
// e-mail and phone. Nil means complete.
func (c Center) MissingDetails() []string {
	var m []string
	for _, f := range []struct{ name, v string }{
		{"head", c.Head}, {"official site", c.Website}, {"legal address", c.LegalAddress}, {"e-mail", c.Email},
	} {
		if strings.TrimSpace(f.v) == "" {
			m = append(m, f.name)
		}
	}
	if len(cleanList(c.Phones)) == 0 {
		m = append(m, "phone")
	}
	return m
}

// Site is an exam site (ЭП) of a center. A site of the spine that no center
// claimed yet has an empty CenterID.
type Site struct {
	ID        string
	CenterID  string
	CouncilID string // the center's home council; read only
	// Councils are the further councils that see the site: those that see
	// its center (Center.Councils; read only).
	Councils []string
	Name     string
	Address  string
	Email    string
	Phones   []string
	// TimeZone is the IANA name of the site's time zone (DefaultTimeZone
	// when not given): the pages show its exams' times in it.
	TimeZone  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// DefaultTimeZone is the time zone of a site that names none.
const DefaultTimeZone = "Europe/Moscow"

// checkTimeZone returns nil if tz names an IANA time zone, ErrInvalid
// otherwise. The zone database is embedded (time/tzdata), so the answer
// does not depend on the machine.
func checkTimeZone(tz string) error {
	if tz == "" || tz == "Local" {
		return fmt.Errorf("%w: time zone %q: want an IANA name such as Europe/Moscow or Asia/Yekaterinburg", ErrInvalid, tz)
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return fmt.Errorf("%w: time zone %q: want an IANA name such as Europe/Moscow or Asia/Yekaterinburg", ErrInvalid, tz)
	}
	return nil
}

// MissingDetails returns the details the site lacks before the council
// may approve the results of its exams: name, address, e-mail and phone.
// Nil means complete.
func (s Site) MissingDetails() []string {
	var m []string
	for _, f := range []struct{ name, v string }{{"name", s.Name}, {"address", s.Address}, {"e-mail", s.Email}} {
		if strings.TrimSpace(f.v) == "" {
			m = append(m, f.name)
		}
	}
	if len(cleanList(s.Phones)) == 0 {
		m = append(m, "phone")
	}
	return m
}

// Owner returns where the site sits.
func (s Site) Owner() Owner {
	return Owner{Council: s.CouncilID, Councils: s.Councils, Center: s.CenterID, Site: s.ID}
}

// orgIDFree returns ErrExists if an organisation of a kind other than
// kind (OrgCouncil, OrgCenter, OrgSite) has id: users.org_id names an
// organisation by its id alone (an expert's is a council's or a center's),
// so that an organisation's admin, the appointment of experts and the
// suspensions would otherwise mistake one for the other.
func orgIDFree(ctx context.Context, q interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}, id, kind string) error {
	var taken bool
	err := q.QueryRow(ctx, `SELECT ($2 <> 'council' AND EXISTS (SELECT 1 FROM councils WHERE id = $1))
		OR ($2 <> 'center' AND EXISTS (SELECT 1 FROM centers WHERE id = $1))
		OR ($2 <> 'site' AND EXISTS (SELECT 1 FROM sites WHERE id = $1))`, id, kind).Scan(&taken)
	if err != nil {
		return err
	}
	if taken {
		return fmt.Errorf("%w: id %s is taken by another organisation", ErrExists, id)
	}
	return nil
}

// SaveCouncil creates the council c, or updates the name and commission of
// an existing one, and reports whether it was created.
func (s *Store) SaveCouncil(ctx context.Context, c Council) (created bool, err error) {
	if err := checkID("council", c.ID); err != nil {
		return false, fmt.Errorf("save council: %w", err)
	}
	if strings.TrimSpace(c.Name) == "" {
		return false, fmt.Errorf("save council %s: %w: a name is required", c.ID, ErrInvalid)
	}
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM councils WHERE id = $1)`, c.ID).Scan(&exists); err != nil {
		return false, fmt.Errorf("save council %s: %w", c.ID, err)
	}
	if !exists {
		if err := orgIDFree(ctx, s.pool, c.ID, OrgCouncil); err != nil {
			return false, fmt.Errorf("save council %s: %w", c.ID, err)
		}
	}
	err = s.pool.QueryRow(ctx, `
		INSERT INTO councils (id, name, commission_members, commission_address, commission_email, commission_phones)
		VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, commission_members = EXCLUDED.commission_members,
			commission_address = EXCLUDED.commission_address, commission_email = EXCLUDED.commission_email,
			commission_phones = EXCLUDED.commission_phones, updated_at = now()
		RETURNING xmax = 0`,
		c.ID, strings.TrimSpace(c.Name), cleanList(c.Commission.Members), strings.TrimSpace(c.Commission.Address),
		strings.TrimSpace(c.Commission.Email), cleanList(c.Commission.Phones)).Scan(&created)
	if err != nil {
		return false, fmt.Errorf("save council %s: %w", c.ID, err)
	}
	return created, nil
}

const councilColumns = `id, name, commission_members, commission_address, commission_email, commission_phones, created_at, updated_at`

func scanCouncil(row pgx.Row) (Council, error) {
	var c Council
	err := row.Scan(&c.ID, &c.Name, &c.Commission.Members, &c.Commission.Address, &c.Commission.Email,
		&c.Commission.Phones, &c.CreatedAt, &c.UpdatedAt)
	return c, err
}

// Council returns the council id, or ErrNotFound.
func (s *Store) Council(ctx context.Context, id string) (Council, error) {
	c, err := scanCouncil(s.pool.QueryRow(ctx, `SELECT `+councilColumns+` FROM councils WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Council{}, fmt.Errorf("get council %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Council{}, fmt.Errorf("get council %s: %w", id, err)
	}
	return c, nil
}

// Councils returns the councils in sc, by id.
func (s *Store) Councils(ctx context.Context, sc Scope) ([]Council, error) {
	var a args
	where := sc.where(scopeColumns{council: "id"}, &a)
	rows, err := s.pool.Query(ctx, `SELECT `+councilColumns+` FROM councils WHERE `+where+` ORDER BY id`, a...)
	if err != nil {
		return nil, fmt.Errorf("list councils: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Council, error) { return scanCouncil(r) })
	if err != nil {
		return nil, fmt.Errorf("list councils: %w", err)
	}
	return out, nil
}

// SaveCenter creates the center c, or updates the details of an existing
// one, and reports whether it was created. The council must exist; a center
// never moves to another council (ErrInvalid). c.Qualifications, when not
// nil, become the qualifications the center is authorised for; they must be
// qualifications of its council.
func (s *Store) SaveCenter(ctx context.Context, c Center) (created bool, err error) {
	if err := checkID("center", c.ID); err != nil {
		return false, fmt.Errorf("save center: %w", err)
	}
	if strings.TrimSpace(c.Name) == "" {
		return false, fmt.Errorf("save center %s: %w: a name is required", c.ID, ErrInvalid)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var council string
		err := tx.QueryRow(ctx, `SELECT id FROM councils WHERE id = $1`, c.CouncilID).Scan(&council)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: council %q: create it with 'nokstream org add council'", ErrNotFound, c.CouncilID)
		}
		if err != nil {
			return err
		}
		var was string
		err = tx.QueryRow(ctx, `SELECT council_id FROM centers WHERE id = $1 FOR UPDATE`, c.ID).Scan(&was)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			created = true
			if err := orgIDFree(ctx, tx, c.ID, OrgCenter); err != nil {
				return err
			}
		case err != nil:
			return err
		case was != c.CouncilID:
			return fmt.Errorf("%w: center %s belongs to council %s, not %s", ErrInvalid, c.ID, was, c.CouncilID)
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO centers (id, council_id, name, head, website, legal_address, postal_address, email, phones, actual_address)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, head = EXCLUDED.head, website = EXCLUDED.website,
				legal_address = EXCLUDED.legal_address, postal_address = EXCLUDED.postal_address,
				email = EXCLUDED.email, phones = EXCLUDED.phones, actual_address = EXCLUDED.actual_address, updated_at = now()`,
			c.ID, c.CouncilID, strings.TrimSpace(c.Name), strings.TrimSpace(c.Head), strings.TrimSpace(c.Website),
			strings.TrimSpace(c.LegalAddress), strings.TrimSpace(c.PostalAddress), strings.TrimSpace(c.Email),
			cleanList(c.Phones), strings.TrimSpace(c.ActualAddress))
		if err != nil {
			return err
		}
		if c.Qualifications == nil {
			return nil
		}
		return setCenterQualifications(ctx, tx, c.ID, c.CouncilID, c.Qualifications)
	})
	if err != nil {
		return false, fmt.Errorf("save center %s: %w", c.ID, err)
	}
	return created, nil
}

// setCenterQualifications makes codes the qualifications center is
// authorised for by council; other councils' authorisations stay.
func setCenterQualifications(ctx context.Context, tx pgx.Tx, center, council string, codes []string) error {
	codes = cleanList(codes)
	var foreign []string
	err := tx.QueryRow(ctx, `
		SELECT coalesce(array_agg(w.code ORDER BY w.code), '{}') FROM unnest($1::text[]) AS w(code)
		WHERE NOT EXISTS (SELECT 1 FROM qualifications q WHERE q.code = w.code AND q.council_id = $2)`,
		codes, council).Scan(&foreign)
	if err != nil {
		return err
	}
	if len(foreign) > 0 {
		return fmt.Errorf("%w: qualifications %s are not qualifications of council %s", ErrInvalid, strings.Join(foreign, ", "), council)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM center_qualifications WHERE center_id = $1 AND council_id = $3 AND NOT qualification_code = ANY($2)`,
		center, codes, council); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO center_qualifications (center_id, council_id, qualification_code)
		SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING`, center, council, codes)
	return err
}

// centerColumns ends with the councils other than its home council that
// see the center (Center.Councils): those that authorised it or have exams
// there; siteColumns the same of the site's center.
const centerColumns = `c.id, c.council_id, coalesce((SELECT h.name FROM councils h WHERE h.id = c.council_id), ''), c.name, c.head, c.website, c.legal_address, c.actual_address, c.postal_address, c.email, c.phones,
	coalesce((SELECT array_agg(qualification_code ORDER BY qualification_code) FROM center_qualifications WHERE center_id = c.id), '{}'),
	coalesce((SELECT array_agg(a.council_id ORDER BY a.qualification_code) FROM center_qualifications a WHERE a.center_id = c.id), '{}'),
	coalesce((SELECT array_agg(a.authorised_at ORDER BY a.qualification_code) FROM center_qualifications a WHERE a.center_id = c.id), '{}'),
	coalesce((SELECT array_agg(h.name ORDER BY a.qualification_code) FROM center_qualifications a JOIN councils h ON h.id = a.council_id
		WHERE a.center_id = c.id), '{}'),
	coalesce((SELECT array_agg(DISTINCT x.council_id ORDER BY x.council_id) FROM (
		SELECT council_id FROM center_qualifications WHERE center_id = c.id
		UNION SELECT council_id FROM exams WHERE center_id = c.id) x WHERE x.council_id <> c.council_id), '{}'),
	c.created_at, c.updated_at`

func scanCenter(row pgx.Row) (Center, error) {
	var c Center
	var councils []string
	var at []time.Time
	var names []string
	err := row.Scan(&c.ID, &c.CouncilID, &c.CouncilName, &c.Name, &c.Head, &c.Website, &c.LegalAddress, &c.ActualAddress, &c.PostalAddress,
		&c.Email, &c.Phones, &c.Qualifications, &councils, &at, &names, &c.Councils, &c.CreatedAt, &c.UpdatedAt)
	c.Authorisations = []Authorisation{}
	for i := range councils {
		c.Authorisations = append(c.Authorisations, Authorisation{Council: councils[i], CouncilName: names[i], Qualification: c.Qualifications[i],
			AuthorisedAt: at[i]})
	}
	return c, err
}

// Center returns the center id, or ErrNotFound.
func (s *Store) Center(ctx context.Context, id string) (Center, error) {
	c, err := scanCenter(s.pool.QueryRow(ctx, `SELECT `+centerColumns+` FROM centers c WHERE c.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Center{}, fmt.Errorf("get center %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Center{}, fmt.Errorf("get center %s: %w", id, err)
	}
	return c, nil
}

// Centers returns the centers in sc, by id.
func (s *Store) Centers(ctx context.Context, sc Scope) ([]Center, error) {
	var a args
	where := sc.where(scopeColumns{center: "c.id", councilCond: centerSeenBy("c.id", "c.council_id")}, &a)
	rows, err := s.pool.Query(ctx, `SELECT `+centerColumns+` FROM centers c WHERE `+where+` ORDER BY c.id`, a...)
	if err != nil {
		return nil, fmt.Errorf("list centers: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Center, error) { return scanCenter(r) })
	if err != nil {
		return nil, fmt.Errorf("list centers: %w", err)
	}
	return out, nil
}

// SaveSite creates the site st of center st.CenterID, or updates the details
// of an existing one, and reports whether it was created. A site of the
// spine without a center joins st.CenterID; a site never moves from one
// center to another (ErrInvalid).
func (s *Store) SaveSite(ctx context.Context, st Site) (created bool, err error) {
	if err := checkID("site", st.ID); err != nil {
		return false, fmt.Errorf("save site: %w", err)
	}
	if st.TimeZone != "" {
		if err := checkTimeZone(st.TimeZone); err != nil {
			return false, fmt.Errorf("save site %s: %w", st.ID, err)
		}
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var center string
		err := tx.QueryRow(ctx, `SELECT id FROM centers WHERE id = $1`, st.CenterID).Scan(&center)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: center %q: create it with 'nokstream org add center'", ErrNotFound, st.CenterID)
		}
		if err != nil {
			return err
		}
		var was *string
		err = tx.QueryRow(ctx, `SELECT center_id FROM sites WHERE id = $1 FOR UPDATE`, st.ID).Scan(&was)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			created = true
			if err := orgIDFree(ctx, tx, st.ID, OrgSite); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `INSERT INTO sites (id, center_id, name, address, email, phones, time_zone) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				st.ID, st.CenterID, strings.TrimSpace(st.Name), strings.TrimSpace(st.Address), strings.TrimSpace(st.Email), cleanList(st.Phones),
				cmp.Or(st.TimeZone, DefaultTimeZone))
			if err != nil {
				return err
			}
			return enqueueSiteSettings(ctx, tx, st.CenterID)
		case err != nil:
			return err
		case was != nil && *was != st.CenterID:
			return fmt.Errorf("%w: site %s belongs to center %s, not %s", ErrInvalid, st.ID, *was, st.CenterID)
		}
		_, err = tx.Exec(ctx, `UPDATE sites SET center_id = $2, name = $3, address = $4, email = $5, phones = $6,
			time_zone = coalesce(nullif($7, ''), time_zone), updated_at = now() WHERE id = $1`,
			st.ID, st.CenterID, strings.TrimSpace(st.Name), strings.TrimSpace(st.Address), strings.TrimSpace(st.Email), cleanList(st.Phones), st.TimeZone)
		if err != nil {
			return err
		}
		return enqueueSiteSettings(ctx, tx, st.CenterID)
	})
	if err != nil {
		return false, fmt.Errorf("save site %s: %w", st.ID, err)
	}
	return created, nil
}

const siteColumns = `st.id, coalesce(st.center_id, ''), coalesce(c.council_id, ''), st.name, st.address, st.email, st.phones, st.time_zone,
	st.created_at, st.updated_at,
	coalesce((SELECT array_agg(DISTINCT x.council_id ORDER BY x.council_id) FROM (
		SELECT council_id FROM center_qualifications WHERE center_id = st.center_id
		UNION SELECT council_id FROM exams WHERE center_id = st.center_id) x WHERE x.council_id <> c.council_id), '{}')`

func scanSite(row pgx.Row) (Site, error) {
	var st Site
	err := row.Scan(&st.ID, &st.CenterID, &st.CouncilID, &st.Name, &st.Address, &st.Email, &st.Phones, &st.TimeZone, &st.CreatedAt, &st.UpdatedAt,
		&st.Councils)
	return st, err
}

// Site returns the site id, or ErrNotFound.
func (s *Store) Site(ctx context.Context, id string) (Site, error) {
	st, err := scanSite(s.pool.QueryRow(ctx, `SELECT `+siteColumns+` FROM sites st LEFT JOIN centers c ON c.id = st.center_id WHERE st.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Site{}, fmt.Errorf("get site %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Site{}, fmt.Errorf("get site %s: %w", id, err)
	}
	return st, nil
}

// Sites returns the sites in sc, by id.
func (s *Store) Sites(ctx context.Context, sc Scope) ([]Site, error) {
	var a args
	where := sc.where(scopeColumns{center: "st.center_id", site: "st.id", councilCond: centerSeenBy("st.center_id", "c.council_id")}, &a)
	rows, err := s.pool.Query(ctx, `SELECT `+siteColumns+` FROM sites st LEFT JOIN centers c ON c.id = st.center_id
		WHERE `+where+` ORDER BY st.id`, a...)
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Site, error) { return scanSite(r) })
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", err)
	}
	return out, nil
}

// Session states of a device's stream, from its latest start or stop
// observation.
const (
	SessionOpen   = "open"   // a publisher session started and has not stopped
	SessionEnded  = "ended"  // stopped by the publisher (or replaced, or the exam was over)
	SessionLost   = "lost"   // stopped because the connection or the camera was lost
	SessionIngest = "ingest" // stopped because ingest stopped or failed
	SessionNone   = "none"   // no session observed
)

// SiteDevice is a device of a site as the site console shows it.
type SiteDevice struct {
	Device
	// Pulled says that ingest pulls the device from a camera (and so
	// reconnects it by itself): it has a pull URL and is not disabled.
	Pulled bool
	// Session is the latest start or stop of the device's stream.
	Session DeviceSession
}

// DeviceSession is the latest start or stop observation of a stream.
type DeviceSession struct {
	State  string    // SessionOpen, SessionEnded, SessionLost, SessionIngest or SessionNone
	At     time.Time // of the start or stop; zero for SessionNone
	Detail string    // the observation's detail: by whom it started, why it stopped
}

// SiteDevices returns the devices registered at site, by name, with
// whether ingest pulls them and their stream's latest session start or
// stop. A stop without a cause (reported before causes were) is
// SessionEnded.
func (s *Store) SiteDevices(ctx context.Context, site string) ([]SiteDevice, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT d.site, d.name, d.kind, d.created_at, d.disabled, p.name IS NOT NULL AND NOT d.disabled,
			o.kind, o.cause, o.start_at, o.detail
		FROM devices d
		LEFT JOIN device_pulls p ON p.site = d.site AND p.name = d.name
		LEFT JOIN LATERAL (
			SELECT kind, cause, start_at, detail FROM observations
			WHERE stream_id = d.site || '/' || d.name AND kind IN ('start', 'stop')
			ORDER BY start_at DESC LIMIT 1) o ON true
		WHERE d.site = $1
		ORDER BY d.name`, site)
	if err != nil {
		return nil, fmt.Errorf("list devices of %s: %w", site, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SiteDevice, error) {
		var d SiteDevice
		var kind, cause, detail *string
		var at *time.Time
		if err := r.Scan(&d.Site, &d.Name, &d.Kind, &d.CreatedAt, &d.Disabled, &d.Pulled, &kind, &cause, &at, &detail); err != nil {
			return d, err
		}
		d.Session.State = SessionNone
		if kind == nil {
			return d, nil
		}
		d.Session.At, d.Session.Detail = *at, *detail
		switch {
		case *kind == events.ObsStart:
			d.Session.State = SessionOpen
		case *cause == events.CauseLost:
			d.Session.State = SessionLost
		case *cause == events.CauseIngest:
			d.Session.State = SessionIngest
		default:
			d.Session.State = SessionEnded
		}
		return d, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list devices of %s: %w", site, err)
	}
	return out, nil
}

// OrgKind returns the kind of organisation id is ("council", "center" or
// "site"), or ErrNotFound.
func (s *Store) OrgKind(ctx context.Context, id string) (string, error) {
	var kind string
	err := s.pool.QueryRow(ctx, `
		SELECT 'council' FROM councils WHERE id = $1
		UNION ALL SELECT 'center' FROM centers WHERE id = $1
		UNION ALL SELECT 'site' FROM sites WHERE id = $1
		LIMIT 1`, id).Scan(&kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("look up organisation %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("look up organisation %s: %w", id, err)
	}
	return kind, nil
}
