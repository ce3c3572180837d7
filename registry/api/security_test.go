package api_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/httpserver"
	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/store"
	"github.com/nokstream/nokstream/registry/web"
)

// Attacks on logins (the security issue): each test performs the attack on
// a running API and asserts the refusal. The password checks are counted by
// the store (Store.PasswordHashes), not timed.

// loginFrom posts a login as if from client address from, through the
// trusted proxy 127.0.0.1 ("" sends no X-Forwarded-For).
func (e *env) loginFrom(from, login, password string) response {
	e.t.Helper()
	var h []string
	if from != "" {
		h = []string{"X-Forwarded-For", from}
	}
	return e.do("POST", "/api/v1/auth/login", "", map[string]string{"login": login, "password": password}, h...)
}

// behindProxy trusts the loopback proxy the tests send from.
func behindProxy(c *api.Config) {
	c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
}

// parallel runs n calls of f at once and returns their status codes by
// count, failing on an answer without Retry-After that should have one.
func parallel(t *testing.T, n int, f func(i int) response) map[int]int {
	t.Helper()
	var mu sync.Mutex
	codes := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r := f(i)
			if (r.code == http.StatusTooManyRequests || r.code == http.StatusServiceUnavailable) && r.header.Get("Retry-After") == "" {
				t.Errorf("%d without Retry-After", r.code)
			}
			mu.Lock()
			codes[r.code]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return codes
}

// TestLoginFloodChecksFewPasswords: 200 wrong passwords sent at once for one
// login get at most 10 password checks, from one address and from 200; the
// rest are 429 with Retry-After.
func TestLoginFloodChecksFewPasswords(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, func(c *api.Config) {
		behindProxy(c)
		c.AuthQueueWait = time.Minute // this test counts checks, not queueing
	})
	ctx := context.Background()
	for _, name := range []string{"victim1", "victim2"} {
		_, err := e.store.AddUser(ctx, name, store.RoleNARK, "")
		must(t, err)
	}
	for _, tt := range []struct {
		name, login string
		from        func(i int) string
		maxChecks   uint64
	}{
		{"one address", "victim1", func(int) string { return "" }, uint64(e.cfg.LoginFailuresPerLoginAddress)},
		{"200 addresses", "victim2", func(i int) string { return fmt.Sprintf("10.9.%d.%d", i/250, 1+i%250) }, uint64(e.cfg.LoginFailuresPerLogin)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := e.store.PasswordHashes()
			codes := parallel(t, 200, func(i int) response {
				return e.loginFrom(tt.from(i), tt.login, fmt.Sprintf("wrong password %d", i))
			})
			checks := e.store.PasswordHashes() - before
			t.Logf("200 parallel wrong passwords from %s: %d password checks, answers %v", tt.name, checks, codes)
			if checks > 10 || checks > tt.maxChecks {
				t.Errorf("%d password checks, want at most %d", checks, min(tt.maxChecks, 10))
			}
			if codes[http.StatusUnauthorized] != int(checks) || codes[http.StatusTooManyRequests] != 200-int(checks) {
				t.Errorf("answers %v: want %d × 401 and the rest 429", codes, checks)
			}
		})
	}
	// The operator sees it in the metrics.
	m := e.metrics()
	for _, want := range []string{`nokstream_registry_login_refusals_total{reason="throttled_login_address"} 195`,
		`nokstream_registry_login_refusals_total{reason="throttled_login"} 190`,
		fmt.Sprintf("nokstream_registry_password_hashes_total %d", e.store.PasswordHashes())} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
}

// blockingLogins is a store whose password checks wait for release, and
// which counts how many run at once.
type blockingLogins struct {
	*store.Store
	running, peak atomic.Int32
	entered       chan struct{}
	release       chan struct{}
}

