package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	astore "github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/chain"
	"github.com/nokstream/nokstream/internal/evidence/seal"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
	"github.com/nokstream/nokstream/registry/store/storetest"
)

// TestEvidenceExportCommand: `nokstream evidence export -o FILE` writes a
// bundle that `nokstream verify` accepts with the archive's key, on a real
// database and blob directory; an export that fails (an unknown candidate)
// leaves no file and no temporary file behind, and leaves a bundle written
// earlier under that name as it was.
func TestEvidenceExportCommand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := testenv.Postgres(t)
	if err := migrateAll(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	dir := t.TempDir()
	blobDir := filepath.Join(dir, "blob")
	if err := os.Mkdir(blobDir, 0o700); err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.NewDir(blobDir)
	if err != nil {
		t.Fatal(err)
	}

	// A candidate's exam with a minute of room footage, archived.
	storetest.Org(t, st, "spk1", "cok1", "site1")
	if _, err := st.SaveQualification(ctx, store.Qualification{Code: "q1", CouncilID: "spk1", Name: "Сварщик", ValidityYears: 3,
		Tools: []store.AssessmentTool{{Reference: "ОС-1", Link: "https://example.org/os1"}}}); err != nil {
		t.Fatal(err)
	}
	center, err := st.Center(ctx, "cok1")
	if err != nil {
		t.Fatal(err)
	}
	center.Qualifications = []string{"q1"}
	if _, err := st.SaveCenter(ctx, center); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct{ name, kind string }{{"cam1", store.KindRoom}, {"ws1-cam", store.KindWebcam}, {"ws1-scr", store.KindScreen}} {
		if _, err := st.AddDevice(ctx, "site1", d.name, d.kind); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.SaveCandidate(ctx, store.Candidate{ID: "c1", CenterID: "cok1", LastName: "Иванов", FirstName: "Иван",
		Document: "паспорт 4500 000001"}); err != nil {
		t.Fatal(err)
	}
	start := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	if err := st.CreateExam(ctx, &store.Exam{ID: "e1", CenterID: "cok1", SiteID: "site1", Qualification: "q1",
		Start: start, End: start.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddExamCandidate(ctx, "e1", "c1", "ws1-cam", "ws1-scr", start); err != nil {
		t.Fatal(err)
	}
	if err := st.SetAdmission(ctx, "e1", "c1", true, "", 0, start); err != nil {
		t.Fatal(err)
	}
	put := func(key string, b []byte) (int64, string) {
		if err := blobs.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		return int64(len(b)), hex.EncodeToString(sum[:])
	}
	ast, err := astore.Open(ctx, dsn) // the archive's records are the archiver's
	if err != nil {
		t.Fatal(err)
	}
	defer ast.Close()
	const stream, initKey = "site1/cam1", "raw/site1/cam1/init/a.mp4"
	initBytes, initSHA := put(initKey, []byte("ftyp moov: the init segment of site1/cam1"))
	keep := start.AddDate(5, 0, 0)
	prev := chain.Zero
	for i := range int64(10) {
		key := fmt.Sprintf("raw/site1/cam1/%010d-x.m4s", i)
		n, sum := put(key, fmt.Appendf(nil, "moof mdat: segment %d of site1/cam1", i))
		link, err := chain.Next(prev, sum)
		if err != nil {
			t.Fatal(err)
		}
		at := start.Add(time.Minute + time.Duration(i)*6*time.Second)
		seg := astore.ArchiveObject{Key: key, Kind: astore.ArchiveSegment, StreamID: stream, Site: "site1", Device: "cam1",
			Source: "room", Sequence: i, Start: at, End: at.Add(6 * time.Second), Bytes: n, SHA256: sum, PrevChain: prev,
			Chain: link, InitKey: initKey, SegmentID: fmt.Sprintf("seg-%d", i), Verified: true, RetainUntil: keep, Rule: "test",
			DecidedAt: start}
		init := astore.ArchiveObject{Key: initKey, Kind: astore.ArchiveInit, StreamID: stream, Site: "site1", Device: "cam1",
			Source: "room", Start: at, End: seg.End, Bytes: initBytes, SHA256: initSHA, Verified: true, RetainUntil: keep,
			Rule: "test", DecidedAt: start}
		if err := ast.SaveArchivedSegment(ctx, seg, init, astore.StreamChain{StreamID: stream, Sequence: i, Chain: link,
			SegmentID: seg.SegmentID}); err != nil {
			t.Fatal(err)
		}
		prev = link
	}
	// The registry learns of it from the archiver's records, as its
	// consumer of nokstream.archive.v1 does.
	h := index.ArchiveHandler(st, slog.New(slog.DiscardHandler))
	if _, err := ast.ReportRecords(ctx, 1000, start, func(ctx context.Context, key string, value []byte) error {
		return h(ctx, bus.Message{Topic: events.TopicArchive, Key: key, Value: value})
	}); err != nil {
		t.Fatal(err)
	}

	keyFile := filepath.Join(dir, "keys", "seal.ed25519")
	export := func(candidate, out string) error {
		cmd := evidenceCommand(&globalFlags{})
		cmd.SetArgs([]string{"export", "--db", dsn, "--blob", blobDir, "--seal-key", keyFile, "--exam", "e1",
			"--candidate", candidate, "--purpose", "appeal 7", "-o", out})
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		return cmd.ExecuteContext(ctx)
	}
	outDir := filepath.Join(dir, "out")
	if err := os.Mkdir(outDir, 0o700); err != nil {
		t.Fatal(err)
	}
	listing := func() []string {
		entries, err := os.ReadDir(outDir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	good := filepath.Join(outDir, "evidence.tar")
	if err := export("c1", good); err != nil {
		t.Fatalf("export: %v", err)
	}
	if got := listing(); len(got) != 1 || got[0] != "evidence.tar" {
		t.Fatalf("after the export the directory holds %q, want only evidence.tar", got)
	}
	bundleBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := seal.ParsePrivateKey(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pubFile := filepath.Join(dir, "seal.pub")
	if err := os.WriteFile(pubFile, seal.MarshalPublicKey(priv.Public().(ed25519.PublicKey)), 0o600); err != nil {
		t.Fatal(err)
	}
	// Ten segments and their init, each checked.
	r := runVerify(t, t.TempDir(), nil, good, "--pubkey", pubFile)
	if r.status != 0 || !strings.Contains(r.stdout, "bundle of exam e1, candidate c1\n  11 objects") ||
		!strings.Contains(r.stdout, "OK: every hash, chain, the Merkle root and the signatures verify") {
		t.Fatalf("verify of the exported bundle: %+v", r)
	}

	// A failed export: nothing new under its name, no temporary left, and
	// the bundle already under the name it was given is untouched.
	failed := filepath.Join(outDir, "unknown.tar")
	if err := export("c-unknown", failed); err == nil {
		t.Fatal("an export of an unknown candidate succeeded")
	}
	if err := export("c-unknown", good); err == nil {
		t.Fatal("an export of an unknown candidate succeeded")
	}
	if got := listing(); len(got) != 1 || got[0] != "evidence.tar" {
		t.Fatalf("after the failed exports the directory holds %q, want only evidence.tar", got)
	}
	if b, err := os.ReadFile(good); err != nil || !bytes.Equal(b, bundleBytes) {
		t.Fatalf("a failed export over evidence.tar changed it (%v)", err)
	}
}
