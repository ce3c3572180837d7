package bundle_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// patternObjects is a store of one object of size bytes, made as it is read.
type patternObjects struct {
	key  string
	size int64
}

func (p patternObjects) Stat(context.Context, string) (blob.Attrs, error) {
	return blob.Attrs{Size: p.size}, nil
}

func (p patternObjects) Get(context.Context, string) (io.ReadCloser, error) {
	return io.NopCloser(io.LimitReader(pattern{}, p.size)), nil
}

// pattern is an endless reader of bytes that are not all zeros.
type pattern struct{}

func (pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	return len(b), nil
}

// TestVerifyStreams: a bundle with a 64 MiB object, written and verified
// through a pipe, is checked without being held: both together allocate a
// small part of it.
func TestVerifyStreams(t *testing.T) {
	const size = 64 << 20
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(pattern{}, size)); err != nil {
		t.Fatal(err)
	}
	key := seedKey(1)
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	objs := patternObjects{key: "raw/site1/cam1/init/big.mp4", size: size}
	manifest, sig, err := seal.Seal(&seal.Manifest{ExamID: "e1", CandidateID: "c1", Version: 1, SealedAt: t0, Site: "site1",
		WindowStart: t0, WindowEnd: t0.Add(time.Hour), Entries: []seal.Entry{{Kind: seal.KindInit, Key: objs.key, Size: size,
			SHA256: hex.EncodeToString(h.Sum(nil)), Stream: "site1/cam1", Start: t0, End: t0.Add(time.Hour)}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	pr, pw := io.Pipe()
	go func() {
		_, err := bundle.Write(context.Background(), pw, objs, bundle.Request{Purpose: "check", ExportedBy: "test", ExportedAt: t0,
			Manifest: manifest, Signature: sig, Timeline: map[string]any{}, Audit: []any{}, Key: key})
		pw.CloseWithError(err)
	}()
	rep, err := bundle.Verify(pr, key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, pr) // until the writer is done
	runtime.ReadMemStats(&after)
	if !rep.OK() || rep.Bytes != size {
		t.Fatalf("report %+v", rep)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("writing and verifying a bundle of %d MiB allocated %d MiB", size>>20, alloc>>20)
	}
}