func (b *blockingLogins) Login(ctx context.Context, login, password string) (store.User, error) {
	n := b.running.Add(1)
	defer b.running.Add(-1)
	for {
		p := b.peak.Load()
		if n <= p || b.peak.CompareAndSwap(p, n) {
			break
		}
	}
	b.entered <- struct{}{}
	<-b.release
	return b.Store.Login(ctx, login, password)
}

// TestLoginConcurrencyBound: at most AuthConcurrency password checks run at
// once; the others wait AuthQueueWait, then get 503 with Retry-After, and
// the refused attempts do not count against the login.
func TestLoginConcurrencyBound(t *testing.T) {
	t.Parallel()
	bl := &blockingLogins{entered: make(chan struct{}, 100), release: make(chan struct{})}
	e := newDomainEnvWith(t, nil, func(c *api.Config) {
		behindProxy(c)
		c.AuthConcurrency = 2
		c.AuthQueueWait = 50 * time.Millisecond
	}, func(st *store.Store) api.Store { bl.Store = st; return bl })
	const n = 10
	type result struct {
		i int
		r response
	}
	results := make(chan result, n)
	for i := range n {
		go func() {
			results <- result{i, e.loginFrom(fmt.Sprintf("10.8.0.%d", i+1), fmt.Sprintf("user%d", i), "wrong password")}
		}()
	}
	// Two checks start; the other eight give up waiting.
	codes := map[int]int{}
	refused := -1
	for range n - 2 {
		res := <-results
		r := res.r
		if r.code == http.StatusServiceUnavailable {
			refused = res.i
		}
		codes[r.code]++
		if r.code == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	}
	if codes[http.StatusServiceUnavailable] != n-2 {
		t.Errorf("while 2 checks run: %v, want %d × 503", codes, n-2)
	}
	for range 2 {
		<-bl.entered
	}
	close(bl.release)
	for range 2 {
		if r := (<-results).r; r.code != http.StatusUnauthorized {
			t.Errorf("a checked wrong password: %d %s", r.code, r.body)
		}
	}
	if p := bl.peak.Load(); p != 2 {
		t.Errorf("%d password checks ran at once, want 2 (AuthConcurrency)", p)
	}
	// The refused attempts were not counted: the next five of a refused
	// login from its address are all checked.
	if refused < 0 {
		t.Fatal("no login was refused")
	}
	for i := range 5 {
		if r := e.loginFrom(fmt.Sprintf("10.8.0.%d", refused+1), fmt.Sprintf("user%d", refused), "wrong password"); r.code != http.StatusUnauthorized {
			t.Errorf("attempt %d after a 503: %d %s", i, r.code, r.body)
		}
	}
}

