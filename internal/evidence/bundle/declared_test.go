package bundle_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
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
