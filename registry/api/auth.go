package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nokstream/nokstream/registry/store"
)

// authStore lists what the routes of staff login, sessions and passwords
// call of the registry's database.
type authStore interface {
	SessionByToken(ctx context.Context, token string, now time.Time) (store.User, int64, error)
	CreateSession(ctx context.Context, id int64, now time.Time, ttl time.Duration) (token string, expires time.Time, err error)
	CancelLoginAttempt(ctx context.Context, id int64) error
	AuditLogin(ctx context.Context, at time.Time, action, login, addr string) error
	Login(ctx context.Context, login, password string) (store.User, error)
	LoginSucceeded(ctx context.Context, id int64, kind, login, addr string, now time.Time) error
	ChangePassword(ctx context.Context, id int64, oldPassword, newPassword string) error
	UserByID(ctx context.Context, id int64) (store.User, error)
	DeleteSession(ctx context.Context, token string) error
	Audit(ctx context.Context, e store.AuditEntry) error
}

// Query parameters of a signed URL.
const (
	paramExpires   = "exp" // unix seconds
	paramUser      = "uid" // the user the URL acts for
	paramSession   = "sid" // the session that made the URL: ending it revokes the URL
	paramSignature = "sig" // base64url HMAC-SHA256
)

// signable reports whether p is a path that signed URLs may be made for:
// the stream and media routes.
func signable(p string) bool {
	return strings.HasPrefix(p, "/api/v1/streams/") || strings.HasPrefix(p, "/api/v1/media/")
}

// authenticate returns the caller of r: the owner of the bearer token, or,
// when signed URLs are allowed, of a valid signed query.
func (s *Server) authenticate(r *http.Request, allowSigned bool) (*caller, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
			return nil, errorf(http.StatusUnauthorized, "authorization is not a bearer token")
		}
		u, sid, err := s.db.auth.SessionByToken(r.Context(), token, s.now())
		if errors.Is(err, store.ErrBadCredentials) {
			return nil, errorf(http.StatusUnauthorized, "invalid or expired token")
		}
		if err != nil {
			return nil, err
		}
		return &caller{user: u, token: token, session: sid}, nil
	}
	if allowSigned && r.URL.Query().Has(paramSignature) {
		u, sid, err := s.verifySigned(r)
		if err != nil {
			return nil, err
		}
		return &caller{user: u, session: sid}, nil
	}
	return nil, errorf(http.StatusUnauthorized, "authorization required: Authorization: Bearer <token>")
}

// MaxLinkTTL is the longest a signed URL lasts, whatever asks for it.
const MaxLinkTTL = 12 * time.Hour

// SignedURL returns target, an absolute path with an optional query, with a
// signed query added that lets whoever holds it GET target as user uid
// until expires (at most MaxLinkTTL from now), without a token, for as
// long as session sid of the user lasts: logout, a password change or
// reset, or disabling the user revokes it. The signature covers the path,
// every query parameter, the expiry, the user and the session, so none can
// be changed.
func (s *Server) SignedURL(target string, uid, sid int64, expires time.Time) (string, error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", fmt.Errorf("sign %q: %w", target, err)
	}
	q := u.Query()
	for _, p := range []string{paramExpires, paramUser, paramSession, paramSignature} {
		if q.Has(p) {
			return "", fmt.Errorf("sign %q: already has a %q parameter", target, p)
		}
	}
	return s.sign(u.Path, q, uid, sid, expires), nil
}

// sign returns p?q with exp, uid, sid and sig added. expires is cut to
// MaxLinkTTL from now.
func (s *Server) sign(p string, q url.Values, uid, sid int64, expires time.Time) string {
	if latest := s.now().Add(MaxLinkTTL); expires.After(latest) {
		expires = latest
	}
	signed := url.Values{}
	for k, v := range q {
		signed[k] = v
	}
	exp := strconv.FormatInt(expires.Unix(), 10)
	id := strconv.FormatInt(uid, 10)
	session := strconv.FormatInt(sid, 10)
	signed.Set(paramExpires, exp)
	signed.Set(paramUser, id)
	signed.Set(paramSession, session)
	signed.Set(paramSignature, base64.RawURLEncoding.EncodeToString(s.signature(p, q, exp, id, session)))
	return (&url.URL{Path: p, RawQuery: signed.Encode()}).String()
}

// signature is HMAC-SHA256(key, message) with message
//
//	path ["?" other query parameters, sorted and encoded] "\n" exp "\n" uid "\n" sid
//
// where path is the decoded URL path, so that a player that encodes it
// differently still presents the same signature.
func (s *Server) signature(p string, q url.Values, exp, uid, sid string) []byte {
	rest := url.Values{}
	for k, v := range q {
		switch k {
		case paramExpires, paramUser, paramSession, paramSignature:
		default:
			rest[k] = v
		}
	}
	msg := p
	if len(rest) > 0 {
		msg += "?" + rest.Encode()
	}
	msg += "\n" + exp + "\n" + uid + "\n" + sid
	mac := hmac.New(sha256.New, s.cfg.SigningKey)
	mac.Write([]byte(msg))
	return mac.Sum(nil)
}