// TestLoginNoLockout: strangers flooding a login cannot lock its user out.
// Past the login's ceiling, an address it never succeeded from is refused,
// while the user's own address is slowed (one attempt per
// LoginKnownInterval), not blocked; one address alone backs off
// exponentially.
func TestLoginNoLockout(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, behindProxy)
	ctx := context.Background()
	temp, err := e.store.AddUser(ctx, "victim", store.RoleNARK, "")
	must(t, err)
	const home = "192.0.2.10"
	if r := e.loginFrom(home, "victim", temp); r.code != http.StatusOK {
		t.Fatalf("first login: %d %s", r.code, r.body)
	}
	step := func() { e.clock.Set(e.clock.Now().Add(time.Second)) }

	// One attacker address: 5 free failures, then 1, 2, 4 minutes.
	const attacker = "198.51.100.7"
	for i := range e.cfg.LoginFailuresPerLoginAddress {
		if r := e.loginFrom(attacker, "victim", "guess"); r.code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d %s", i, r.code, r.body)
		}
		step()
	}
	for _, wait := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute} {
		r := e.loginFrom(attacker, "victim", "guess")
		retry, _ := strconv.Atoi(r.header.Get("Retry-After"))
		if r.code != http.StatusTooManyRequests || time.Duration(retry)*time.Second > wait || time.Duration(retry)*time.Second < wait-2*time.Second {
			t.Fatalf("guess within the back-off: %d Retry-After %q, want 429 and about %v", r.code, r.header.Get("Retry-After"), wait)
		}
		e.clock.Set(e.clock.Now().Add(wait))
		if r := e.loginFrom(attacker, "victim", "guess"); r.code != http.StatusUnauthorized {
			t.Fatalf("guess after the back-off of %v: %d %s", wait, r.code, r.body)
		}
	}
	// More strangers push the login over its ceiling.
	for i := 0; i < e.cfg.LoginFailuresPerLogin; i++ {
		e.loginFrom(fmt.Sprintf("203.0.113.%d", i+1), "victim", "guess")
	}
	if r := e.loginFrom("203.0.113.200", "victim", temp); r.code != http.StatusTooManyRequests {
		t.Errorf("right password from a new address over the ceiling: %d, want 429", r.code)
	}
	// The user at home: a typo, then slowed, then in.
	if r := e.loginFrom(home, "victim", "typo"); r.code != http.StatusUnauthorized {
		t.Fatalf("typo at home: %d %s", r.code, r.body)
	}
	r := e.loginFrom(home, "victim", temp)
	if retry, _ := strconv.Atoi(r.header.Get("Retry-After")); r.code != http.StatusTooManyRequests || retry > int(e.cfg.LoginKnownInterval.Seconds()) {
		t.Fatalf("right password right after the typo: %d Retry-After %q, want 429 within %v", r.code, r.header.Get("Retry-After"), e.cfg.LoginKnownInterval)
	}
	e.clock.Set(e.clock.Now().Add(e.cfg.LoginKnownInterval))
	if r := e.loginFrom(home, "victim", temp); r.code != http.StatusOK {
		t.Errorf("right password at home over the ceiling: %d %s, want 200", r.code, r.body)
	}
}

// TestLoginTrustedProxies: X-Forwarded-For counts only from a trusted
// proxy; from anyone else it is ignored, so a client cannot dodge the
// address limit by naming other addresses.
func TestLoginTrustedProxies(t *testing.T) {
	t.Parallel()
	for _, trusted := range []bool{false, true} {
		t.Run(fmt.Sprintf("trusted=%v", trusted), func(t *testing.T) {
			t.Parallel()
			e := newDomainEnv(t, nil, func(c *api.Config) {
				if trusted {
					behindProxy(c)
				}
			})
			for i := range e.cfg.LoginFailuresPerAddress + 1 {
				r := e.loginFrom(fmt.Sprintf("10.7.0.%d", i+1), fmt.Sprintf("nobody%d", i), "guess")
				want := http.StatusUnauthorized
				if !trusted && i == e.cfg.LoginFailuresPerAddress {
					want = http.StatusTooManyRequests
				}
				if r.code != want {
					t.Fatalf("attempt %d: %d, want %d", i, r.code, want)
				}
			}
			rows, err := e.store.LoginAudit(context.Background(), time.Time{})
			must(t, err)
			addrs := map[string]bool{}
			for _, a := range rows {
				addrs[a.Addr] = true
			}
			if trusted != addrs["10.7.0.1"] {
				t.Errorf("login audit addresses %v: forwarded address listed %v, want %v", addrs, addrs["10.7.0.1"], trusted)
			}
		})
	}
}

