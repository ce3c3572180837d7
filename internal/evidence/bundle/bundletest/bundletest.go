// Package bundletest forges evidence bundles: each way a hostile reader
// might re-pack a genuine bundle to make it say something else, for the
// verifier's tests and its fuzz corpus. Each forgery carries the problem the
// verifier must report first.
package bundletest

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// File is one file of a tar.
type File struct {
	Header tar.Header
	Data   []byte
}

// Read reads every file of a tar.
func Read(b []byte) ([]File, error) {
	tr := tar.NewReader(bytes.NewReader(b))
	var out []File
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w", err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("read tar: %s: %w", h.Name, err)
		}
		out = append(out, File{Header: *h, Data: data})
	}
}

// Write writes files as a tar, each with the size of its data.
func Write(files []File) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := f.Header
		h.Size = int64(len(f.Data))
		if err := tw.WriteHeader(&h); err != nil {
			return nil, fmt.Errorf("write tar: %s: %w", h.Name, err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, fmt.Errorf("write tar: %s: %w", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("write tar: %w", err)
	}
	return buf.Bytes(), nil
}

// Genuine is what a forger starts from.
type Genuine struct {
	// Bundle is a genuine bundle with at least one init segment and three
	// media segments of one stream.
	Bundle []byte
	// Other is a genuine bundle of another candidate, from the same archive.
	Other []byte
	// Key is a key that is not the archive's, to sign with.
	Key ed25519.PrivateKey
}

// Forgery is a bundle made from a genuine one.
type Forgery struct {
	Name   string
	Bundle []byte
	// Kind and File are the problem the verifier must report first, checking
	// with the archive's key.
	Kind string
	File string
	// SelfSigned is set when the forgery is signed, whole, by the key in it:
	// only a given key tells it from the archive's.
	SelfSigned bool
}

// Names of the files of a bundle, below its directory.
const (
	Readme    = "README.txt"
	Pub       = "seal/seal.pub"
	Manifest  = "seal/manifest.json"
	Signature = "seal/manifest.sig"
	Timeline  = "timeline.json"
	Audit     = "audit.json"
	Export    = "export.json"
	ExportSig = "export.sig"
)

// Metadata lists the metadata files of a bundle in their order.
func Metadata() []string {
	return []string{Readme, Pub, Manifest, Signature, Timeline, Audit, Export, ExportSig}
}

// bundle is a parsed genuine bundle.
type parsed struct {
	files []File
	dir   string
	m     *seal.Manifest
}

func parse(b []byte) (*parsed, error) {
	files, err := Read(b)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("forge: an empty bundle")
	}
	p := &parsed{files: files, dir: files[0].Header.Name[:strings.IndexByte(files[0].Header.Name, '/')+1]}
	m, err := seal.Parse(p.data(Manifest))
	if err != nil {
		return nil, fmt.Errorf("forge: %w", err)
	}
	p.m = m
	return p, nil
}

// at returns the index of a file below the bundle's directory, or -1.
func (p *parsed) at(name string) int {
	for i, f := range p.files {
		if f.Header.Name == p.dir+name {
			return i
		}
	}
	return -1
}

func (p *parsed) data(name string) []byte {
	if i := p.at(name); i >= 0 {
		return p.files[i].Data
	}
	return nil
}

// copy returns a copy of the files, each with its own data.
func (p *parsed) copy() []File {
	out := make([]File, len(p.files))
	for i, f := range p.files {
		out[i] = File{Header: f.Header, Data: bytes.Clone(f.Data)}
	}
	return out
}

func insert(files []File, i int, f ...File) []File {
	return append(files[:i:i], append(f, files[i:]...)...)
}

