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
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/obs"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
)

// mediaEnv is a registry API over a local directory blob store, the shape
// a single machine runs.
type mediaEnv struct {
	*env
	dir  string
	segs []*events.SegmentClosed
	data map[string][]byte // object key → bytes stored
}

func newMediaEnv(t *testing.T, segments int) *mediaEnv {
	t.Helper()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	if err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	// Tests hash at OWASP's minimum cost: the default's 64 MiB and
	// three passes a login were most of make test's CPU here.
	if err := st.SetPasswordHashing(store.MinimumPasswordHashing()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	blobs, err := blob.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := api.DefaultConfig()
	cfg.SigningKey = api.Secret("0123456789abcdef0123456789abcdef")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := &clock{t: t0.Add(10 * time.Minute)}
	srv, err := api.New(cfg, api.Deps{Store: st, Blob: blobs, Log: log, Registry: prometheus.NewRegistry(), Health: obs.NewHealth(), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	m := &mediaEnv{env: &env{t: t, store: st, clock: c, url: hs.URL, cfg: cfg, srv: srv, index: index.Handler(st, log)},
		dir: dir, data: map[string][]byte{}}
	initData := []byte("init segment of cam1")
	initKey := "raw/site1/cam1/init-a.mp4"
	initSum := sha256.Sum256(initData)
	m.put(initKey, initData)
	for i := range segments {
		data := make([]byte, 300_000+i)
		if _, err := rand.Read(data); err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("raw/site1/cam1/%06d.m4s", i)
		m.put(key, data)
		sum := sha256.Sum256(data)
		ev := &events.SegmentClosed{SegmentID: fmt.Sprintf("seg-%d", i), StreamID: "site1/cam1", Source: events.SourceRoom,
			Site: "site1", Device: "cam1", Sequence: int64(i), Start: t0.Add(time.Duration(i) * 6 * time.Second), Duration: 6,
			Codecs: []string{"avc1.64001f"}, Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
			PrevChain: strings.Repeat("0", 64), Chain: strings.Repeat("1", 64), ObjectKey: key, InitKey: initKey,
			InitSHA256: hex.EncodeToString(initSum[:]), InitBytes: int64(len(initData)), IngestNode: "node1"}
		m.deliver(ev)
		m.segs = append(m.segs, ev)
	}
	return m
}

func (m *mediaEnv) put(key string, data []byte) {
	m.t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(m.dir, key)), 0o755); err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, key), data, 0o644); err != nil {
		m.t.Fatal(err)
	}
	m.data[key] = data
}

// link returns a signed URL of path made in token's session.
func (m *mediaEnv) link(token, path string) string {
	m.t.Helper()
	r := m.do("POST", "/api/v1/links", token, map[string]string{"path": path})
	if r.code != http.StatusOK {
		m.t.Fatalf("create link for %s: %d %s", path, r.code, r.body)
	}
	var v struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(r.body, &v); err != nil {
		m.t.Fatal(err)
	}
	return v.URL
}

// mediaRows returns the media.get rows of the audit log with purpose.
func (m *mediaEnv) mediaRows(purpose string) []store.AuditEntry {
	m.t.Helper()
	log, err := m.store.AuditLog(context.Background(), 0, 100000)
	if err != nil {
		m.t.Fatal(err)
	}
	var out []store.AuditEntry
	for _, a := range log {
		if a.Action == "media.get" && a.Purpose == purpose {
			out = append(out, a)
		}
	}
	return out
}

