package archiver_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/bundle/bundletest"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/export"
	"github.com/nokstream/nokstream/registry/store"
)

// exportOther archives a real clip from candidate c2's webcam in the exam of
// exportedBundle, records c2's certificate (which seals c2's evidence) and
// exports c2's bundle: a genuine bundle of another candidate, from the same
// archive.
func exportOther(t *testing.T, e *env) []byte {
	t.Helper()
	ctx := t.Context()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	e.archiveClip("ws2-cam", events.SourceWebcam,
		cutClip(t, testenv.ClipSpec{Size: "240x180", FPS: 25, Seconds: 24}, 6*time.Second, start.Add(time.Hour)))
	now := e.clock.Now()
	if err := e.st.RecordResult(ctx, &store.Result{ExamID: "e1", CandidateID: "c2", Kind: store.ResultCertificate,
		CertificateNumber: "01.00000.08", IssuedOn: now}, 0, now); err != nil {
		t.Fatal(err)
	}
	e.relay(now)
	var buf bytes.Buffer
	if _, err := export.Bundle(ctx, &buf, e.st, e.blob, e.key, export.Request{ExamID: "e1", CandidateID: "c2",
		Purpose: "апелляция № 13", ActorLogin: "council-user"}, now); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestBundleForgeries is the tamper matrix, on a bundle exported from a
// real exam (segments cut by ingest's segmenter from an ffmpeg clip,
// archived, sealed): a byte flipped in a segment, an init segment and each
// metadata file; an object dropped, duplicated, reordered or two swapping
// their bytes; each metadata file twice; a second manifest naming another
// candidate, before and after the objects; a metadata file after the
// objects began; a file outside the bundle's directory; the seal of
// another candidate; export.json of another candidate's bundle; the bundle
// re-signed whole with another key. Each fails with the archive's key,
// naming the file, and is read once, no further than its end.
func TestBundleForgeries(t *testing.T) {
	t.Parallel()
	genuine, e, _, _ := exportedBundle(t)
	other := exportOther(t, e)
	pub := e.key.Public().(ed25519.PublicKey)
	for _, b := range [][]byte{genuine, other} {
		if rep, err := bundle.Verify(bytes.NewReader(b), pub); err != nil || !rep.OK() {
			t.Fatalf("a genuine bundle does not verify: %v %v", err, rep.Problems)
		}
	}
	_, forger, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	forgeries, err := bundletest.Forge(bundletest.Genuine{Bundle: genuine, Other: other, Key: forger})
	if err != nil {
		t.Fatal(err)
	}
	if len(forgeries) < 29 {
		t.Fatalf("%d forgeries", len(forgeries))
	}
	for _, f := range forgeries {
		t.Run(f.Name, func(t *testing.T) {
			t.Parallel()
			rep, err := bundle.Verify(bytes.NewReader(f.Bundle), pub)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatalf("the forgery verified: %+v", rep)
			}
			t.Logf("%v", rep.Problems)
			if p := rep.Problems[0]; p.Kind != f.Kind || p.Name != f.File {
				t.Errorf("first problem %q, want %s of %s; all: %v", p, f.Kind, f.File, rep.Problems)
			}
			if rep.Read > int64(len(f.Bundle)) {
				t.Errorf("read %d bytes of a bundle of %d", rep.Read, len(f.Bundle))
			}
			// With no key, the bundle's own: only the one signed whole by
			// the forger's key passes, and says its key is the bundle's.
			self, err := bundle.Verify(bytes.NewReader(f.Bundle), nil)
			if err != nil {
				t.Fatal(err)
			}
			if self.OK() != f.SelfSigned || (self.OK() && !self.KeyFromBundle) {
				t.Errorf("with the bundle's own key: ok %v (key from the bundle %v), want %v; %v", self.OK(), self.KeyFromBundle,
					f.SelfSigned, self.Problems)
			}
		})
	}
}
