package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	astore "github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/obs"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
)

// t0 is when the test streams start.
var t0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// memBlobs is an in-memory blob.Store.
type memBlobs struct {
	mu sync.Mutex
	m  map[string][]byte
}

var _ blob.Store = (*memBlobs)(nil)

func (b *memBlobs) Put(_ context.Context, key string, r io.Reader, _ int64) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[key] = data
	return nil
}

func (b *memBlobs) Get(_ context.Context, key string) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	data, ok := b.m[key]
	if !ok {
		return nil, blob.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (b *memBlobs) Stat(_ context.Context, key string) (blob.Attrs, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	data, ok := b.m[key]
	if !ok {
		return blob.Attrs{}, blob.ErrNotFound
	}
	return blob.Attrs{Size: int64(len(data))}, nil
}

func (b *memBlobs) List(_ context.Context, prefix string, fn func(string) error) error {
	return fmt.Errorf("list: not implemented in the test fake")
}

func (b *memBlobs) Delete(_ context.Context, key string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, key)
	return nil
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// env is a registry API on a fresh database, an in-memory blob store and a
// settable clock.
type env struct {
	t     *testing.T
	dsn   string
	store *store.Store
	blobs *memBlobs
	clock *clock
	url   string
	cfg   api.Config
	srv   *api.Server
	index bus.Handler
	// reg holds the API's metrics, which the registry serves on its admin
	// address, not through the API's handler.
	reg *prometheus.Registry
}

// metrics returns the API's metrics in the text format, as the admin
// address serves them.
func (e *env) metrics() string {
	e.t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	return rec.Body.String()
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	migrate(t, dsn)
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(st.Close)
	// Tests hash at OWASP's minimum cost: the default's 64 MiB and
	// three passes a login were most of make test's CPU here.
	if err := st.SetPasswordHashing(store.MinimumPasswordHashing()); err != nil {
		t.Fatal(err)
	}
	e := &env{
		t:     t,
		dsn:   dsn,
		store: st,
		blobs: &memBlobs{m: map[string][]byte{}},
		clock: &clock{t: t0.Add(10 * time.Minute)},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.cfg = api.DefaultConfig()
	e.cfg.SigningKey = api.Secret("0123456789abcdef0123456789abcdef")
	e.reg = prometheus.NewRegistry()
	e.srv, err = api.New(e.cfg, api.Deps{
		Store:    st,
		Blob:     e.blobs,
		Log:      log,
		Registry: e.reg,
		Health:   obs.NewHealth(),
		Now:      e.clock.Now,
	})
	if err != nil {
		t.Fatalf("new api: %v", err)
	}
	hs := httptest.NewServer(e.srv.Handler())
	t.Cleanup(hs.Close)
	e.url = hs.URL
	e.index = index.Handler(st, log)
	return e
}

// migrate applies the registry's migrations and then the archiver's, whose
// tables the registry's evidence exports read.
func migrate(t *testing.T, dsn string) {
	t.Helper()
	if err := store.Migrate(t.Context(), dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	if err := astore.Migrate(t.Context(), dsn); err != nil {
		t.Fatalf("migrate the archiver's schema: %v", err)
	}
}

// response is a finished HTTP exchange.
type response struct {
	code   int
	header http.Header
	body   []byte
}

// errorMessage returns the "error" of a JSON error answer, failing the test
// if the answer is not one.
func (r response) errorMessage(t *testing.T) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error answer has Content-Type %q, want application/json", ct)
	}
	var v struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || v.Error == "" {
		t.Errorf("answer %q is not a JSON error: %v", r.body, err)
	}
	return v.Error
}

// do sends a request; token may be "", and body is JSON-encoded unless it
// is a string or nil.
func (e *env) do(method, path, token string, body any, header ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return response{res.StatusCode, res.Header, b}
}

// login logs in and returns the decoded answer.
func (e *env) login(login, password string) (token string, mustChange bool) {
	e.t.Helper()
	r := e.do("POST", "/api/v1/auth/login", "", map[string]string{"login": login, "password": password})
	if r.code != http.StatusOK {
		e.t.Fatalf("login %s: %d %s", login, r.code, r.body)
	}
	var v struct {
		Token              string    `json:"token"`
		MustChangePassword bool      `json:"must_change_password"`
		ExpiresAt          time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil || v.Token == "" || v.ExpiresAt.IsZero() {
		e.t.Fatalf("login answer %s: %v", r.body, err)
	}
	return v.Token, v.MustChangePassword
}

// operator creates a NARK user, changes its temporary password, accepts
// the privacy policy and returns a session token.
func (e *env) operator(login string) string {
	e.t.Helper()
	temp, err := e.store.AddUser(context.Background(), login, store.RoleNARK, "")
	if err != nil {
		e.t.Fatal(err)
	}
	token, _ := e.login(login, temp)
	r := e.do("POST", "/api/v1/auth/password", token, map[string]string{"old_password": temp, "new_password": "a long enough password"})
	if r.code != http.StatusOK {
		e.t.Fatalf("change password: %d %s", r.code, r.body)
	}
	var v struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		e.t.Fatal(err)
	}
	if r := e.do("POST", "/api/v1/auth/privacy-policy", v.Token, map[string]string{"version": api.PrivacyPolicyVersion}); r.code != http.StatusOK {
		e.t.Fatalf("accept the privacy policy: %d %s", r.code, r.body)
	}
	return v.Token
}

// seg describes a test segment of stream site1/cam1.
type seg struct {
	seq      int64
	start    time.Duration // after t0
	duration float64
	init     string
	disc     bool
}

// publish stores a segment (and its init) with random bytes and indexes its
// event through the bus handler, as the registry does.
func (e *env) publish(s seg) *events.SegmentClosed {
	e.t.Helper()
	ctx := context.Background()
	data := make([]byte, 2000+s.seq)
	if _, err := rand.Read(data); err != nil {
		e.t.Fatal(err)
	}
	initKey := "site1/cam1/init-" + s.init + ".mp4"
	initData := []byte("init segment " + s.init)
	key := fmt.Sprintf("site1/cam1/%06d.m4s", s.seq)
	for k, v := range map[string][]byte{key: data, initKey: initData} {
		if err := e.blobs.Put(ctx, k, bytes.NewReader(v), int64(len(v))); err != nil {
			e.t.Fatal(err)
		}
	}
	sum := sha256.Sum256(data)
	initSum := sha256.Sum256(initData)
	ev := &events.SegmentClosed{
		SegmentID: fmt.Sprintf("seg-%d", s.seq), StreamID: "site1/cam1", Source: events.SourceRoom,
		Site: "site1", Device: "cam1", Sequence: s.seq, Start: t0.Add(s.start), Duration: s.duration,
		Codecs: []string{"avc1.64001f"}, Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
		PrevChain: strings.Repeat("0", 64), Chain: strings.Repeat("1", 64),
		ObjectKey: key, InitKey: initKey, InitSHA256: hex.EncodeToString(initSum[:]), InitBytes: int64(len(initData)),
		IngestNode: "node1", Discontinuity: s.disc,
	}
	e.deliver(ev)
	return ev
}

// deliver hands ev to the registry's indexer, as the bus does.
func (e *env) deliver(ev *events.SegmentClosed) {
	e.t.Helper()
	value, err := json.Marshal(ev)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.index(context.Background(), bus.Message{Topic: events.TopicSegments, Key: ev.StreamID, Value: value}); err != nil {
		e.t.Fatalf("index segment %d: %v", ev.Sequence, err)
	}
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func rangeQuery(from, to time.Time) string {
	return "?from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339))
}

func TestAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.publish(seg{seq: 0, duration: 6, init: "a"})
	segments := "/api/v1/streams/site1/cam1/segments" + rangeQuery(t0, t0.Add(time.Minute))
	temp, err := e.store.AddUser(ctx, "operator", store.RoleNARK, "")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("bad requests", func(t *testing.T) {
		tests := []struct {
			name string
			body string
			want int
		}{
			{"not json", "{login", http.StatusBadRequest},
			{"unknown field", `{"login":"operator","password":"x","admin":true}`, http.StatusBadRequest},
			{"missing password", `{"login":"operator"}`, http.StatusBadRequest},
			{"wrong password", `{"login":"operator","password":"wrong"}`, http.StatusUnauthorized},
			{"unknown login", `{"login":"nobody","password":"wrong"}`, http.StatusUnauthorized},
		}
		var unauthorized []string
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := e.do("POST", "/api/v1/auth/login", "", tt.body)
				if r.code != tt.want {
					t.Fatalf("got %d %s, want %d", r.code, r.body, tt.want)
				}
				msg := r.errorMessage(t)
				if r.code == http.StatusUnauthorized {
					unauthorized = append(unauthorized, msg)
				}
			})
		}
		if len(unauthorized) == 2 && unauthorized[0] != unauthorized[1] {
			t.Errorf("a wrong password (%q) and an unknown login (%q) answer differently", unauthorized[0], unauthorized[1])
		}
	})

	t.Run("no token", func(t *testing.T) {
		for _, path := range []string{
			segments,
			"/api/v1/streams/site1/cam1/playlist.m3u8",
			"/api/v1/media/site1/cam1/000000.m4s",
		} {
			r := e.do("GET", path, "", nil)
			if r.code != http.StatusUnauthorized {
				t.Errorf("GET %s without a token: %d, want 401", path, r.code)
			}
			r.errorMessage(t)
			if r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("GET %s: 401 without WWW-Authenticate", path)
			}
		}
		if r := e.do("POST", "/api/v1/links", "", map[string]string{"path": segments}); r.code != http.StatusUnauthorized {
			t.Errorf("POST /api/v1/links without a token: %d, want 401", r.code)
		}
		if r := e.do("GET", segments, "not-a-token", nil); r.code != http.StatusUnauthorized {
			t.Errorf("GET with a wrong token: %d, want 401", r.code)
		}
		r := e.do("GET", segments, "", nil, "Authorization", "Basic b3BlcmF0b3I6eA==")
		if r.code != http.StatusUnauthorized {
			t.Errorf("GET with basic auth: %d, want 401", r.code)
		}
	})

	// The temporary password works only to change it.
	token, mustChange := e.login("operator", temp)
	if !mustChange {
		t.Fatalf("login with a temporary password: must_change_password is false")
	}
	const required = "password change required: POST /api/v1/auth/password"
	for _, req := range []struct{ method, path string }{
		{"GET", segments},
		{"GET", "/api/v1/streams/site1/cam1/playlist.m3u8"},
		{"POST", "/api/v1/links"},
	} {
		r := e.do(req.method, req.path, token, map[string]string{"path": segments})
		if r.code != http.StatusForbidden || r.errorMessage(t) != required {
			t.Errorf("%s %s before the password change: %d %s, want 403 %q", req.method, req.path, r.code, r.body, required)
		}
	}

	tests := []struct {
		name     string
		old, new string
		want     int
	}{
		{"too short", temp, "short", http.StatusBadRequest},
		{"same", temp, temp, http.StatusBadRequest},
		{"wrong old", "not the password", "a long enough password", http.StatusForbidden},
		{"missing", "", "a long enough password", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run("password "+tt.name, func(t *testing.T) {
			r := e.do("POST", "/api/v1/auth/password", token, map[string]string{"old_password": tt.old, "new_password": tt.new})
			if r.code != tt.want {
				t.Errorf("got %d %s, want %d", r.code, r.body, tt.want)
			}
			r.errorMessage(t)
		})
	}
	r := e.do("POST", "/api/v1/auth/password", token, map[string]string{"old_password": temp, "new_password": "a long enough password"})
	if r.code != http.StatusOK {
		t.Fatalf("change password: %d %s", r.code, r.body)
	}
	var changed struct {
		Token              string `json:"token"`
		MustChangePassword bool   `json:"must_change_password"`
	}
	if err := json.Unmarshal(r.body, &changed); err != nil || changed.Token == "" || changed.MustChangePassword {
		t.Fatalf("password change answer %s: %v", r.body, err)
	}
	if r := e.do("GET", segments, token, nil); r.code != http.StatusUnauthorized {
		t.Errorf("token from before the password change: %d, want 401", r.code)
	}
	// Then the privacy policy (TestPrivacyPolicy tests the refusal before).
	if r := e.do("POST", "/api/v1/auth/privacy-policy", changed.Token, map[string]string{"version": api.PrivacyPolicyVersion}); r.code != http.StatusOK {
		t.Fatalf("accept the privacy policy: %d %s", r.code, r.body)
	}
	if r := e.do("GET", segments, changed.Token, nil); r.code != http.StatusOK {
		t.Errorf("token after the password change: %d %s, want 200", r.code, r.body)
	}
	token2, mustChange := e.login("operator", "a long enough password")
	if mustChange {
		t.Errorf("login after the change: must_change_password is true")
	}

	// Sessions expire.
	e.clock.Set(e.clock.Now().Add(e.cfg.TokenTTL + time.Second))
	if r := e.do("GET", segments, token2, nil); r.code != http.StatusUnauthorized {
		t.Errorf("expired token: %d, want 401", r.code)
	}
	token3, _ := e.login("operator", "a long enough password")
	if r := e.do("POST", "/api/v1/auth/logout", token3, nil); r.code != http.StatusNoContent {
		t.Errorf("logout: %d %s", r.code, r.body)
	}
	if r := e.do("GET", segments, token3, nil); r.code != http.StatusUnauthorized {
		t.Errorf("token after logout: %d, want 401", r.code)
	}

	actions := auditActions(t, e.store)
	for _, want := range []string{"auth.login", "auth.password_changed", "segments.list"} {
		if actions[want] == 0 {
			t.Errorf("audit log has no %s entry: %v", want, actions)
		}
	}
	// Failed logins are audited in aggregate.
	rows, err := e.store.LoginAudit(ctx, time.Time{})
	must(t, err)
	if !slices.ContainsFunc(rows, func(a store.LoginAuditRow) bool { return a.Action == "auth.login_failed" && a.Count > 0 }) {
		t.Errorf("login audit has no auth.login_failed row: %v", rows)
	}
}