// TestMediaFromFile: a segment in a local directory store is served with
// the bytes stored, whole and in ranges, to a signed URL; a file changed
// behind the index's back is refused, even right after it was served, and
// served again once restored.
func TestMediaFromFile(t *testing.T) {
	t.Parallel()
	m := newMediaEnv(t, 2)
	token := m.operator("operator")
	seg := m.segs[1]
	body := m.data[seg.ObjectKey]
	url := m.link(token, "/api/v1/media/"+seg.ObjectKey)
	for _, tc := range []struct {
		rng  string
		code int
		want []byte
	}{
		{"", http.StatusOK, body},
		{"bytes=1000-1999", http.StatusPartialContent, body[1000:2000]},
		{"bytes=-500", http.StatusPartialContent, body[len(body)-500:]},
		{"bytes=299990-", http.StatusPartialContent, body[299990:]},
		{fmt.Sprintf("bytes=%d-", len(body)+10), http.StatusRequestedRangeNotSatisfiable, nil},
	} {
		var h []string
		if tc.rng != "" {
			h = []string{"Range", tc.rng}
		}
		r := m.do("GET", url, "", nil, h...)
		if r.code != tc.code || (tc.want != nil && !bytes.Equal(r.body, tc.want)) {
			t.Errorf("GET %q: %d, %d bytes; want %d and %d bytes of the stored segment", tc.rng, r.code, len(r.body), tc.code, len(tc.want))
		}
		if tc.code == http.StatusOK && (r.header.Get("Content-Type") != "video/iso.segment" || r.header.Get("ETag") != `"`+seg.SHA256+`"`) {
			t.Errorf("GET: Content-Type %q, ETag %q", r.header.Get("Content-Type"), r.header.Get("ETag"))
		}
	}
	if r := m.do("GET", "/api/v1/media/"+seg.InitKey, token, nil); r.code != http.StatusOK || string(r.body) != "init segment of cam1" {
		t.Errorf("init segment: %d %q", r.code, r.body)
	}

	// Same size, other bytes, in place: refused at once.
	forged := bytes.Clone(body)
	forged[100] ^= 1
	if err := os.WriteFile(filepath.Join(m.dir, seg.ObjectKey), forged, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := m.do("GET", url, "", nil); r.code != http.StatusInternalServerError || !strings.Contains(string(r.body), "does not match its index") {
		t.Errorf("altered segment: %d %s, want 500 saying it does not match its index", r.code, r.body)
	}
	// Replaced by a new file with the original bytes: served.
	tmp := filepath.Join(m.dir, "restored")
	if err := os.WriteFile(tmp, body, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(m.dir, seg.ObjectKey)); err != nil {
		t.Fatal(err)
	}
	if r := m.do("GET", url, "", nil); r.code != http.StatusOK || !bytes.Equal(r.body, body) {
		t.Errorf("restored segment: %d, %d bytes", r.code, len(r.body))
	}
	// Gone from the store: 404.
	if err := os.Remove(filepath.Join(m.dir, seg.ObjectKey)); err != nil {
		t.Fatal(err)
	}
	if r := m.do("GET", url, "", nil); r.code != http.StatusNotFound {
		t.Errorf("missing segment: %d, want 404", r.code)
	}
}

// TestMediaLinkAfterLogout: a signed media URL stops working when the
// session that made it is logged out: at once on the registry that logged
// it out, and within api.RevokeWithin on another (which cached the
// session); and at once when its account is suspended.
func TestMediaLinkAfterLogout(t *testing.T) {
	t.Parallel()
	m := newMediaEnv(t, 1)
	// A second registry on the same database and files.
	blobs, err := blob.NewDir(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	other, err := api.New(m.cfg, api.Deps{Store: m.store, Blob: blobs, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: prometheus.NewRegistry(), Health: obs.NewHealth(), Now: m.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(other.Handler())
	t.Cleanup(hs.Close)
	get := func(base, url string) int {
		t.Helper()
		res, err := http.Get(base + url)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		return res.StatusCode
	}
	token := m.operator("operator")
	url := m.link(token, "/api/v1/media/"+m.segs[0].ObjectKey)
	for _, base := range []string{m.url, hs.URL} {
		if code := get(base, url); code != http.StatusOK {
			t.Fatalf("signed link before logout: %d", code)
		}
	}
	if r := m.do("POST", "/api/v1/auth/logout", token, nil); r.code != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.code, r.body)
	}
	if code := get(m.url, url); code != http.StatusForbidden {
		t.Errorf("signed link after logout, same registry: %d, want 403", code)
	}
	m.clock.Set(m.clock.Now().Add(api.RevokeWithin))
	if code := get(hs.URL, url); code != http.StatusForbidden {
		t.Errorf("signed link %v after logout, other registry: %d, want 403", api.RevokeWithin, code)
	}
	// A suspended account's links stop at once on the registry that
	// suspended it.
	viewer := m.operator("viewer")
	vurl := m.link(viewer, "/api/v1/media/"+m.segs[0].ObjectKey)
	if code := get(m.url, vurl); code != http.StatusOK {
		t.Fatalf("viewer's signed link: %d", code)
	}
	admin := m.operator("admin")
	if r := m.do("POST", "/api/v1/users/viewer/suspension", admin, map[string]any{"suspended": true, "reason": "test"}); r.code != http.StatusOK {
		t.Fatalf("suspend: %d %s", r.code, r.body)
	}
	if code := get(m.url, vurl); code != http.StatusForbidden {
		t.Errorf("suspended account's signed link: %d, want 403", code)
	}
}

// TestMediaAuditGrouped: media fetches are audited as one media.get row
// per user, stream, purpose and 5 minutes, with the count and span of what
// was fetched; the next window is the next row; the rows are in the trail a
// bundle's audit.json is made of, and the audit chain still verifies. Run
// writes the open windows when it ends.
func TestMediaAuditGrouped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := newMediaEnv(t, 3)
	token := m.operator("operator")
	urls := make([]string, len(m.segs))
	for i, s := range m.segs {
		urls[i] = m.link(token, "/api/v1/media/"+s.ObjectKey)
	}
	// t0 + 10 min starts a window: 40 fetches over 4 minutes, 10 of them
	// ranged, one of the init segment with the token.
	start := m.clock.Now()
	for i := range 40 {
		m.clock.Set(start.Add(time.Duration(i) * 6 * time.Second))
		h := []string{"X-Purpose", "appeal 7"}
		if i%4 == 0 {
			h = append(h, "Range", "bytes=0-99")
		}
		if r := m.do("GET", urls[i%3], "", nil, h...); r.code/100 != 2 {
			t.Fatalf("fetch %d: %d %s", i, r.code, r.body)
		}
	}
	last := m.clock.Now()
	if r := m.do("GET", "/api/v1/media/"+m.segs[0].InitKey, token, nil, "X-Purpose", "appeal 7"); r.code != http.StatusOK {
		t.Fatalf("init: %d", r.code)
	}
	// Another purpose is another row.
	if r := m.do("GET", urls[0], "", nil, "X-Purpose", "review"); r.code != http.StatusOK {
		t.Fatalf("fetch: %d", r.code)
	}
	if rows := m.mediaRows("appeal 7"); len(rows) != 0 {
		t.Errorf("%d media.get rows before the window closed", len(rows))
	}
	must(t, m.srv.CloseMediaAudit(ctx))
	rows := m.mediaRows("appeal 7")
	if len(rows) != 1 {
		t.Fatalf("%d media.get rows with purpose appeal 7, want 1: %+v", len(rows), rows)
	}
	a := rows[0]
	d := a.Detail
	want := map[string]any{"fetches": 41.0, "ranged": 10.0, "init": 1.0,
		"first_at": start.UTC().Format(time.RFC3339Nano), "last_at": last.UTC().Format(time.RFC3339Nano),
		"media_from": t0.Format(time.RFC3339Nano), "media_to": t0.Add(18 * time.Second).Format(time.RFC3339Nano),
		"window_start": start.UTC().Format(time.RFC3339Nano), "window_end": start.Add(5 * time.Minute).UTC().Format(time.RFC3339Nano)}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("detail %s = %v, want %v", k, d[k], v)
		}
	}
	if a.Object != "site1/cam1" || a.ActorLogin != "operator" || a.RemoteAddr != "127.0.0.1" || !a.At.Equal(start) {
		t.Errorf("row %+v: want object site1/cam1 by operator from an address at %v", a, start)
	}
	if d["via"] != "signed_url,token" {
		t.Errorf("via %v, want signed_url,token", d["via"])
	}
	if rows := m.mediaRows("review"); len(rows) != 1 || rows[0].Detail["fetches"] != 1.0 || rows[0].Detail["via"] != "signed_url" {
		t.Errorf("purpose review: %+v, want one row of one fetch via signed_url", rows)
	}

	// The next window is the next row.
	next := start.Add(api.MediaAuditWindow)
	m.clock.Set(next.Add(time.Second))
	for range 3 {
		if r := m.do("GET", urls[2], "", nil, "X-Purpose", "appeal 7"); r.code != http.StatusOK {
			t.Fatalf("fetch: %d", r.code)
		}
	}
	// Run writes the open windows when it ends.
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- m.srv.Run(rctx) }()
	cancel()
	must(t, <-done)
	rows = m.mediaRows("appeal 7")
	if len(rows) != 2 || rows[1].Detail["fetches"] != 3.0 || rows[1].Detail["window_start"] != next.UTC().Format(time.RFC3339Nano) ||
		rows[1].Detail["media_from"] != t0.Add(12*time.Second).Format(time.RFC3339Nano) {
		t.Errorf("after the next window: %+v, want a second row of 3 fetches of segment 2", rows)
	}

	// What a bundle's audit.json is made of (export.Bundle
	// selects the trail by stream).
	trail, err := m.store.ObjectAudit(ctx, []string{"site1/cam1"}, t0.Add(-time.Hour), 100)
	must(t, err)
	if len(trail) != 3 {
		t.Errorf("audit trail of site1/cam1: %d rows, want the 3 windows", len(trail))
	}
	// The audit API shows the windows, newest first.
	r := m.do("GET", "/api/v1/audit?object=site1/cam1", token, nil)
	var listed []struct {
		Action  string         `json:"action"`
		Purpose string         `json:"purpose"`
		Detail  map[string]any `json:"detail"`
	}
	if err := json.Unmarshal(r.body, &listed); r.code != http.StatusOK || err != nil {
		t.Fatalf("GET /api/v1/audit: %d %s", r.code, r.body)
	}
	var got []string
	for _, a := range listed {
		if a.Action == "media.get" {
			got = append(got, fmt.Sprintf("%s:%v", a.Purpose, a.Detail["fetches"]))
		}
	}
	if want := []string{"appeal 7:3", "review:1", "appeal 7:41"}; !slices.Equal(got, want) {
		t.Errorf("audit API: media.get rows %v, want %v", got, want)
	}
	brk, _, err := m.store.VerifyAuditLog(ctx, nil)
	must(t, err)
	if brk != nil {
		t.Errorf("audit chain broken: %v", brk)
	}
}

