package spool_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/ingest/spool"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// record writes seconds of 20 ms Opus-like samples through a real segmenter
// into the spool (the payload bytes are opaque to the segmenter).
func record(t *testing.T, sp *spool.Spool, seconds float64, close bool) *segmenter.Segmenter {
	t.Helper()
	cfg := segmenter.Config{SegmentDuration: 2 * time.Second, PartDuration: 500 * time.Millisecond}
	seg, err := segmenter.New(cfg, []segmenter.Track{{Codec: &mp4.CodecOpus{ChannelCount: 2}, TimeScale: 48000}},
		sp.Stream("site1", "cam1", "room"), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	n := int(seconds * 50)
	for i := 0; i <= n; i++ {
		if err := seg.WriteSample(0, int64(i)*960, 0, true, bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if close {
		if err := seg.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return seg
}

func TestSegmentsAreChainedAndSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(dir, "n1", quiet(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	record(t, sp, 5, true)
	pend, err := sp.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(pend) != 3 {
		t.Fatalf("5 s at 2 s segments gave %d segments, want 3", len(pend))
	}
	for i, p := range pend {
		b, err := os.ReadFile(p.SegmentPath)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != p.Event.SHA256 || int64(len(b)) != p.Event.Bytes {
			t.Errorf("segment %d: event does not describe the spooled bytes", i)
		}
		if err := p.Event.Validate(); err != nil {
			t.Errorf("segment %d: %v", i, err)
		}
	}
	// A new session after a restart continues the sequence and the chain.
	sp2, err := spool.Open(dir, "n1", quiet(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pend {
		if err := sp2.Done(p.Event.SegmentID); err != nil {
			t.Fatal(err)
		}
	}
	record(t, sp2, 1, true)
	next, _ := sp2.Pending()
	if len(next) != 1 || next[0].Event.Sequence != 3 || next[0].Event.PrevChain != pend[2].Event.Chain {
		t.Fatalf("after reopen got %+v, want sequence 3 chained to the previous segment", next)
	}
	if !next[0].Event.Discontinuity {
		t.Errorf("first segment of a new session is not marked as a discontinuity")
	}
}

func TestOpenSegmentIsSalvagedAfterCrash(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(dir, "n1", quiet(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	// 3.3 s: one closed segment, and an open one with parts written
	// (fsync'd) but never closed, as after kill -9.
	record(t, sp, 3.3, false)
	open, _ := filepath.Glob(filepath.Join(dir, "open", "*.m4s"))
	if len(open) != 1 {
		t.Fatalf("want one open segment, have %v", open)
	}
	// A torn write at the end: half a box.
	f, err := os.OpenFile(open[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0, 0, 1, 0, 'm', 'o', 'o', 'f', 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	sp2, err := spool.Open(dir, "n1", quiet(), time.Now)
	if err != nil {
		t.Fatalf("recover: %v", err)
	}
	pend, err := sp2.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(pend) != 2 {
		t.Fatalf("after recovery %d segments pending, want 2 (closed + salvaged)", len(pend))
	}
	s := pend[1].Event
	if !s.Salvaged || s.Sequence != 1 || s.PrevChain != pend[0].Event.Chain {
		t.Errorf("salvaged segment: %+v", s)
	}
	// Parts of 0.5 s were fsync'd: at most one part (plus the held sample)
	// is lost of the 1.3 s that were open.
	if s.Duration < 0.7 || s.Duration > 1.31 {
		t.Errorf("salvaged %.3f s of 1.3 s, want at least 0.7", s.Duration)
	}
	b, _ := os.ReadFile(pend[1].SegmentPath)
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != s.SHA256 {
		t.Errorf("salvaged segment's hash does not match its bytes (torn tail not cut)")
	}
	// Recovering again changes nothing.
	sp3, err := spool.Open(dir, "n1", quiet(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := sp3.Pending()
	if len(again) != 2 || again[1].Event.SegmentID != s.SegmentID {
		t.Errorf("second recovery changed the spool: %d pending", len(again))
	}
}
