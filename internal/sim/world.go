// Package sim simulates an exam site for `nokstream sim`: it stands up a
// demo world through the CLI and the registry's public API (a council, a
// center, a site with room cameras and workstations, an exam in progress
// with admitted candidates, and a user of every role), and publishes the
// site's streams as the real ones would: the room cameras over RTSP, each
// candidate's webcam and screen over WHIP with the candidate's exam token.
// It stages what a reviewer must see (a covered webcam, a frozen screen, a
// room camera that drops) on a schedule.
//
// ffmpeg only encodes: it writes to pipes and sockets private to this
// process, and the publishing (with the secrets) is done here, so that no
// secret is on a child's command line or in its environment.
package sim

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// The demo world's names. They are fixed, so that a restart finds what an
// earlier run made.
const (
	DemoCouncil       = "demo-council"
	DemoCenter        = "demo-center"
	DemoSite          = "site1"
	DemoQualification = "40.00800.01"
)

// CLI runs a nokstream subcommand to completion and returns its standard
// output; an error carries what it said on standard error.
type CLI func(ctx context.Context, args ...string) (string, error)

// WorldConfig says where the demo world lives.
type WorldConfig struct {
	// Registry is the base URL of the registry's API, e.g.
	// http://127.0.0.1:8080.
	Registry string
	// RTSPHost is host:port of ingest's RTSP server, for the cameras'
	// publish URLs.
	RTSPHost string
	// Credentials is the file (mode 0600) that keeps the world's secrets
	// between runs.
	Credentials string
	// ExamLength is how long a new exam lasts (3 h); ExamLead how long
	// before now it starts (5 min).
	ExamLength, ExamLead time.Duration
}

// Role is a staff user of the demo world.
type Role struct {
	Role, Login, Org string
	Password         string
	// Cabinet is the page the role works in, under /ui/, and what it does
	// there.
	Cabinet, Does string
}

// Candidate is a candidate of the demo exam at a workstation.
type Candidate struct {
	ID, Name       string
	Webcam, Screen string // devices of the site
	// Password is the exam password the site issued; Token the exam token
	// it logged in to (bearer of its WHIP publishing).
	Password, Token string
	// WHIP maps webcam and screen to their endpoint paths.
	WHIP map[string]string
}

// RoomCamera is a room camera of the demo site with its publish URL
// (which holds its secret).
type RoomCamera struct {
	Device, URL string
}

// String hides the publish secret.
func (r RoomCamera) String() string { return DemoSite + "/" + r.Device }

// World is the demo world, as Setup left it.
type World struct {
	Exam             string
	Start, End       time.Time
	ExamCreated      bool
	Roles            []Role
	Candidates       []Candidate
	Rooms            []RoomCamera
	Council, Center  string
	Site             string
	Qualification    string
	ExamPasswordsNew int // exam passwords issued by this run
}

// demoUsers are the staff of the demo world, one of every role.
var demoUsers = []Role{
	{Role: "nark", Login: "nark", Cabinet: "home.html", Does: "every exam, read only: results, recordings, verification"},
	{Role: "council", Login: "council", Org: DemoCouncil, Cabinet: "appeals.html", Does: "appeals desk: deadlines, appeals, evidence bundles"},
	{Role: "center", Login: "center", Org: DemoCenter, Cabinet: "home.html", Does: "the center's exams and candidates"},
	{Role: "site", Login: "site", Org: DemoSite, Cabinet: "site.html", Does: "site console: admission, exam passwords, live health of every source"},
	{Role: "expert", Login: "expert", Org: DemoCenter, Cabinet: "home.html", Does: "the exams appointed to: each candidate's review page"},
}

type demoCandidate struct {
	id, last, first, middle, snils, document string
	workstation                              string
}

var demoCandidates = []demoCandidate{
	{id: "demo-cand-1", last: "Кузнецов", first: "Пётр", middle: "Сергеевич", snils: "112-233-445 95",
		document: "паспорт 4510 123456", workstation: "ws1"},
	{id: "demo-cand-2", last: "Смирнова", first: "Ольга", middle: "Викторовна", snils: "123-456-789 64",
		document: "паспорт 4511 654321", workstation: "ws2"},
}

