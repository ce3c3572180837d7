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
	"net/http"
	"strings"
	"testing"
	"time"

	astore "github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/bundle/bundletest"
	"github.com/nokstream/nokstream/internal/evidence/chain"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
)

// verifyReport is the answer of POST /api/v1/evidence/verify.
type verifyReport struct {
	Valid         bool
	Reason        string
	Exam          string
	Candidate     string
	KeyID         string `json:"key_id"`
	MerkleRoot    string `json:"merkle_root"`
	Objects       int
	Bytes         int64
	Read          int64
	Problems      []bundle.Problem
	ProblemsTotal int `json:"problems_total"`
	Export        *struct {
		Purpose    string
		ExportedBy string    `json:"exported_by"`
		ExportedAt time.Time `json:"exported_at"`
	}
}

// TestVerifyEvidence: a bundle the registry exported verifies with the
// archive's key, and the report says what was checked; a bundle with one
// byte of a segment flipped, cut short, re-packed with a second manifest,
// re-signed with another key, or a body that is no bundle at all is
// reported invalid, naming what failed; every check is audited. Only
// those who may export evidence may verify it.
func TestVerifyEvidence(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	for _, d := range []struct{ device, source string }{{"room1", events.SourceRoom}, {"ws1-cam", events.SourceWebcam}, {"ws1-screen", events.SourceScreen}} {
		archive(t, e, o.site, d.device, d.source)
	}
	council := o.tokens[store.RoleCouncil]
	exported := e.do("GET", "/api/v1/exams/exam1/candidates/"+o.cand+"/evidence?purpose=appeal", council, nil)
	if exported.code != http.StatusOK {
		t.Fatalf("export: %d %s", exported.code, limitBody(exported.body))
	}
	key := decode[struct {
		KeyID string `json:"key_id"`
	}](t, e.do("GET", "/api/v1/keys/seal", "", nil))

	rc, err := e.blobs.Get(context.Background(), o.media)
	must(t, err)
	segment, err := io.ReadAll(rc)
	must(t, err)
	must(t, rc.Close())
	at := bytes.Index(exported.body, segment)
	if at < 0 {
		t.Fatalf("room segment %s is not in the bundle", o.media)
	}
	flipped := bytes.Clone(exported.body)
	flipped[at+len(segment)/2] ^= 0x20
	garbage := make([]byte, 4096)
	_, _ = rand.Read(garbage)
	// The forgeries of the issue: the exported bundle re-packed with a
	// second manifest naming another candidate after the objects (the
	// signed one first), and re-signed whole with a forger's key. (The
	// bundle stands in for another candidate's too: the forgeries used
	// here do not need one.)
	_, forger, err := ed25519.GenerateKey(rand.Reader)
	must(t, err)
	forgeries, err := bundletest.Forge(bundletest.Genuine{Bundle: exported.body, Other: exported.body, Key: forger})
	must(t, err)
	forged := map[string][]byte{}
	for _, f := range forgeries {
		forged[f.Name] = f.Bundle
	}

	for _, tc := range []struct {
		name  string
		body  []byte
		valid bool
		// kind and file are the first problem's.
		kind, file string
	}{
		{name: "as exported", body: exported.body, valid: true},
		{name: "one byte flipped", body: flipped, kind: bundle.Altered, file: "objects/" + o.media},
		{name: "cut short", body: exported.body[:at+len(segment)/2], kind: bundle.Format, file: "objects/" + o.media},
		{name: "not a tar", body: garbage, kind: bundle.Format},
		{name: "empty", body: nil, kind: bundle.Format},
		{name: "a second manifest", body: forged["a second manifest, of another candidate, after the objects"], kind: bundle.Format,
			file: "seal/manifest.json"},
		{name: "signed whole with another key", body: forged["signed with another key"], kind: bundle.WrongKey, file: "seal/manifest.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/api/v1/evidence/verify?purpose=check", council, string(tc.body), "Content-Type", "application/x-tar")
			if r.code != http.StatusOK {
				t.Fatalf("%d %s, want 200 with a report", r.code, limitBody(r.body))
			}
			rep := decode[verifyReport](t, r)
			if rep.Valid != tc.valid || rep.KeyID != key.KeyID {
				t.Errorf("valid %v with key %s, want %v with the archive's key %s: %+v", rep.Valid, rep.KeyID, tc.valid, key.KeyID, rep)
			}
			if tc.valid {
				// Six segments and the init segment of each of three
				// streams, the candidate's passport and the exam's protocol.
				if len(rep.Problems) != 0 || rep.Reason != "" || rep.Exam != "exam1" || rep.Candidate != o.cand || rep.MerkleRoot == "" ||
					rep.Objects != 23 || rep.Bytes < 18000 || rep.Read != int64(len(tc.body)) {
					t.Errorf("report of the exported bundle: %+v", rep)
				}
				if x := rep.Export; x == nil || x.Purpose != "appeal" || x.ExportedBy != "council1" {
					t.Errorf("export of the report: %+v", x)
				}
				return
			}
			if len(rep.Problems) == 0 || rep.ProblemsTotal != len(rep.Problems) {
				t.Fatalf("an invalid report with no problems: %+v", rep)
			}
			if p := rep.Problems[0]; p.Kind != tc.kind || p.Name != tc.file || !strings.HasPrefix(rep.Reason, tc.kind+": ") {
				t.Errorf("first problem %+v, reason %q; want %s of %q", p, rep.Reason, tc.kind, tc.file)
			}
		})
	}

	log, err := e.store.AuditLog(context.Background(), 0, 10000)
	must(t, err)
	verified := map[string]int{}
	for _, a := range log {
		if a.Action == "evidence.verify" && a.ActorLogin == "council1" && a.Purpose == "check" {
			verified[a.Object+" valid="+map[bool]string{true: "yes", false: "no"}[a.Detail["valid"] == true]]++
		}
	}
	if verified["evidence/exam1/"+o.cand+" valid=yes"] != 1 || verified["evidence/exam1/"+o.cand+" valid=no"] != 4 || verified["evidence valid=no"] != 2 {
		t.Errorf("evidence.verify in the audit log: %v", verified)
	}

	// NARK verifies too; a center, which may not export, may not verify.
	if r := e.do("POST", "/api/v1/evidence/verify", w.nark, string(exported.body), "Content-Type", "application/octet-stream"); r.code != http.StatusOK ||
		!decode[verifyReport](t, r).Valid {
		t.Errorf("NARK: %d %s", r.code, limitBody(r.body))
	}
	if r := e.do("POST", "/api/v1/evidence/verify", o.tokens[store.RoleCenter], string(exported.body)); r.code != http.StatusForbidden {
		t.Errorf("center: %d %s, want 403", r.code, limitBody(r.body))
	}
	if r := e.do("POST", "/api/v1/evidence/verify", council, string(exported.body), "Content-Type", "text/plain"); r.code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %d %s, want 415", r.code, limitBody(r.body))
	}
}

