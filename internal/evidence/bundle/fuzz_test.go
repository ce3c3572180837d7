package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/bundle/bundletest"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

var update = flag.Bool("update", false, "rewrite the seed corpus of FuzzVerify in testdata/fuzz/FuzzVerify")

// seedKey is a key made from a fixed seed: 1 is the archive's key of the
// seed bundles, 2 a forger's.
func seedKey(n byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, ed25519.SeedSize))
}

// seedBundle is the small genuine bundle of bundletest of candidate cand,
// signed with seedKey(1).
func seedBundle(tb testing.TB, cand string) []byte {
	tb.Helper()
	b, err := bundletest.Small(tb.TempDir(), cand, "appeal 12", seedKey(1))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// seed is a bundle of the seed corpus: the genuine one, or a forgery of it.
type seed struct {
	file    string
	bundle  []byte
	forgery *bundletest.Forgery
}

func seeds(tb testing.TB) []seed {
	tb.Helper()
	genuine := seedBundle(tb, "c1")
	forgeries, err := bundletest.Forge(bundletest.Genuine{Bundle: genuine, Other: seedBundle(tb, "c2"), Key: seedKey(2)})
	if err != nil {
		tb.Fatal(err)
	}
	out := []seed{{file: "genuine", bundle: genuine}}
	notWord := regexp.MustCompile(`[^a-z0-9]+`)
	for i := range forgeries {
		f := &forgeries[i]
		out = append(out, seed{file: strings.Trim(notWord.ReplaceAllString(strings.ToLower(f.Name), "-"), "-"), bundle: f.Bundle, forgery: f})
	}
	return out
}

// corpusFile is a seed as `go test` reads it from testdata/fuzz.
func corpusFile(b []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", b)
}

// TestVerifySeeds: the genuine seed bundle verifies; each forgery of it
// fails, and the first problem names the file forged; the bundle re-signed
// whole with another key verifies only with its own key. The seed corpus of
// FuzzVerify holds them all (-update rewrites it).
func TestVerifySeeds(t *testing.T) {
	pub := seedKey(1).Public().(ed25519.PublicKey)
	dir := filepath.Join("testdata", "fuzz", "FuzzVerify")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range seeds(t) {
		t.Run(s.file, func(t *testing.T) {
			path := filepath.Join(dir, s.file)
			if *update {
				if err := os.WriteFile(path, corpusFile(s.bundle), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, corpusFile(s.bundle)) {
				t.Errorf("the seed corpus file %s is not this seed (%v): go test ./internal/evidence/bundle -run TestVerifySeeds -update", path, err)
			}
			rep, err := bundle.Verify(bytes.NewReader(s.bundle), pub)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Read > int64(len(s.bundle)) {
				t.Errorf("read %d bytes of a bundle of %d", rep.Read, len(s.bundle))
			}
			if s.forgery == nil {
				if !rep.OK() || rep.Objects != 5 {
					t.Fatalf("the genuine seed: %+v", rep)
				}
				return
			}
			if rep.OK() {
				t.Fatalf("forgery verified: %+v", rep)
			}
			if p := rep.Problems[0]; p.Kind != s.forgery.Kind || p.Name != s.forgery.File {
				t.Errorf("first problem %q, want %s of %s; all: %v", p, s.forgery.Kind, s.forgery.File, rep.Problems)
			}
			self, err := bundle.Verify(bytes.NewReader(s.bundle), nil)
			if err != nil {
				t.Fatal(err)
			}
			if self.OK() != s.forgery.SelfSigned || (self.OK() && !self.KeyFromBundle) {
				t.Errorf("with the bundle's own key: ok %v (key from the bundle %v), want %v; %v", self.OK(), self.KeyFromBundle,
					s.forgery.SelfSigned, self.Problems)
			}
		})
	}
}

// FuzzVerify feeds arbitrary bytes to the verifier, with the archive's key
// of the seed corpus (a genuine bundle and every forgery of bundletest): it
// never panics, never reads more than it is given, names a kind for every
// problem, and passes a bundle only if it is the whole truth, as a second,
// simpler reading of the tar checks.
func FuzzVerify(f *testing.F) {
	pub := seedKey(1).Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := bundle.Verify(bytes.NewReader(b), pub)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Read > int64(len(b)) {
			t.Fatalf("read %d bytes of %d", rep.Read, len(b))
		}
		for _, p := range rep.Problems {
			if p.Kind == "" || p.Detail == "" {
				t.Fatalf("a problem without a kind or a detail: %+v", p)
			}
		}
		if rep.OK() {
			if err := wholeTruth(b, pub); err != nil {
				t.Fatalf("verified, but %v", err)
			}
		}
	})
}

