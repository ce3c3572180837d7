package archiver_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/seal"
	"github.com/nokstream/nokstream/internal/obs"
	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/export"
	"github.com/nokstream/nokstream/registry/store"
	"github.com/nokstream/nokstream/registry/store/storetest"
)

// login returns a session token of a new user with role at org.
func login(t *testing.T, e *env, base, name, role, org string) string {
	t.Helper()
	ctx := t.Context()
	pw, err := e.st.AddUser(ctx, name, role, org)
	if err != nil {
		t.Fatal(err)
	}
	post := func(path, token string, body any) map[string]any {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %d %v", path, resp.StatusCode, out)
		}
		return out
	}
	tok := post("/api/v1/auth/login", "", map[string]string{"login": name, "password": pw})["token"].(string)
	newPW := "a new and long password for " + name
	post("/api/v1/auth/password", tok, map[string]string{"old_password": pw, "new_password": newPW})
	tok = post("/api/v1/auth/login", "", map[string]string{"login": name, "password": newPW})["token"].(string)
	post("/api/v1/auth/privacy-policy", tok, map[string]string{"version": api.PrivacyPolicyVersion})
	return tok
}

// TestEvidenceAPI exports a bundle over HTTP: NARK and the exam's council
// may, with a purpose, which is audited; another council gets 404, a
// center 403, no purpose 400. The public key is served without a session,
// and the bundle verifies with it.
func TestEvidenceAPI(t *testing.T) {
	t.Parallel()
	_, e, _, _ := exportedBundle(t)
	srv, err := api.New(func() api.Config {
		c := api.DefaultConfig()
		c.SigningKey = bytes.Repeat([]byte("k"), 32)
		return c
	}(), api.Deps{Store: e.st, Blob: e.blob, Log: testLog(t), Registry: prometheus.NewRegistry(), Health: obs.NewHealth(),
		Now: e.clock.Now, SealKey: e.key})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	storetest.Org(t, e.st, "spk2", "", "")

	resp, err := http.Get(hs.URL + "/api/v1/keys/seal?format=pem")
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	pub, err := seal.ParsePublicKey(pemBytes)
	if err != nil || !pub.Equal(e.key.Public().(ed25519.PublicKey)) {
		t.Fatalf("GET /api/v1/keys/seal: %d %v", resp.StatusCode, err)
	}

	get := func(token, query string, header ...string) *http.Response {
		req, _ := http.NewRequest("GET", hs.URL+"/api/v1/exams/e1/candidates/c1/evidence"+query, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	nark := login(t, e, hs.URL, "nark1", store.RoleNARK, "")
	council := login(t, e, hs.URL, "spk1-user", store.RoleCouncil, "spk1")
	other := login(t, e, hs.URL, "spk2-user", store.RoleCouncil, "spk2")
	center := login(t, e, hs.URL, "cok1-user", store.RoleCenter, "cok1")
	for _, tt := range []struct {
		name   string
		resp   *http.Response
		status int
	}{
		{"another council", get(other, "?purpose=x"), http.StatusNotFound},
		{"the center", get(center, "?purpose=x"), http.StatusForbidden},
		{"no purpose", get(council, ""), http.StatusBadRequest},
	} {
		if tt.resp.StatusCode != tt.status {
			b, _ := io.ReadAll(tt.resp.Body)
			t.Errorf("%s: %d %s, want %d", tt.name, tt.resp.StatusCode, b, tt.status)
		}
	}
	for _, tt := range []struct {
		who   string
		token string
		resp  *http.Response
	}{
		{"council", council, get(council, "?purpose="+strings.ReplaceAll("appeal 7", " ", "+"))},
		{"nark", nark, get(nark, "", "X-Purpose", "court request 3")},
	} {
		if tt.resp.StatusCode != http.StatusOK || tt.resp.Header.Get("Content-Type") != "application/x-tar" {
			t.Fatalf("%s: %d %s", tt.who, tt.resp.StatusCode, tt.resp.Header.Get("Content-Type"))
		}
		rep, err := bundle.Verify(tt.resp.Body, pub)
		if err != nil || !rep.OK() {
			t.Fatalf("%s: bundle from the API: %v %v", tt.who, err, rep.Problems)
		}
	}
	entries, err := e.st.ObjectAudit(t.Context(), []string{export.AuditObject("e1", "c1")}, e.clock.Now().AddDate(-1, 0, 0), 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range entries {
		got = append(got, a.ActorLogin+": "+a.Purpose)
	}
	want := []string{"council-user: апелляция № 12 / appeal no. 12", "spk1-user: appeal 7", "nark1: court request 3"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit of exports:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