// TestLoginAuditAggregated: a flood of failed and throttled logins adds one
// row per login, address and minute with a count, not a row per attempt:
// from one address, spraying logins, and from many addresses at one login.
func TestLoginAuditAggregated(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	before, err := e.store.AuditLog(context.Background(), 0, 100000)
	must(t, err)
	const n = 300
	for i := range n {
		e.loginFrom("", "target", fmt.Sprintf("guess %d", i))
	}
	for i := range n {
		e.loginFrom("", fmt.Sprintf("spray%d", i), "guess")
	}
	after, err := e.store.AuditLog(context.Background(), 0, 100000)
	must(t, err)
	if len(after) != len(before) {
		t.Errorf("the audit log grew by %d entries for %d failed logins", len(after)-len(before), 2*n)
	}
	rows, err := e.store.LoginAudit(context.Background(), time.Time{})
	must(t, err)
	total := 0
	for _, a := range rows {
		total += a.Count
	}
	t.Logf("%d failed or throttled logins: %d rows of login audit", 2*n, len(rows))
	if total != 2*n {
		t.Errorf("login audit counts %d attempts, want %d", total, 2*n)
	}
	// target: failed and throttled; the spray: 15 other failures, then the
	// address is throttled as one row.
	if max := 2 + e.cfg.LoginFailuresPerAddress + 1; len(rows) > max {
		t.Errorf("%d rows of login audit, want at most %d: %v", len(rows), max, rows)
	}
}

// TestLoginAuditAggregatedAcrossAddresses: strangers from 300 addresses at
// one login (IPv6 makes addresses cheap) add a row per address only while
// their passwords are checked; past the login's ceiling, one row.
func TestLoginAuditAggregatedAcrossAddresses(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, behindProxy)
	const n = 300
	for i := range n {
		e.loginFrom(fmt.Sprintf("2001:db8::%x", i+1), "target", "guess")
	}
	rows, err := e.store.LoginAudit(context.Background(), time.Time{})
	must(t, err)
	total := 0
	for _, a := range rows {
		total += a.Count
	}
	t.Logf("%d addresses at one login: %d rows of login audit", n, len(rows))
	if total != n {
		t.Errorf("login audit counts %d attempts, want %d", total, n)
	}
	if max := e.cfg.LoginFailuresPerLogin + 1; len(rows) > max {
		t.Errorf("%d rows of login audit, want at most %d", len(rows), max)
	}
}

// TestCouncilCannotAuthoriseForeignQualification: a council cannot
// authorise its centers for another council's qualification (the
// NOT EXISTS of setCenterQualifications once compared a column with
// itself), and its center then cannot hold exams in it.
func TestCouncilCannotAuthoriseForeignQualification(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o1, o2 := w.orgs[1], w.orgs[2]
	council := o1.tokens[store.RoleCouncil]
	path := "/api/v1/centers/" + o1.center + "/qualifications"
	for _, quals := range [][]string{{o2.qual}, {o1.qual, o2.qual}, {"no-such-qualification"}} {
		r := e.do("PUT", path, council, map[string]any{"qualifications": quals})
		if r.code != http.StatusUnprocessableEntity && r.code != http.StatusBadRequest {
			t.Errorf("PUT %v as council1: %d %s, want 422", quals, r.code, r.body)
		}
	}
	r := e.do("GET", "/api/v1/centers/"+o1.center, council, nil)
	if c := decode[struct{ Qualifications []string }](t, r); len(c.Qualifications) != 1 || c.Qualifications[0] != o1.qual {
		t.Errorf("center1 is authorised for %v, want only %s", c.Qualifications, o1.qual)
	}
	r = e.do("POST", "/api/v1/exams", o1.tokens[store.RoleCenter], map[string]any{"site": o1.site, "qualification": o2.qual,
		"starts_at": examStart.Add(48 * time.Hour), "ends_at": examEnd.Add(48 * time.Hour)})
	if r.code/100 == 2 {
		t.Errorf("center1 created an exam in council2's qualification: %d %s", r.code, r.body)
	}
	// Its own qualification still goes through.
	if r := e.do("PUT", path, council, map[string]any{"qualifications": []string{o1.qual}}); r.code/100 != 2 {
		t.Errorf("PUT its own qualification: %d %s", r.code, r.body)
	}
}

