package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/obs"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
)

// newDomainEnv is newEnv with a bus behind the outbox (nil for none) and
// the relay running; cfg adjusts the configuration.
func newDomainEnv(t *testing.T, b bus.Publisher, cfg func(*api.Config)) *env {
	t.Helper()
	return newDomainEnvWith(t, b, cfg, nil)
}

// newDomainEnvWith is newDomainEnv with the API's store wrapped by wrap
// (nil: not wrapped), so that a test can watch what the API asks of it.
func newDomainEnvWith(t *testing.T, b bus.Publisher, cfg func(*api.Config), wrap func(*store.Store) api.Store) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dsn := testenv.Postgres(t)
	if err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = db.Close(context.Background()) })
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
	e := &env{t: t, dsn: dsn, store: st, blobs: &memBlobs{m: map[string][]byte{}}, clock: &clock{t: t0.Add(10 * time.Minute)}}
	databases.Store(e, db)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.cfg = api.DefaultConfig()
	e.cfg.SigningKey = api.Secret("0123456789abcdef0123456789abcdef")
	e.cfg.OutboxInterval = 50 * time.Millisecond
	if cfg != nil {
		cfg(&e.cfg)
	}
	_, sealKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var apiStore api.Store = st
	if wrap != nil {
		apiStore = wrap(st)
	}
	e.reg = prometheus.NewRegistry()
	e.srv, err = api.New(e.cfg, api.Deps{Store: apiStore, Blob: e.blobs, Log: log, Registry: e.reg,
		Health: obs.NewHealth(), Now: e.clock.Now, Bus: b, SealKey: sealKey})
	if err != nil {
		t.Fatalf("new api: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	hs := httptest.NewServer(e.srv.Handler())
	t.Cleanup(hs.Close)
	e.url = hs.URL
	e.index = index.Handler(st, log)
	return e
}

// databases holds a direct connection to the database of each domain env.
var databases sync.Map // *env → *pgx.Conn

// markPasswordChanged clears the must-change flag of user id, as a password
// change does, and records the user's acceptance of the privacy policy,
// with the test's clock.
func markPasswordChanged(ctx context.Context, e *env, id int64) error {
	db, ok := databases.Load(e)
	if !ok {
		return fmt.Errorf("no database connection for this env")
	}
	// The user has accepted the privacy policy too (TestPrivacyPolicy is
	// the test of the refusal before).
	_, err := db.(*pgx.Conn).Exec(ctx, `UPDATE users SET must_change_password = false, password_changed_at = $2,
		policy_version = $3, policy_accepted_at = $2 WHERE id = $1`, id, e.clock.Now(), api.PrivacyPolicyVersion)
	return err
}

// The exam window of the test world: t0 to t0+4h.
var (
	examStart = t0
	examEnd   = t0.Add(4 * time.Hour)
)

// org is one organisation chain of the world with its people and things.
type org struct {
	council, center, site, qual string
	exam                        string
	cand, cand2                 string // in the exam: cand admitted, cand2 pending
	loner                       string // a candidate of the center in no exam
	appeal                      string // an open appeal of cand2
	cert                        string // cand's certificate
	document                    string // a document of cand
	media                       string // key of a room segment in the window
	tokens                      map[string]string
	users                       map[string]store.User
}

// world is two organisation chains, 1 and 2, each with a council, center,
// site, qualification, devices, candidates, an exam with footage, a result,
// an appeal, a document, and a user of each role (the expert appointed to
// the chain's exam), plus a NARK operator.
type world struct {
	orgs      [3]*org // 1 and 2
	nark      string  // token
	candidate string  // exam token of orgs[1].cand
	examPW    string  // its exam password
}

// newWorld builds the world in e's store and logs everyone in. e's clock
// is set inside the exam window.
func newWorld(t *testing.T, e *env) *world {
	t.Helper()
	ctx := context.Background()
	s := e.store
	w := &world{}
	after := examEnd.Add(time.Hour)
	for i := 1; i <= 2; i++ {
		o := &org{council: fmt.Sprintf("council%d", i), center: fmt.Sprintf("center%d", i), site: fmt.Sprintf("site%d", i),
			qual: fmt.Sprintf("q%d", i), exam: fmt.Sprintf("exam%d", i), cand: fmt.Sprintf("cand%da", i),
			cand2: fmt.Sprintf("cand%db", i), loner: fmt.Sprintf("cand%dc", i), cert: fmt.Sprintf("CERT-%d", i),
			tokens: map[string]string{}, users: map[string]store.User{}}
		w.orgs[i] = o
		must(t, saveOrg(ctx, s, o))
		for _, d := range []struct{ name, kind string }{
			{"room1", store.KindRoom}, {"ws1-cam", store.KindWebcam}, {"ws1-screen", store.KindScreen},
			{"ws2-cam", store.KindWebcam}, {"ws2-screen", store.KindScreen},
		} {
			_, err := s.AddDevice(ctx, o.site, d.name, d.kind)
			must(t, err)
		}
		for j, id := range []string{o.cand, o.cand2, o.loner} {
			_, err := s.SaveCandidate(ctx, store.Candidate{ID: id, CenterID: o.center, LastName: "Фамилия", FirstName: fmt.Sprintf("Имя%d", j),
				Document: fmt.Sprintf("паспорт %d%d", i, j)})
			must(t, err)
		}
		must(t, s.CreateExam(ctx, &store.Exam{ID: o.exam, CenterID: o.center, SiteID: o.site, Qualification: o.qual, Start: examStart, End: examEnd}))
		must(t, s.AddExamCandidate(ctx, o.exam, o.cand, "ws1-cam", "ws1-screen", examStart.Add(-time.Hour)))
		must(t, s.AddExamCandidate(ctx, o.exam, o.cand2, "ws2-cam", "ws2-screen", examStart.Add(-time.Hour)))
		must(t, s.SetAdmission(ctx, o.exam, o.cand, true, "", 0, examStart.Add(-time.Hour)))
		must(t, s.SetAdmission(ctx, o.exam, o.cand2, true, "", 0, examStart.Add(-time.Hour)))
		for _, role := range []string{store.RoleCouncil, store.RoleCenter, store.RoleSite, store.RoleExpert} {
			// The expert is registered with the council.
			orgID := map[string]string{store.RoleCouncil: o.council, store.RoleCenter: o.center, store.RoleSite: o.site, store.RoleExpert: o.council}[role]
			login := fmt.Sprintf("%s%d", role, i)
			o.tokens[role], o.users[role] = userToken(t, e, login, role, orgID)
		}
		_, err := s.AppointExpert(ctx, o.exam, o.users[store.RoleExpert].Login, 0)
		must(t, err)
		must(t, s.RecordResult(ctx, &store.Result{ExamID: o.exam, CandidateID: o.cand, Kind: store.ResultCertificate,
			CertificateNumber: o.cert, IssuedOn: after}, 0, after))
		a := &store.Appeal{ExamID: o.exam, CandidateID: o.cand2, Reason: "не допущен"}
		must(t, s.OpenAppeal(ctx, a, 0, after))
		o.appeal = a.ID
		doc := &store.Document{CandidateID: o.cand, Kind: "passport", Filename: "p.pdf", ContentType: "application/pdf"}
		body := []byte("%PDF-1.4 scan of " + o.cand)
		sum := sha256.Sum256(body)
		doc.ID, doc.Bytes, doc.SHA256 = store.NewID(), int64(len(body)), hex.EncodeToString(sum[:])
		doc.ObjectKey = store.DocumentKey("candidates/"+o.cand, doc.ID)
		must(t, e.blobs.Put(ctx, doc.ObjectKey, bytes.NewReader(body), int64(len(body))))
		must(t, s.AddDocument(ctx, doc))
		o.document = doc.ID
		pdoc := &store.Document{ExamID: o.exam, Kind: "protocol", Filename: "protocol.pdf", ContentType: "application/pdf",
			ID: store.NewID(), Bytes: doc.Bytes, SHA256: doc.SHA256}
		pdoc.ObjectKey = store.DocumentKey("exams/"+o.exam, pdoc.ID)
		must(t, e.blobs.Put(ctx, pdoc.ObjectKey, bytes.NewReader(body), int64(len(body))))
		must(t, s.AddDocument(ctx, pdoc))
		must(t, s.SetProtocol(ctx, store.Protocol{ExamID: o.exam, Number: "П-1", SignedOn: examEnd, Document: *pdoc, UploadedAt: after}))
		for _, dev := range []string{"room1", "ws1-cam", "ws1-screen"} {
			ev := e.footage(o.site, dev, 0, examStart.Add(time.Hour), 6)
			if dev == "room1" {
				o.media = ev.ObjectKey
			}
		}
	}
	// NARK's password is really changed: the access matrix logs in with it.
	temp, err := s.AddUser(ctx, "nark", store.RoleNARK, "")
	must(t, err)
	nark, err := s.UserByLogin(ctx, "nark")
	must(t, err)
	must(t, s.ChangePassword(ctx, nark.ID, temp, "a long enough password"))
	must(t, s.AcceptPolicy(ctx, nark.ID, api.PrivacyPolicyVersion, e.clock.Now()))
	w.nark, _, err = s.CreateSession(ctx, nark.ID, e.clock.Now(), 1000*time.Hour)
	must(t, err)
	pw, err := s.IssueExamPassword(ctx, "exam1", "cand1a", examStart.Add(-time.Hour))
	must(t, err)
	w.examPW = pw
	e.clock.Set(examStart.Add(2 * time.Hour))
	tok, _, err := s.ExamLogin(ctx, pw, e.clock.Now())
	must(t, err)
	w.candidate = tok
	return w
}

// saveOrg stores the organisation chain of o with complete details.
func saveOrg(ctx context.Context, s *store.Store, o *org) error {
	if _, err := s.SaveCouncil(ctx, store.Council{ID: o.council, Name: "СПК " + o.council, Commission: store.Commission{
		Members: []string{"Иванов И. И."}, Address: "Москва", Email: "appeals@" + o.council + ".example", Phones: []string{"+7 495 000-00-00"}}}); err != nil {
		return err
	}
	if _, err := s.SaveQualification(ctx, store.Qualification{Code: o.qual, CouncilID: o.council, Name: "Квалификация " + o.qual,
		ValidityYears: 3, Tools: []store.AssessmentTool{{Reference: "ОС-" + o.qual, Link: "https://nok.example/" + o.qual}}}); err != nil {
		return err
	}
	if _, err := s.SaveCenter(ctx, store.Center{ID: o.center, CouncilID: o.council, Name: "ЦОК " + o.center, Head: "Сидоров С. С.",
		Website: "https://" + o.center + ".example", LegalAddress: "Москва", Email: "info@" + o.center + ".example",
		Phones: []string{"+7 495 111-11-11"}, Qualifications: []string{o.qual}}); err != nil {
		return err
	}
	_, err := s.SaveSite(ctx, store.Site{ID: o.site, CenterID: o.center, Name: "ЭП " + o.site})
	return err
}

// userToken creates a user whose password is already changed and returns
// a session token.
func userToken(t *testing.T, e *env, login, role, orgID string) (string, store.User) {
	t.Helper()
	ctx := context.Background()
	temp, err := e.store.AddUser(ctx, login, role, orgID)
	must(t, err)
	u, err := e.store.UserByLogin(ctx, login)
	must(t, err)
	// Changing the password through the store costs two more argon2id
	// hashes per user; the test of that is TestAuth.
	_ = temp
	must(t, markPasswordChanged(ctx, e, u.ID))
	tok, _, err := e.store.CreateSession(ctx, u.ID, e.clock.Now(), 1000*time.Hour)
	must(t, err)
	return tok, u
}

// footage stores and indexes n segments of 6 s of stream <site>/<device>
// from start, with sequence numbers from seq, and returns the first event.
func (e *env) footage(site, device string, seq int64, start time.Time, n int) *events.SegmentClosed {
	e.t.Helper()
	ctx := context.Background()
	source := events.SourceRoom
	switch {
	case strings.HasSuffix(device, "-cam"):
		source = events.SourceWebcam
	case strings.HasSuffix(device, "-screen"):
		source = events.SourceScreen
	}
	initKey := site + "/" + device + "/init-a.mp4"
	initData := []byte("init of " + site + "/" + device)
	must(e.t, e.blobs.Put(ctx, initKey, bytes.NewReader(initData), int64(len(initData))))
	var first *events.SegmentClosed
	for i := range int64(n) {
		data := make([]byte, 1000)
		_, _ = rand.Read(data)
		key := fmt.Sprintf("%s/%s/%06d.m4s", site, device, seq+i)
		must(e.t, e.blobs.Put(ctx, key, bytes.NewReader(data), int64(len(data))))
		sum, initSum := sha256.Sum256(data), sha256.Sum256(initData)
		ev := &events.SegmentClosed{
			SegmentID: fmt.Sprintf("%s-%s-%d", site, device, seq+i), StreamID: site + "/" + device, Source: source,
			Site: site, Device: device, Sequence: seq + i, Start: start.Add(time.Duration(i) * 6 * time.Second), Duration: 6,
			Codecs: []string{"avc1.64001f"}, Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
			PrevChain: strings.Repeat("0", 64), Chain: strings.Repeat("1", 64), ObjectKey: key, InitKey: initKey,
			InitSHA256: hex.EncodeToString(initSum[:]), InitBytes: int64(len(initData)), IngestNode: "node1",
		}
		e.deliver(ev)
		if first == nil {
			first = ev
		}
	}
	return first
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
