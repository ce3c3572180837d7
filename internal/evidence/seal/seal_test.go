package seal_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/evidence/chain"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

func entries(n int) []seal.Entry {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	prev := chain.Zero
	out := []seal.Entry{{Kind: seal.KindInit, Key: "raw/s/cam1/init/a.mp4", Size: 10, SHA256: strings.Repeat("a", 64), Stream: "s/cam1"}}
	for i := range n {
		sum := sha256.Sum256([]byte{byte(i)})
		sha := hex.EncodeToString(sum[:])
		link, _ := chain.Next(prev, sha)
		out = append(out, seal.Entry{Kind: seal.KindSegment, Key: fmt.Sprintf("raw/s/cam1/%010d.m4s", i), Size: 100, SHA256: sha,
			Stream: "s/cam1", Sequence: int64(i), Start: t0.Add(time.Duration(i) * 6 * time.Second),
			End: t0.Add(time.Duration(i+1) * 6 * time.Second), PrevChain: prev, Chain: link, Init: "raw/s/cam1/init/a.mp4"})
		prev = link
	}
	return out
}

// naiveRoot is RFC 6962's MTH written the obvious way, to check Root.
func naiveRoot(leaves [][]byte) [32]byte {
	if len(leaves) == 0 {
		return sha256.Sum256(nil)
	}
	if len(leaves) == 1 {
		return sha256.Sum256(append([]byte{0}, leaves[0]...))
	}
	k := 1
	for 2*k < len(leaves) {
		k *= 2
	}
	l, r := naiveRoot(leaves[:k]), naiveRoot(leaves[k:])
	return sha256.Sum256(append(append([]byte{1}, l[:]...), r[:]...))
}

func TestRoot(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 4, 5, 7, 8, 9, 100} {
		es := entries(n)
		var leaves [][]byte
		for _, e := range es {
			leaves = append(leaves, seal.Leaf(e))
		}
		if got, want := seal.Root(es), naiveRoot(leaves); got != want {
			t.Errorf("%d entries: root %x, want %x", len(es), got, want)
		}
	}
	if got := string(seal.Leaf(entries(1)[1])); !strings.HasPrefix(got, "segment\traw/s/cam1/0000000000.m4s\t100\t") ||
		!strings.Contains(got, "\t2026-03-02T09:00:00Z\t2026-03-02T09:00:06Z\t") || !strings.HasSuffix(got, "\traw/s/cam1/init/a.mp4\n") {
		t.Errorf("leaf %q", got)
	}
}

func TestSealParseVerify(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	m := &seal.Manifest{ExamID: "e1", CandidateID: "c1", Version: 1, SealedAt: time.Now().UTC(), Entries: entries(5)}
	manifest, sig, err := seal.Seal(m, priv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seal.Parse(manifest); err != nil {
		t.Fatalf("parse: %v", err)
	}
	if err := seal.Verify(manifest, sig, pub); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if gaps := seal.Breaks(m.Entries); len(gaps) != 0 {
		t.Errorf("breaks of a whole chain: %+v", gaps)
	}
	tests := []struct {
		name  string
		edit  func(string) string
		parse error // from Parse, or nil if only the signature fails
	}{
		{"altered hash", func(s string) string { return strings.Replace(s, entries(5)[3].SHA256, strings.Repeat("f", 64), 1) }, seal.ErrRoot},
		{"altered size", func(s string) string { return strings.Replace(s, `"size": 100`, `"size": 101`, 1) }, seal.ErrRoot},
		{"identity changed, signature stale", func(s string) string {
			return strings.Replace(s, `"candidate_id": "c1"`, `"candidate_id": "c2"`, 1)
		}, nil},
		{"not JSON", func(s string) string { return s[:20] }, seal.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := []byte(tt.edit(string(manifest)))
			_, err := seal.Parse(b)
			if !errors.Is(err, tt.parse) && !(tt.parse == nil && err == nil) {
				t.Fatalf("parse: %v, want %v", err, tt.parse)
			}
			if err := seal.Verify(b, sig, pub); !errors.Is(err, seal.ErrSignature) {
				t.Fatalf("verify: %v, want ErrSignature", err)
			}
		})
	}
	if err := seal.Verify(manifest, sig, other); !errors.Is(err, seal.ErrSignature) {
		t.Fatalf("verify with another key: %v", err)
	}
	// Breaks name what does not link.
	es := entries(5)
	es = append(es[:3], es[4:]...) // drop segment 2
	if gaps := seal.Breaks(es); len(gaps) != 1 || gaps[0].After != 1 || gaps[0].Next != 3 {
		t.Errorf("breaks with segment 2 missing: %+v", gaps)
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "seal.ed25519")
	k1, err := seal.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := seal.LoadOrCreateKey(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load: %v, same key %v", err, bytes.Equal(k1, k2))
	}
	pub := k1.Public().(ed25519.PublicKey)
	for _, text := range []string{string(seal.MarshalPublicKey(pub)), hex.EncodeToString(pub)} {
		got, err := seal.ParsePublicKey([]byte(text))
		if err != nil || !bytes.Equal(got, pub) {
			t.Errorf("parse %q: %v", text, err)
		}
	}
	if len(seal.KeyID(pub)) != 16 {
		t.Errorf("key id %q", seal.KeyID(pub))
	}
}
