package bundle_test

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/bundle/bundletest"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// TestVerifyUnsignedDeclarations: what a seal declares (a segment lost
// before sealing, an object that failed its check on arrival) is reported
// as a warning of a bundle that verifies. What a manifest whose signature
// does not verify declares is no one's word: it is not reported as declared
// by the seal (it used to be, one warning per declaration, so a forged
// manifest of 64 MiB made a report of a million and a half of them).
func TestVerifyUnsignedDeclarations(t *testing.T) {
	t.Parallel()
	key := seedKey(1)
	pub := key.Public().(ed25519.PublicKey)
	dir := t.TempDir()
	small, err := bundletest.Small(dir, "c1", "appeal 12", key)
	if err != nil {
		t.Fatal(err)
	}
	files, err := bundletest.Read(small)
	if err != nil {
		t.Fatal(err)
	}
	var m *seal.Manifest
	for _, f := range files {
		if strings.HasSuffix(f.Header.Name, "/seal/manifest.json") {
			if m, err = seal.Parse(f.Data); err != nil {
				t.Fatal(err)
			}
		}
	}
	m.Problems = []seal.Problem{{Key: m.Entries[1].Key, Detail: "the stored bytes did not match ingest's announcement on arrival"}}
	manifest, sig, err := seal.Seal(m, key)
	if err != nil {
		t.Fatal(err)
	}
	store, err := blob.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	t0 := time.Date(2026, 3, 2, 11, 0, 0, 0, time.UTC)
	if _, err := bundle.Write(context.Background(), &b, store, bundle.Request{Purpose: "appeal 12", ExportedBy: "council1",
		ExportedAt: t0, Manifest: manifest, Signature: sig, Timeline: map[string]any{}, Audit: []any{}, Key: key}); err != nil {
		t.Fatal(err)
	}
	rep, err := bundle.Verify(bytes.NewReader(b.Bytes()), pub)
	if err != nil || !rep.OK() {
		t.Fatalf("the signed seal: %v %v", err, rep.Problems)
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "did not match ingest's announcement on arrival (declared by the seal)") {
		t.Errorf("the signed seal's warnings: %q", rep.Warnings)
	}

	// The same bundle, its manifest declaring more than was signed: the
	// problems are not part of the Merkle root, the signature fails.
	forged, err := bundletest.Read(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	const claim = "the candidate left the room for 20 minutes"
	for i, f := range forged {
		if strings.HasSuffix(f.Header.Name, "/seal/manifest.json") {
			forged[i].Data = bytes.Replace(f.Data, []byte(`"problems": [`),
				[]byte(`"problems": [{"key": "`+m.Entries[2].Key+`", "detail": "`+claim+`"}, `), 1)
			if bytes.Equal(forged[i].Data, f.Data) {
				t.Fatal("the manifest has no problems to add to")
			}
		}
	}
	fb, err := bundletest.Write(forged)
	if err != nil {
		t.Fatal(err)
	}
	rep, err = bundle.Verify(bytes.NewReader(fb), pub)
	if err != nil || rep.OK() || rep.Problems[0].Kind != bundle.Manifest {
		t.Fatalf("the manifest with an unsigned declaration: %v %v", err, rep.Problems)
	}
	for _, w := range rep.Warnings {
		if strings.Contains(w, "declared by the seal") {
			t.Errorf("a warning from a manifest whose signature does not verify: %q", w)
		}
	}
}

// TestVerifyReportCounts: the objects and bytes a report counts are those
// whose bytes match the manifest (an altered segment is not among them), and
// a bundle whose end could not be read is not valid: what follows its
// end-of-archive blocks was not checked.
func TestVerifyReportCounts(t *testing.T) {
	t.Parallel()
	pub := seedKey(1).Public().(ed25519.PublicKey)
	genuine := seedBundle(t, "c1")
	forgeries, err := bundletest.Forge(bundletest.Genuine{Bundle: genuine, Other: seedBundle(t, "c2"), Key: seedKey(2)})
	if err != nil {
		t.Fatal(err)
	}
	good, err := bundle.Verify(bytes.NewReader(genuine), pub)
	if err != nil || !good.OK() || good.Objects != 5 {
		t.Fatalf("genuine: %v %+v", err, good)
	}
	for _, f := range forgeries {
		if f.Name != "flip a byte in a media segment" {
			continue
		}
		rep, err := bundle.Verify(bytes.NewReader(f.Bundle), pub)
		if err != nil || rep.OK() || rep.Objects != 4 || rep.Bytes != good.Bytes-34 {
			t.Errorf("%s: %d objects, %d bytes (the genuine bundle: %d, %d), want the altered one not counted: %v", f.Name,
				rep.Objects, rep.Bytes, good.Objects, good.Bytes, rep.Problems)
		}
	}
	rep, err := bundle.Verify(io.MultiReader(bytes.NewReader(genuine), failing{}), pub)
	if err != nil || rep.OK() || rep.Problems[0].Kind != bundle.Format || !strings.Contains(rep.Problems[0].Detail, "disk gone") {
		t.Errorf("a bundle whose end could not be read: %v %v", err, rep.Problems)
	}
}

// failing is a reader that fails.
type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("disk gone") }

