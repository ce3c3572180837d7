package archiver_test

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"github.com/nokstream/nokstream/archiver"
	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/seal"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/export"
	"github.com/nokstream/nokstream/registry/store"
)

// realSegment is one segment cut by ingest's segmenter.
type realSegment struct {
	start time.Time
	dur   time.Duration
	init  []byte
	data  []byte
}

type memOutput struct{ segs []*memSegment }

type memSegment struct {
	h   segmenter.Header
	buf bytes.Buffer
	dur time.Duration
}

func (o *memOutput) OpenSegment(h segmenter.Header) (segmenter.SegmentWriter, error) {
	s := &memSegment{h: h}
	o.segs = append(o.segs, s)
	return s, nil
}

func (s *memSegment) WritePart(b []byte) error    { s.buf.Write(b); return nil }
func (s *memSegment) Close(d time.Duration) error { s.dur = d; return nil }

var clipOnce = struct {
	sync.Mutex
	clips map[string]*testenv.Clip
}{clips: map[string]*testenv.Clip{}}

// cutClip encodes a test clip with ffmpeg and cuts it with ingest's
// segmenter into keyframe-aligned fMP4 segments of about segDur, as if it had
// arrived over RTSP starting at start.
func cutClip(t testing.TB, spec testenv.ClipSpec, segDur time.Duration, start time.Time) []realSegment {
	t.Helper()
	clipOnce.Lock()
	key := spec.Size + spec.Bitrate
	clip := clipOnce.clips[key]
	if clip == nil {
		var err error
		clip, err = testenv.ReadClip(testenv.EncodeClip(t, t.TempDir(), spec))
		if err != nil {
			clipOnce.Unlock()
			t.Fatal(err)
		}
		clipOnce.clips[key] = clip
	}
	clipOnce.Unlock()
	cfg := segmenter.DefaultConfig()
	cfg.SegmentDuration = segDur
	out := &memOutput{}
	var at time.Time
	sg, err := segmenter.New(cfg, []segmenter.Track{{Codec: &mp4.CodecH264{SPS: clip.SPS, PPS: clip.PPS}, TimeScale: 90000}},
		out, func() time.Time { return at })
	if err != nil {
		t.Fatal(err)
	}
	h := segmenter.NewH264(sg, 0, clip.SPS, clip.PPS)
	for _, f := range clip.Frames {
		if !f.Video {
			continue
		}
		at = start.Add(f.DTS)
		if err := h.Write(int64(f.PTS*90000/time.Second), f.AU); err != nil {
			t.Fatalf("segmenter: %v", err)
		}
	}
	if err := sg.Close(); err != nil {
		t.Fatal(err)
	}
	var segs []realSegment
	for _, s := range out.segs {
		segs = append(segs, realSegment{start: s.h.Start.Truncate(time.Millisecond), dur: s.dur, init: s.h.Init, data: bytes.Clone(s.buf.Bytes())})
	}
	return segs
}

// archiveClip archives the segments of a real clip as stream site1/<device>.
func (e *env) archiveClip(device, source string, segs []realSegment) []*events.SegmentClosed {
	e.t.Helper()
	stream := "site1/" + device
	prev := strings.Repeat("0", 64)
	var evs []*events.SegmentClosed
	for i, s := range segs {
		ev := e.event(stream, device, source, int64(i), prev, s.start, s.dur, s.data, s.init)
		prev = ev.Chain
		e.deliver(ev)
		evs = append(evs, ev)
	}
	return evs
}