// auditActions counts the audit log's entries by action.
func auditActions(t *testing.T, s *store.Store) map[string]int {
	t.Helper()
	log, err := s.AuditLog(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, e := range log {
		n[e.Action]++
	}
	return n
}

func TestSegmentsJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token := e.operator("operator")
	var evs []*events.SegmentClosed
	for i := range int64(3) {
		evs = append(evs, e.publish(seg{seq: i, start: time.Duration(i) * 6 * time.Second, duration: 6, init: "a"}))
	}
	// Redelivery of an event changes nothing.
	e.deliver(evs[1])

	r := e.do("GET", "/api/v1/streams/site1/cam1/segments"+rangeQuery(t0, t0.Add(time.Minute)), token, nil)
	if r.code != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("segments: %d %q %s", r.code, r.header.Get("Content-Type"), r.body)
	}
	var list []map[string]any
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	if len(list) != 3 {
		t.Fatalf("got %d segments, want 3 (each once)", len(list))
	}
	for i, g := range list {
		ev := evs[i]
		if seq, ok := g["sequence"].(float64); !ok || seq != float64(i) || seq != math.Trunc(seq) {
			t.Errorf("segment %d: sequence %v, want the integer %d", i, g["sequence"], i)
		}
		start, _ := g["start"].(string)
		if got, err := time.Parse(time.RFC3339, start); err != nil || !got.Equal(ev.Start) {
			t.Errorf("segment %d: start %q, want RFC 3339 %v", i, start, ev.Start)
		}
		if d, ok := g["duration"].(float64); !ok || d != 6 {
			t.Errorf("segment %d: duration %v, want the number 6", i, g["duration"])
		}
		if b, ok := g["bytes"].(float64); !ok || int64(b) != ev.Bytes {
			t.Errorf("segment %d: bytes %v, want %d", i, g["bytes"], ev.Bytes)
		}
		for field, want := range map[string]string{
			"sha256": ev.SHA256, "segment_id": ev.SegmentID, "chain": ev.Chain, "init_sha256": ev.InitSHA256,
		} {
			if g[field] != want {
				t.Errorf("segment %d: %s %v, want %s", i, field, g[field], want)
			}
		}
		if _, ok := g["discontinuity"].(bool); !ok {
			t.Errorf("segment %d: discontinuity %v is not a boolean", i, g["discontinuity"])
		}
		// url and init_url serve the bytes to anyone who has them, without
		// a token.
		for field, want := range map[string]string{"url": ev.SHA256, "init_url": ev.InitSHA256} {
			u, _ := g[field].(string)
			if !strings.HasPrefix(u, "/api/v1/media/") || !strings.Contains(u, "sig=") {
				t.Errorf("segment %d: %s %q is not a signed media URL", i, field, u)
				continue
			}
			m := e.do("GET", u, "", nil)
			if m.code != http.StatusOK || sha(m.body) != want {
				t.Errorf("segment %d: GET %s: %d, sha256 %s, want 200 and %s", i, field, m.code, sha(m.body), want)
			}
		}
	}

	tests := []struct {
		name  string
		path  string
		want  int
		count int
	}{
		{"default range is the last hour", "/api/v1/streams/site1/cam1/segments", http.StatusOK, 3},
		{"offset not percent-encoded", "/api/v1/streams/site1/cam1/segments?from=2025-03-01T13:00:03+03:00&to=2025-03-01T13:01:00+03:00", http.StatusOK, 3},
		{"empty range", "/api/v1/streams/site1/cam1/segments" + rangeQuery(t0.Add(time.Hour), t0.Add(2*time.Hour)), http.StatusOK, 0},
		{"bad from", "/api/v1/streams/site1/cam1/segments?from=yesterday", http.StatusBadRequest, 0},
		{"bad to", "/api/v1/streams/site1/cam1/segments?to=1700000000", http.StatusBadRequest, 0},
		{"from after to", "/api/v1/streams/site1/cam1/segments" + rangeQuery(t0.Add(time.Minute), t0), http.StatusBadRequest, 0},
		{"range too long", "/api/v1/streams/site1/cam1/segments" + rangeQuery(t0.Add(-48*time.Hour), t0), http.StatusBadRequest, 0},
		{"unknown stream", "/api/v1/streams/site1/cam9/segments", http.StatusNotFound, 0},
		{"invalid stream name", "/api/v1/streams/site1/CAM1/segments", http.StatusNotFound, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("GET", tt.path, token, nil)
			if r.code != tt.want {
				t.Fatalf("got %d %s, want %d", r.code, r.body, tt.want)
			}
			if r.code != http.StatusOK {
				r.errorMessage(t)
				return
			}
			var list []json.RawMessage
			if err := json.Unmarshal(r.body, &list); err != nil || list == nil || len(list) != tt.count {
				t.Errorf("got %s, want a JSON array of %d", r.body, tt.count)
			}
		})
	}
}

