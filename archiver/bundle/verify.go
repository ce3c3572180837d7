package bundle

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/nokstream/nokstream/archiver/seal"
)

// Kinds of problems Verify reports.
const (
	Altered   = "altered"   // an object's bytes differ from the manifest
	Missing   = "missing"   // an object of the manifest is not in the bundle
	Reordered = "reordered" // an object is out of the manifest's order
	Extra     = "extra"     // a file the manifest and export do not list
	Manifest  = "manifest"  // the manifest is altered or unreadable
	WrongKey  = "key"       // signed, but not by the key given
	Signature = "signature" // a signature does not verify
	Chain     = "chain"     // a stream's hash chain does not link
	Format    = "format"    // not a bundle
)

// Problem is one thing wrong with a bundle.
type Problem struct {
	Kind string `json:"kind"`
	// Name is the file of the bundle, below its directory.
	Name   string `json:"name"`
	Detail string `json:"detail"`
}

func (p Problem) String() string { return p.Kind + ": " + p.Name + ": " + p.Detail }

// Report is what Verify found.
type Report struct {
	ExamID      string
	CandidateID string
	KeyID       string
	// KeyFromBundle is set when no key was given and the bundle's own key
	// was used: integrity is proved, origin is not.
	KeyFromBundle bool
	MerkleRoot    string
	Objects       int
	Bytes         int64 // of the objects
	Read          int64 // of the tar
	// Problems, in the order found; the first is the first bad object.
	Problems []Problem
	// Warnings are breaks the seal itself declares (a segment lost before
	// sealing) and problems export.json declares.
	Warnings []string
	Export   *Export
}

// OK reports whether the bundle verified.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// verifier is the state of one pass over a bundle.
type verifier struct {
	r        *Report
	key      ed25519.PublicKey // given, or nil
	dir      string
	bundled  ed25519.PublicKey
	manifest []byte
	m        *seal.Manifest
	signedBy ed25519.PublicKey // the key the manifest verified with, nil if it did not
	pos      map[string]int    // object key → index in the manifest
	bySHA    map[string]int    // sha256 → index, to name swapped contents
	seen     []bool
	pending  map[int]bool // skipped over, not seen yet
	next     int          // index of the object expected next
	lastSeen int          // index of the last object seen
	files    map[string]File
	export   []byte
	buf      []byte
}

func (v *verifier) problem(kind, name, format string, args ...any) {
	v.r.Problems = append(v.r.Problems, Problem{Kind: kind, Name: name, Detail: fmt.Sprintf(format, args...)})
}

// Verify checks a bundle read once from r, offline: every object's size and
// SHA-256 against the manifest, the objects' order and completeness, each
// stream's hash chain, the manifest's Merkle root and signature, and
// export.json with its signature and the hashes of the other files. key is
// the archive's public key; nil uses the one in the bundle (which proves
// integrity, not origin). Problems with the bundle are in the report; the
// error is for a bundle that cannot be read at all.
func Verify(r io.Reader, key ed25519.PublicKey) (*Report, error) {
	cr := &countReader{r: r}
	v := &verifier{r: &Report{}, key: key, files: map[string]File{}, pending: map[int]bool{}, lastSeen: -1,
		buf: make([]byte, 1<<20)}
	tr := tar.NewReader(bufio.NewReaderSize(cr, 1<<20))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			v.problem(Format, "", "not a readable tar file: %v", err)
			break
		}
		if h.Typeflag == tar.TypeDir {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			v.problem(Extra, h.Name, "not a regular file")
			continue
		}
		if v.dir == "" {
			i := strings.IndexByte(h.Name, '/')
			if i < 0 || !strings.HasPrefix(h.Name, "evidence-") {
				v.problem(Format, h.Name, "not an evidence bundle: files must be under evidence-<exam>-<candidate>/")
				break
			}
			v.dir = h.Name[:i+1]
		}
		name, ok := strings.CutPrefix(h.Name, v.dir)
		if !ok {
			v.problem(Extra, h.Name, "outside the bundle's directory %s", v.dir)
			continue
		}
		if err := v.file(name, h.Size, tr); err != nil {
			v.problem(Format, name, "cannot read: %v", err)
			break
		}
	}
	v.finish()
	v.r.Read = cr.n
	return v.r, nil
}