// TestSignedLinkRevoked: a signed link works only while the session that
// made it lasts: logout, a password change, a reset or disabling the user
// revokes it, and the links inside a playlist it opened too. No link lasts
// more than 12 hours.
func TestSignedLinkRevoked(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	ctx := context.Background()
	site := w.orgs[1].site
	playlist := "/api/v1/streams/" + site + "/room1/playlist.m3u8" + win()
	link := func(token string) (string, time.Time) {
		t.Helper()
		r := e.do("POST", "/api/v1/links", token, map[string]string{"path": playlist})
		if r.code != http.StatusOK {
			t.Fatalf("create link: %d %s", r.code, r.body)
		}
		v := decode[struct {
			URL       string    `json:"url"`
			ExpiresAt time.Time `json:"expires_at"`
		}](t, r)
		return v.URL, v.ExpiresAt
	}
	council := w.orgs[1].users[store.RoleCouncil].Login
	// setPassword resets council's password and sets the known one.
	setPassword := func() {
		temp, err := e.store.ResetPassword(ctx, council)
		must(t, err)
		u, err := e.store.UserByLogin(ctx, council)
		must(t, err)
		must(t, e.store.ChangePassword(ctx, u.ID, temp, "a long enough password"))
		must(t, markPasswordChanged(ctx, e, u.ID))
	}
	setPassword()
	for _, tt := range []struct {
		name   string
		revoke func(token string)
	}{
		{"logout", func(token string) { e.do("POST", "/api/v1/auth/logout", token, nil) }},
		{"password change", func(token string) {
			r := e.do("POST", "/api/v1/auth/password", token, map[string]string{"old_password": "a long enough password", "new_password": "another long password"})
			if r.code != http.StatusOK {
				t.Fatalf("change password: %d %s", r.code, r.body)
			}
			r = e.do("POST", "/api/v1/auth/password", decode[struct{ Token string }](t, r).Token,
				map[string]string{"old_password": "another long password", "new_password": "a long enough password"})
			if r.code != http.StatusOK {
				t.Fatalf("change password back: %d %s", r.code, r.body)
			}
		}},
		{"reset", func(string) { setPassword() }},
		{"disabled", func(string) { must(t, e.store.SetUserDisabled(ctx, council, true)) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			token, _ := e.login(council, "a long enough password")
			other, _ := e.login(council, "a long enough password")
			u, exp := link(token)
			if max := e.clock.Now().Add(api.MaxLinkTTL); exp.After(max) {
				t.Errorf("link expires at %v, after %v", exp, max)
			}
			r := e.do("GET", u, "", nil)
			if r.code != http.StatusOK {
				t.Fatalf("GET the link: %d %s", r.code, r.body)
			}
			// A media URL inside the playlist, signed for the same session.
			var media string
			for _, line := range strings.Split(string(r.body), "\n") {
				if strings.HasPrefix(line, "/api/v1/media/") {
					media = line
					break
				}
			}
			if media == "" {
				t.Fatalf("no media URL in the playlist:\n%s", r.body)
			}
			if r := e.do("GET", media, "", nil); r.code != http.StatusOK {
				t.Fatalf("GET a media URL of the playlist: %d %s", r.code, r.body)
			}
			tt.revoke(token)
			if tt.name != "logout" {
				// The session of a signed URL is cached that long;
				// a logout ends it at once on this registry.
				e.clock.Set(e.clock.Now().Add(api.RevokeWithin))
			}
			for _, p := range []string{u, media} {
				if r := e.do("GET", p, "", nil); r.code != http.StatusForbidden {
					t.Errorf("GET %s after %s: %d %s, want 403", p, tt.name, r.code, r.body)
				}
			}
			if tt.name == "logout" {
				// Another session's links live on.
				u2, _ := link(other)
				if r := e.do("GET", u2, "", nil); r.code != http.StatusOK {
					t.Errorf("a link of another session after logout: %d", r.code)
				}
			}
		})
	}
	// A configured link lifetime past 12 hours is refused.
	cfg := e.cfg
	cfg.LinkTTL = 13 * time.Hour
	if err := cfg.Validate(); err == nil {
		t.Error("link_ttl of 13h accepted")
	}
}