// exportedBundle archives a real clip from a room camera and a candidate's
// webcam, records the candidate's certificate (which seals the
// candidate-exam) and exports the evidence bundle.
func exportedBundle(t *testing.T) (b []byte, e *env, room, webcam []*events.SegmentClosed) {
	t.Helper()
	ctx := t.Context()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	c := &clock{now: start.Add(5 * time.Hour)}
	e = newEnv(t, dirStore(t, c), archiver.DefaultConfig(), c)
	e.exam("e1", start, start.Add(4*time.Hour))
	spec := testenv.ClipSpec{Size: "320x240", FPS: 25, Seconds: 24}
	room = e.archiveClip("cam1", events.SourceRoom, cutClip(t, spec, 6*time.Second, start.Add(time.Hour)))
	spec.Size = "240x180" // other bytes than the room camera's
	webcam = e.archiveClip("ws1-cam", events.SourceWebcam, cutClip(t, spec, 6*time.Second, start.Add(time.Hour)))
	if len(room) < 4 {
		t.Fatalf("the clip gave %d segments, want at least 4", len(room))
	}
	c.Set(start.Add(24 * time.Hour))
	if err := e.st.RecordResult(ctx, &store.Result{ExamID: "e1", CandidateID: "c1", Kind: store.ResultCertificate,
		CertificateNumber: "01.00000.07", IssuedOn: c.Now()}, 0, c.Now()); err != nil {
		t.Fatal(err)
	}
	e.relay(c.Now())
	var buf bytes.Buffer
	sum, err := export.Bundle(ctx, &buf, e.st, e.blob, e.key, export.Request{ExamID: "e1", CandidateID: "c1",
		Purpose: "апелляция № 12 / appeal no. 12", ActorLogin: "council-user"}, c.Now())
	if err != nil {
		t.Fatal(err)
	}
	if want := len(room) + len(webcam) + 2; sum.Objects != want || len(sum.Problems) != 0 {
		t.Fatalf("export: %+v, want %d objects and no problems", sum, want)
	}
	return buf.Bytes(), e, room, webcam
}

// tarEntry is one file of a tar.
type tarEntry struct {
	hdr  *tar.Header
	data []byte
}

func readTar(t *testing.T, b []byte) []tarEntry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []tarEntry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr: h, data: data})
	}
}

