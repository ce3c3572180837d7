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
	"path"
	"slices"
	"strings"
	"time"

	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// Kinds of problems Verify reports.
const (
	Altered   = "altered"   // an object's or a file's bytes differ from what the manifest or export.json says
	Missing   = "missing"   // a file of the bundle, or an object of the manifest, is not in it
	Reordered = "reordered" // an object is out of the manifest's order, or holds another's bytes
	Extra     = "extra"     // a file the manifest and export do not list
	Manifest  = "manifest"  // the manifest is altered or unreadable
	WrongKey  = "key"       // signed, but not by the key given
	Signature = "signature" // a signature does not verify
	Chain     = "chain"     // a stream's hash chain does not link
	Mismatch  = "mismatch"  // files of the bundle belong to different bundles
	Format    = "format"    // not a bundle: a file twice, out of place, too large, outside the directory
)

// maxProblems bounds the problems a report lists; Report.MoreProblems
// counts the others, so that a hostile tar of many tiny files cannot make
// the report grow with it.
const maxProblems = 1000

// Problem is one thing wrong with a bundle.
type Problem struct {
	Kind string `json:"kind"`
	// Name is the file of the bundle, below its directory (the whole name
	// for a file outside it).
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
	// SealVersion and SealedAt are the seal's version (0: made at export)
	// and time; Previous counts the earlier versions it names. A later
	// version may list more: only the archive tells whether this one is
	// its latest.
	SealVersion int
	SealedAt    time.Time
	Previous    int
	// Objects and Bytes count the objects whose bytes match the manifest.
	Objects int
	Bytes   int64 // of the objects
	Read    int64 // of the tar
	// Problems, in the order found; the first is the first bad file.
	Problems []Problem
	// MoreProblems counts the problems found after the first maxProblems.
	MoreProblems int
	// Warnings are breaks the seal itself declares (a segment lost before
	// sealing) and problems export.json declares.
	Warnings []string
	// Export is export.json, once its signature verified.
	Export *Export
}

// OK reports whether the bundle verified.
func (r *Report) OK() bool { return len(r.Problems) == 0 && r.MoreProblems == 0 }

// The place of each file in a bundle: every file comes after those of a
// lower rank; the objects share one rank.
const (
	rankReadme = iota
	rankPub
	rankManifest
	rankSignature
	rankObjects
	rankTimeline
	rankAudit
	rankExport
	rankExportSig
)

// metadata returns the rank of a metadata file of a bundle and the most
// bytes it may have, or ok false if name is none.
func metadata(name string) (rank int, limit int64, ok bool) {
	switch name {
	case fileReadme:
		return rankReadme, maxReadmeSize, true
	case filePub:
		return rankPub, maxKeySize, true
	case fileManifest:
		return rankManifest, MaxManifestSize, true
	case fileSignature:
		return rankSignature, maxSignatureSize, true
	case fileTimeline:
		return rankTimeline, maxTrailSize, true
	case fileAudit:
		return rankAudit, maxTrailSize, true
	case fileExport:
		return rankExport, maxExportSize, true
	case fileExportSig:
		return rankExportSig, maxSignatureSize, true
	}
	return 0, 0, false
}

// required lists the metadata files of a bundle in the order Verify
// reports them missing.
func required() []string {
	return []string{fileManifest, fileSignature, filePub, fileExport, fileExportSig, fileReadme, fileTimeline, fileAudit}
}

// verifier is the state of one pass over a bundle.
type verifier struct {
	r   *Report
	key ed25519.PublicKey // given, or nil
	dir string
	// rank and last are the place and the name of the last file read.
	rank int
	last string
	// seen holds the metadata files met, checked or not.
	seen     map[string]bool
	bundled  ed25519.PublicKey
	manifest []byte
	m        *seal.Manifest
	signedBy ed25519.PublicKey // the key the manifest verified with, nil if it did not
	// sealProblem is the index in r.Problems of a manifest signature that
	// does not verify, until export.json tells which of the two files was
	// altered; -1 if none.
	sealProblem int
	pos         map[string]int // object key → index in the manifest
	bySHA       map[string]int // sha256 → index, to name swapped contents
	objSeen     []bool
	next        int // index of the object expected next
	lastSeen    int // index of the last object seen
	files       map[string]File
	export      []byte
	buf         []byte
}

func (v *verifier) problem(kind, name, format string, args ...any) {
	if len(v.r.Problems) >= maxProblems {
		v.r.MoreProblems++
		return
	}
	v.r.Problems = append(v.r.Problems, Problem{Kind: kind, Name: name, Detail: fmt.Sprintf(format, args...)})
}