// roomDevices are the room cameras of the demo site.
var roomDevices = []string{"cam1", "cam2"}

// Setup stands up the demo world, or finds it: organisations, devices and
// users with the CLI (the API has no route for them); the exam, its
// candidates and expert with the API, as the center and the site would. A
// user whose password the credentials file does not know is reset; an
// exam whose window contains now is reused, else a new one starts; room
// cameras get new publish secrets on every run.
func Setup(ctx context.Context, cfg WorldConfig, cli CLI, log *slog.Logger, now func() time.Time) (*World, error) {
	creds, err := LoadCredentials(cfg.Credentials)
	if err != nil {
		return nil, err
	}
	save := func() error { return creds.Save(cfg.Credentials) }
	api := &apiClient{base: strings.TrimRight(cfg.Registry, "/"), http: &http.Client{Timeout: 30 * time.Second}, log: log}
	if err := api.waitReady(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	w := &World{Council: DemoCouncil, Center: DemoCenter, Site: DemoSite, Qualification: DemoQualification}

	// Organisations: `org add` and `qualification add` update what
	// exists, so they run on every start.
	steps := [][]string{
		{"org", "add", "council", DemoCouncil, "--name", "Демонстрационный СПК",
			"--commission-member", "Иванов Иван Иванович", "--commission-member", "Петрова Анна Сергеевна",
			"--commission-address", "101000, Москва, ул. Мясницкая, д. 1", "--commission-email", "appeals@demo-council.example",
			"--commission-phone", "+7 495 000-00-00"},
		{"qualification", "add", DemoQualification, "--council", DemoCouncil, "--name", "Демонстрационная квалификация (3 уровень)",
			"--validity-years", "3", "--tool", "ОС-40.008-01 https://nok.example/os/40.00800.01"},
		{"org", "add", "center", DemoCenter, "--council", DemoCouncil, "--name", "Демонстрационный ЦОК",
			"--head", "Сидоров Сергей Сергеевич", "--website", "https://demo-center.example",
			"--legal-address", "101000, Москва, ул. Покровка, д. 2", "--email", "info@demo-center.example",
			"--phone", "+7 495 111-11-11", "--qualification", DemoQualification},
		{"org", "add", "site", DemoSite, "--center", DemoCenter, "--name", "Демонстрационная ЭП",
			"--address", "Москва, ул. Ильинка, д. 3"},
	}
	for _, s := range steps {
		if _, err := cli(ctx, s...); err != nil {
			return nil, fmt.Errorf("demo world: nokstream %s %s %s: %w", s[0], s[1], s[2], err)
		}
	}

	log.Debug("demo world: organisations set up")
	// Devices and users are independent of each other: they are set up
	// at once (each CLI step is a process that opens the database, each
	// login a password hash).
	var mu sync.Mutex // creds, w
	g, gctx := errgroup.WithContext(ctx)
	// Devices: the room cameras get a new secret on every run (it is
	// kept only in the credentials file); the workstations' webcams and
	// screens publish with the candidates' exam tokens, so their own
	// secrets are not needed.
	w.Rooms = make([]RoomCamera, len(roomDevices))
	for i, d := range roomDevices {
		g.Go(func() error {
			out, err := cli(gctx, "device", "add", DemoSite+"/"+d, "--kind", "room", "--host", cfg.RTSPHost, "--rotate")
			if err != nil {
				return fmt.Errorf("demo world: register room camera %s/%s: %w", DemoSite, d, err)
			}
			u, err := url.Parse(strings.TrimSpace(strings.SplitN(out, "\n", 2)[0]))
			if err != nil || u.User == nil {
				return fmt.Errorf("demo world: device add %s/%s printed no publish URL", DemoSite, d)
			}
			secret, _ := u.User.Password()
			mu.Lock()
			defer mu.Unlock()
			creds.Devices[DemoSite+"/"+d] = secret
			w.Rooms[i] = RoomCamera{Device: d, URL: u.String()}
			return nil
		})
	}
	for _, c := range demoCandidates {
		for _, kind := range []string{"webcam", "screen"} {
			dev := DemoSite + "/" + c.workstation + "-" + kind
			g.Go(func() error {
				if _, err := cli(gctx, "device", "add", dev, "--kind", kind, "--host", cfg.RTSPHost); err != nil && !strings.Contains(err.Error(), "exists") {
					return fmt.Errorf("demo world: register workstation device %s: %w", dev, err)
				}
				return nil
			})
		}
	}
	// Users, each with a password of its own (the temporary one changed).
	tokens := map[string]string{}
	w.Roles = make([]Role, len(demoUsers))
	for i, r := range demoUsers {
		mu.Lock()
		kept := creds.Users[r.Login]
		mu.Unlock()
		g.Go(func() error {
			token, pw, err := ensureUser(gctx, api, cli, kept, r, log)
			if err != nil {
				return fmt.Errorf("demo world: user %s: %w", r.Login, err)
			}
			mu.Lock()
			defer mu.Unlock()
			creds.Users[r.Login] = pw
			r.Password = pw
			tokens[r.Role] = token
			w.Roles[i] = r
			return save()
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := save(); err != nil {
		return nil, err
	}
	center, site := api.as(tokens["center"]), api.as(tokens["site"])
	log.Debug("demo world: devices and users set up")

	// The exam: the one of the demo site in progress, or a new one.
	if err := ensureExam(ctx, center, cfg, w, now()); err != nil {
		return nil, err
	}
	if err := center.do(ctx, http.MethodPost, "/api/v1/exams/"+w.Exam+"/experts", map[string]string{"login": "expert"}, nil); err != nil {
		return nil, fmt.Errorf("demo world: appoint the expert: %w", err)
	}
	log.Debug("demo world: exam set up", "exam", w.Exam)
	w.Candidates = make([]Candidate, len(demoCandidates))
	g, gctx = errgroup.WithContext(ctx)
	for i, dc := range demoCandidates {
		key := w.Exam + "/" + dc.id
		kept := creds.ExamPasswords[key]
		g.Go(func() error {
			c, err := ensureCandidate(gctx, api, center, site, kept, w.Exam, dc, log)
			if err != nil {
				return fmt.Errorf("demo world: candidate %s: %w", dc.id, err)
			}
			mu.Lock()
			defer mu.Unlock()
			if c.Password != kept {
				creds.ExamPasswords[key] = c.Password
				w.ExamPasswordsNew++
			}
			w.Candidates[i] = c
			return save()
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Exam passwords of earlier exams are of no use.
	for k := range creds.ExamPasswords {
		if !strings.HasPrefix(k, w.Exam+"/") {
			delete(creds.ExamPasswords, k)
		}
	}
	if err := save(); err != nil {
		return nil, err
	}
	return w, nil
}

// ensureUser returns a session token and the password of user r: the
// password kept if it still works, else a new user (or a reset
// one) whose temporary password is changed at once.
func ensureUser(ctx context.Context, api *apiClient, cli CLI, kept string, r Role, log *slog.Logger) (string, string, error) {
	if pw := kept; pw != "" {
		s, err := api.login(ctx, r.Login, pw)
		if err == nil && !s.MustChangePassword {
			return s.Token, pw, api.acceptPolicy(ctx, s.Token)
		}
		if err != nil && statusOf(err) != http.StatusUnauthorized {
			return "", "", err
		}
		log.Info("demo user's kept password no longer works; resetting it", "login", r.Login)
	}
	args := []string{"user", "add", "--role", r.Role}
	if r.Org != "" {
		args = append(args, "--org", r.Org)
	}
	temp, err := cli(ctx, append(args, r.Login)...)
	if err != nil {
		if !strings.Contains(err.Error(), "exists") {
			return "", "", err
		}
		if temp, err = cli(ctx, "user", "reset", r.Login); err != nil {
			return "", "", err
		}
	}
	temp = strings.TrimSpace(temp)
	s, err := api.login(ctx, r.Login, temp)
	if err != nil {
		return "", "", fmt.Errorf("first login: %w", err)
	}
	pw := newPassword()
	s, err = api.changePassword(ctx, s.Token, temp, pw)
	if err != nil {
		return "", "", fmt.Errorf("change the temporary password: %w", err)
	}
	return s.Token, pw, api.acceptPolicy(ctx, s.Token)
}

type examJSON struct {
	ID            string    `json:"id"`
	Site          string    `json:"site"`
	Qualification string    `json:"qualification"`
	StartsAt      time.Time `json:"starts_at"`
	EndsAt        time.Time `json:"ends_at"`
}

// ChooseExam returns the demo exam to use at now among the center's exams:
// the one of the demo site whose window contains now (the latest ending,
// if several), or, with ok false, the start of a new one: lead before now,
// but not before the last demo exam ended (a workstation serves one exam
// at a time).
func ChooseExam(exams []examJSON, now time.Time, lead time.Duration) (found examJSON, start time.Time, ok bool) {
	start = now.Add(-lead)
	sort.Slice(exams, func(i, j int) bool { return exams[i].EndsAt.Before(exams[j].EndsAt) })
	for _, e := range exams {
		if e.Site != DemoSite {
			continue
		}
		if !now.Before(e.StartsAt) && now.Before(e.EndsAt) {
			found, ok = e, true
		}
		if e.EndsAt.After(start) && !e.StartsAt.After(now) {
			start = e.EndsAt
		}
	}
	return found, start, ok
}

func ensureExam(ctx context.Context, center *apiClient, cfg WorldConfig, w *World, now time.Time) error {
	var exams []examJSON
	q := url.Values{"from": {now.Add(-cfg.ExamLead - time.Minute).UTC().Format(time.RFC3339)}, "to": {now.Add(time.Second).UTC().Format(time.RFC3339)}}
	if err := center.do(ctx, http.MethodGet, "/api/v1/exams?"+q.Encode(), nil, &exams); err != nil {
		return fmt.Errorf("demo world: list the center's exams: %w", err)
	}
	if e, _, ok := ChooseExam(exams, now, cfg.ExamLead); ok {
		w.Exam, w.Start, w.End = e.ID, e.StartsAt, e.EndsAt
		return nil
	}
	_, start, _ := ChooseExam(exams, now, cfg.ExamLead)
	start = start.Truncate(time.Second)
	end := start.Add(cfg.ExamLength)
	theoryEnd := start.Add(cfg.ExamLength / 3).Truncate(time.Second)
	req := map[string]any{
		"id":            "demo-" + start.UTC().Format("20060102-150405"),
		"site":          DemoSite,
		"qualification": DemoQualification,
		"starts_at":     start.UTC(),
		"ends_at":       end.UTC(),
		"parts": []map[string]any{
			{"kind": "theory", "starts_at": start.UTC(), "ends_at": theoryEnd.UTC()},
			{"kind": "practical", "starts_at": theoryEnd.UTC(), "ends_at": end.UTC()},
		},
	}
	var e examJSON
	if err := center.do(ctx, http.MethodPost, "/api/v1/exams", req, &e); err != nil {
		return fmt.Errorf("demo world: create the exam: %w", err)
	}
	w.Exam, w.Start, w.End, w.ExamCreated = e.ID, e.StartsAt, e.EndsAt, true
	return nil
}

// confirmIdentity does the site's identity check of the candidate of the
// exam at path (…/exams/<exam>/candidates/<id>), which admission requires,
// unless it is done: against the candidate's passport scan, which the
// site uploads if there is none (a stand-in PDF: the demo has no papers).
func confirmIdentity(ctx context.Context, site *apiClient, path string, dc demoCandidate) error {
	var id struct {
		Documents []struct{ ID, Kind string }
		Check     *struct{ Confirmed bool }
	}
	if err := site.do(ctx, http.MethodGet, path+"/identity", nil, &id); err != nil {
		return err
	}
	if id.Check != nil && id.Check.Confirmed {
		return nil
	}
	doc := ""
	for _, d := range id.Documents {
		if d.Kind == "passport" {
			doc = d.ID
		}
	}
	if doc == "" {
		var up struct{ ID string }
		scan := []byte("%PDF-1.4\n% demo passport scan of " + dc.last + " " + dc.first + ", " + dc.document + "\n")
		if err := site.upload(ctx, path+"/identity/documents?filename=passport.pdf", "application/pdf", scan, &up); err != nil {
			return err
		}
		doc = up.ID
	}
	return site.do(ctx, http.MethodPut, path+"/identity", map[string]any{"confirmed": true, "document": doc}, nil)
}

// ensureCandidate registers a candidate (as the center), puts them in the
// exam at their workstation, confirms their identity and admits them (as
// the site) and logs them in
// with their exam password: the kept one if it still works, else a new one
// the site issues.
func ensureCandidate(ctx context.Context, api, center, site *apiClient, kept, exam string, dc demoCandidate, log *slog.Logger) (Candidate, error) {
	c := Candidate{ID: dc.id, Name: dc.last + " " + dc.first + " " + dc.middle, Webcam: dc.workstation + "-webcam", Screen: dc.workstation + "-screen"}
	err := center.do(ctx, http.MethodPost, "/api/v1/candidates", map[string]string{
		"id": dc.id, "last_name": dc.last, "first_name": dc.first, "middle_name": dc.middle,
		"snils": dc.snils, "document": dc.document, "email": dc.id + "@candidates.example",
	}, nil)
	if err != nil && statusOf(err) != http.StatusConflict {
		return c, fmt.Errorf("register: %w", err)
	}
	path := "/api/v1/exams/" + exam + "/candidates"
	if err := center.do(ctx, http.MethodPost, path, map[string]string{"candidate": dc.id, "webcam": c.Webcam, "screen": c.Screen}, nil); err != nil {
		return c, fmt.Errorf("put in the exam: %w", err)
	}
	path += "/" + dc.id
	if err := confirmIdentity(ctx, site, path, dc); err != nil {
		return c, fmt.Errorf("identity check: %w", err)
	}
	if err := site.do(ctx, http.MethodPut, path+"/admission", map[string]string{"status": "admitted"}, nil); err != nil {
		return c, fmt.Errorf("admit: %w", err)
	}
	var es struct {
		Token string            `json:"token"`
		WHIP  map[string]string `json:"whip"`
	}
	if pw := kept; pw != "" {
		err := api.do(ctx, http.MethodPost, "/api/v1/exam/login", map[string]string{"password": pw}, &es)
		if err == nil {
			c.Password, c.Token, c.WHIP = pw, es.Token, es.WHIP
			return c, consent(ctx, api, es.Token)
		}
		if statusOf(err) != http.StatusUnauthorized {
			return c, fmt.Errorf("exam login: %w", err)
		}
		log.Info("candidate's kept exam password no longer works; the site issues a new one", "candidate", dc.id)
	}
	var issued struct {
		Password string `json:"password"`
	}
	if err := site.do(ctx, http.MethodPost, path+"/password", nil, &issued); err != nil {
		return c, fmt.Errorf("issue the exam password: %w", err)
	}
	if err := api.do(ctx, http.MethodPost, "/api/v1/exam/login", map[string]string{"password": issued.Password}, &es); err != nil {
		return c, fmt.Errorf("exam login: %w", err)
	}
	c.Password, c.Token, c.WHIP = issued.Password, es.Token, es.WHIP
	return c, consent(ctx, api, es.Token)
}

// consent records the candidate's consent to the recording, as the exam
// page does before it publishes (the streams are refused without it). A
// registry without the route (404) needs none.
func consent(ctx context.Context, api *apiClient, token string) error {
	err := api.as(token).do(ctx, http.MethodPost, "/api/v1/exam/consent",
		map[string]string{"version": "nokstream-sim", "page": "nokstream sim --demo (a simulated candidate)"}, nil)
	if err != nil && statusOf(err) != http.StatusNotFound {
		return fmt.Errorf("consent to the recording: %w", err)
	}
	return nil
}