// playlistEntry is one segment of a parsed playlist with the tags before it.
type playlistEntry struct {
	discontinuity bool
	mapURI        string // the EXT-X-MAP in effect
	newMap        bool   // an EXT-X-MAP came right before
	pdt           time.Time
	duration      string
	uri           string
}

// parsedPlaylist is an HLS media playlist, checked against RFC 8216.
type parsedPlaylist struct {
	target, mediaSequence int
	entries               []playlistEntry
}

// parsePlaylist parses a VOD media playlist, failing the test where it
// breaks RFC 8216 or what this registry promises.
func parsePlaylist(t *testing.T, body []byte) parsedPlaylist {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if lines[0] != "#EXTM3U" {
		t.Fatalf("playlist starts with %q, want #EXTM3U", lines[0])
	}
	if lines[len(lines)-1] != "#EXT-X-ENDLIST" {
		t.Errorf("playlist ends with %q, want #EXT-X-ENDLIST", lines[len(lines)-1])
	}
	var p parsedPlaylist
	var cur playlistEntry
	var mapURI string
	seen := map[string]bool{}
	extinf := regexp.MustCompile(`^#EXTINF:(\d+\.\d{3,}),$`)
	for _, line := range lines[1:] {
		tag, value, _ := strings.Cut(line, ":")
		switch {
		case line == "#EXT-X-ENDLIST", line == "#EXT-X-INDEPENDENT-SEGMENTS":
		case tag == "#EXT-X-VERSION":
			seen[tag] = value == "7"
		case tag == "#EXT-X-PLAYLIST-TYPE":
			seen[tag] = value == "VOD"
		case tag == "#EXT-X-TARGETDURATION":
			p.target, _ = strconv.Atoi(value)
			seen[tag] = true
		case tag == "#EXT-X-MEDIA-SEQUENCE":
			p.mediaSequence, _ = strconv.Atoi(value)
			seen[tag] = true
		case line == "#EXT-X-DISCONTINUITY":
			cur.discontinuity = true
		case tag == "#EXT-X-MAP":
			uri, ok := strings.CutPrefix(value, `URI="`)
			if !ok || !strings.HasSuffix(uri, `"`) {
				t.Errorf("bad EXT-X-MAP %q", line)
			}
			mapURI = strings.TrimSuffix(uri, `"`)
			cur.newMap = true
		case tag == "#EXT-X-PROGRAM-DATE-TIME":
			pdt, err := time.Parse(time.RFC3339Nano, value)
			if err != nil {
				t.Errorf("bad EXT-X-PROGRAM-DATE-TIME %q: %v", value, err)
			}
			cur.pdt = pdt
		case tag == "#EXTINF":
			m := extinf.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("EXTINF %q: want a duration with at least 3 decimals", line)
				continue
			}
			cur.duration = m[1]
		case strings.HasPrefix(line, "#"):
			t.Errorf("unexpected tag %q", line)
		default:
			if cur.duration == "" {
				t.Errorf("URI %q without EXTINF", line)
			}
			if mapURI == "" {
				t.Errorf("URI %q before any EXT-X-MAP", line)
			}
			cur.uri = line
			cur.mapURI = mapURI
			p.entries = append(p.entries, cur)
			cur = playlistEntry{}
		}
	}
	for _, tag := range []string{"#EXT-X-VERSION", "#EXT-X-PLAYLIST-TYPE", "#EXT-X-TARGETDURATION", "#EXT-X-MEDIA-SEQUENCE"} {
		if !seen[tag] {
			t.Errorf("playlist lacks a valid %s", tag)
		}
	}
	for i, e := range p.entries {
		d, _ := strconv.ParseFloat(e.duration, 64)
		if int(math.Round(d)) > p.target {
			t.Errorf("segment %d: EXTINF %s rounds above EXT-X-TARGETDURATION %d", i, e.duration, p.target)
		}
	}
	return p
}