func (v *verifier) named(name string) bool {
	return slices.ContainsFunc(v.r.Problems, func(p Problem) bool { return p.Name == name })
}

// Verify checks a bundle read once from r, offline: its layout (one
// directory, each metadata file once and in its place, each object once),
// every object's size and SHA-256 against the manifest, the objects' order
// and completeness, each stream's hash chain, the manifest's Merkle root and
// signature, and export.json with its signature, the hashes of the other
// files, and that it names the same exam, candidate and manifest. key is the
// archive's public key; nil uses the one in the bundle (which proves
// integrity, not origin). Only the first of a file that appears twice is
// checked, and the bundle fails. At most the bundle's metadata files, each
// capped, are held in memory. Problems with the bundle are in the report;
// the error is for a bundle that cannot be read at all.
func Verify(r io.Reader, key ed25519.PublicKey) (*Report, error) {
	cr := &countReader{r: r}
	v := &verifier{r: &Report{}, key: key, rank: -1, seen: map[string]bool{}, files: map[string]File{},
		lastSeen: -1, sealProblem: -1}
	// Objects are hashed through v.buf, whose large reads pass the bufio
	// buffer by; the buffer serves the headers and the small files.
	br := bufio.NewReaderSize(cr, 64<<10)
	if head, _ := br.Peek(6); compressed(head) != "" {
		v.problem(Format, "", "%s, not a tar: an evidence bundle is the plain tar the archive exported; %s",
			compressed(head), unpackAdvice(compressed(head)))
		v.r.Read = cr.n
		return v.r, nil
	}
	end := &endReader{r: br}
	// walker follows the headers archive/tar reads, to refuse a file whose
	// name tar readers disagree on.
	walker := &headerWalker{r: end}
	tr := tar.NewReader(walker)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// archive/tar also ends cleanly where the input ends between
			// two files: a bundle cut there has no end-of-archive blocks.
			if end.zeros < 512 && v.last != "" {
				v.problem(Format, v.last, "cut short: the tar ends after %s without its end-of-archive blocks", v.lastOr("its start"))
			}
			v.trailing(end)
			break
		}
		if err != nil {
			v.problem(Format, v.last, "not a readable tar file after %s: %v", v.lastOr("its start"), err)
			break
		}
		eh, err := walker.next()
		if err != nil {
			v.problem(Format, v.below(h.Name), "cannot follow the tar's headers: %v", err)
			break
		}
		if eh.ambiguous != "" {
			v.problem(Format, v.below(h.Name), "tar readers disagree on this file's name: %s. Another tar reader "+
				"could unpack it under another name than the one checked", eh.ambiguous)
			continue
		}
		name, ok := v.place(h)
		if !ok {
			continue // Next skips what is left of it.
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

// below returns a tar entry's name below the bundle's directory, or the
// whole name if it is not in it.
func (v *verifier) below(name string) string {
	if v.dir != "" {
		if rest, ok := strings.CutPrefix(name, v.dir); ok && rest != "" {
			return rest
		}
	}
	return name
}

// trailing reads what follows the tar's end-of-archive blocks: zeros, as
// tar pads an archive to its record size, or nothing. Anything else is a
// bundle with more in it than was checked: GNU tar -i, and readers of
// concatenated archives, unpack files written after the end.
func (v *verifier) trailing(r io.Reader) {
	buf := v.bufFor(0)
	var at int64
	for {
		n, err := r.Read(buf)
		for i, c := range buf[:n] {
			if c != 0 {
				v.problem(Format, "(after the end of the tar)", "a non-zero byte %d bytes past the end-of-archive blocks: "+
					"a bundle ends there, and a tar reader that reads on (tar -i, concatenated archives) would unpack files that were never checked",
					at+int64(i))
				return
			}
		}
		at += int64(n)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			// What follows the end was not read: it may hold files.
			v.problem(Format, "(after the end of the tar)", "cannot read what follows the end of the tar, %d bytes past it: %v", at, err)
			return
		}
	}
}

// compressed names the kind of a compressed or zip file by its first
// bytes, or returns "".
func compressed(head []byte) string {
	for _, k := range []struct{ magic, name string }{
		{"\x1f\x8b", "a gzip file"}, {"\xfd7zXZ\x00", "an xz file"}, {"\x28\xb5\x2f\xfd", "a zstd file"},
		{"BZh", "a bzip2 file"}, {"PK\x03\x04", "a zip file"}, {"PK\x05\x06", "a zip file"},
	} {
		if bytes.HasPrefix(head, []byte(k.magic)) {
			return k.name
		}
	}
	return ""
}

