package bundle_test

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/nokstream/nokstream/archiver/bundle"
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
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "format: : empty"},
		{"not a tar", []byte(strings.Repeat("not a tar file ", 100)), "format"},
		{"truncated", good.Bytes()[:good.Len()/2], "format"},
		{"no manifest", onlyReadme(), "missing: seal/manifest.json"},
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