func TestPlaylist(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token := e.operator("operator")
	segs := []seg{
		{seq: 0, start: 0, duration: 6, init: "a"},
		{seq: 1, start: 6 * time.Second, duration: 6.5, init: "a"},
		// A hole of 4.5 s: the publisher dropped and came back.
		{seq: 2, start: 17 * time.Second, duration: 6.25, init: "a"},
		// Same time line, new codec configuration.
		{seq: 3, start: 23250 * time.Millisecond, duration: 6, init: "b"},
		// Ingest says it was interrupted.
		{seq: 4, start: 29250 * time.Millisecond, duration: 6, init: "b", disc: true},
		{seq: 5, start: 35250 * time.Millisecond, duration: 7.125, init: "b"},
	}
	var evs []*events.SegmentClosed
	for _, s := range segs {
		evs = append(evs, e.publish(s))
	}
	path := "/api/v1/streams/site1/cam1/playlist.m3u8" + rangeQuery(t0, t0.Add(time.Minute))

	r := e.do("GET", path, token, nil)
	if r.code != http.StatusOK {
		t.Fatalf("playlist: %d %s", r.code, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/vnd.apple.mpegurl" {
		t.Errorf("Content-Type %q, want application/vnd.apple.mpegurl", ct)
	}
	p := parsePlaylist(t, r.body)
	if p.target != 8 {
		t.Errorf("EXT-X-TARGETDURATION %d, want 8 (7.125 rounded up)", p.target)
	}
	if p.mediaSequence != 0 {
		t.Errorf("EXT-X-MEDIA-SEQUENCE %d, want 0", p.mediaSequence)
	}
	if len(p.entries) != len(segs) {
		t.Fatalf("playlist has %d segments, want %d:\n%s", len(p.entries), len(segs), r.body)
	}
	wantDisc := []bool{false, false, true, true, true, false}
	wantNewMap := []bool{true, false, false, true, false, false}
	for i, pe := range p.entries {
		ev := evs[i]
		if pe.discontinuity != wantDisc[i] {
			t.Errorf("segment %d: EXT-X-DISCONTINUITY %v, want %v", i, pe.discontinuity, wantDisc[i])
		}
		if pe.newMap != wantNewMap[i] {
			t.Errorf("segment %d: EXT-X-MAP before it %v, want %v", i, pe.newMap, wantNewMap[i])
		}
		wantPDT := i == 0 || wantDisc[i]
		if !pe.pdt.IsZero() != wantPDT || (wantPDT && !pe.pdt.Equal(ev.Start)) {
			t.Errorf("segment %d: EXT-X-PROGRAM-DATE-TIME %v, want %v at %v", i, pe.pdt, wantPDT, ev.Start)
		}
		if want := strconv.FormatFloat(segs[i].duration, 'f', 3, 64); pe.duration != want {
			t.Errorf("segment %d: EXTINF %s, want %s", i, pe.duration, want)
		}
		if !strings.HasPrefix(pe.uri, "/api/v1/media/"+ev.ObjectKey+"?") || !strings.HasPrefix(pe.mapURI, "/api/v1/media/"+ev.InitKey+"?") {
			t.Errorf("segment %d: URI %q, map %q, want media URLs of %s and %s", i, pe.uri, pe.mapURI, ev.ObjectKey, ev.InitKey)
		}
		// Players fetch segments and inits without headers.
		for uri, want := range map[string]string{pe.uri: ev.SHA256, pe.mapURI: ev.InitSHA256} {
			m := e.do("GET", uri, "", nil)
			if m.code != http.StatusOK || sha(m.body) != want {
				t.Errorf("segment %d: GET %s: %d, sha256 %s, want 200 and %s", i, uri, m.code, sha(m.body), want)
			}
		}
	}

	t.Run("ranges", func(t *testing.T) {
		uri := p.entries[0].uri
		m := e.do("GET", uri, "", nil, "Range", "bytes=100-199")
		if m.code != http.StatusPartialContent || len(m.body) != 100 {
			t.Fatalf("range request: %d, %d bytes, want 206 and 100 bytes", m.code, len(m.body))
		}
		full := e.do("GET", uri, "", nil)
		if !bytes.Equal(m.body, full.body[100:200]) {
			t.Errorf("range request served other bytes")
		}
		if ct := full.header.Get("Content-Type"); ct != "video/iso.segment" {
			t.Errorf("segment Content-Type %q, want video/iso.segment", ct)
		}
		if ct := e.do("GET", p.entries[0].mapURI, "", nil).header.Get("Content-Type"); ct != "video/mp4" {
			t.Errorf("init Content-Type %q, want video/mp4", ct)
		}
	})

	t.Run("signed link", func(t *testing.T) {
		r := e.do("POST", "/api/v1/links", token, map[string]string{"path": path})
		if r.code != http.StatusOK {
			t.Fatalf("create link: %d %s", r.code, r.body)
		}
		var link struct {
			URL       string    `json:"url"`
			ExpiresAt time.Time `json:"expires_at"`
		}
		if err := json.Unmarshal(r.body, &link); err != nil || !strings.HasPrefix(link.URL, "/api/v1/streams/site1/cam1/playlist.m3u8?") {
			t.Fatalf("link answer %s: %v", r.body, err)
		}
		if want := e.clock.Now().Add(e.cfg.LinkTTL); !link.ExpiresAt.Equal(want) {
			t.Errorf("link expires at %v, want %v", link.ExpiresAt, want)
		}
		m := e.do("GET", link.URL, "", nil, "X-Purpose", "appeal 42")
		if m.code != http.StatusOK {
			t.Fatalf("GET signed playlist: %d %s", m.code, m.body)
		}
		sp := parsePlaylist(t, m.body)
		if len(sp.entries) != len(segs) {
			t.Errorf("signed playlist has %d segments, want %d", len(sp.entries), len(segs))
		}
		if m := e.do("GET", sp.entries[5].uri, "", nil); m.code != http.StatusOK || sha(m.body) != evs[5].SHA256 {
			t.Errorf("segment of the signed playlist: %d", m.code)
		}
	})

	t.Run("empty range", func(t *testing.T) {
		r := e.do("GET", "/api/v1/streams/site1/cam1/playlist.m3u8"+rangeQuery(t0.Add(time.Hour), t0.Add(2*time.Hour)), token, nil)
		if r.code != http.StatusNotFound {
			t.Errorf("empty range: %d, want 404", r.code)
		}
		r.errorMessage(t)
	})

	// Every access to media is in the audit log, with the declared purpose:
	// media fetches counted in one row per user, stream, purpose and
	// window, written when the window closes.
	if err := e.srv.CloseMediaAudit(context.Background()); err != nil {
		t.Fatal(err)
	}
	log, err := e.store.AuditLog(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var purposed, media int
	for _, a := range log {
		if a.Action == "playlist.get" && a.Purpose == "appeal 42" && a.ActorLogin == "operator" && a.Object == "site1/cam1" {
			purposed++
		}
		if a.Action == "media.get" {
			n, _ := a.Detail["fetches"].(float64)
			media += int(n)
			if a.ActorID == 0 || a.RemoteAddr == "" || a.Object == "" {
				t.Errorf("media audit entry lacks who, where or what: %+v", a)
			}
		}
	}
	if purposed != 1 {
		t.Errorf("%d playlist.get entries with purpose \"appeal 42\", want 1", purposed)
	}
	// 2 per segment, 3 in ranges, 1 from the signed playlist.
	if want := 2*len(segs) + 3 + 1; media != want {
		t.Errorf("media.get entries count %d fetches, want %d", media, want)
	}
}

func TestSignedURLs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token := e.operator("operator")
	a := e.publish(seg{seq: 0, duration: 6, init: "a"})
	b := e.publish(seg{seq: 1, start: 6 * time.Second, duration: 6, init: "a"})

	link := func(path string) string {
		t.Helper()
		r := e.do("POST", "/api/v1/links", token, map[string]string{"path": path})
		if r.code != http.StatusOK {
			t.Fatalf("create link for %s: %d %s", path, r.code, r.body)
		}
		var v struct {
			URL string `json:"url"`
		}
		if err := json.Unmarshal(r.body, &v); err != nil {
			t.Fatal(err)
		}
		return v.URL
	}
	linkA := link("/api/v1/media/" + a.ObjectKey)
	if m := e.do("GET", linkA, "", nil); m.code != http.StatusOK || sha(m.body) != a.SHA256 {
		t.Fatalf("signed link: %d", m.code)
	}
	u, err := url.Parse(linkA)
	if err != nil {
		t.Fatal(err)
	}
	with := func(param, value string) string {
		q := u.Query()
		q.Set(param, value)
		return u.Path + "?" + q.Encode()
	}
	q := u.Query()
	sig := []byte(q.Get("sig"))
	sig[3] ^= 1
	exp, _ := strconv.ParseInt(q.Get("exp"), 10, 64)
	playlist := link("/api/v1/streams/site1/cam1/playlist.m3u8" + rangeQuery(t0, t0.Add(time.Minute)))
	pu, _ := url.Parse(playlist)
	pq := pu.Query()
	pq.Set("from", t0.Add(-time.Hour).Format(time.RFC3339))

	tests := []struct {
		name string
		path string
		want int
	}{
		{"tampered signature", with("sig", string(sig)), http.StatusForbidden},
		{"later expiry", with("exp", strconv.FormatInt(exp+3600, 10)), http.StatusForbidden},
		{"other user", with("uid", "999"), http.StatusForbidden},
		{"missing signature", u.Path + "?exp=" + q.Get("exp") + "&uid=" + q.Get("uid") + "&sig=", http.StatusForbidden},
		{"another key", "/api/v1/media/" + b.ObjectKey + "?" + u.RawQuery, http.StatusForbidden},
		{"the init key", "/api/v1/media/" + a.InitKey + "?" + u.RawQuery, http.StatusForbidden},
		{"another route", "/api/v1/streams/site1/cam1/segments?" + u.RawQuery, http.StatusForbidden},
		{"changed range", pu.Path + "?" + pq.Encode(), http.StatusForbidden},
		{"duplicate parameter", linkA + "&exp=" + strconv.FormatInt(exp+3600, 10), http.StatusForbidden},
		{"extra parameter", linkA + "&from=2025-01-01T00:00:00Z", http.StatusForbidden},
		{"for a POST route", "/api/v1/links?" + u.RawQuery, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("GET", tt.path, "", nil)
			if r.code != tt.want {
				t.Errorf("GET %s: %d %s, want %d", tt.path, r.code, r.body, tt.want)
			}
			r.errorMessage(t)
		})
	}

	t.Run("bad link requests", func(t *testing.T) {
		for _, path := range []string{
			"/api/v1/auth/password",
			"/api/v1/streams/../auth/login",
			"http://example.com/api/v1/media/" + a.ObjectKey,
			"/api/v1/media/" + a.ObjectKey + "?sig=x",
			"api/v1/media/" + a.ObjectKey,
		} {
			if r := e.do("POST", "/api/v1/links", token, map[string]string{"path": path}); r.code != http.StatusBadRequest {
				t.Errorf("link for %q: %d %s, want 400", path, r.code, r.body)
			}
		}
	})

	t.Run("unknown key", func(t *testing.T) {
		// The blob store has the init object of no indexed segment.
		if err := e.blobs.Put(context.Background(), "site1/cam1/stray.m4s", strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"site1/cam1/stray.m4s", "site1/cam1/none.m4s"} {
			r := e.do("GET", "/api/v1/media/"+key, token, nil)
			if r.code != http.StatusNotFound {
				t.Errorf("GET unindexed %s with a token: %d, want 404", key, r.code)
			}
			r.errorMessage(t)
		}
	})

	t.Run("tampered object", func(t *testing.T) {
		// Bytes that differ from the index are never served as evidence.
		if err := e.blobs.Put(context.Background(), b.ObjectKey, strings.NewReader("forged"), 6); err != nil {
			t.Fatal(err)
		}
		r := e.do("GET", "/api/v1/media/"+b.ObjectKey, token, nil)
		if r.code != http.StatusInternalServerError || bytes.Contains(r.body, []byte("forged")) {
			t.Errorf("tampered object: %d %s, want a 500 error", r.code, r.body)
		}
		r.errorMessage(t)
	})

	t.Run("expired", func(t *testing.T) {
		e.clock.Set(time.Unix(exp, 0))
		r := e.do("GET", linkA, "", nil)
		if r.code != http.StatusForbidden || !strings.Contains(r.errorMessage(t), "expired") {
			t.Errorf("expired link: %d %s, want 403 expired", r.code, r.body)
		}
	})
}

