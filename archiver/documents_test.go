package archiver_test

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/nokstream/nokstream/archiver"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/seal"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/export"
	"github.com/nokstream/nokstream/registry/store"
)

// document stores a scan as the registry's upload does (the bytes in the
// blob store, then the record with their size and SHA-256) and returns its
// object key. stored, if not nil, is what reaches the blob store instead
// of body: a scan altered after the registry recorded it.
func (e *env) document(candidate, exam, kind string, body, stored []byte) string {
	e.t.Helper()
	ctx := e.t.Context()
	owner := candidate
	if owner == "" {
		owner = exam
	}
	d := &store.Document{ID: store.NewID(), CandidateID: candidate, ExamID: exam, Kind: kind, Filename: kind + ".pdf",
		ContentType: "application/pdf", Bytes: int64(len(body))}
	sum := sha256.Sum256(body)
	d.SHA256 = hex.EncodeToString(sum[:])
	d.ObjectKey = store.DocumentKey(owner, d.ID)
	if stored == nil {
		stored = body
	}
	if err := e.blob.Put(ctx, d.ObjectKey, bytes.NewReader(stored), int64(len(stored))); err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.AddDocument(ctx, d); err != nil {
		e.t.Fatal(err)
	}
	return d.ObjectKey
}

// TestDocumentsAreEvidence: the scans of a candidate's documents and the
// exam's commission protocol are evidence of the candidate-exam, on MinIO
// with Object Lock: each is locked in COMPLIANCE mode until the date its
// candidate-exams' footage is kept to, held while an appeal of any of them
// is open and released when it closes, listed in the seal (another
// candidate's papers never are), and shipped in the bundle, where a byte
// changed in one is found and named. A document uploaded after the seal
// joins the next version, which keeps everything the first listed; a scan
// whose stored bytes differ from the upload's record is a problem of the
// seal.
func TestDocumentsAreEvidence(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	env := testenv.MinIO(t)
	s3, err := blob.NewS3(ctx, env.S3Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s3.Close() })
	raw, err := minio.New(env.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(env.AccessKey, env.SecretKey, ""), Secure: env.UseSSL})
	if err != nil {
		t.Fatal(err)
	}
	// The real clock: MinIO keeps retention by its own. The dates here are
	// months and years ahead, so nothing depends on the machine's speed.
	e := newEnv(t, s3, archiver.DefaultConfig(), nil)
	now := time.Now()
	start, end := now.Add(-3*time.Hour), now.Add(-time.Hour)
	e.exam("e1", start, end)
	ws1 := e.segment("ws1-cam", events.SourceWebcam, start.Add(time.Minute), 6*time.Second)
	e.deliver(ws1)

	passport := e.document("c1", "", "passport", []byte("%PDF паспорт c1"), nil)
	protocol := e.document("", "e1", "protocol", []byte("%PDF протокол e1"), nil)
	otherPassport := e.document("c2", "", "passport", []byte("%PDF паспорт c2"), nil)
	altered := e.document("c1", "", "diploma", []byte("%PDF диплом c1"), []byte("%PDF диплом c1, исправленный"))

	if err := e.st.RecordResult(ctx, &store.Result{ExamID: "e1", CandidateID: "c1", Kind: store.ResultCertificate,
		CertificateNumber: "01.00000.31", IssuedOn: now}, 0, now); err != nil {
		t.Fatal(err)
	}
	e.relay(now)
	v1, err := e.ast.LatestSeal(ctx, "e1", "c1")
	if err != nil {
		t.Fatalf("c1 not sealed: %v", err)
	}
	m1 := readSeal(t, e, v1)
	docs := func(m *seal.Manifest) []string {
		var keys []string
		for _, en := range m.Entries {
			if en.Kind == seal.KindDocument {
				keys = append(keys, en.Key)
			}
		}
		slices.Sort(keys)
		return keys
	}
	want := []string{passport, protocol, altered}
	slices.Sort(want)
	if got := docs(m1); !slices.Equal(got, want) {
		t.Fatalf("seal of c1 lists documents %q, want c1's and the exam's %q (never c2's %s)", got, want, otherPassport)
	}
	if !slices.ContainsFunc(m1.Problems, func(p seal.Problem) bool { return p.Key == altered }) {
		t.Errorf("the altered scan %s is no problem of the seal: %+v", altered, m1.Problems)
	}
	for _, p := range m1.Problems {
		if p.Key == passport || p.Key == protocol {
			t.Errorf("a genuine scan is a problem of the seal: %+v", p)
		}
	}

	// Kept as the footage is, in COMPLIANCE mode.
	footage := e.object(ws1.ObjectKey)
	if footage.Rule != "certificate_valid_until" {
		t.Fatalf("footage rule %s, want certificate_valid_until", footage.Rule)
	}
	for _, k := range []string{passport, protocol} {
		e.expect(k, footage.RetainUntil, false, "certificate_valid_until")
		mode, until, err := raw.GetObjectRetention(ctx, env.Bucket, k, "")
		if err != nil || mode == nil || *mode != minio.Compliance || until == nil || until.Before(footage.RetainUntil.Truncate(time.Second)) {
			t.Errorf("%s in MinIO: retention %v until %v (%v), want COMPLIANCE until %s", k, mode, until, err, footage.RetainUntil)
		}
		if err := s3.Delete(ctx, k); err == nil {
			t.Errorf("%s deleted under retention", k)
		}
	}

	// c1 appeals: a legal hold on c1's papers and the protocol, which is
	// c2's evidence too; c2's own papers stay unheld.
	appeal := &store.Appeal{ExamID: "e1", CandidateID: "c1", Reason: "нарушена процедура"}
	if err := e.st.OpenAppeal(ctx, appeal, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.relay(time.Now())
	for _, k := range []string{passport, protocol} {
		if _, hold := e.stored(k); !hold {
			t.Errorf("%s not held while c1's appeal is open", k)
		}
		st, err := raw.GetObjectLegalHold(ctx, env.Bucket, k, minio.GetObjectLegalHoldOptions{})
		if err != nil || st == nil || *st != minio.LegalHoldEnabled {
			t.Errorf("%s in MinIO: legal hold %v %v, want ON", k, st, err)
		}
	}

	// The sweeper takes what was uploaded since: c2's passport (c2's
	// evidence, kept provisionally, no hold) and a late scan of c1's,
	// which joins a second version of c1's seal.
	consent := e.document("c1", "", "consent", []byte("%PDF согласие c1"), nil)
	if _, err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	o := e.object(otherPassport)
	if o.LegalHold || o.Rule != "provisional" {
		t.Errorf("c2's passport: hold %v rule %s, want no hold, provisional", o.LegalHold, o.Rule)
	}
	v2, err := e.ast.LatestSeal(ctx, "e1", "c1")
	if err != nil || v2.Version != 2 {
		t.Fatalf("after a late document the seal is %+v (%v), want version 2", v2, err)
	}
	m2 := readSeal(t, e, v2)
	for _, en := range m1.Entries {
		if !slices.ContainsFunc(m2.Entries, func(x seal.Entry) bool { return x.Key == en.Key && x.SHA256 == en.SHA256 }) {
			t.Errorf("version 2 drops %s", en.Key)
		}
	}
	if !slices.Contains(docs(m2), consent) {
		t.Errorf("version 2 lacks the late document %s: %q", consent, docs(m2))
	}
	if _, hold := e.stored(consent); !hold {
		t.Errorf("the late document %s is not held while c1's appeal is open", consent)
	}

	// The bundle ships the scans; a byte changed in one is found.
	var buf bytes.Buffer
	if _, err := export.Bundle(ctx, &buf, e.st, e.blob, e.key, export.Request{ExamID: "e1", CandidateID: "c1",
		Purpose: "апелляция № 31", ActorLogin: "council-user"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	pub := e.key.Public().(ed25519.PublicKey)
	rep, err := bundle.Verify(bytes.NewReader(buf.Bytes()), pub)
	if err != nil {
		t.Fatal(err)
	}
	// The altered diploma is the seal's declared problem, not a surprise:
	// the bundle carries the stored bytes and the verifier names them.
	for _, p := range rep.Problems {
		if !strings.Contains(p.Name, altered) {
			t.Errorf("genuine bundle: unexpected problem %s", p)
		}
	}
	shipped := map[string][]byte{}
	var names []string
	for _, te := range readTar(t, buf.Bytes()) {
		names = append(names, te.hdr.Name)
		for _, k := range []string{passport, protocol, consent} {
			if strings.HasSuffix(te.hdr.Name, "/objects/"+k) {
				shipped[k] = te.data
			}
		}
	}
	if string(shipped[passport]) != "%PDF паспорт c1" || string(shipped[protocol]) != "%PDF протокол e1" ||
		string(shipped[consent]) != "%PDF согласие c1" {
		t.Fatalf("the bundle does not ship the scans as uploaded: %q", names)
	}
	forged := retar(t, buf.Bytes(), func(h *tar.Header, data []byte) []byte {
		if strings.HasSuffix(h.Name, "/objects/"+passport) {
			data = bytes.Clone(data)
			data[len(data)-1] ^= 1
		}
		return data
	})
	rep, err = bundle.Verify(bytes.NewReader(forged), pub)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || !slices.ContainsFunc(rep.Problems, func(p bundle.Problem) bool { return strings.Contains(p.Name, passport) }) {
		t.Errorf("a changed byte in %s: problems %v, want it named", passport, rep.Problems)
	}

	// The appeal is decided and closed: the hold on the scans is released.
	if err := e.st.DecideAppeal(ctx, appeal.ID, store.AppealRejected, "отклонена", 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CloseAppeal(ctx, appeal.ID, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.relay(time.Now())
	for _, k := range []string{passport, protocol, consent} {
		if _, hold := e.stored(k); hold {
			t.Errorf("%s still held after the appeal closed", k)
		}
	}
}

// retar rewrites a tar, passing each file's bytes through change.
func retar(t *testing.T, b []byte, change func(h *tar.Header, data []byte) []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	for _, te := range readTar(t, b) {
		data := change(te.hdr, te.data)
		h := *te.hdr
		h.Size = int64(len(data))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}