// TestMediaAuditKeepsPurpose: the purpose declared for a playlist, a
// segment list or a candidate's evidence (query or X-Purpose) is carried
// by the signed media URLs in the answer, so that the player's fetches of
// them, which send no header, are audited with it. They used to be
// media.get rows without a purpose.
func TestMediaAuditKeepsPurpose(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	expert := o.tokens[store.RoleExpert]
	window := rangeQuery(examStart, examEnd)
	fetch := func(what, uri string) {
		t.Helper()
		if r := e.do("GET", uri, "", nil); r.code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", what, uri, r.code, r.body)
		}
	}

	// A playlist asked for with ?purpose=: its segment and init URLs.
	r := e.do("GET", "/api/v1/streams/"+o.site+"/room1/playlist.m3u8"+window+"&purpose="+url.QueryEscape("апелляция 9"), expert, nil)
	if r.code != http.StatusOK {
		t.Fatalf("playlist: %d %s", r.code, r.body)
	}
	p := parsePlaylist(t, r.body)
	fetch("segment of the playlist", p.entries[0].uri)
	fetch("init of the playlist", p.entries[0].mapURI)

	// A segment list asked for with X-Purpose.
	r = e.do("GET", "/api/v1/streams/"+o.site+"/ws1-cam/segments"+window, expert, nil, "X-Purpose", "review 3")
	if r.code != http.StatusOK {
		t.Fatalf("segments: %d %s", r.code, r.body)
	}
	segs := decode[[]struct {
		URL string `json:"url"`
	}](t, r)
	fetch("segment of the list", segs[1].URL)

	// A candidate's evidence: its signed playlist, then a segment of it.
	r = e.do("GET", "/api/v1/exams/"+o.exam+"/candidates/"+o.cand+"/media?purpose=check", expert, nil)
	if r.code != http.StatusOK {
		t.Fatalf("media: %d %s", r.code, r.body)
	}
	ev := decode[struct {
		Streams []struct {
			Stream      string `json:"stream"`
			PlaylistURL string `json:"playlist_url"`
		} `json:"streams"`
	}](t, r)
	i := slices.IndexFunc(ev.Streams, func(s struct {
		Stream      string `json:"stream"`
		PlaylistURL string `json:"playlist_url"`
	}) bool {
		return s.Stream == o.site+"/ws1-screen"
	})
	if i < 0 {
		t.Fatalf("no stream %s/ws1-screen in %s", o.site, r.body)
	}
	r = e.do("GET", ev.Streams[i].PlaylistURL, "", nil)
	if r.code != http.StatusOK {
		t.Fatalf("signed playlist: %d %s", r.code, r.body)
	}
	fetch("segment of the evidence playlist", parsePlaylist(t, r.body).entries[2].uri)

	must(t, e.srv.CloseMediaAudit(context.Background()))
	log, err := e.store.AuditLog(context.Background(), 0, 100000)
	must(t, err)
	got := map[string]float64{}
	for _, a := range log {
		if a.Action == "media.get" {
			f, _ := a.Detail["fetches"].(float64)
			got[a.Object+" "+a.Purpose] += f
		}
	}
	want := map[string]float64{o.site + "/room1 апелляция 9": 2, o.site + "/ws1-cam review 3": 1, o.site + "/ws1-screen check": 1}
	if !maps.Equal(got, want) {
		t.Errorf("media.get fetches by stream and purpose: %v, want %v", got, want)
	}
}