// verifySigned checks the signed query of r and returns the user it acts
// for and the session it was made in. Every failure is a 403.
func (s *Server) verifySigned(r *http.Request) (store.User, int64, error) {
	q := r.URL.Query()
	if len(q[paramSignature]) != 1 || len(q[paramExpires]) != 1 || len(q[paramUser]) != 1 || len(q[paramSession]) != 1 {
		return store.User{}, 0, errorf(http.StatusForbidden, "signed URL: want one each of exp, uid, sid and sig")
	}
	exp, err := strconv.ParseInt(q.Get(paramExpires), 10, 64)
	if err != nil {
		return store.User{}, 0, errorf(http.StatusForbidden, "signed URL: bad exp")
	}
	uid, err := strconv.ParseInt(q.Get(paramUser), 10, 64)
	if err != nil {
		return store.User{}, 0, errorf(http.StatusForbidden, "signed URL: bad uid")
	}
	sid, err := strconv.ParseInt(q.Get(paramSession), 10, 64)
	if err != nil {
		return store.User{}, 0, errorf(http.StatusForbidden, "signed URL: bad sid")
	}
	sig, err := base64.RawURLEncoding.DecodeString(q.Get(paramSignature))
	if err != nil || !hmac.Equal(sig, s.signature(r.URL.Path, q, q.Get(paramExpires), q.Get(paramUser), q.Get(paramSession))) {
		return store.User{}, 0, errorf(http.StatusForbidden, "signed URL: invalid signature")
	}
	if s.now().Unix() >= exp {
		return store.User{}, 0, errorf(http.StatusForbidden, "signed URL: expired")
	}
	u, err := s.sessionUser(r.Context(), sid, uid)
	if errors.Is(err, store.ErrBadCredentials) {
		return store.User{}, 0, errorf(http.StatusForbidden, "signed URL: its session has ended (expired, logout, password change or reset, or the user is disabled)")
	}
	if err != nil {
		return store.User{}, 0, err
	}
	return u, sid, nil
}

// sessionJSON is the answer to a login or a password change.
type sessionJSON struct {
	Token              string    `json:"token"`
	ExpiresAt          time.Time `json:"expires_at"`
	MustChangePassword bool      `json:"must_change_password"`
	PasswordAgeDays    int       `json:"password_age_days"`
	// PasswordReminder asks to change a password older than
	// Config.PasswordMaxAge.
	PasswordReminder string `json:"password_reminder,omitempty"`
}

// startSession creates a session for u and answers it.
func (s *Server) startSession(w http.ResponseWriter, r *http.Request, u store.User) error {
	now := s.now()
	token, expires, err := s.db.auth.CreateSession(r.Context(), u.ID, now, s.cfg.TokenTTL)
	if err != nil {
		return err
	}
	age := 0
	if !u.MustChangePassword {
		age = int(now.Sub(u.PasswordChangedAt).Hours() / 24)
	}
	answer := sessionJSON{
		Token:              token,
		ExpiresAt:          expires.UTC(),
		MustChangePassword: u.MustChangePassword,
		PasswordAgeDays:    max(age, 0),
	}
	if maxDays := int(s.cfg.PasswordMaxAge.Hours() / 24); !u.MustChangePassword && age > maxDays {
		answer.PasswordReminder = fmt.Sprintf("your password is %d days old, older than %d days: change it (POST /api/v1/auth/password)", age, maxDays)
	}
	writeJSON(w, http.StatusOK, answer)
	return nil
}