// TestSignedLinkEndsWithItsSession: a session that expires ends its
// signed links, the media URLs inside its playlists too, as a logout does:
// they used to work on until their own expiry, up to MaxLinkTTL after the
// session that made them.
func TestSignedLinkEndsWithItsSession(t *testing.T) {
	t.Parallel()
	// Sessions shorter than links: a link made at login outlives it.
	e := newDomainEnv(t, nil, func(c *api.Config) { c.TokenTTL = 30 * time.Minute })
	w := newWorld(t, e)
	ctx := context.Background()
	council := w.orgs[1].users[store.RoleCouncil]
	temp, err := e.store.ResetPassword(ctx, council.Login)
	must(t, err)
	must(t, e.store.ChangePassword(ctx, council.ID, temp, "a long enough password"))
	must(t, markPasswordChanged(ctx, e, council.ID))
	token, _ := e.login(council.Login, "a long enough password")
	r := e.do("POST", "/api/v1/links", token, map[string]string{"path": "/api/v1/streams/" + w.orgs[1].site + "/room1/playlist.m3u8" + win()})
	if r.code != http.StatusOK {
		t.Fatalf("create link: %d %s", r.code, r.body)
	}
	link := decode[struct {
		URL       string    `json:"url"`
		ExpiresAt time.Time `json:"expires_at"`
	}](t, r)
	r = e.do("GET", link.URL, "", nil)
	if r.code != http.StatusOK {
		t.Fatalf("GET the link: %d %s", r.code, r.body)
	}
	media := parsePlaylist(t, r.body).entries[0].uri
	if r := e.do("GET", media, "", nil); r.code != http.StatusOK {
		t.Fatalf("GET a media URL of the playlist: %d %s", r.code, r.body)
	}
	e.clock.Set(e.clock.Now().Add(31 * time.Minute))
	if !e.clock.Now().Before(link.ExpiresAt) {
		t.Fatalf("the link expires at %v, before the session", link.ExpiresAt)
	}
	if r := e.do("GET", "/api/v1/auth/me", token, nil); r.code != http.StatusUnauthorized {
		t.Errorf("the expired session's token: %d, want 401", r.code)
	}
	for _, p := range []string{link.URL, media} {
		if r := e.do("GET", p, "", nil); r.code != http.StatusForbidden {
			t.Errorf("GET %s after its session expired: %d %s, want 403", p, r.code, r.body)
		}
	}
}

// TestSecurityHeaders: every answer says nosniff; a document, even one
// whose bytes are a page, downloads as an attachment in a sandbox; the web
// pages may not be framed.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	center := o.tokens[store.RoleCenter]
	page := "<html><script>fetch('/api/v1/candidates').then(r => r.text()).then(alert)</script></html>"
	var docs []string
	for _, name := range []string{"scan.html", ""} {
		r := e.do("POST", "/api/v1/candidates/"+o.cand+"/documents?kind=other&filename="+name, center, page, "Content-Type", "application/pdf")
		if r.code != http.StatusCreated {
			t.Fatalf("upload: %d %s", r.code, r.body)
		}
		docs = append(docs, decode[struct{ ID string }](t, r).ID)
	}
	for _, d := range docs {
		r := e.do("GET", "/api/v1/documents/"+d, center, nil)
		if r.code != http.StatusOK {
			t.Fatalf("download: %d %s", r.code, r.body)
		}
		if cd := r.header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment") {
			t.Errorf("document %s: Content-Disposition %q, want an attachment", d, cd)
		}
		if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") {
			t.Errorf("document %s: Content-Security-Policy %q, want a sandbox", d, csp)
		}
	}
	for _, p := range []string{"/api/v1/openapi.json", "/api/v1/no-such-route", "/api/v1/documents/" + docs[0], "/api/v1/media/" + o.media, "/api/v1/candidates"} {
		if r := e.do("GET", p, center, nil); r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d without X-Content-Type-Options: nosniff", p, r.code)
		}
	}
	if r := e.loginFrom("", "nobody", "wrong"); r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("a failed login without X-Content-Type-Options: nosniff")
	}
	// The pages, served in front of the API.
	hs := httptest.NewServer(web.Handler(e.srv.Handler()))
	t.Cleanup(hs.Close)
	for _, p := range []string{"/ui/", "/ui/review.html", "/ui/exam.html"} {
		res, err := http.Get(hs.URL + p)
		must(t, err)
		res.Body.Close()
		csp := res.Header.Get("Content-Security-Policy")
		if res.StatusCode != http.StatusOK || !strings.Contains(csp, "frame-ancestors 'none'") ||
			res.Header.Get("X-Frame-Options") != "DENY" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d, CSP %q, X-Frame-Options %q", p, res.StatusCode, csp, res.Header.Get("X-Frame-Options"))
		}
	}
}