func writeTar(t *testing.T, es []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := *e.hdr
		h.Size = int64(len(e.data))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func index(t *testing.T, es []tarEntry, suffix string) int {
	t.Helper()
	for i, e := range es {
		if strings.HasSuffix(e.hdr.Name, suffix) {
			return i
		}
	}
	t.Fatalf("no %s in the bundle", suffix)
	return -1
}

// TestBundleTamper exports a real bundle (segments cut by ingest's
// segmenter from an ffmpeg clip, archived, sealed) and checks that it
// verifies, and that each kind of tampering is detected and named: a byte
// flipped in a segment, a segment dropped, two reordered, one added, the
// manifest altered, and the wrong key.
func TestBundleTamper(t *testing.T) {
	t.Parallel()
	b, e, room, webcam := exportedBundle(t)
	pub := e.key.Public().(ed25519.PublicKey)
	rep, err := bundle.Verify(bytes.NewReader(b), pub)
	if err != nil || !rep.OK() {
		t.Fatalf("the exported bundle does not verify: %v %+v", err, rep)
	}
	if rep.Objects != len(room)+len(webcam)+2 || rep.Export == nil || rep.Export.Purpose != "апелляция № 12 / appeal no. 12" {
		t.Fatalf("report %+v", rep)
	}
	seg := func(ev *events.SegmentClosed) string { return "objects/" + ev.ObjectKey }
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)

	tests := []struct {
		name   string
		tamper func(es []tarEntry) []tarEntry
		key    ed25519.PublicKey
		kind   string
		file   string // the file named first
	}{
		{"flip one byte in a segment", func(es []tarEntry) []tarEntry {
			i := index(t, es, room[2].ObjectKey)
			es[i].data = bytes.Clone(es[i].data)
			es[i].data[len(es[i].data)/2] ^= 0x01
			return es
		}, pub, bundle.Altered, seg(room[2])},
		{"drop a segment", func(es []tarEntry) []tarEntry {
			i := index(t, es, webcam[1].ObjectKey)
			return append(es[:i:i], es[i+1:]...)
		}, pub, bundle.Missing, seg(webcam[1])},
		{"reorder two", func(es []tarEntry) []tarEntry {
			i, j := index(t, es, room[1].ObjectKey), index(t, es, room[2].ObjectKey)
			es[i], es[j] = es[j], es[i]
			return es
		}, pub, bundle.Reordered, seg(room[1])},
		{"swap the bytes of two", func(es []tarEntry) []tarEntry {
			i, j := index(t, es, room[1].ObjectKey), index(t, es, room[2].ObjectKey)
			es[i].data, es[j].data = es[j].data, es[i].data
			return es
		}, pub, bundle.Reordered, seg(room[1])},
		{"add one", func(es []tarEntry) []tarEntry {
			i := index(t, es, room[3].ObjectKey)
			extra := tarEntry{hdr: &tar.Header{Name: strings.Replace(es[i].hdr.Name, "-x.m4s", "-y.m4s", 1), Mode: 0o444,
				Typeflag: tar.TypeReg}, data: []byte("a segment that was never recorded")}
			return append(es[:i+1:i+1], append([]tarEntry{extra}, es[i+1:]...)...)
		}, pub, bundle.Extra, "objects/" + strings.Replace(room[3].ObjectKey, "-x.m4s", "-y.m4s", 1)},
		{"alter the manifest: an object's hash", func(es []tarEntry) []tarEntry {
			i := index(t, es, "seal/manifest.json")
			es[i].data = bytes.Replace(es[i].data, []byte(room[0].SHA256), bytes.Repeat([]byte("0"), 64), 1)
			return es
		}, pub, bundle.Manifest, "seal/manifest.json"},
		{"alter the manifest: whose evidence", func(es []tarEntry) []tarEntry {
			i := index(t, es, "seal/manifest.json")
			es[i].data = bytes.Replace(es[i].data, []byte(`"candidate_id": "c1"`), []byte(`"candidate_id": "c2"`), 1)
			return es
		}, pub, bundle.Manifest, "seal/manifest.json"},
		{"alter the timeline", func(es []tarEntry) []tarEntry {
			i := index(t, es, "timeline.json")
			es[i].data = bytes.Replace(es[i].data, []byte("01.00000.07"), []byte("01.00000.08"), 1)
			return es
		}, pub, bundle.Altered, "timeline.json"},
		{"use the wrong key", func(es []tarEntry) []tarEntry { return es }, otherPub, bundle.WrongKey, "seal/manifest.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tampered := writeTar(t, tt.tamper(readTar(t, b)))
			rep, err := bundle.Verify(bytes.NewReader(tampered), tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Fatalf("tampered bundle verified")
			}
			first := rep.Problems[0]
			t.Logf("%s: %v", tt.name, rep.Problems)
			if first.Kind != tt.kind || first.Name != tt.file {
				t.Errorf("first problem %q, want %s of %s; all: %v", first, tt.kind, tt.file, rep.Problems)
			}
		})
	}
}

// TestBundleByHand follows the README: the manifest's signature verifies
// with openssl, and every object's sha256sum matches its entry.
func TestBundleByHand(t *testing.T) {
	t.Parallel()
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("no openssl")
	}
	b, _, _, _ := exportedBundle(t)
	dir := t.TempDir()
	var manifest []byte
	var top string
	for _, en := range readTar(t, b) {
		p := filepath.Join(dir, filepath.FromSlash(en.hdr.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, en.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(en.hdr.Name, "seal/manifest.json") {
			manifest, top = en.data, strings.TrimSuffix(p, filepath.FromSlash("seal/manifest.json"))
		}
	}
	out, err := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", filepath.Join(top, "seal", "seal.pub"),
		"-rawin", "-in", filepath.Join(top, "seal", "manifest.json"), "-sigfile", filepath.Join(top, "seal", "manifest.sig")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Signature Verified Successfully") {
		t.Fatalf("openssl: %v: %s", err, out)
	}
	m, err := seal.Parse(manifest)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range m.Entries {
		out, err := exec.Command("sha256sum", filepath.Join(top, "objects", filepath.FromSlash(en.Key))).Output()
		if err != nil || !strings.HasPrefix(string(out), en.SHA256) {
			t.Errorf("sha256sum %s: %v %s, want %s", en.Key, err, out, en.SHA256)
		}
	}
}
