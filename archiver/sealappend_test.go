package archiver_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/archiver"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/chain"
	"github.com/nokstream/nokstream/internal/evidence/seal"
	"github.com/nokstream/nokstream/registry/store"
)

// TestSealAppendOnly: a seal's later version keeps every object an earlier
// one listed, even one no longer among the candidate-exam's objects (here:
// the exam's window was shortened after sealing), with a problem that says
// so, and names the earlier versions by Merkle root; a late segment joins
// the next version.
func TestSealAppendOnly(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	c := &clock{now: t0.Add(7 * time.Hour)}
	e := newEnv(t, dirStore(t, c), archiver.DefaultConfig(), c)
	e.exam("e1", t0, t0.Add(4*time.Hour))
	seg := 6 * time.Second
	early := e.segment("ws1-cam", events.SourceWebcam, t0.Add(time.Hour), seg)
	lateInWindow := e.segment("ws1-cam", events.SourceWebcam, t0.Add(3*time.Hour), seg)
	e.deliver(early)
	e.deliver(lateInWindow)
	c.Set(t0.Add(24 * time.Hour))
	if err := e.st.RecordResult(ctx, &store.Result{ExamID: "e1", CandidateID: "c1", Kind: store.ResultCertificate,
		CertificateNumber: "01.00000.77", IssuedOn: c.Now()}, 0, c.Now()); err != nil {
		t.Fatal(err)
	}
	e.relay(c.Now())
	v1, err := e.ast.LatestSeal(ctx, "e1", "c1")
	if err != nil || v1.Version != 1 {
		t.Fatalf("first seal: %+v %v", v1, err)
	}
	m1 := readSeal(t, e, v1)

	// The window is shortened after sealing (nothing the API allows once
	// the exam started; here straight in the database, as a mistake or an
	// attack would): the later segment is no longer the candidate-exam's.
	conn, err := pgx.Connect(ctx, e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE exams SET ends_at = $1 WHERE id = 'e1'`, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	ces, err := e.st.ExamEvidence(ctx, "e1", "c1")
	if err != nil || len(ces) != 1 {
		t.Fatalf("evidence of e1/c1: %v %v", ces, err)
	}
	v2, err := e.svc.Seal(ctx, ces[0], true)
	if err != nil {
		t.Fatal(err)
	}
	m2 := readSeal(t, e, v2)
	if v2.Version != 2 {
		t.Fatalf("second seal is version %d", v2.Version)
	}
	for _, en := range m1.Entries {
		if !slices.ContainsFunc(m2.Entries, func(x seal.Entry) bool { return x.Key == en.Key }) {
			t.Errorf("version 2 drops %s, which version 1 listed", en.Key)
		}
	}
	kept := false
	for _, p := range m2.Problems {
		if p.Key == lateInWindow.ObjectKey && strings.Contains(p.Detail, "version 1") {
			kept = true
		}
	}
	if !kept {
		t.Errorf("version 2 does not say why it keeps %s: problems %+v", lateInWindow.ObjectKey, m2.Problems)
	}
	if len(m2.Previous) != 1 || m2.Previous[0].Version != 1 || m2.Previous[0].MerkleRoot != m1.MerkleRoot {
		t.Errorf("version 2 names earlier versions %+v, want version 1 with root %s", m2.Previous, m1.MerkleRoot)
	}
}

// TestSealRefusesAlteredPrevious: a later version of a seal carries every
// entry of the version before it, and signs them again; so the archiver
// checks the stored earlier version before it carries anything: signed by
// its key, with the Merkle root it recorded. An earlier manifest altered in
// the blob store (an entry added for a forged segment, the root computed
// again; the signature cannot be) is refused, with an ALERT, rather than
// laundered into a new version signed by the archive's key.
func TestSealRefusesAlteredPrevious(t *testing.T) {
	ctx := t.Context()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	c := &clock{now: t0.Add(7 * time.Hour)}
	root := t.TempDir()
	d, err := blob.NewDir(root, blob.WithClock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, d, archiver.DefaultConfig(), c)
	e.exam("e1", t0, t0.Add(4*time.Hour))
	e.deliver(e.segment("ws1-cam", events.SourceWebcam, t0.Add(time.Hour), 6*time.Second))
	c.Set(t0.Add(24 * time.Hour))
	if err := e.st.RecordResult(ctx, &store.Result{ExamID: "e1", CandidateID: "c1", Kind: store.ResultCertificate,
		CertificateNumber: "01.00000.78", IssuedOn: c.Now()}, 0, c.Now()); err != nil {
		t.Fatal(err)
	}
	e.relay(c.Now())
	v1, err := e.ast.LatestSeal(ctx, "e1", "c1")
	if err != nil || v1.Version != 1 {
		t.Fatalf("first seal: %+v %v", v1, err)
	}
	m := readSeal(t, e, v1)

	// The forger adds a segment after the last one, chained to it, and
	// computes the root again; he cannot sign.
	last := m.Entries[len(m.Entries)-1]
	forged := []byte("moof mdat: footage that was never recorded")
	sum := sha256.Sum256(forged)
	f := last
	f.Key = strings.Replace(last.Key, ".m4s", "-forged.m4s", 1)
	f.SHA256, f.Size, f.Sequence, f.PrevChain = hex.EncodeToString(sum[:]), int64(len(forged)), last.Sequence+1, last.Chain
	if f.Chain, err = chain.Next(f.PrevChain, f.SHA256); err != nil {
		t.Fatal(err)
	}
	m.Entries = append(m.Entries, f)
	m.Objects++
	r := seal.Root(m.Entries)
	m.MerkleRoot = hex.EncodeToString(r[:])
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seal.Parse(append(b, '\n')); err != nil {
		t.Fatalf("the forged manifest does not parse: %v", err)
	}
	p := filepath.Join(root, filepath.FromSlash(v1.ManifestKey))
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, append(b, '\n'), 0o444); err != nil {
		t.Fatal(err)
	}

	ces, err := e.st.ExamEvidence(ctx, "e1", "c1")
	if err != nil || len(ces) != 1 {
		t.Fatalf("evidence of e1/c1: %v %v", ces, err)
	}
	_, err = e.svc.Seal(ctx, ces[0], true)
	if err == nil || !strings.Contains(err.Error(), "version 1") || !strings.Contains(err.Error(), "not the seal") {
		t.Errorf("sealing over an altered version 1: %v, want an error naming it", err)
	}
	if latest, err := e.ast.LatestSeal(ctx, "e1", "c1"); err != nil || latest.Version != 1 {
		t.Fatalf("latest seal %+v %v, want version 1 still", latest, err)
	}
}
