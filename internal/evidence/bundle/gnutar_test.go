package bundle_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/bundle/bundletest"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// TestGNUTar checks the verifier against GNU tar, the reader a court or a
// council is most likely to unpack a bundle with. A genuine bundle unpacked
// and packed again by GNU tar, in the bundle's order, in each of its
// formats, still verifies, as does one with a key longer than a header's
// name field: the checks on ambiguous headers refuse nothing GNU tar or
// bundle.Write writes. And the forgeries on tar headers are real: GNU tar unpacks
// the "swapped" one with two segments' bytes exchanged, and, with -i, the
// one with another tar after the end with the other bytes, both of which
// archive/tar reads as the genuine bundle; the verifier refuses both.
func TestGNUTar(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar on PATH")
	}
	if out, err := exec.Command("tar", "--version").Output(); err != nil || !bytes.Contains(out, []byte("GNU tar")) {
		t.Skip("tar is not GNU tar")
	}
	pub := seedKey(1).Public().(ed25519.PublicKey)
	genuine := seedBundle(t, "c1")
	dir := t.TempDir()
	tarFile := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
			t.Fatalf("tar %v: %v\n%s", args, err, out)
		}
	}
	files, err := bundletest.Read(genuine)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Header.Name)
	}
	list := tarFile("list", []byte(strings.Join(names, "\n")+"\n"))
	unpacked := filepath.Join(dir, "genuine")
	if err := os.Mkdir(unpacked, 0o755); err != nil {
		t.Fatal(err)
	}
	run("-xf", tarFile("genuine.tar", genuine), "-C", unpacked)
	for _, format := range []string{"gnu", "oldgnu", "posix", "ustar", "v7"} {
		repacked := filepath.Join(dir, format+".tar")
		run("--format="+format, "--no-recursion", "-cf", repacked, "-C", unpacked, "-T", list)
		b, err := os.ReadFile(repacked)
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := bundle.Verify(bytes.NewReader(b), pub); err != nil || !rep.OK() {
			t.Errorf("repacked by GNU tar --format=%s: %v %v", format, err, rep.Problems)
		}
	}
	// An object key of more than 100 bytes, not ASCII: a PAX path as
	// bundle.Write writes it, a GNU long name, a PAX path, as GNU tar does.
	long := longKeyBundle(t)
	if rep, err := bundle.Verify(bytes.NewReader(long.bundle), pub); err != nil || !rep.OK() {
		t.Fatalf("a bundle with a long key: %v %v", err, rep.Problems)
	}
	longDir := filepath.Join(dir, "long")
	if err := os.Mkdir(longDir, 0o755); err != nil {
		t.Fatal(err)
	}
	run("-xf", tarFile("long.tar", long.bundle), "-C", longDir)
	longList := tarFile("long-list", []byte(strings.Join(long.names, "\n")+"\n"))
	for _, format := range []string{"gnu", "oldgnu", "posix"} {
		repacked := filepath.Join(dir, "long-"+format+".tar")
		run("--format="+format, "--no-recursion", "-cf", repacked, "-C", longDir, "-T", longList)
		b, err := os.ReadFile(repacked)
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := bundle.Verify(bytes.NewReader(b), pub); err != nil || !rep.OK() {
			t.Errorf("a bundle with a long key repacked by GNU tar --format=%s: %v %v", format, err, rep.Problems)
		}
	}

	forgeries, err := bundletest.Forge(bundletest.Genuine{Bundle: genuine, Other: seedBundle(t, "c2"), Key: seedKey(2)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		forgery string
		args    []string
		// a and b: the segment unpacked as the genuine bytes of another.
		a, b int
	}{
		{"two segments swapped for GNU tar: GNU long names and PAX paths that disagree", []string{"-x"}, 6, 7},
		{"another tar after the end, with other bytes for a segment", []string{"-x", "-i"}, 6, -1},
	} {
		var f *bundletest.Forgery
		for i := range forgeries {
			if forgeries[i].Name == tc.forgery {
				f = &forgeries[i]
			}
		}
		if f == nil {
			t.Fatalf("no forgery %q", tc.forgery)
		}
		out := filepath.Join(dir, strings.ReplaceAll(tc.forgery[:10], " ", "-"))
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		run(append(tc.args, "-f", tarFile(filepath.Base(out)+".tar", f.Bundle), "-C", out)...)
		got, err := os.ReadFile(filepath.Join(out, files[tc.a].Header.Name))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(got, files[tc.a].Data) || (tc.b >= 0 && !bytes.Equal(got, files[tc.b].Data)) {
			t.Errorf("%s: GNU tar unpacked %s as %q: the forgery does not fool it", tc.forgery, files[tc.a].Header.Name, got)
		}
		rep, err := bundle.Verify(bytes.NewReader(f.Bundle), pub)
		if err != nil || rep.OK() || rep.Problems[0].Kind != bundle.Format {
			t.Errorf("%s: verified %v %v", tc.forgery, err, rep.Problems)
		}
	}
}

type namedBundle struct {
	bundle []byte
	names  []string // of its files, in order
}

// longKeyBundle is a bundle of one init segment whose key is longer than a
// tar header's name field, and not ASCII, signed with seedKey(1).
func longKeyBundle(t *testing.T) namedBundle {
	t.Helper()
	key := seedKey(1)
	d, err := blob.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := "raw/" + strings.Repeat("site-with-a-long-name-", 6) + "/cam/init/Ünïcode-a.mp4"
	data := []byte("ftyp moov")
	if err := d.Put(context.Background(), k, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	manifest, sig, err := seal.Seal(&seal.Manifest{ExamID: "e1", CandidateID: "c1", Version: 1, SealedAt: t0, Entries: []seal.Entry{{
		Kind: seal.KindInit, Key: k, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]), Stream: "site1/cam1", Start: t0, End: t0}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := bundle.Write(context.Background(), &b, d, bundle.Request{Purpose: "check", ExportedBy: "test", ExportedAt: t0,
		Manifest: manifest, Signature: sig, Timeline: map[string]any{}, Audit: []any{}, Key: key}); err != nil {
		t.Fatal(err)
	}
	files, err := bundletest.Read(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	out := namedBundle{bundle: b.Bytes()}
	for _, f := range files {
		out.names = append(out.names, f.Header.Name)
	}
	return out
}