// file handles one file of the bundle.
func (v *verifier) file(name string, size int64, r io.Reader) error {
	switch {
	case strings.HasPrefix(name, objectsDir):
		return v.object(strings.TrimPrefix(name, objectsDir), size, r)
	case name == fileManifest:
		b, err := readSmall(r, size)
		if err != nil {
			return err
		}
		v.manifest = b
		m, err := seal.Parse(b)
		if err != nil {
			v.problem(Manifest, name, "%v", err)
			return nil
		}
		v.setManifest(m)
	case name == fileSignature:
		b, err := readSmall(r, size)
		if err != nil {
			return err
		}
		v.checkSeal(b)
	case name == filePub:
		b, err := readSmall(r, size)
		if err != nil {
			return err
		}
		v.files[name] = File{Name: name, Size: size, SHA256: sha256Hex(b)}
		if k, err := seal.ParsePublicKey(b); err == nil {
			v.bundled = k
		} else {
			v.problem(Format, name, "%v", err)
		}
	case name == fileReadme || name == fileTimeline || name == fileAudit:
		h := sha256.New()
		n, err := io.CopyBuffer(h, r, v.buf)
		if err != nil {
			return err
		}
		v.files[name] = File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
	case name == fileExport:
		b, err := readSmall(r, size)
		if err != nil {
			return err
		}
		v.export = b
	case name == fileExportSig:
		b, err := readSmall(r, size)
		if err != nil {
			return err
		}
		v.checkExport(b)
	default:
		v.problem(Extra, name, "not part of an evidence bundle")
		_, err := io.CopyBuffer(io.Discard, r, v.buf)
		return err
	}
	return nil
}

func readSmall(r io.Reader, size int64) ([]byte, error) {
	if size > maxMetadataSize {
		return nil, fmt.Errorf("%d bytes, more than %d", size, maxMetadataSize)
	}
	return io.ReadAll(r)
}

func (v *verifier) setManifest(m *seal.Manifest) {
	v.m = m
	v.r.ExamID, v.r.CandidateID, v.r.MerkleRoot = m.ExamID, m.CandidateID, m.MerkleRoot
	v.pos = make(map[string]int, len(m.Entries))
	v.bySHA = make(map[string]int, len(m.Entries))
	for i, e := range m.Entries {
		v.pos[e.Key] = i
		v.bySHA[e.SHA256] = i
	}
	v.seen = make([]bool, len(m.Entries))
	// The chains, as the signed manifest states them: every break must be
	// one the seal declares.
	declared := map[string]bool{}
	for _, g := range m.Gaps {
		declared[fmt.Sprintf("%s/%d/%d", g.Stream, g.After, g.Next)] = true
		v.r.Warnings = append(v.r.Warnings, fmt.Sprintf("stream %s: %s (declared by the seal)", g.Stream, g.Detail))
	}
	for _, g := range seal.Breaks(m.Entries) {
		if !declared[fmt.Sprintf("%s/%d/%d", g.Stream, g.After, g.Next)] {
			v.problem(Chain, fileManifest, "stream %s: %s", g.Stream, g.Detail)
		}
	}
	for _, p := range m.Problems {
		v.r.Warnings = append(v.r.Warnings, fmt.Sprintf("%s: %s (declared by the seal)", p.Key, p.Detail))
	}
}

// checkSeal checks the manifest's signature with the given key, or the
// bundle's own. A signature that verifies with the bundle's key and not with
// the given one is a wrong key, not an altered manifest.
func (v *verifier) checkSeal(sig []byte) {
	if v.manifest == nil {
		v.problem(Format, fileSignature, "comes before the manifest")
		return
	}
	key := v.key
	if key == nil {
		key = v.bundled
		v.r.KeyFromBundle = true
	}
	if key == nil {
		v.problem(Signature, fileSignature, "no key: give --pubkey, or the bundle must hold seal/seal.pub")
		return
	}
	v.r.KeyID = seal.KeyID(key)
	if err := seal.Verify(v.manifest, sig, key); err == nil {
		v.signedBy = key
		return
	}
	if v.key != nil && v.bundled != nil && !v.key.Equal(v.bundled) && seal.Verify(v.manifest, sig, v.bundled) == nil {
		v.problem(WrongKey, fileManifest, "signed by key %s, not by the given key %s", seal.KeyID(v.bundled), seal.KeyID(v.key))
		return
	}
	v.problem(Manifest, fileManifest, "altered: its signature does not verify with key %s", seal.KeyID(key))
}