// unpackAdvice says what to do with a compressed bundle.
func unpackAdvice(kind string) string {
	switch kind {
	case "a gzip file":
		return "decompress it first (gunzip -k FILE) and verify the .tar"
	case "an xz file":
		return "decompress it first (unxz -k FILE) and verify the .tar"
	case "a zstd file":
		return "decompress it first (unzstd FILE) and verify the .tar"
	case "a bzip2 file":
		return "decompress it first (bunzip2 -k FILE) and verify the .tar"
	}
	return "a zip made of a bundle's files cannot be verified; if it holds the bundle's .tar, unzip it and verify that"
}

func (v *verifier) lastOr(s string) string {
	if v.last == "" {
		return s
	}
	return v.last
}

// place checks where a tar entry is and returns its name below the
// bundle's directory, or ok false if it is nothing to read.
func (v *verifier) place(h *tar.Header) (name string, ok bool) {
	top, rest, nested := strings.Cut(h.Name, "/")
	if v.dir == "" && strings.HasPrefix(top, "evidence-") && nested {
		v.dir = top + "/"
	}
	if h.Typeflag == tar.TypeDir {
		// tar -c writes the directories: the bundle's and those below it
		// are allowed, and hold nothing.
		d := strings.TrimSuffix(rest, "/")
		_, _, meta := metadata(d)
		_, object := v.pos[strings.TrimPrefix(d, objectsDir)]
		switch {
		case v.dir == "" || top+"/" != v.dir || (d != "" && !clean(d)):
			v.problem(Format, h.Name, "a directory outside the bundle's directory %s", v.dirOr())
		case meta || (object && strings.HasPrefix(d, objectsDir)):
			v.problem(Format, d, "a directory where the bundle has a file")
		}
		return "", false
	}
	if v.dir == "" || top+"/" != v.dir || !clean(rest) {
		v.problem(Format, h.Name, "outside the bundle's directory %s: a bundle is one directory, evidence-<exam>-<candidate>/", v.dirOr())
		return "", false
	}
	if h.Typeflag != tar.TypeReg {
		v.problem(Format, rest, "not a regular file (tar type %q)", h.Typeflag)
		return "", false
	}
	// archive/tar expands a GNU sparse file of PAX format as a regular
	// one: a few bytes of tar could make a terabyte of holes to hash.
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			v.problem(Format, rest, "a GNU sparse file: a bundle has only plain files")
			return "", false
		}
	}
	return rest, true
}

func (v *verifier) dirOr() string {
	if v.dir == "" {
		return "(none yet)"
	}
	return v.dir
}

// clean reports whether a name below the bundle's directory is one path
// with no empty, "." or ".." part.
func clean(name string) bool {
	return name != "" && path.Clean(name) == name && name != "." && name != ".." && !strings.HasPrefix(name, "../") &&
		!strings.HasPrefix(name, "/")
}

// file handles one file of the bundle.
func (v *verifier) file(name string, size int64, r io.Reader) error {
	rank, limit, meta := metadata(name)
	isObject := strings.HasPrefix(name, objectsDir)
	switch {
	case isObject:
		rank = rankObjects
	case !meta:
		v.problem(Extra, name, "not part of an evidence bundle")
		return nil
	case v.seen[name]:
		v.problem(Format, name, "appears twice: a bundle has one %s, and only the first is checked", name)
		return nil
	}
	if meta {
		v.seen[name] = true
	}
	if rank < v.rank {
		v.problem(Format, name, "out of place: it comes after %s; a bundle has README.txt, seal/seal.pub, seal/manifest.json, "+
			"seal/manifest.sig, the objects, timeline.json, audit.json, export.json and export.sig, in that order", v.last)
		if meta {
			return nil // Not checked: a bundle that holds it here fails.
		}
	} else {
		v.rank, v.last = rank, name
	}
	if meta && size > limit {
		v.problem(Format, name, "%d bytes, more than the %d a bundle's %s may have", size, limit, name)
		return nil
	}
	switch name {
	case fileReadme, fileTimeline, fileAudit:
		h := sha256.New()
		n, err := io.CopyBuffer(h, r, v.bufFor(size))
		if err != nil {
			return err
		}
		v.files[name] = File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
		return nil
	}
	if isObject {
		return v.object(strings.TrimPrefix(name, objectsDir), size, r)
	}
	b, err := io.ReadAll(io.LimitReader(r, limit))
	if err != nil {
		return err
	}
	switch name {
	case filePub:
		v.files[name] = File{Name: name, Size: int64(len(b)), SHA256: sha256Hex(b)}
		if k, err := seal.ParsePublicKey(b); err == nil {
			v.bundled = k
		} else {
			v.problem(Format, name, "%v", err)
		}
	case fileManifest:
		v.manifest = b
		m, err := seal.Parse(b)
		if err != nil {
			v.problem(Manifest, name, "%v", err)
			return nil
		}
		v.setManifest(m)
	case fileSignature:
		v.checkSeal(b)
	case fileExport:
		v.export = b
	case fileExportSig:
		v.checkExport(b)
	}
	return nil
}