// TestVerifyEvidenceLimit: a body larger than Config.MaxBundleBytes is
// refused with 413, whether its length is declared or only found while
// reading it.
func TestVerifyEvidenceLimit(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, func(c *api.Config) { c.MaxBundleBytes = 64 << 10 })
	nark := e.operator("nark")
	body := bytes.Repeat([]byte{0}, 100<<10) // zero blocks: the end of a tar, read past by the drain
	for _, tc := range []struct {
		name string
		body io.Reader
	}{
		{"declared", bytes.NewReader(body)},
		{"chunked", io.MultiReader(bytes.NewReader(body))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("POST", e.url+"/api/v1/evidence/verify", tc.body)
			must(t, err)
			req.Header.Set("Authorization", "Bearer "+nark)
			res, err := http.DefaultClient.Do(req)
			must(t, err)
			defer res.Body.Close()
			msg, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusRequestEntityTooLarge || !bytes.Contains(msg, []byte("at most 65536 bytes")) {
				t.Errorf("%d %s, want 413", res.StatusCode, msg)
			}
		})
	}
}

// TestVerifyEvidenceConcurrency: at most verify_concurrency bundles are
// verified at once (each holds up to its parsed manifest, ~400 MiB for a
// hostile one): one more is answered 503 with Retry-After, unread, and
// the slots come free as the verifications end.
func TestVerifyEvidenceConcurrency(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, func(c *api.Config) { c.VerifyConcurrency = 2 })
	nark := e.operator("nark")
	post := func(body io.Reader) (int, http.Header, string) {
		req, err := http.NewRequest("POST", e.url+"/api/v1/evidence/verify", body)
		if err != nil {
			return 0, nil, err.Error()
		}
		req.Header.Set("Authorization", "Bearer "+nark)
		req.Header.Set("Content-Type", "application/x-tar")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err.Error()
		}
		defer res.Body.Close()
		msg, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, string(msg)
	}
	// Two verifications whose bundles are still coming.
	var senders []*io.PipeWriter
	done := make(chan int, 2)
	for range 2 {
		pr, pw := io.Pipe()
		senders = append(senders, pw)
		t.Cleanup(func() { _ = pw.CloseWithError(io.ErrUnexpectedEOF) }) // also when the test fails before the end
		go func() {
			code, _, _ := post(pr)
			done <- code
		}()
	}
	// Both hold their slots (the gauge operators watch), before a third
	// comes: asked earlier, one of the two could be the one refused.
	testenv.WaitFor(t, 20*time.Second, "two verifications to run", func() bool {
		return strings.Contains(e.metrics(), "\nnokstream_registry_evidence_verifications 2\n")
	})
	code, hdr, msg := post(strings.NewReader("not a tar"))
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !strings.Contains(msg, "2 evidence bundles are being verified") {
		t.Errorf("a third while two run: %d, Retry-After %q, %s; want 503 saying when to try again and why", code, hdr.Get("Retry-After"), msg)
	}
	// The two end (a bundle cut short is a report, not an error of the
	// server), and the next one is verified.
	for _, pw := range senders {
		_ = pw.Close()
	}
	for range senders {
		if code := <-done; code != http.StatusOK && code != http.StatusUnprocessableEntity {
			t.Errorf("a verification whose bundle ended early: %d, want a report (200) or 422", code)
		}
	}
	testenv.WaitFor(t, 20*time.Second, "a verification once the others ended", func() bool {
		code, _, _ := post(strings.NewReader("not a tar"))
		return code != http.StatusServiceUnavailable
	})
	if code, _, msg := post(strings.NewReader("not a tar")); code != http.StatusOK || !strings.Contains(msg, `"valid":false`) {
		t.Errorf("garbage after the others ended: %d %s, want 200 with valid false", code, limitBody([]byte(msg)))
	}
}