// TestSlowClientsDoNotStopLogins: a client holding 1000 connections with
// half-sent headers or bodies does not stop another's login, and the
// server drops each of them at its deadline.
func TestSlowClientsDoNotStopLogins(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	temp, err := e.store.AddUser(context.Background(), "operator", store.RoleNARK, "")
	must(t, err)
	cfg := httpserver.DefaultConfig()
	cfg.ReadHeaderTimeout, cfg.ReadTimeout = time.Second, time.Second
	srv := httpserver.New(web.Handler(e.srv.Handler()), cfg, api.Streaming)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr := ln.Addr().String()

	conns := make([]net.Conn, 1000)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		must(t, err)
		t.Cleanup(func() { _ = c.Close() })
		half := "POST /api/v1/auth/login HTTP/1.1\r\nHost: registry\r\nContent-Type: application/json\r\n"
		if i%2 == 1 {
			half += "Content-Length: 100\r\n\r\n{\"login\": \"oper"
		}
		_, err = io.WriteString(c, half)
		must(t, err)
		conns[i] = c
	}
	res, err := http.Post("http://"+addr+"/api/v1/auth/login", "application/json",
		strings.NewReader(`{"login": "operator", "password": "`+temp+`"}`))
	must(t, err)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("login beside 1000 slow connections: %d", res.StatusCode)
	}
	// Each slow connection is closed by the server (a half-sent body gets
	// its 400 first); a client-side timeout here would mean it is held.
	dropped := 0
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range conns {
		must(t, c.SetReadDeadline(deadline))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		dropped++
	}
	if dropped != len(conns) {
		t.Errorf("the server dropped %d of %d slow connections", dropped, len(conns))
	}
}

