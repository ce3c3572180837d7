package bundle_test

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"

	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/bundle/bundletest"
)

// TestVerifyMalformed: what is not a bundle is refused with a reason, never
// passed.
func TestVerifyMalformed(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1, 3, 1000)
	var good bytes.Buffer
	f.export(t, &good)
	pub := f.key.Public().(ed25519.PublicKey)
	if rep, err := bundle.Verify(bytes.NewReader(good.Bytes()), pub); err != nil || !rep.OK() {
		t.Fatalf("good bundle: %v %v", err, rep.Problems)
	}
	onlyReadme := func() []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		_ = tw.WriteHeader(&tar.Header{Name: "evidence-e1-c1/README.txt", Size: 2, Mode: 0o444})
		_, _ = tw.Write([]byte("hi"))
		_ = tw.Close()
		return b.Bytes()
	}
	// Cut where a file begins: archive/tar alone would take it for the end.
	files, err := bundletest.Read(good.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	cut, err := bundletest.Write(files[:5])
	if err != nil {
		t.Fatal(err)
	}
	cut = cut[:len(cut)-1024] // without the end-of-archive blocks
	// A manifest over the cap, its bytes never there: refused unread.
	var huge bytes.Buffer
	tw := tar.NewWriter(&huge)
	_ = tw.WriteHeader(&tar.Header{Name: "evidence-e1-c1/seal/manifest.json", Size: bundle.MaxManifestSize + 1, Mode: 0o444})
	// Directories, as tar -c writes them: the bundle's and those below it
	// hold nothing, but none may stand where a file is.
	withDirs := func(dirs ...string) []byte {
		var out []bundletest.File
		for i, f := range files {
			if i == 0 {
				for _, d := range dirs {
					out = append(out, bundletest.File{Header: tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755}})
				}
			}
			out = append(out, f)
		}
		b, err := bundletest.Write(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if rep, err := bundle.Verify(bytes.NewReader(withDirs("evidence-e1-c1/", "evidence-e1-c1/seal/", "evidence-e1-c1/objects/raw/")), pub); err != nil || !rep.OK() {
		t.Fatalf("a bundle with its directories: %v %v", err, rep.Problems)
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "format: : empty"},
		{"not a tar", []byte(strings.Repeat("not a tar file ", 100)), "format"},
		{"truncated", good.Bytes()[:good.Len()/2], "format"},
		{"no manifest", onlyReadme(), "missing: seal/manifest.json"},
		{"a directory named as a file", withDirs("evidence-e1-c1/seal/manifest.json/"), "format: seal/manifest.json: a directory where"},
		{"a directory outside", withDirs("etc/"), "format: etc/: a directory outside"},
		{"cut between two files", cut, "format: objects/raw/site1/cam0/init/0.mp4: cut short"},
		{"manifest over the cap", huge.Bytes(), "format: seal/manifest.json: 67108865 bytes, more than the 67108864"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep, err := bundle.Verify(bytes.NewReader(tt.in), pub)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || !strings.HasPrefix(rep.Problems[0].String(), tt.want) {
				t.Fatalf("problems %v, want first %q", rep.Problems, tt.want)
			}
		})
	}
}

// TestVerifyManyProblems: a tar of many small bad files does not make the
// report grow with it: the first problems are listed, the others counted.
func TestVerifyManyProblems(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for i := range 3000 {
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("evidence-e1-c1/junk/%d", i), Mode: 0o444, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := bundle.Verify(bytes.NewReader(b.Bytes()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || len(rep.Problems) != 1000 || len(rep.Problems)+rep.MoreProblems != 3000+8 {
		t.Errorf("%d problems listed and %d more, want 1000 listed of 3008 (3000 extra files, 8 missing)", len(rep.Problems), rep.MoreProblems)
	}
}
