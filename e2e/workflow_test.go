package e2e

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/obs"
	"github.com/nokstream/nokstream/internal/testenv"
	registryapi "github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/store"
	"github.com/nokstream/nokstream/registry/store/storetest"
)

// workflowClock is the registry's clock in TestWorkflow: the procedure's
// deadlines are days long, so the test moves time instead of waiting.
type workflowClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *workflowClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *workflowClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// upload POSTs body as contentType to path and returns the answer's id.
func (a *api) upload(path, contentType, body string, want int) string {
	a.t.Helper()
	return a.send("POST", path, contentType, body, want)
}

// send sends body as contentType to path and returns the answer's (first) id.
func (a *api) send(method, path, contentType, body string, want int) string {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, strings.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		a.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	i := bytes.Index(b, []byte(`"id":"`))
	if i < 0 {
		a.t.Fatalf("%s %s: no id in %s", method, path, b)
	}
	id, _, _ := strings.Cut(string(b[i+6:]), `"`)
	return id
}

// TestWorkflow walks an exam through the register's procedure (issue 13)
// against the registry's API on a real PostgreSQL: the center registers a
// candidate and forms the exam, the site checks identity (a scan it
// uploads, a webcam photo) and admits, the commission protocol is approved
// by the expert, the center fills and submits the card, the council
// approves with its own protocol's scan, NARK verifies and registers, and
// the public check finds the registered certificate, with the holder's
// name and no other personal data.
func TestWorkflow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	if err := store.Migrate(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	blobs, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 2, 7, 0, 0, 0, time.UTC) // 10:00 MSK
	end := start.Add(3 * time.Hour)
	clock := &workflowClock{t: start.Add(-24 * time.Hour)}
	cfg := registryapi.DefaultConfig()
	cfg.SigningKey = registryapi.Secret("workflow-e2e-signing-key-0123456789")
	cfg.TokenTTL = 30 * 24 * time.Hour // the clock moves days on
	srv, err := registryapi.New(cfg, registryapi.Deps{Store: st, Blob: blobs, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: prometheus.NewRegistry(), Health: obs.NewHealth(), Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	base := hs.URL

	storetest.Org(t, st, "council1", "center1", "site1")
	if _, err := st.SaveQualification(ctx, store.Qualification{Code: "40.00800.01", CouncilID: "council1", Name: "Сварщик", ValidityYears: 3,
		Tools: []store.AssessmentTool{{Reference: "ОС-40.008-01", Link: "https://nok.example/os/1"}}}); err != nil {
		t.Fatal(err)
	}
	c, err := st.Center(ctx, "center1")
	if err != nil {
		t.Fatal(err)
	}
	c.Qualifications = []string{"40.00800.01"}
	if _, err := st.SaveCenter(ctx, c); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct{ name, kind string }{{"ws1-cam", store.KindWebcam}, {"ws1-screen", store.KindScreen}} {
		if _, err := st.AddDevice(ctx, "site1", d.name, d.kind); err != nil {
			t.Fatal(err)
		}
	}
	users := map[string]*api{}
	for _, u := range []struct{ login, role, org string }{
		{"center1", store.RoleCenter, "center1"}, {"site1", store.RoleSite, "site1"}, {"council1", store.RoleCouncil, "council1"},
		{"expert1", store.RoleExpert, "council1"}, {"nark", store.RoleNARK, ""},
	} {
		pw, err := st.AddUser(ctx, u.login, u.role, u.org)
		if err != nil {
			t.Fatal(err)
		}
		users[u.login] = login(t, base, u.login, pw)
	}
	center, site, council, expert, nark := users["center1"], users["site1"], users["council1"], users["expert1"], users["nark"]

	// The center registers the candidate and forms the exam.
	var cand struct{ ID string }
	center.do("POST", "/api/v1/candidates", map[string]string{"last_name": "Орлова", "first_name": "Анна", "middle_name": "Сергеевна",
		"snils": "112-233-445 95", "email": "orlova@mail.example"}, http.StatusCreated, &cand)
	var exam struct{ ID string }
	center.do("POST", "/api/v1/exams", map[string]any{"site": "site1", "qualification": "40.00800.01", "starts_at": start, "ends_at": end},
		http.StatusCreated, &exam)
	ep := "/api/v1/exams/" + exam.ID
	ec := ep + "/candidates/" + cand.ID
	center.do("POST", ep+"/candidates", map[string]string{"candidate": cand.ID, "webcam": "ws1-cam", "screen": "ws1-screen"}, http.StatusCreated, nil)
	center.do("POST", ep+"/experts", map[string]string{"login": "expert1"}, http.StatusOK, nil)

	// Admission: the site sees no identity scan, uploads one, takes a
	// webcam photo, confirms the identity against the scan, and admits.
	clock.Set(start.Add(-15 * time.Minute))
	var idv struct {
		Documents []struct{ ID string }
		Check     *struct {
			Confirmed bool
			Document  string
			CheckedBy string `json:"checked_by"`
			CheckedAt time.Time
		}
	}
	site.do("GET", ec+"/identity", nil, http.StatusOK, &idv)
	if len(idv.Documents) != 0 || idv.Check != nil {
		t.Fatalf("identity before the check %+v", idv)
	}
	passport := site.upload(ec+"/identity/documents?filename=passport.pdf", "application/pdf", "%PDF-1.4 паспорт Орловой", http.StatusCreated)
	photo := site.upload(ec+"/identity/photo?filename=webcam.jpg", "image/jpeg", "\xff\xd8\xff webcam at admission", http.StatusCreated)
	site.do("PUT", ec+"/identity", map[string]any{"confirmed": true, "document": passport, "photo": photo}, http.StatusOK, &idv)
	if idv.Check == nil || !idv.Check.Confirmed || idv.Check.Document != passport || idv.Check.CheckedBy != "site1" {
		t.Fatalf("identity check %+v", idv.Check)
	}
	site.do("PUT", ec+"/admission", map[string]string{"status": "admitted"}, http.StatusOK, nil)

	// After the exam: the commission protocol, approved by the expert.
	clock.Set(end.Add(time.Hour))
	site.send("PUT", ep+"/protocol?number=17&signed_on=2026-03-02&filename=protocol.pdf", "application/pdf", "%PDF-1.4 протокол", http.StatusOK)
	expert.do("POST", ep+"/protocol/approval", map[string]any{"approved": true}, http.StatusOK, nil)

	// The center's card, submitted.
	number := "40.00800.01.26.000001"
	var card struct{ State string }
	center.do("PUT", ec+"/result", map[string]string{"kind": "certificate", "certificate_number": number, "issued_on": "2026-03-02"},
		http.StatusCreated, &card)
	if card.State != store.CardDraft {
		t.Fatalf("new card %+v", card)
	}
	var pub struct {
		Certificates []struct{ Number, Holder, State string }
	}
	(&api{t: t, base: base}).do("GET", "/api/v1/register/certificates?number="+number, nil, http.StatusOK, &pub)
	if len(pub.Certificates) != 0 {
		t.Fatalf("a draft answers the public check: %+v", pub)
	}
	center.do("POST", ep+"/submission", nil, http.StatusOK, nil)

	// The council approves with its protocol's scan, three days later.
	clock.Set(end.Add(3 * 24 * time.Hour))
	scan := council.upload(ep+"/council-protocol?filename=spk.pdf", "application/pdf", "%PDF-1.4 протокол СПК № 5", http.StatusCreated)
	council.do("POST", ep+"/decision", map[string]any{"decision": "approved",
		"protocol": map[string]any{"number": "5", "date": "2026-03-05", "document": scan}}, http.StatusOK, nil)

	// NARK verifies within its 7 days and registers.
	clock.Set(end.Add(5 * 24 * time.Hour))
	var dl []struct{ Kind string }
	nark.do("GET", "/api/v1/deadlines", nil, http.StatusOK, &dl)
	if len(dl) != 1 || dl[0].Kind != store.DeadlineVerification {
		t.Errorf("deadlines before NARK's verification %+v", dl)
	}
	nark.do("POST", ep+"/verification", map[string]any{"verified": true}, http.StatusOK, nil)
	nark.do("POST", ep+"/registration", map[string]any{}, http.StatusOK, nil)

	// The public check finds the registered certificate by number and by
	// СНИЛС, with the holder's name and no other personal data.
	for _, q := range []string{"number=" + number, "snils=11223344595"} {
		req, _ := http.NewRequest("GET", base+"/api/v1/register/certificates?"+q, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"state":"registered"`) ||
			!strings.Contains(string(b), `"holder":"Орлова Анна Сергеевна"`) || !strings.Contains(string(b), `"number":"`+number+`"`) {
			t.Errorf("public check %s: %d %s", q, resp.StatusCode, b)
		}
		for _, leak := range []string{"112-233-445 95", "orlova@mail.example", "snils"} {
			if strings.Contains(string(b), leak) {
				t.Errorf("public check %s answers %q: %s", q, leak, b)
			}
		}
	}
	var hist []struct{ From, To string }
	council.do("GET", ec+"/result/history", nil, http.StatusOK, &hist)
	var path []string
	for _, h := range hist {
		path = append(path, h.From+">"+h.To)
	}
	if got := strings.Join(path, " "); got != ">draft draft>submitted submitted>approved approved>verified verified>registered" {
		t.Errorf("the card's history %s", got)
	}
	var decisions struct {
		Decisions []struct {
			Protocol struct{ Number, Document string }
		}
	}
	nark.do("GET", ep+"/decisions", nil, http.StatusOK, &decisions)
	if len(decisions.Decisions) != 1 || decisions.Decisions[0].Protocol.Document != scan {
		t.Errorf("the council's protocol on the decision %+v", decisions)
	}
	nark.do("GET", "/api/v1/deadlines", nil, http.StatusOK, &dl)
	if len(dl) != 0 {
		t.Errorf("deadlines after the registration %+v", dl)
	}
}