// object checks one object against the manifest while reading it.
func (v *verifier) object(key string, size int64, r io.Reader) error {
	h := sha256.New()
	n, err := io.CopyBuffer(h, r, v.buf)
	if err != nil {
		return err
	}
	name := objectsDir + key
	if v.m == nil {
		if len(v.r.Problems) == 0 {
			v.problem(Format, name, "comes before the manifest")
		}
		return nil
	}
	sum := hex.EncodeToString(h.Sum(nil))
	i, listed := v.pos[key]
	if !listed {
		if j, ok := v.bySHA[sum]; ok {
			v.problem(Extra, name, "not in the manifest; it holds the bytes of %s%s", objectsDir, v.m.Entries[j].Key)
		} else {
			v.problem(Extra, name, "not in the manifest")
		}
		return nil
	}
	if v.seen[i] {
		v.problem(Extra, name, "appears twice")
		return nil
	}
	v.seen[i] = true
	v.r.Objects++
	v.r.Bytes += n
	switch {
	case i == v.next:
		v.next++
	case i > v.next:
		for j := v.next; j < i; j++ {
			if !v.seen[j] {
				v.pending[j] = true
			}
		}
		v.next = i + 1
	default: // i < v.next: it was skipped over
		delete(v.pending, i)
		v.problem(Reordered, name, "out of order: it comes after %s%s, which the manifest lists after it",
			objectsDir, v.m.Entries[v.lastSeen].Key)
	}
	v.lastSeen = max(v.lastSeen, i)
	e := v.m.Entries[i]
	if sum != e.SHA256 || n != e.Size {
		if j, ok := v.bySHA[sum]; ok && j != i {
			v.problem(Reordered, name, "holds the bytes of %s%s (sha256 %s): objects were swapped", objectsDir, v.m.Entries[j].Key, sum[:16])
		} else {
			v.problem(Altered, name, "%d bytes with sha256 %s; the manifest says %d bytes with sha256 %s", n, sum, e.Size, e.SHA256)
		}
	}
	return nil
}

// checkExport checks export.json's signature and the files it lists.
func (v *verifier) checkExport(sig []byte) {
	if v.export == nil {
		v.problem(Format, fileExportSig, "comes before export.json")
		return
	}
	key := v.key
	if key == nil {
		key = v.bundled
	}
	verifies := func(k ed25519.PublicKey) bool {
		return k != nil && len(sig) == ed25519.SignatureSize && ed25519.Verify(k, v.export, sig)
	}
	switch {
	case verifies(key):
	case v.key != nil && verifies(v.bundled):
		// Signed by the bundle's key, not the given one: a wrong key,
		// already named if the seal was signed by it too.
		if !slices.ContainsFunc(v.r.Problems, func(p Problem) bool { return p.Kind == WrongKey }) {
			v.problem(WrongKey, fileExport, "signed by key %s, not by the given key %s", seal.KeyID(v.bundled), seal.KeyID(v.key))
		}
	default:
		v.problem(Signature, fileExport, "altered: its signature does not verify")
		return
	}
	var x Export
	dec := json.NewDecoder(bytes.NewReader(v.export))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&x); err != nil || x.Format != ExportFormat {
		v.problem(Format, fileExport, "unreadable: %v", err)
		return
	}
	v.r.Export = &x
	if v.manifest != nil && x.ManifestSHA256 != sha256Hex(v.manifest) {
		v.problem(Manifest, fileManifest, "is not the manifest this bundle was exported with")
	}
	for _, f := range x.Files {
		got, ok := v.files[f.Name]
		switch {
		case !ok:
			v.problem(Missing, f.Name, "listed in export.json, not in the bundle")
		case got.SHA256 != f.SHA256 || got.Size != f.Size:
			v.problem(Altered, f.Name, "%d bytes with sha256 %s; export.json says %d bytes with sha256 %s", got.Size, got.SHA256, f.Size, f.SHA256)
		}
		delete(v.files, f.Name)
	}
	for name := range v.files {
		v.problem(Extra, name, "not listed in export.json")
	}
	for _, p := range x.Problems {
		v.r.Warnings = append(v.r.Warnings, fmt.Sprintf("%s: %s (declared at export)", p.Key, p.Detail))
	}
}

// finish reports what never came.
func (v *verifier) finish() {
	if v.dir == "" && len(v.r.Problems) == 0 {
		v.problem(Format, "", "empty: no files")
		return
	}
	for _, need := range []struct {
		ok   bool
		name string
	}{
		{v.m != nil || slices.ContainsFunc(v.r.Problems, func(p Problem) bool { return p.Name == fileManifest }), fileManifest},
		{v.signedBy != nil || slices.ContainsFunc(v.r.Problems, func(p Problem) bool { return p.Name == fileManifest || p.Name == fileSignature }), fileSignature},
		{v.r.Export != nil || slices.ContainsFunc(v.r.Problems, func(p Problem) bool { return p.Name == fileExport }), fileExport},
	} {
		if !need.ok {
			v.problem(Missing, need.name, "not in the bundle")
		}
	}
	if v.m == nil {
		return
	}
	for i, e := range v.m.Entries {
		if !v.seen[i] {
			v.problem(Missing, objectsDir+e.Key, "listed in the manifest (%d bytes), not in the bundle", e.Size)
		}
	}
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