// TestVerifyEvidenceStalledBody: a bundle that stops coming does not hold
// its verification slot for ever (a streaming route has no read deadline):
// after verify_idle_timeout without a byte it is answered 408 and the
// next bundle is verified.
func TestVerifyEvidenceStalledBody(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, func(c *api.Config) { c.VerifyConcurrency, c.VerifyIdleTimeout = 1, time.Second })
	nark := e.operator("nark")
	pr, pw := io.Pipe()
	t.Cleanup(func() { _ = pw.CloseWithError(io.ErrUnexpectedEOF) })
	req, err := http.NewRequest("POST", e.url+"/api/v1/evidence/verify", pr)
	must(t, err)
	req.Header.Set("Authorization", "Bearer "+nark)
	req.Header.Set("Content-Type", "application/x-tar")
	stalled := make(chan string, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			stalled <- err.Error()
			return
		}
		defer res.Body.Close()
		msg, _ := io.ReadAll(res.Body)
		stalled <- fmt.Sprintf("%d %s", res.StatusCode, msg)
	}()
	// A tar header's worth, then nothing.
	if _, err := pw.Write(make([]byte, 512)); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-stalled:
		if !strings.HasPrefix(got, "408 ") || !strings.Contains(got, "stopped coming") {
			t.Errorf("a stalled bundle: %s, want 408 saying it stopped coming", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a bundle that stopped coming still holds its verification after 30 s")
	}
	r := e.do("POST", "/api/v1/evidence/verify", nark, "not a tar", "Content-Type", "application/x-tar")
	if r.code != http.StatusOK {
		t.Errorf("the next verification: %d %s, want 200", r.code, limitBody(r.body))
	}
}

// archive records the footage newWorld stored of stream <site>/<device>
// (six segments from an hour into the exam) as the archiver does, with a
// hash chain that links, so that an export has media to bundle.
func archive(t *testing.T, e *env, site, device, source string) {
	t.Helper()
	ctx := context.Background()
	read := func(key string) (int64, string) {
		rc, err := e.blobs.Get(ctx, key)
		must(t, err)
		defer rc.Close()
		b, err := io.ReadAll(rc)
		must(t, err)
		sum := sha256.Sum256(b)
		return int64(len(b)), hex.EncodeToString(sum[:])
	}
	ast, err := astore.Open(ctx, e.dsn)
	must(t, err)
	defer ast.Close()
	stream, initKey := site+"/"+device, site+"/"+device+"/init-a.mp4"
	initBytes, initSHA := read(initKey)
	keep := examEnd.Add(5 * 365 * 24 * time.Hour)
	prev := chain.Zero
	for i := range int64(6) {
		key := fmt.Sprintf("%s/%06d.m4s", stream, i)
		n, sum := read(key)
		link, err := chain.Next(prev, sum)
		must(t, err)
		start := examStart.Add(time.Hour + time.Duration(i)*6*time.Second)
		seg := astore.ArchiveObject{Key: key, Kind: astore.ArchiveSegment, StreamID: stream, Site: site, Device: device, Source: source,
			Sequence: i, Start: start, End: start.Add(6 * time.Second), Bytes: n, SHA256: sum, PrevChain: prev, Chain: link,
			InitKey: initKey, SegmentID: fmt.Sprintf("%s-%s-%d", site, device, i), Verified: true, RetainUntil: keep, Rule: "test",
			DecidedAt: e.clock.Now()}
		init := astore.ArchiveObject{Key: initKey, Kind: astore.ArchiveInit, StreamID: stream, Site: site, Device: device, Source: source,
			Start: seg.Start, End: seg.End, Bytes: initBytes, SHA256: initSHA, Verified: true, RetainUntil: keep, Rule: "test",
			DecidedAt: e.clock.Now()}
		must(t, ast.SaveArchivedSegment(ctx, seg, init, astore.StreamChain{StreamID: stream, Sequence: i, Chain: link, SegmentID: seg.SegmentID}))
		prev = link
	}
	// The registry learns of it from the archiver's records, as its
	// consumer of nokstream.archive.v1 does.
	h := index.ArchiveHandler(e.store, slog.New(slog.DiscardHandler))
	_, err = ast.ReportRecords(ctx, 1000, e.clock.Now(), func(ctx context.Context, key string, value []byte) error {
		return h(ctx, bus.Message{Topic: events.TopicArchive, Key: key, Value: value})
	})
	must(t, err)
}
