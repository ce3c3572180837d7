package bundletest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/chain"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// Small returns a small genuine bundle of candidate cand of exam e1: one
// stream with an init segment and four media segments of a few bytes,
// sealed and exported with key at a fixed time, for purpose. The same
// arguments give the same bytes. dir is an empty directory to store the
// objects in.
func Small(dir, cand, purpose string, key ed25519.PrivateKey) ([]byte, error) {
	ctx := context.Background()
	d, err := blob.NewDir(dir)
	if err != nil {
		return nil, fmt.Errorf("small bundle: %w", err)
	}
	put := func(key string, b []byte) error {
		return d.Put(ctx, key, bytes.NewReader(b), int64(len(b)))
	}
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	stream := "site1/cam1"
	init := []byte("ftyp moov: init of site1/cam1")
	ikey := "raw/site1/cam1/init/a.mp4"
	if err := put(ikey, init); err != nil {
		return nil, fmt.Errorf("small bundle: %w", err)
	}
	entries := []seal.Entry{{Kind: seal.KindInit, Key: ikey, Size: int64(len(init)), SHA256: sha256Hex(init), Stream: stream,
		Start: t0, End: t0.Add(24 * time.Second)}}
	prev := chain.Zero
	for i := range 4 {
		b := []byte(fmt.Sprintf("moof mdat: segment %d of site1/cam1", i))
		key := fmt.Sprintf("raw/site1/cam1/2026-03-02/%010d-x.m4s", i)
		if err := put(key, b); err != nil {
			return nil, fmt.Errorf("small bundle: %w", err)
		}
		sum := sha256Hex(b)
		link, err := chain.Next(prev, sum)
		if err != nil {
			return nil, fmt.Errorf("small bundle: %w", err)
		}
		entries = append(entries, seal.Entry{Kind: seal.KindSegment, Key: key, Size: int64(len(b)), SHA256: sum, Stream: stream,
			Sequence: int64(i), Start: t0.Add(time.Duration(i) * 6 * time.Second), End: t0.Add(time.Duration(i+1) * 6 * time.Second),
			PrevChain: prev, Chain: link, Init: ikey})
		prev = link
	}
	m := &seal.Manifest{ExamID: "e1", CandidateID: cand, Version: 1, SealedAt: t0.Add(time.Hour), Site: "site1", WindowStart: t0,
		WindowEnd: t0.Add(time.Hour), Result: "certificate", Entries: entries}
	manifest, sig, err := seal.Seal(m, key)
	if err != nil {
		return nil, fmt.Errorf("small bundle: %w", err)
	}
	var buf bytes.Buffer
	if _, err := bundle.Write(ctx, &buf, d, bundle.Request{Purpose: purpose, ExportedBy: "council1",
		ExportedAt: t0.Add(2 * time.Hour), Manifest: manifest, Signature: sig,
		Timeline: map[string]any{"exam": "e1", "candidate": cand, "result": "certificate"},
		Audit:    []any{map[string]any{"action": "evidence.export", "actor": "council1"}}, Key: key}); err != nil {
		return nil, fmt.Errorf("small bundle: %w", err)
	}
	return buf.Bytes(), nil
}