// TestMalformedTextRefused: a NUL character or invalid UTF-8 in a path,
// a query or a JSON string (which PostgreSQL does not keep in text) is a
// 400 naming the problem, from anyone, before and after logging in; it
// used to reach the database and answer 500 (an error in the log for each
// request). Nothing is stored, and the next requests are served.
func TestMalformedTextRefused(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	center := o.tokens[store.RoleCenter]
	for _, c := range []struct{ method, path, token, body string }{
		{"POST", "/api/v1/auth/login", "", `{"login":"nark\u0000","password":"guess"}`},
		{"POST", "/api/v1/exam/login", "", `{"password":"ABCD-EFGH-JKM\u0000"}`},
		{"GET", "/api/v1/register/certificates?number=CERT-1%00", "", ""},
		{"GET", "/api/v1/register/certificates?number=CERT-%FF", "", ""},
		{"GET", "/api/v1/exams/" + o.exam + "%00", center, ""},
		{"GET", "/api/v1/candidates/%FF", center, ""},
		{"GET", "/api/v1/documents/%00", center, ""},
		{"GET", "/api/v1/media/" + o.media + "%00", center, ""},
		{"GET", "/api/v1/appeals?exam=%00", center, ""},
		{"GET", "/api/v1/audit?object=%FF", w.nark, ""},
		{"POST", "/api/v1/candidates/search", center, `{"q":"Фам\u0000"}`},
		{"POST", "/api/v1/candidates", center, `{"last_name":"Фамилия\u0000","first_name":"Имя","document":"паспорт 99"}`},
		{"PUT", "/api/v1/centers/" + o.center, center, `{"name":"ЦОК\u0000"}`},
		{"POST", "/api/v1/links", center, `{"path":"/api/v1/media/a%00b"}`},
		{"POST", "/api/v1/exam/consent", w.candidate, `{"version":"1\u0000","page":"/ui/exam.html"}`},
	} {
		r := e.do(c.method, c.path, c.token, c.body)
		if r.code != http.StatusBadRequest {
			t.Errorf("%s %s %s: %d %s, want 400", c.method, c.path, c.body, r.code, r.body)
			continue
		}
		if msg := r.errorMessage(t); !strings.Contains(msg, "NUL") && !strings.Contains(msg, "UTF-8") {
			t.Errorf("%s %s: error %q does not name the NUL or the UTF-8", c.method, c.path, msg)
		}
	}
	// A backslash before u0000 is text, not a NUL.
	if r := e.do("POST", "/api/v1/candidates/search", center, `{"q":"\\u0000"}`); r.code != http.StatusOK {
		t.Errorf("search for the text \\u0000: %d %s", r.code, r.body)
	}
	if strings.Contains(e.metrics(), `code="500"`) {
		t.Errorf("some request answered 500:\n%s", e.metrics())
	}
	list, err := e.store.Candidates(context.Background(), store.Scope{Center: o.center})
	must(t, err)
	for _, k := range list {
		if strings.HasPrefix(k.LastName, "Фамилия\x00") {
			t.Errorf("candidate %s stored with a NUL in the name", k.ID)
		}
	}
	if r := e.do("GET", "/api/v1/register/certificates?number="+o.cert, "", nil); r.code != http.StatusOK {
		t.Errorf("the public check after them: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/api/v1/exams/"+o.exam, center, nil); r.code != http.StatusOK {
		t.Errorf("GET the exam after them: %d %s", r.code, r.body)
	}
}

// TestRefusedStreamsAreNotHeld: the routes that stream (media, evidence
// bundles) have no read deadline, and the server reads what is left of a
// request's body before it answers; a stranger's request to them with a
// body it never finishes sending used to be held open for ever, without
// even its 401. Now the refusal is answered at once and the connection
// closed, and another method on those paths gets the usual deadlines.
func TestRefusedStreamsAreNotHeld(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	cfg := httpserver.DefaultConfig()
	cfg.ReadHeaderTimeout, cfg.ReadTimeout = time.Second, time.Second
	srv := httpserver.New(e.srv.Handler(), cfg, api.Streaming)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	o := w.orgs[1]
	for _, c := range []struct {
		request string
		want    string
	}{
		{"GET /api/v1/media/" + o.media + " HTTP/1.1", "401"},
		{"HEAD /api/v1/media/" + o.media + " HTTP/1.1", "401"},
		{"POST /api/v1/evidence/verify HTTP/1.1", "401"},
		{"GET /api/v1/exams/" + o.exam + "/candidates/" + o.cand + "/evidence?purpose=x HTTP/1.1", "401"},
		{"POST /api/v1/media/" + o.media + " HTTP/1.1", "405"},
	} {
		conn, err := net.Dial("tcp", ln.Addr().String())
		must(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		_, err = io.WriteString(conn, c.request+"\r\nHost: registry\r\nContent-Length: 100000\r\n\r\nthe first bytes of many")
		must(t, err)
		// The answer and the end of the connection, or a timeout here
		// if the server holds it.
		must(t, conn.SetReadDeadline(time.Now().Add(20*time.Second)))
		b, err := io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("%s with a body never finished: held open (read %q)", c.request, b)
			continue
		}
		if !strings.HasPrefix(string(b), "HTTP/1.1 "+c.want+" ") {
			t.Errorf("%s with a body never finished: %q, want %s", c.request, b, c.want)
		}
	}
}