func (v *verifier) setManifest(m *seal.Manifest) {
	v.m = m
	v.r.ExamID, v.r.CandidateID, v.r.MerkleRoot = m.ExamID, m.CandidateID, m.MerkleRoot
	v.r.SealVersion, v.r.SealedAt, v.r.Previous = m.Version, m.SealedAt, len(m.Previous)
	v.pos = make(map[string]int, len(m.Entries))
	v.bySHA = make(map[string]int, len(m.Entries))
	for i, e := range m.Entries {
		v.pos[e.Key] = i
		v.bySHA[e.SHA256] = i
	}
	v.objSeen = make([]bool, len(m.Entries))
	// The chains, as the manifest states them: every break must be one
	// the seal declares.
	breaks := seal.Breaks(m.Entries)
	if len(breaks) == 0 {
		return
	}
	declared := make(map[seal.Gap]bool, len(m.Gaps))
	for _, g := range m.Gaps {
		declared[seal.Gap{Stream: g.Stream, After: g.After, Next: g.Next}] = true
	}
	for _, g := range breaks {
		if !declared[seal.Gap{Stream: g.Stream, After: g.After, Next: g.Next}] {
			v.problem(Chain, fileManifest, "stream %s: %s", g.Stream, g.Detail)
		}
	}
}

// sealWarnings reports the breaks and problems the seal declares, once its
// signature verified with the key checked with: what a manifest unsigned,
// or signed by another key, declares is no one's word,
// and would make the report as large as the manifest allows.
func (v *verifier) sealWarnings() {
	for _, g := range v.m.Gaps {
		v.r.Warnings = append(v.r.Warnings, fmt.Sprintf("stream %s: %s (declared by the seal)", g.Stream, g.Detail))
	}
	for _, p := range v.m.Problems {
		v.r.Warnings = append(v.r.Warnings, fmt.Sprintf("%s: %s (declared by the seal)", p.Key, p.Detail))
	}
	// Keys that differ only in case are two files in the tar and one on a
	// file system that ignores case: unpacked there, one object's bytes
	// stand under the other's name.
	folded := make(map[string]string, len(v.m.Entries))
	for _, e := range v.m.Entries {
		f := strings.ToLower(e.Key)
		if other, ok := folded[f]; ok {
			v.r.Warnings = append(v.r.Warnings, fmt.Sprintf("%s%s and %s%s differ only in case: unpacked on a file system that "+
				"ignores case (Windows, macOS) one is written over the other; look at them on Linux, or from the tar", objectsDir, other, objectsDir, e.Key))
			continue
		}
		folded[f] = e.Key
	}
}

// checkSeal checks the manifest's signature with the given key, or the
// bundle's own, and then that the manifest is this bundle's. A signature
// that verifies with the bundle's key and not with the given one is a wrong
// key, not an altered manifest.
func (v *verifier) checkSeal(sig []byte) {
	if v.m == nil {
		return // No manifest, or an unreadable one: already said, or said at the end.
	}
	key := v.key
	if key == nil {
		key = v.bundled
		v.r.KeyFromBundle = true
	}
	if key == nil {
		v.problem(Signature, fileSignature, "no key to check it with: give --pubkey; the bundle has no seal/seal.pub")
		return
	}
	v.r.KeyID = seal.KeyID(key)
	switch {
	case seal.Verify(v.manifest, sig, key) == nil:
		v.signedBy = key
		v.sealWarnings()
	case v.key != nil && v.bundled != nil && !v.key.Equal(v.bundled) && seal.Verify(v.manifest, sig, v.bundled) == nil:
		v.problem(WrongKey, fileManifest, "signed by key %s (the bundle's seal/seal.pub), not by the given key %s",
			seal.KeyID(v.bundled), seal.KeyID(v.key))
		v.signedBy = v.bundled
	default:
		v.sealProblem = len(v.r.Problems)
		v.problem(Manifest, fileManifest, "altered: its signature seal/manifest.sig does not verify with key %s", seal.KeyID(key))
		return
	}
	if want := seal.KeyID(v.signedBy); v.m.KeyID != want {
		v.problem(Mismatch, fileManifest, "names key %s, but is signed by key %s", v.m.KeyID, want)
	}
	// A genuine seal of another candidate's evidence, put in this bundle.
	if want := Dir(v.m.ExamID, v.m.CandidateID); want != v.dir {
		v.problem(Mismatch, fileManifest, "is the seal of exam %s, candidate %s (directory %s), but the bundle's directory is %s",
			v.m.ExamID, v.m.CandidateID, want, v.dir)
	}
}