// TestVerifyCompressed: a bundle sent compressed (gzip, as mail and chat
// tools do) is not a tar, and the report says what it is and how to get
// the tar out, rather than that the tar header is invalid.
func TestVerifyCompressed(t *testing.T) {
	t.Parallel()
	pub := seedKey(1).Public().(ed25519.PublicKey)
	genuine := seedBundle(t, "c1")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(genuine); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	w := zip.NewWriter(&z)
	f, err := w.Create("bundle.tar")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(genuine); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want string
	}{
		{"gzip", gz.Bytes(), "a gzip file, not a tar: an evidence bundle is the plain tar the archive exported; decompress it first (gunzip -k FILE)"},
		{"zip", z.Bytes(), "a zip file, not a tar: "},
	} {
		rep, err := bundle.Verify(bytes.NewReader(tc.b), pub)
		if err != nil || rep.OK() || len(rep.Problems) != 1 || rep.Problems[0].Kind != bundle.Format ||
			!strings.HasPrefix(rep.Problems[0].Detail, tc.want) {
			t.Errorf("%s: %v %v, want %q", tc.name, err, rep.Problems, tc.want)
		}
	}
}

// TestVerifyWarnsOfCaseCollisions: two objects whose keys differ only in
// case (two cameras named cam1 and CAM1) verify, but unpacked on Windows or
// macOS one is written over the other: the report warns of it.
func TestVerifyWarnsOfCaseCollisions(t *testing.T) {
	t.Parallel()
	key := seedKey(1)
	d, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var entries []seal.Entry
	for _, k := range []string{"raw/site1/cam1/init/a.mp4", "raw/site1/CAM1/init/a.mp4"} {
		data := []byte("ftyp moov of " + k)
		if err := d.Put(context.Background(), k, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		entries = append(entries, seal.Entry{Kind: seal.KindInit, Key: k, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
			Stream: "site1/" + strings.Split(k, "/")[2], Start: t0, End: t0})
	}
	manifest, sig, err := seal.Seal(&seal.Manifest{ExamID: "e1", CandidateID: "c1", Version: 1, SealedAt: t0, Entries: entries}, key)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := bundle.Write(context.Background(), &b, d, bundle.Request{Purpose: "check", ExportedBy: "test", ExportedAt: t0,
		Manifest: manifest, Signature: sig, Timeline: map[string]any{}, Audit: []any{}, Key: key}); err != nil {
		t.Fatal(err)
	}
	rep, err := bundle.Verify(bytes.NewReader(b.Bytes()), key.Public().(ed25519.PublicKey))
	if err != nil || !rep.OK() {
		t.Fatalf("%v %v", err, rep.Problems)
	}
	if len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], "objects/raw/site1/cam1/init/a.mp4 differ only in case") {
		t.Errorf("warnings %q, want one of the keys that differ only in case", rep.Warnings)
	}
}