func TestRoutesAndMetrics(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token := e.operator("operator")
	e.publish(seg{seq: 0, duration: 6, init: "a"})
	e.do("GET", "/api/v1/streams/site1/cam1/segments", token, nil)
	e.do("GET", "/api/v1/streams/site1/cam9/segments", token, nil)

	if r := e.do("GET", "/api/v1/nothing", token, nil); r.code != http.StatusNotFound {
		t.Errorf("unknown route: %d, want 404", r.code)
	} else {
		r.errorMessage(t)
	}
	r := e.do("DELETE", "/api/v1/auth/login", "", nil)
	if r.code != http.StatusMethodNotAllowed || !strings.Contains(r.header.Get("Allow"), "POST") {
		t.Errorf("wrong method: %d Allow %q, want 405 with Allow: POST", r.code, r.header.Get("Allow"))
	}
	r.errorMessage(t)

	m := struct{ body []byte }{[]byte(e.metrics())}
	if r := e.do("GET", "/healthz", "", nil); r.code != http.StatusOK {
		t.Errorf("GET /healthz: %d %s", r.code, r.body)
	}
	// Metrics and readiness say how the service is built and what it
	// depends on: the admin address serves them, the public port does not.
	for _, path := range []string{"/readyz", "/metrics"} {
		if r := e.do("GET", path, "", nil); r.code != http.StatusNotFound {
			t.Errorf("GET %s on the public port: %d, want 404", path, r.code)
		}
	}
	for _, want := range []string{
		`nokstream_registry_http_requests_total{code="200",route="GET /api/v1/streams/{site}/{device}/segments"} 1`,
		`nokstream_registry_http_requests_total{code="404",route="GET /api/v1/streams/{site}/{device}/segments"} 1`,
		`nokstream_registry_http_requests_total{code="200",route="POST /api/v1/auth/login"} 1`,
		`nokstream_registry_http_requests_total{code="404",route="unmatched"} 1`,
		`nokstream_registry_http_request_seconds_count{route="GET /api/v1/streams/{site}/{device}/segments"} 2`,
	} {
		if !bytes.Contains(m.body, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if bytes.Contains(m.body, []byte("cam9")) {
		t.Errorf("metrics contain a raw path")
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	key := "0123456789abcdef0123456789abcdef"
	cfg := api.DefaultConfig()
	if err := cfg.Validate(); err == nil {
		t.Errorf("default config without a signing key is valid")
	}
	if err := cfg.SigningKey.UnmarshalText([]byte(key)); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("config with a key: %v", err)
	}
	j, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "key", cfg.SigningKey)
	hexKey := hex.EncodeToString([]byte(key))
	for _, s := range []string{
		fmt.Sprintf("%v %+v %#v %s %x %q", cfg, cfg, cfg, cfg.SigningKey, cfg.SigningKey, cfg.SigningKey),
		string(j),
		logged.String(),
	} {
		if strings.Contains(s, key) || strings.Contains(s, hexKey) || !strings.Contains(s, "redacted") {
			t.Errorf("printed config shows the key or no <redacted>: %s", s)
		}
	}
}