// wholeTruth checks a bundle the simple way, in memory: one directory named
// for the manifest's exam and candidate; the eight metadata files and the
// manifest's objects, each once, objects in the manifest's order and
// nothing else; the signatures; export.json naming the manifest and listing
// the other files' hashes.
func wholeTruth(b []byte, pub ed25519.PublicKey) error {
	files, err := bundletest.Read(b)
	if err != nil {
		return err
	}
	byName := map[string][]byte{}
	var objects []string
	var dir string
	for _, f := range files {
		if f.Header.Typeflag == '5' { // a directory
			continue
		}
		if dir == "" {
			dir = f.Header.Name[:strings.IndexByte(f.Header.Name, '/')+1]
		}
		name, ok := strings.CutPrefix(f.Header.Name, dir)
		if !ok || f.Header.Typeflag != '0' {
			return fmt.Errorf("%q is outside %s or not a regular file", f.Header.Name, dir)
		}
		if _, dup := byName[name]; dup {
			return fmt.Errorf("%s twice", name)
		}
		byName[name] = f.Data
		if key, ok := strings.CutPrefix(name, "objects/"); ok {
			objects = append(objects, key)
		}
	}
	manifest := byName[bundletest.Manifest]
	if err := seal.Verify(manifest, byName[bundletest.Signature], pub); err != nil {
		return err
	}
	m, err := seal.Parse(manifest)
	if err != nil {
		return err
	}
	if bundle.Dir(m.ExamID, m.CandidateID) != dir {
		return fmt.Errorf("directory %s, manifest of %s/%s", dir, m.ExamID, m.CandidateID)
	}
	if len(objects) != len(m.Entries) || len(byName) != len(objects)+len(bundletest.Metadata()) {
		return fmt.Errorf("%d files, %d objects, for %d entries", len(byName), len(objects), len(m.Entries))
	}
	for i, e := range m.Entries {
		if objects[i] != e.Key || hexSum(byName["objects/"+e.Key]) != e.SHA256 {
			return fmt.Errorf("object %d is %s, not %s as sealed", i, objects[i], e.Key)
		}
	}
	export := byName[bundletest.Export]
	if !ed25519.Verify(pub, export, byName[bundletest.ExportSig]) {
		return fmt.Errorf("export.json is not signed")
	}
	var x bundle.Export
	if err := json.Unmarshal(export, &x); err != nil {
		return err
	}
	if x.ExamID != m.ExamID || x.CandidateID != m.CandidateID || x.ManifestSHA256 != hexSum(manifest) {
		return fmt.Errorf("export.json names %s/%s, manifest %s", x.ExamID, x.CandidateID, x.ManifestSHA256)
	}
	covered := map[string]bool{}
	for _, f := range x.Files {
		if d, ok := byName[f.Name]; !ok || hexSum(d) != f.SHA256 {
			return fmt.Errorf("%s is not as export.json lists it", f.Name)
		}
		covered[f.Name] = true
	}
	for _, name := range []string{bundletest.Readme, bundletest.Pub, bundletest.Timeline, bundletest.Audit} {
		if !covered[name] {
			return fmt.Errorf("export.json does not list %s", name)
		}
	}
	return nil
}