// login handles POST /api/v1/auth/login.
func (s *Server) login(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var req struct {
		Login    string `json:"login"`
		Password string `json:"password"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Login == "" || req.Password == "" {
		return errorf(http.StatusBadRequest, "login and password are required")
	}
	login := strings.ToLower(strings.TrimSpace(limit(req.Login, 200)))
	addr := s.clientAddr(r)
	id, err := s.attempt(w, r, store.LoginStaff, "auth.login", login)
	if err != nil {
		return err
	}
	release, err := s.acquireHash(w, r)
	if err != nil {
		// The password was not checked: the attempt does not count.
		if cerr := s.db.auth.CancelLoginAttempt(context.WithoutCancel(r.Context()), id); cerr != nil {
			return cerr
		}
		if aerr := s.db.auth.AuditLogin(context.WithoutCancel(r.Context()), s.now(), "auth.login_busy", login, addr); aerr != nil {
			return aerr
		}
		return err
	}
	u, err := s.db.auth.Login(r.Context(), req.Login, req.Password)
	release()
	if errors.Is(err, store.ErrBadCredentials) {
		// The attempted login is kept in the (aggregated) audit log, not
		// in the service log.
		if err := s.db.auth.AuditLogin(r.Context(), s.now(), "auth.login_failed", login, addr); err != nil {
			return err
		}
		return errorf(http.StatusUnauthorized, "wrong login or password")
	}
	if err != nil {
		return err
	}
	if err := s.db.auth.LoginSucceeded(r.Context(), id, store.LoginStaff, login, addr, s.now()); err != nil {
		return err
	}
	if err := s.audit(r, &caller{user: u}, "auth.login", "", nil); err != nil {
		return err
	}
	return s.startSession(w, r, u)
}

// changePassword handles POST /api/v1/auth/password. It ends every session
// of the user and answers a new one.
func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req struct {
		OldPassword string `json:"old_password"`
		NewPassword string `json:"new_password"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	switch {
	case req.OldPassword == "" || req.NewPassword == "":
		return errorf(http.StatusBadRequest, "old_password and new_password are required")
	case utf8.RuneCountInString(req.NewPassword) < store.MinPasswordLength:
		return errorf(http.StatusBadRequest, "new_password must have at least %d characters", store.MinPasswordLength)
	case req.NewPassword == req.OldPassword:
		return errorf(http.StatusBadRequest, "new_password must differ from old_password")
	}
	release, err := s.acquireHash(w, r)
	if err != nil {
		return err
	}
	err = s.db.auth.ChangePassword(r.Context(), c.user.ID, req.OldPassword, req.NewPassword)
	release()
	switch {
	case errors.Is(err, store.ErrBadCredentials):
		return errorf(http.StatusForbidden, "old_password is wrong")
	case errors.Is(err, store.ErrInvalid):
		return errorf(http.StatusBadRequest, "new_password is not acceptable")
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusUnauthorized, "invalid or expired token")
	case err != nil:
		return err
	}
	if err := s.audit(r, c, "auth.password_changed", "", nil); err != nil {
		return err
	}
	u, err := s.db.auth.UserByID(r.Context(), c.user.ID)
	if err != nil {
		return err
	}
	return s.startSession(w, r, u)
}

// logout handles POST /api/v1/auth/logout.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := s.db.auth.DeleteSession(r.Context(), c.token); err != nil {
		return err
	}
	s.serving.sessions.drop(sessionKey{c.session, c.user.ID}) // other registries: within RevokeWithin
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// createLink handles POST /api/v1/links: it signs a stream or media path so
// that a player without headers can fetch it.
func (s *Server) createLink(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req struct {
		Path string `json:"path"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	u, err := url.Parse(req.Path)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Fragment != "" {
		return errorf(http.StatusBadRequest, "path must be an absolute path such as /api/v1/streams/<site>/<device>/playlist.m3u8?from=...&to=...")
	}
	if !cleanText(u.Path) || !cleanQuery(u.Query()) {
		return errorf(http.StatusBadRequest, "path has a NUL character or is not valid UTF-8")
	}
	if path.Clean(u.Path) != u.Path || !signable(u.Path) {
		return errorf(http.StatusBadRequest, "path must be under /api/v1/streams/ or /api/v1/media/")
	}
	q := u.Query()
	for _, p := range []string{paramExpires, paramUser, paramSession, paramSignature} {
		if q.Has(p) {
			return errorf(http.StatusBadRequest, "path already has a %q parameter", p)
		}
	}
	expires := s.now().Add(min(s.cfg.LinkTTL, MaxLinkTTL))
	link := s.sign(u.Path, q, c.user.ID, c.session, expires)
	if err := s.audit(r, c, "link.create", u.Path, map[string]any{"query": u.RawQuery, "expires_at": expires.UTC()}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"url": link, "expires_at": expires.UTC()})
	return nil
}

// audit appends an entry about request r by c (nil for nobody) to the audit
// log; edit adjusts it further.
func (s *Server) audit(r *http.Request, c *caller, action, object string, detail map[string]any, edit ...func(*store.AuditEntry)) error {
	e := store.AuditEntry{
		At:         s.now(),
		Action:     action,
		Object:     object,
		RemoteAddr: s.auditAddr(r),
		Purpose:    purpose(r),
		Detail:     detail,
	}
	if c != nil {
		e.ActorID = c.user.ID
		e.ActorLogin = c.user.Login
		if c.token == "" {
			if e.Detail == nil {
				e.Detail = map[string]any{}
			}
			e.Detail["via"] = "signed_url"
		}
	}
	for _, f := range edit {
		f(&e)
	}
	if err := s.db.auth.Audit(r.Context(), e); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// purpose is why the caller accesses media, as declared in the X-Purpose
// header or the purpose query parameter.
func purpose(r *http.Request) string {
	p := r.Header.Get("X-Purpose")
	if p == "" {
		p = r.URL.Query().Get("purpose")
	}
	return limit(strings.TrimSpace(p), 500)
}

// limit returns s cut to at most n bytes of valid UTF-8.
func limit(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
