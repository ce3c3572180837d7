package bundle_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/chain"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// fixture is a sealed candidate-exam in a directory store: streams of
// segments of about segSize bytes (a 6 s segment at 2 Mbit/s).
type fixture struct {
	store    *blob.Dir
	manifest []byte
	sig      []byte
	key      ed25519.PrivateKey
}

func newFixture(tb testing.TB, streams, segments, segSize int) *fixture {
	tb.Helper()
	ctx := context.Background()
	d, err := blob.NewDir(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	rng := mrand.NewChaCha8([32]byte{1})
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var entries []seal.Entry
	for s := range streams {
		stream := fmt.Sprintf("site1/cam%d", s)
		init := make([]byte, 800)
		_, _ = rng.Read(init)
		ikey := fmt.Sprintf("raw/%s/init/%d.mp4", stream, s)
		if err := d.Put(ctx, ikey, bytes.NewReader(init), int64(len(init))); err != nil {
			tb.Fatal(err)
		}
		entries = append(entries, seal.Entry{Kind: seal.KindInit, Key: ikey, Size: int64(len(init)), SHA256: hexSum(init), Stream: stream})
		prev := chain.Zero
		for i := range segments {
			b := make([]byte, segSize+i%997)
			_, _ = rng.Read(b)
			key := fmt.Sprintf("raw/%s/2026-03-02/%010d-x.m4s", stream, i)
			if err := d.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
				tb.Fatal(err)
			}
			sum := hexSum(b)
			link, _ := chain.Next(prev, sum)
			entries = append(entries, seal.Entry{Kind: seal.KindSegment, Key: key, Size: int64(len(b)), SHA256: sum, Stream: stream,
				Sequence: int64(i), Start: t0.Add(time.Duration(i) * 6 * time.Second), End: t0.Add(time.Duration(i+1) * 6 * time.Second),
				PrevChain: prev, Chain: link, Init: ikey})
			prev = link
		}
	}
	m := &seal.Manifest{ExamID: "e1", CandidateID: "c1", Version: 1, SealedAt: t0, Site: "site1", WindowStart: t0,
		WindowEnd: t0.Add(4 * time.Hour), Result: "certificate", Entries: entries}
	manifest, sig, err := seal.Seal(m, key)
	if err != nil {
		tb.Fatal(err)
	}
	return &fixture{store: d, manifest: manifest, sig: sig, key: key}
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (f *fixture) export(tb testing.TB, w io.Writer) bundle.Summary {
	tb.Helper()
	sum, err := bundle.Write(context.Background(), w, f.store, bundle.Request{Purpose: "bench", ExportedBy: "bench",
		ExportedAt: time.Now(), Manifest: f.manifest, Signature: f.sig, Timeline: map[string]any{}, Audit: []any{}, Key: f.key})
	if err != nil {
		tb.Fatal(err)
	}
	return sum
}

// sha256sumRate measures coreutils sha256sum over a file, in bytes per
// second: the yardstick of the verifier and the exporter.
func sha256sumRate(b *testing.B, path string, size int64) float64 {
	b.Helper()
	best := 0.0
	for range 3 {
		start := time.Now()
		if out, err := exec.Command("sha256sum", path).CombinedOutput(); err != nil {
			b.Fatalf("sha256sum: %v: %s", err, out)
		}
		best = max(best, float64(size)/time.Since(start).Seconds())
	}
	return best
}

// BenchmarkBundle measures the export and the verification of a bundle of
// 4 streams of 6 s segments (~1.5 MB each), 192 MiB in all, and reports each
// beside `sha256sum` of the same bytes on this machine (pct_of_sha256sum;
// the goal is at least 80).
func BenchmarkBundle(b *testing.B) {
	f := newFixture(b, 4, 32, 1536<<10)
	path := filepath.Join(b.TempDir(), "bundle.tar")
	out, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	sum := f.export(b, out)
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
	// Read once so that every measurement reads from the page cache.
	if _, err := exec.Command("cat", path).Output(); err != nil {
		b.Fatal(err)
	}
	ref := sha256sumRate(b, path, sum.Total)
	b.Run("sha256sum", func(b *testing.B) {
		b.SetBytes(sum.Total)
		for b.Loop() {
			if err := exec.Command("sha256sum", path).Run(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("export", func(b *testing.B) {
		b.SetBytes(sum.Total)
		start := time.Now()
		for b.Loop() {
			w, err := os.Create(path + ".out")
			if err != nil {
				b.Fatal(err)
			}
			f.export(b, w)
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
		rate := float64(sum.Total) * float64(b.N) / time.Since(start).Seconds()
		b.ReportMetric(100*rate/ref, "pct_of_sha256sum")
	})
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(sum.Total)
		pub := f.key.Public().(ed25519.PublicKey)
		start := time.Now()
		for b.Loop() {
			r, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			rep, err := bundle.Verify(r, pub)
			_ = r.Close()
			if err != nil || !rep.OK() {
				b.Fatalf("verify: %v %v", err, rep.Problems)
			}
		}
		rate := float64(sum.Total) * float64(b.N) / time.Since(start).Seconds()
		b.ReportMetric(100*rate/ref, "pct_of_sha256sum")
	})
}