// bufFor returns the buffer to hash a file of size bytes through: 1 MiB
// once a file needs it, so that a small bundle costs little.
func (v *verifier) bufFor(size int64) []byte {
	want := 32 << 10
	if size > int64(want) {
		want = 1 << 20
	}
	if len(v.buf) < want {
		v.buf = make([]byte, want)
	}
	return v.buf
}

// object checks one object against the manifest while reading it.
func (v *verifier) object(key string, size int64, r io.Reader) error {
	if v.m == nil {
		return nil // Nothing to check it against; the manifest's problem is reported.
	}
	name := objectsDir + key
	i, listed := v.pos[key]
	if listed && v.objSeen[i] {
		v.problem(Format, name, "appears twice: a bundle has each object once, and only the first is checked")
		return nil
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, r, v.bufFor(size))
	if err != nil {
		return err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if !listed {
		if j, ok := v.bySHA[sum]; ok {
			v.problem(Extra, name, "not in the manifest; it holds the bytes of %s%s", objectsDir, v.m.Entries[j].Key)
		} else {
			v.problem(Extra, name, "not in the manifest")
		}
		return nil
	}
	v.objSeen[i] = true
	switch {
	case i == v.next:
		v.next++
	case i > v.next:
		v.next = i + 1
	default: // i < v.next: it was skipped over
		v.problem(Reordered, name, "out of order: it comes after %s%s, which the manifest lists after it",
			objectsDir, v.m.Entries[v.lastSeen].Key)
	}
	v.lastSeen = max(v.lastSeen, i)
	e := v.m.Entries[i]
	switch j, swapped := v.bySHA[sum]; {
	case sum == e.SHA256 && n == e.Size:
		// Counted only as it matches: the report's objects and bytes are
		// those the manifest vouches for.
		v.r.Objects++
		v.r.Bytes += n
	case swapped && j != i:
		v.problem(Reordered, name, "holds the bytes of %s%s (sha256 %s): objects were swapped", objectsDir, v.m.Entries[j].Key, sum[:16])
	default:
		v.problem(Altered, name, "%d bytes with sha256 %s; the manifest says %d bytes with sha256 %s", n, sum, e.Size, e.SHA256)
	}
	return nil
}

func parseExport(b []byte) (*Export, error) {
	var x Export
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	if x.Format != ExportFormat {
		return nil, fmt.Errorf("format %q, want %q", x.Format, ExportFormat)
	}
	return &x, nil
}

// checkExport checks export.json's signature, that it is the export of this
// bundle's manifest, and the files it lists.
func (v *verifier) checkExport(sig []byte) {
	if v.export == nil {
		return // Missing, too large or out of place: said already, or at the end.
	}
	key := v.key
	if key == nil {
		key = v.bundled
	}
	if key == nil {
		v.problem(Signature, fileExportSig, "no key to check it with: give --pubkey; the bundle has no seal/seal.pub")
		return
	}
	verifies := func(k ed25519.PublicKey) bool {
		return k != nil && len(sig) == ed25519.SignatureSize && ed25519.Verify(k, v.export, sig)
	}
	x, xerr := parseExport(v.export)
	switch {
	case verifies(key):
	case v.key != nil && verifies(v.bundled):
		// Signed by the bundle's key, not the given one: a wrong key,
		// already named if the seal was signed by it too.
		if !slices.ContainsFunc(v.r.Problems, func(p Problem) bool { return p.Kind == WrongKey }) {
			v.problem(WrongKey, fileExport, "signed by key %s (the bundle's seal/seal.pub), not by the given key %s",
				seal.KeyID(v.bundled), seal.KeyID(v.key))
		}
	default:
		// Nothing tells a changed export.json from a changed signature,
		// but what export.json says can be checked against the bundle.
		switch d := v.disagrees(x); {
		case xerr != nil:
			v.problem(Signature, fileExport, "altered: unreadable (%v), and its signature export.sig does not verify with key %s", xerr, seal.KeyID(key))
		case d != "":
			v.problem(Signature, fileExport, "altered: its signature export.sig does not verify with key %s, and %s", seal.KeyID(key), d)
		default:
			v.problem(Signature, fileExportSig, "does not verify export.json with key %s: the signature was altered, "+
				"or a field of export.json nothing else covers (purpose, exported_by, exported_at)", seal.KeyID(key))
		}
		return
	}
	if xerr != nil {
		v.problem(Format, fileExport, "unreadable: %v", xerr)
		return
	}
	v.r.Export = x
	if v.sealProblem >= 0 {
		// export.json, signed, names the manifest it was exported with:
		// if that is this one, its signature is what was altered.
		if x.ManifestSHA256 == sha256Hex(v.manifest) && v.sealProblem < len(v.r.Problems) {
			v.r.Problems[v.sealProblem] = Problem{Kind: Signature, Name: fileSignature, Detail: fmt.Sprintf(
				"altered: it does not verify seal/manifest.json with key %s, which is the manifest export.json names", v.r.KeyID)}
		}
	} else if v.m != nil && (x.ManifestSHA256 != sha256Hex(v.manifest) || x.ExamID != v.m.ExamID || x.CandidateID != v.m.CandidateID) {
		v.problem(Mismatch, fileExport, "is the export of another bundle: it names exam %s, candidate %s, manifest sha256 %s; "+
			"this bundle's manifest is of exam %s, candidate %s, sha256 %s", x.ExamID, x.CandidateID, x.ManifestSHA256,
			v.r.ExamID, v.r.CandidateID, sha256Hex(v.manifest))
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
	for _, name := range []string{fileReadme, filePub, fileTimeline, fileAudit} {
		if _, ok := v.files[name]; ok {
			v.problem(Extra, name, "not listed in export.json")
		}
	}
	for _, p := range x.Problems {
		v.r.Warnings = append(v.r.Warnings, fmt.Sprintf("%s: %s (declared at export)", p.Key, p.Detail))
	}
}

// disagrees returns the first thing export.json says that the bundle shows
// to be false, or "".
func (v *verifier) disagrees(x *Export) string {
	if x == nil {
		return ""
	}
	if v.manifest != nil && x.ManifestSHA256 != sha256Hex(v.manifest) {
		return fmt.Sprintf("it names manifest sha256 %s, not this bundle's %s", x.ManifestSHA256, sha256Hex(v.manifest))
	}
	if v.m != nil && (x.ExamID != v.m.ExamID || x.CandidateID != v.m.CandidateID) {
		return fmt.Sprintf("it names exam %s, candidate %s, not the manifest's exam %s, candidate %s", x.ExamID, x.CandidateID, v.m.ExamID, v.m.CandidateID)
	}
	listed := map[string]bool{}
	for _, f := range x.Files {
		listed[f.Name] = true
		got, ok := v.files[f.Name]
		switch {
		case !ok:
			return fmt.Sprintf("it lists %s, which is not in the bundle", f.Name)
		case got.SHA256 != f.SHA256 || got.Size != f.Size:
			return fmt.Sprintf("it lists %s with sha256 %s, the bundle's has %s", f.Name, f.SHA256, got.SHA256)
		}
	}
	for name := range v.files {
		if !listed[name] {
			return fmt.Sprintf("it does not list %s", name)
		}
	}
	return ""
}

// finish reports what never came.
func (v *verifier) finish() {
	if v.dir == "" && len(v.r.Problems) == 0 {
		v.problem(Format, "", "empty: no files")
		return
	}
	for _, name := range required() {
		if !v.seen[name] && !v.named(name) {
			v.problem(Missing, name, "not in the bundle")
		}
	}
	if v.m == nil {
		return
	}
	for i, e := range v.m.Entries {
		if !v.objSeen[i] {
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

// endReader counts the zero bytes at the end of what has been read from r,
// to tell the end of a tar from input that stops between two files.
type endReader struct {
	r     io.Reader
	zeros int
}

func (e *endReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	i := n
	for i > 0 && p[i-1] == 0 {
		i--
	}
	if i == 0 {
		e.zeros += n
	} else {
		e.zeros = n - i
	}
	return n, err
}
