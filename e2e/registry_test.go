package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/testenv"
)

// TestExamEvidence is the registry issue's end-to-end test, on `nokstream
// all` as its users drive it: the organisation is set up with the CLI; the
// center registers two candidates and forms an exam at its site; the site
// admits one and refuses the other with a reason, and issues the admitted
// one's exam password; the candidate logs in with it and publishes webcam
// and screen over WHIP with the exam token while the room camera records
// over RTSP; the expert lists the candidate's evidence (three streams on
// the exam's clock), marks a violation and confirms the procedure; after
// the exam the council records a certificate.
func TestExamEvidence(t *testing.T) {
	t.Parallel()
	const seconds = 8
	in := startAll(t, 2*time.Second, "room1")
	base := fmt.Sprintf("http://127.0.0.1:%d", in.ports.http)

	// The organisation, with every detail a result needs.
	cli(t, in.env, "org", "add", "council", "council1", "--commission-member", "Иванов И. И.",
		"--commission-address", "101000, Москва, ул. Мясницкая, 1", "--commission-email", "appeals@council1.example",
		"--commission-phone", "+7 495 000-00-00")
	cli(t, in.env, "qualification", "add", "40.00800.01", "--council", "council1", "--name", "Сварщик (3 уровень)",
		"--validity-years", "3", "--tool", "ОС-40.008-01 https://nok.example/os/1")
	cli(t, in.env, "org", "add", "center", "center1", "--head", "Сидоров С. С.", "--website", "https://center1.example",
		"--legal-address", "101000, Москва, ул. Покровка, 2", "--email", "info@center1.example", "--phone", "+7 495 111-11-11",
		"--qualification", "40.00800.01")
	for _, d := range []struct{ name, kind string }{{"ws1-cam", "webcam"}, {"ws1-screen", "screen"}, {"ws2-cam", "webcam"}, {"ws2-screen", "screen"}} {
		cli(t, in.env, "device", "add", "site1/"+d.name, "--kind", d.kind, "--host", in.rtspHost())
	}
	users := map[string]*api{}
	for _, u := range []struct{ login, role, org string }{
		{"center1", "center", "center1"}, {"site1", "site", "site1"}, {"council1", "council", "council1"}, {"expert1", "expert", "council1"},
	} {
		args := []string{"user", "add", "--role", u.role, u.login}
		if u.org != "" {
			args = append(args, "--org", u.org)
		}
		users[u.login] = login(t, base, u.login, cli(t, in.env, args...))
	}
	center, site, council, expert := users["center1"], users["site1"], users["council1"], users["expert1"]

	// The center registers the candidates and forms the exam, which has
	// just begun.
	var a, b struct{ ID string }
	center.do("POST", "/api/v1/candidates", map[string]string{"last_name": "Орлова", "first_name": "Анна", "snils": "112-233-445 95"}, http.StatusCreated, &a)
	center.do("POST", "/api/v1/candidates", map[string]string{"last_name": "Зайцев", "first_name": "Борис", "document": "паспорт 4500 000002"}, http.StatusCreated, &b)
	start := time.Now().Add(-10 * time.Second).UTC().Truncate(time.Second)
	end := start.Add(80 * time.Second)
	var exam struct{ ID string }
	center.do("POST", "/api/v1/exams", map[string]any{"site": "site1", "qualification": "40.00800.01", "starts_at": start, "ends_at": end,
		"parts": []map[string]any{{"kind": "theory", "starts_at": start, "ends_at": end}}}, http.StatusCreated, &exam)
	ep := "/api/v1/exams/" + exam.ID
	center.do("POST", ep+"/candidates", map[string]string{"candidate": a.ID, "webcam": "ws1-cam", "screen": "ws1-screen"}, http.StatusCreated, nil)
	center.do("POST", ep+"/candidates", map[string]string{"candidate": b.ID, "webcam": "ws2-cam", "screen": "ws2-screen"}, http.StatusCreated, nil)
	center.do("POST", ep+"/experts", map[string]string{"login": "expert1"}, http.StatusOK, nil)

	// The site admits one and refuses the other, and gives the admitted
	// one the exam password.
	confirmIdentity(site, ep, a.ID)
	site.do("PUT", ep+"/candidates/"+a.ID+"/admission", map[string]string{"status": "admitted"}, http.StatusOK, nil)
	var refused struct {
		Admission     string
		RefusalReason string `json:"refusal_reason"`
	}
	site.do("PUT", ep+"/candidates/"+b.ID+"/admission", map[string]string{"status": "refused", "reason": "не предъявлен документ"}, http.StatusOK, &refused)
	if refused.Admission != "refused" || refused.RefusalReason != "не предъявлен документ" {
		t.Errorf("refusal %+v", refused)
	}
	site.do("POST", ep+"/candidates/"+b.ID+"/password", nil, http.StatusConflict, nil)
	var pw struct{ Password string }
	site.do("POST", ep+"/candidates/"+a.ID+"/password", nil, http.StatusOK, &pw)

	// The candidate logs in with it and publishes webcam and screen with
	// the exam token; the room camera records beside them.
	candidate := &api{t: t, base: base}
	var sess struct {
		Token string
		WHIP  map[string]string
	}
	candidate.do("POST", "/api/v1/exam/login", map[string]string{"password": pw.Password}, http.StatusOK, &sess)
	// The candidate consents to the recording, as the exam page does: the
	// streams are refused without it.
	(&api{t: t, base: base, token: sess.Token}).do("POST", "/api/v1/exam/consent",
		map[string]string{"version": "e2e-1", "page": "e2e/registry_test.go"}, http.StatusCreated, nil)
	camMedia := testenv.MakeWHIPMedia(t, seconds, "h264", true)
	screenMedia := testenv.MakeWHIPMedia(t, seconds, "vp9", false)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, p := range []struct {
		path string
		m    testenv.WHIPMedia
	}{{sess.WHIP["webcam"], camMedia}, {sess.WHIP["screen"], screenMedia}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), (seconds+60)*time.Second)
			defer cancel()
			c := testenv.NewWHIPClient(t, p.m)
			status, body, err := c.Publish(ctx, base+p.path, sess.Token)
			if err != nil || status != http.StatusCreated {
				errs[i] = fmt.Errorf("WHIP POST %s with the exam token: %d %v %s", p.path, status, err, body)
				return
			}
			if err := c.Stream(ctx); err != nil {
				errs[i] = fmt.Errorf("WHIP %s: %w", p.path, err)
				return
			}
			if status, err := c.Delete(ctx); err != nil || status != http.StatusOK {
				errs[i] = fmt.Errorf("WHIP DELETE %s: %d %v", p.path, status, err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if stderr, err := publish(t, in.publish["room1"], seconds, "320x240", "aac"); err != nil {
			errs[2] = fmt.Errorf("room camera: %v\n%s", err, stderr)
		}
	}()
	// The exam token opens only the candidate's own devices.
	status, _, _, err := testenv.WHIPPost(context.Background(), base+"/whip/site1/ws2-cam", sess.Token, "application/sdp", "v=0\r\n")
	if err != nil || status != http.StatusUnauthorized {
		t.Errorf("exam token on another workstation: %d %v, want 401", status, err)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	// The expert lists the evidence: three streams, each with footage,
	// on the exam's clock.
	type stream struct {
		Stream, Source string
		Segments       int
		First, Last    *time.Time
		PlaylistURL    string `json:"playlist_url"`
	}
	var ev struct {
		From, To time.Time
		Streams  []stream
	}
	media := ep + "/candidates/" + a.ID + "/media"
	testenv.WaitFor(t, 20*time.Second, "footage of the three streams indexed", func() bool {
		expert.do("GET", media, nil, http.StatusOK, &ev)
		n := 0
		for _, s := range ev.Streams {
			if s.Segments > 0 && s.Last != nil && s.Last.Sub(*s.First) >= (seconds-3)*time.Second {
				n++
			}
		}
		return n == 3
	})
	if !ev.From.Equal(start) || !ev.To.Equal(end) {
		t.Errorf("evidence on %v–%v, want the exam window %v–%v", ev.From, ev.To, start, end)
	}
	var got []string
	var firsts []time.Time
	for _, s := range ev.Streams {
		got = append(got, s.Source+":"+s.Stream)
		firsts = append(firsts, *s.First)
		if s.First.Before(start) || s.Last.After(end) {
			t.Errorf("%s: footage %v–%v outside the window", s.Stream, s.First, s.Last)
		}
		url := s.PlaylistURL
		if strings.HasPrefix(url, "/") {
			url = base + url
		}
		if d := testenv.Plays(t, url); d < seconds-3 {
			t.Errorf("%s: the playlist, read whole, plays %.1f s, want about %d", s.Stream, d, seconds)
		}
	}
	sort.Strings(got)
	if strings.Join(got, " ") != "room:site1/room1 screen:site1/ws1-screen webcam:site1/ws1-cam" {
		t.Errorf("evidence streams %v", got)
	}
	sort.Slice(firsts, func(i, j int) bool { return firsts[i].Before(firsts[j]) })
	if spread := firsts[len(firsts)-1].Sub(firsts[0]); spread > 5*time.Second {
		t.Errorf("the three streams start %v apart on the common clock, want together", spread)
	}

	// The expert marks a violation and confirms the procedure.
	at := firsts[0].Add(3 * time.Second)
	expert.do("POST", ep+"/candidates/"+a.ID+"/marks", map[string]any{"at": at, "kind": "violation",
		"text": "кандидат отвернулся от камеры", "stream": "site1/ws1-cam"}, http.StatusCreated, nil)
	expert.do("PUT", ep+"/candidates/"+a.ID+"/verdict", map[string]any{"procedure_confirmed": true}, http.StatusOK, nil)
	var review struct {
		Marks    []struct{ Kind, Text string }
		Verdicts []struct {
			Expert             string
			ProcedureConfirmed bool `json:"procedure_confirmed"`
		}
	}
	council.do("GET", ep+"/candidates/"+a.ID+"/review", nil, http.StatusOK, &review)
	if len(review.Marks) != 1 || review.Marks[0].Kind != "violation" || len(review.Verdicts) != 1 || !review.Verdicts[0].ProcedureConfirmed {
		t.Errorf("review %+v", review)
	}

	// After the exam, the center fills the candidate's certificate card (a
	// draft: the council's approval puts it in the register, e2e/workflow_test.go).
	testenv.WaitFor(t, time.Until(end)+10*time.Second, "the end of the exam", func() bool { return time.Now().After(end) })
	var cert struct {
		Kind, CertificateNumber string
		ValidUntil              string `json:"valid_until"`
		IssuedOn                string `json:"issued_on"`
	}
	today := time.Now().UTC().Format(time.DateOnly)
	center.do("PUT", ep+"/candidates/"+a.ID+"/result", map[string]string{"kind": "certificate",
		"certificate_number": "40.00800.01.000001", "issued_on": today}, http.StatusCreated, &cert)
	issued, _ := time.Parse(time.DateOnly, today)
	if cert.Kind != "certificate" || cert.ValidUntil != issued.AddDate(3, 0, 0).Format(time.DateOnly) {
		t.Errorf("certificate %+v, want valid 3 years from %s", cert, today)
	}
	// The candidate's token is over with the exam.
	candidate.token = sess.Token
	candidate.do("GET", "/api/v1/exam/session", nil, http.StatusUnauthorized, nil)
}