func flip(b []byte) []byte {
	b = bytes.Clone(b)
	b[len(b)/2] ^= 0x01
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Forge returns every forgery of g: a byte flipped in a media segment, in
// an init segment and in each metadata file; an object dropped, duplicated,
// moved, or two swapping their bytes; each metadata file twice; a second
// manifest naming another candidate before and after the objects; the
// manifest edited to name another candidate; a metadata file after the
// objects began; a file outside the bundle's directory; the seal of another
// candidate; export.json of another bundle; an object as a sparse file; and
// the bundle re-signed whole with another key; and the forgeries of
// ambiguousHeaders.
func Forge(g Genuine) ([]Forgery, error) {
	p, err := parse(g.Bundle)
	if err != nil {
		return nil, err
	}
	other, err := parse(g.Other)
	if err != nil {
		return nil, err
	}
	var init, seg = -1, -1
	for i, e := range p.m.Entries {
		if init < 0 && e.Kind == seal.KindInit {
			init = i
		}
		if seg < 0 && e.Kind == seal.KindSegment && i+1 < len(p.m.Entries) && p.m.Entries[i+1].Stream == e.Stream &&
			i > 0 && p.m.Entries[i-1].Kind == seal.KindSegment {
			seg = i
		}
	}
	if init < 0 || seg < 0 {
		return nil, errors.New("forge: the bundle needs an init segment and three media segments of a stream")
	}
	obj := func(i int) string { return "objects/" + p.m.Entries[i].Key }
	var out []Forgery
	add := func(name, kind, file string, files []File) error {
		b, err := Write(files)
		if err != nil {
			return fmt.Errorf("forge %s: %w", name, err)
		}
		out = append(out, Forgery{Name: name, Bundle: b, Kind: kind, File: file})
		return nil
	}
	type forgery struct {
		name, kind, file string
		files            func() []File
	}
	first := p.at(obj(0))
	fs := []forgery{
		{"flip a byte in a media segment", bundle.Altered, obj(seg), func() []File {
			f := p.copy()
			f[p.at(obj(seg))].Data = flip(f[p.at(obj(seg))].Data)
			return f
		}},
		{"flip a byte in an init segment", bundle.Altered, obj(init), func() []File {
			f := p.copy()
			f[p.at(obj(init))].Data = flip(f[p.at(obj(init))].Data)
			return f
		}},
		{"drop an object", bundle.Missing, obj(seg), func() []File {
			f := p.copy()
			i := p.at(obj(seg))
			return append(f[:i:i], f[i+1:]...)
		}},
		{"duplicate an object", bundle.Format, obj(seg), func() []File {
			f := p.copy()
			i := p.at(obj(seg))
			return insert(f, i+1, f[i])
		}},
		{"reorder two objects", bundle.Reordered, obj(seg), func() []File {
			f := p.copy()
			i, j := p.at(obj(seg)), p.at(obj(seg+1))
			f[i], f[j] = f[j], f[i]
			return f
		}},
		{"swap the bytes of two objects", bundle.Reordered, obj(seg), func() []File {
			f := p.copy()
			i, j := p.at(obj(seg)), p.at(obj(seg+1))
			f[i].Data, f[j].Data = f[j].Data, f[i].Data
			return f
		}},
		{"a second manifest, of another candidate, before the objects", bundle.Format, Manifest, func() []File {
			f := p.copy()
			return insert(f, first, File{Header: f[p.at(Manifest)].Header, Data: otherCandidate(p)})
		}},
		{"a second manifest, of another candidate, after the objects", bundle.Format, Manifest, func() []File {
			f := p.copy()
			return insert(f, p.at(Timeline), File{Header: f[p.at(Manifest)].Header, Data: otherCandidate(p)})
		}},
		{"README.txt after the objects began", bundle.Format, Readme, func() []File {
			f := p.copy()
			i := p.at(Readme)
			readme := f[i]
			f = append(f[:i:i], f[i+1:]...)
			return insert(f, first, readme) // after the first object, which moved up one
		}},
		{"a file outside the bundle's directory", bundle.Format, "notes/" + Readme, func() []File {
			f := p.copy()
			h := f[p.at(Readme)].Header
			h.Name = "notes/" + Readme
			return append(f, File{Header: h, Data: []byte("the candidate was not there\n")})
		}},
		{"the manifest edited to name another candidate", bundle.Manifest, Manifest, func() []File {
			f := p.copy()
			f[p.at(Manifest)].Data = otherCandidate(p)
			return f
		}},
		{"the seal of another candidate", bundle.Mismatch, Manifest, func() []File {
			f := p.copy()
			f[p.at(Manifest)].Data = bytes.Clone(other.data(Manifest))
			f[p.at(Signature)].Data = bytes.Clone(other.data(Signature))
			return f
		}},
		{"export.json of another bundle", bundle.Mismatch, Export, func() []File {
			f := p.copy()
			f[p.at(Export)].Data = bytes.Clone(other.data(Export))
			f[p.at(ExportSig)].Data = bytes.Clone(other.data(ExportSig))
			return f
		}},
	}
	for _, name := range Metadata() {
		kind, file := bundle.Altered, name
		flipped := flip(p.data(name))
		switch name {
		case Pub:
			if _, err := seal.ParsePublicKey(flipped); err != nil {
				kind = bundle.Format
			}
		case Manifest:
			kind = bundle.Manifest
		case Signature, ExportSig:
			kind = bundle.Signature
		case Export:
			kind = bundle.Signature
		}
		fs = append(fs, forgery{"flip a byte in " + name, kind, file, func() []File {
			f := p.copy()
			f[p.at(name)].Data = flipped
			return f
		}}, forgery{"two of " + name, bundle.Format, name, func() []File {
			f := p.copy()
			i := p.at(name)
			return insert(f, i+1, f[i])
		}})
	}
	for _, fg := range fs {
		if err := add(fg.name, fg.kind, fg.file, fg.files()); err != nil {
			return nil, err
		}
	}
	sparse, err := sparseObject(p, p.at(obj(seg)), 1<<40)
	if err != nil {
		return nil, err
	}
	out = append(out, Forgery{Name: "an object as a sparse file of 1 TiB of holes", Bundle: sparse, Kind: bundle.Format, File: obj(seg)})
	headerForgeries, err := ambiguousHeaders(p, obj(seg), obj(seg+1))
	if err != nil {
		return nil, err
	}
	out = append(out, headerForgeries...)
	resigned, err := resign(p, g.Key)
	if err != nil {
		return nil, err
	}
	out = append(out, Forgery{Name: "signed with another key", Bundle: resigned, Kind: bundle.WrongKey, File: Manifest, SelfSigned: true})
	return out, nil
}

// sparseObject returns p with file i made a GNU sparse file of PAX format
// 1.0 of size bytes, all holes: a few bytes of tar that archive/tar reads
// as size zero bytes.
func sparseObject(p *parsed, i int, size int64) ([]byte, error) {
	f := p.copy()
	name := f[i].Header.Name
	record := func(k, v string) string {
		n := len(k) + len(v) + 3 // space, '=', newline
		d := len(strconv.Itoa(n))
		if len(strconv.Itoa(n+d)) > d {
			d++
		}
		return fmt.Sprintf("%d %s=%s\n", n+d, k, v)
	}
	records := record("GNU.sparse.major", "1") + record("GNU.sparse.minor", "0") +
		record("GNU.sparse.name", name) + record("GNU.sparse.realsize", strconv.FormatInt(size, 10))
	// The extended header is written as a regular file, then given its
	// type: archive/tar writes no GNU sparse records itself.
	const marker = "PaxHeaders.sparse"
	x := File{Header: tar.Header{Name: marker, Mode: 0o444, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}, Data: []byte(records)}
	f[i] = File{Header: tar.Header{Name: name + ".data", Mode: 0o444, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR},
		Data: append([]byte("1\n0\n0\n"), make([]byte, 506)...)} // a map of one empty extent, padded to a block
	f = insert(f, i, x)
	b, err := Write(f)
	if err != nil {
		return nil, err
	}
	at := bytes.Index(b, []byte(marker))
	if at < 0 || at%512 != 0 {
		return nil, errors.New("forge: the sparse header is not where it was written")
	}
	blk := b[at : at+512]
	blk[156] = tar.TypeXHeader
	copy(blk[148:156], "        ") // the checksum counts its own field as spaces
	sum := 0
	for _, c := range blk {
		sum += int(c)
	}
	copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b, nil
}

// otherCandidate returns the manifest of p naming another candidate, not
// re-signed: the same objects, someone else's evidence.
func otherCandidate(p *parsed) []byte {
	return bytes.Replace(p.data(Manifest), []byte(`"candidate_id": "`+p.m.CandidateID+`"`),
		[]byte(`"candidate_id": "`+p.m.CandidateID+`-other"`), 1)
}

// resign signs the whole of p again with key, as a forger who has a key of
// his own would: seal.pub is his, the manifest names his key, export.json
// names the new manifest and seal.pub.
func resign(p *parsed, key ed25519.PrivateKey) ([]byte, error) {
	f := p.copy()
	pub := key.Public().(ed25519.PublicKey)
	manifest := bytes.Replace(p.data(Manifest), []byte(`"key_id": "`+p.m.KeyID+`"`), []byte(`"key_id": "`+seal.KeyID(pub)+`"`), 1)
	f[p.at(Pub)].Data = seal.MarshalPublicKey(pub)
	f[p.at(Manifest)].Data = manifest
	f[p.at(Signature)].Data = ed25519.Sign(key, manifest)
	var x bundle.Export
	if err := json.Unmarshal(p.data(Export), &x); err != nil {
		return nil, fmt.Errorf("forge: export.json: %w", err)
	}
	x.KeyID, x.ManifestSHA256 = seal.KeyID(pub), sha256Hex(manifest)
	for i := range x.Files {
		if x.Files[i].Name == Pub {
			x.Files[i].Size, x.Files[i].SHA256 = int64(len(f[p.at(Pub)].Data)), sha256Hex(f[p.at(Pub)].Data)
		}
	}
	xb, err := json.MarshalIndent(x, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("forge: export.json: %w", err)
	}
	xb = append(xb, '\n')
	f[p.at(Export)].Data = xb
	f[p.at(ExportSig)].Data = ed25519.Sign(key, xb)
	return Write(f)
}

// ambiguousHeaders returns the forgeries of p that archive/tar reads as the
// genuine bundle and another tar reader as something else: another tar
// after the end-of-archive blocks, holding other bytes for segment a (GNU
// tar -i unpacks them over the checked ones); segments a and b swapped for
// GNU tar and Python's tarfile, each with a GNU long name (which
// archive/tar takes) and a PAX path (which they take) naming the other;
// a with two PAX headers, the first naming b (archive/tar keeps the last,
// Python merges them); a with two GNU long names, the first naming b
// (Python takes the first, archive/tar and GNU tar the last); and a with
// digits in the prefix field of a GNU header (Python puts it in another
// directory). Each fails as format of a, or of what follows the end.
func ambiguousHeaders(p *parsed, a, b string) ([]Forgery, error) {
	ia, ib := p.at(a), p.at(b)
	fa, fb := p.files[ia], p.files[ib]
	var out []Forgery
	add := func(name, file string, raw []byte, drop int) error {
		b, err := splice(p.files, ia, drop, raw)
		if err != nil {
			return fmt.Errorf("forge %s: %w", name, err)
		}
		out = append(out, Forgery{Name: name, Bundle: b, Kind: bundle.Format, File: file})
		return nil
	}
	// Another tar after the end.
	other := fa
	other.Data = []byte("moof mdat: other footage")
	tail, err := Write([]File{other})
	if err != nil {
		return nil, err
	}
	whole, err := Write(p.files)
	if err != nil {
		return nil, err
	}
	out = append(out, Forgery{Name: "another tar after the end, with other bytes for a segment",
		Bundle: append(whole, tail...), Kind: bundle.Format, File: "(after the end of the tar)"})
	// Swapped for GNU tar: a long name and a PAX path on each.
	named := func(f File, long, path string) []byte {
		var raw []byte
		raw = append(raw, rawFile(rawHeader("././@LongLink", 'L', len(long)+1, true), []byte(long+"\x00"))...)
		x := paxRecord("path", path)
		raw = append(raw, rawFile(rawHeader("PaxHeaders/x", 'x', len(x), false), []byte(x))...)
		return append(raw, rawFile(rawHeader(f.Header.Name, '0', len(f.Data), false), f.Data)...)
	}
	if err := add("two segments swapped for GNU tar: GNU long names and PAX paths that disagree", a,
		append(named(fa, fa.Header.Name, fb.Header.Name), named(fb, fb.Header.Name, fa.Header.Name)...), ib-ia+1); err != nil {
		return nil, err
	}
	// Two PAX headers.
	x1, x2 := paxRecord("path", fb.Header.Name), paxRecord("comment", "genuine")
	raw := rawFile(rawHeader("PaxHeaders/1", 'x', len(x1), false), []byte(x1))
	raw = append(raw, rawFile(rawHeader("PaxHeaders/2", 'x', len(x2), false), []byte(x2))...)
	raw = append(raw, rawFile(rawHeader(fa.Header.Name, '0', len(fa.Data), false), fa.Data)...)
	if err := add("a segment with two PAX headers, the first naming another segment", a, raw, 1); err != nil {
		return nil, err
	}
	// Two GNU long names.
	raw = rawFile(rawHeader("././@LongLink", 'L', len(fb.Header.Name)+1, true), []byte(fb.Header.Name+"\x00"))
	raw = append(raw, rawFile(rawHeader("././@LongLink", 'L', len(fa.Header.Name)+1, true), []byte(fa.Header.Name+"\x00"))...)
	raw = append(raw, rawFile(rawHeader("x", '0', len(fa.Data), true), fa.Data)...)
	if err := add("a segment with two GNU long names, the first naming another segment", a, raw, 1); err != nil {
		return nil, err
	}
	// Digits in the prefix field of a GNU header.
	h := rawHeader(fa.Header.Name, '0', len(fa.Data), true)
	copy(h[345:], "00000000000")
	checksum(h)
	if err := add("a segment in another directory for Python: the prefix field of a GNU header", a, rawFile(h, fa.Data), 1); err != nil {
		return nil, err
	}
	return out, nil
}

// splice returns the tar of files with drop of them, from the i-th, replaced
// by raw, tar blocks as they are.
func splice(files []File, i, drop int, raw []byte) ([]byte, error) {
	head, err := Write(files[:i])
	if err != nil {
		return nil, err
	}
	rest, err := Write(files[i+drop:])
	if err != nil {
		return nil, err
	}
	head = head[:len(head)-1024] // its end-of-archive blocks
	return append(append(head, raw...), rest...), nil
}

// rawHeader returns a tar header block: a POSIX one, or a GNU one.
func rawHeader(name string, typ byte, size int, gnu bool) []byte {
	b := make([]byte, 512)
	copy(b, name)
	copy(b[100:], "0000444\x00")
	copy(b[108:], "0000000\x00")
	copy(b[116:], "0000000\x00")
	copy(b[124:], fmt.Sprintf("%011o\x00", size))
	copy(b[136:], "00000000000\x00")
	b[156] = typ
	if gnu {
		copy(b[257:], "ustar  \x00")
	} else {
		copy(b[257:], "ustar\x0000")
	}
	checksum(b)
	return b
}

// checksum sets the checksum of a header block.
func checksum(b []byte) {
	copy(b[148:156], "        ") // the checksum counts its own field as spaces
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
}

// rawFile is a header block and its data, padded to a block.
func rawFile(header, data []byte) []byte {
	out := append(bytes.Clone(header), data...)
	if n := len(data) % 512; n != 0 {
		out = append(out, make([]byte, 512-n)...)
	}
	return out
}

// paxRecord is one record of a PAX extended header.
func paxRecord(k, v string) string {
	n := len(k) + len(v) + 3 // space, '=', newline
	d := len(strconv.Itoa(n))
	if len(strconv.Itoa(n+d)) > d {
		d++
	}
	return fmt.Sprintf("%d %s=%s\n", n+d, k, v)
}
