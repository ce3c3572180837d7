// Package seal makes and checks the seal of a candidate's exam: a manifest
// of every object that is evidence for it, the Merkle root of the manifest's
// entries, and the archiver's Ed25519 signature of the manifest.
//
// # Manifest
//
// The manifest is JSON (Manifest). Its entries are in canonical order: by
// stream, then init segments before media segments, then by sequence, then
// by key (Sort). A media segment names the init segment it needs, which comes
// before it.
//
// # Merkle root
//
// The root is the Merkle Tree Hash of RFC 6962 section 2.1 over the entries
// in canonical order, with SHA-256:
//
//	MTH({})      = SHA-256("")
//	MTH({d0})    = SHA-256(0x00 || leaf(d0))
//	MTH(D[0:n])  = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))   for n > 1,
//	               k the largest power of two smaller than n
//
// where leaf(e) is the entry's fields joined by tabs and ended by a newline:
//
//	kind, key, size, sha256, stream, sequence, start, end, prev_chain, chain, init
//
// (size and sequence in decimal, times in RFC 3339 with nanoseconds in UTC,
// empty fields empty). Keys and stream names hold no tabs or newlines. The
// 0x00 and 0x01 prefixes keep a leaf from passing for an inner node. The
// root lets one object be proved part of a seal by its audit path alone.
//
// # Signature
//
// The signature is Ed25519 (RFC 8032) over the bytes of the manifest file
// exactly as stored, which hold the root and the signing key's id (KeyID).
// The public key is served by the registry at GET /api/v1/keys/seal.
package seal

import (
	"bytes"
	"cmp"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nokstream/nokstream/internal/evidence/chain"
)

// Format is the value of Manifest.Format.
const Format = "nokstream-seal/1"

// Entry kinds.
const (
	KindInit    = "init"
	KindSegment = "segment"
	// KindDocument is a scanned document that is evidence of the
	// candidate-exam: the candidate's (identity document, application,
	// consent…) or the exam's commission protocol. Its Source is the
	// document's kind, Start and End its upload time; it has no stream.
	KindDocument = "document"
)

// Errors Check returns, wrapped with the detail.
var (
	// ErrMalformed: the manifest cannot be read.
	ErrMalformed = errors.New("manifest malformed")
	// ErrRoot: the entries do not give the Merkle root the manifest states:
	// an entry was changed, added, removed or moved.
	ErrRoot = errors.New("manifest altered: Merkle root does not match its entries")
	// ErrSignature: the signature does not verify with the key.
	ErrSignature = errors.New("signature does not verify")
)

// Entry is one object of a seal.
type Entry struct {
	Kind     string `json:"kind"`
	Key      string `json:"key"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	Stream   string `json:"stream"`
	Source   string `json:"source,omitempty"`
	Sequence int64  `json:"sequence"`
	// Start and End are the footage of a media segment; for an init
	// segment, the span of the sealed segments that use it.
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	PrevChain string    `json:"prev_chain,omitempty"`
	Chain     string    `json:"chain,omitempty"`
	// Init is the key of the init segment a media segment needs.
	Init string `json:"init,omitempty"`
}

// Gap is a place where the hash chain of a stream does not link inside the
// seal, as the archiver found it when sealing: a segment never arrived, or
// arrived altered or out of order. The verifier reports gaps the seal
// declares as warnings, and any other break as an error.
type Gap struct {
	Stream string `json:"stream"`
	// After and Next are the sequences on either side of the break.
	After  int64  `json:"after"`
	Next   int64  `json:"next"`
	Detail string `json:"detail"`
}

// Problem is an object of the seal that did not pass the archiver's check
// on arrival: its stored bytes are missing or differ from what ingest
// announced. Its entry holds what ingest announced.
type Problem struct {
	Key    string `json:"key"`
	Detail string `json:"detail"`
}

// Manifest is the content of a seal.
type Manifest struct {
	Format      string    `json:"format"`
	ExamID      string    `json:"exam_id"`
	CandidateID string    `json:"candidate_id"`
	Version     int       `json:"version"`
	SealedAt    time.Time `json:"sealed_at"`
	Site        string    `json:"site"`
	// WindowStart and WindowEnd are the exam window.
	WindowStart time.Time `json:"window_start"`
	WindowEnd   time.Time `json:"window_end"`
	// Result is the result the seal was made on: certificate or conclusion.
	Result string `json:"result,omitempty"`
	// KeyID names the signing key (KeyID).
	KeyID      string    `json:"key_id"`
	MerkleRoot string    `json:"merkle_root"`
	Objects    int       `json:"objects"`
	Bytes      int64     `json:"bytes"`
	Gaps       []Gap     `json:"gaps,omitempty"`
	Problems   []Problem `json:"problems,omitempty"`
	// Previous are the earlier versions of this candidate-exam's seal,
	// oldest first. A seal is append-only: every entry of an earlier
	// version is in every later one (Carry).
	Previous []Previous `json:"previous,omitempty"`
	Entries  []Entry    `json:"entries"`
}

// Previous names an earlier version of a seal by its Merkle root.
type Previous struct {
	Version    int       `json:"version"`
	MerkleRoot string    `json:"merkle_root"`
	SealedAt   time.Time `json:"sealed_at"`
}

// Carry makes a new version of a seal append-only over the version before
// it: every entry of prev missing from entries (an object that is no
// longer among the candidate-exam's, or no longer archived) is kept, with a
// problem that says so, and prev joins the versions the new one names. It
// returns the entries in canonical order, the problems and the previous
// versions.
func Carry(prev *Manifest, entries []Entry, problems []Problem) ([]Entry, []Problem, []Previous) {
	have := make(map[string]bool, len(entries))
	for _, e := range entries {
		have[e.Key] = true
	}
	for _, e := range prev.Entries {
		if !have[e.Key] {
			entries = append(entries, e)
			have[e.Key] = true
			problems = append(problems, Problem{Key: e.Key,
				Detail: fmt.Sprintf("listed in version %d of this seal and no longer among the candidate-exam's objects: kept, as a seal never drops an object", prev.Version)})
		}
	}
	Sort(entries)
	slices.SortFunc(problems, func(a, b Problem) int { return strings.Compare(a.Key, b.Key) })
	previous := append(slices.Clone(prev.Previous), Previous{Version: prev.Version, MerkleRoot: prev.MerkleRoot, SealedAt: prev.SealedAt})
	return entries, problems, previous
}

// Sort puts entries in canonical order.
func Sort(entries []Entry) {
	slices.SortFunc(entries, compare)
}

func kindRank(k string) int {
	if k == KindInit {
		return 0
	}
	return 1
}

func compare(a, b Entry) int {
	return cmp.Or(
		strings.Compare(a.Stream, b.Stream),
		cmp.Compare(kindRank(a.Kind), kindRank(b.Kind)),
		cmp.Compare(a.Sequence, b.Sequence),
		strings.Compare(a.Key, b.Key),
	)
}

// Leaf returns the leaf data of an entry, as the package comment defines it.
func Leaf(e Entry) []byte {
	var b bytes.Buffer
	for i, f := range []string{
		e.Kind, e.Key, strconv.FormatInt(e.Size, 10), e.SHA256, e.Stream, strconv.FormatInt(e.Sequence, 10),
		e.Start.UTC().Format(time.RFC3339Nano), e.End.UTC().Format(time.RFC3339Nano), e.PrevChain, e.Chain, e.Init,
	} {
		if i > 0 {
			b.WriteByte('\t')
		}
		b.WriteString(f)
	}
	b.WriteByte('\n')
	return b.Bytes()
}

// Root returns the Merkle Tree Hash of the entries, in the order given.
func Root(entries []Entry) [32]byte {
	leaves := make([][32]byte, len(entries))
	for i, e := range entries {
		leaves[i] = LeafHash(Leaf(e))
	}
	return mth(leaves)
}

// LeafHash is SHA-256(0x00 || data).
func LeafHash(data []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// NodeHash is SHA-256(0x01 || left || right).
func NodeHash(left, right [32]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(left[:])
	h.Write(right[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func mth(leaves [][32]byte) [32]byte {
	switch len(leaves) {
	case 0:
		return sha256.Sum256(nil)
	case 1:
		return leaves[0]
	}
	k := 1
	for k*2 < len(leaves) {
		k *= 2
	}
	return NodeHash(mth(leaves[:k]), mth(leaves[k:]))
}

// Seal completes m (format, key id, canonical order, counts, Merkle root),
// and returns the manifest file and its signature.
func Seal(m *Manifest, key ed25519.PrivateKey) (manifest, signature []byte, err error) {
	m.Format = Format
	m.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	Sort(m.Entries)
	m.Objects, m.Bytes = len(m.Entries), 0
	for _, e := range m.Entries {
		m.Bytes += e.Size
	}
	root := Root(m.Entries)
	m.MerkleRoot = hex.EncodeToString(root[:])
	manifest, err = json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, nil, fmt.Errorf("encode manifest: %w", err)
	}
	manifest = append(manifest, '\n')
	return manifest, ed25519.Sign(key, manifest), nil
}

// Parse reads a manifest file and checks that its entries are well formed,
// in canonical order, and give its Merkle root. It does not check the
// signature (Verify does).
func Parse(manifest []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(manifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if m.Format != Format {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrMalformed, m.Format, Format)
	}
	if m.Objects != len(m.Entries) {
		return nil, fmt.Errorf("%w: says %d objects, lists %d", ErrRoot, m.Objects, len(m.Entries))
	}
	seen := make(map[string]bool, len(m.Entries))
	for i, e := range m.Entries {
		switch {
		case e.Kind != KindInit && e.Kind != KindSegment && e.Kind != KindDocument:
			return nil, fmt.Errorf("%w: entry %d (%s): kind %q", ErrMalformed, i, e.Key, e.Kind)
		case e.Kind == KindDocument && (e.Stream != "" || e.Init != "" || e.Chain != "" || e.PrevChain != "" || e.Sequence != 0):
			return nil, fmt.Errorf("%w: entry %d (%s): a document has no stream, init, chain or sequence", ErrMalformed, i, e.Key)
		case e.Key == "" || strings.ContainsAny(e.Key, "\t\n") || strings.ContainsAny(e.Stream, "\t\n"):
			return nil, fmt.Errorf("%w: entry %d: bad key or stream", ErrMalformed, i)
		case len(e.SHA256) != 64 || e.Size < 0:
			return nil, fmt.Errorf("%w: entry %d (%s): bad size or sha256", ErrMalformed, i, e.Key)
		case seen[e.Key]:
			return nil, fmt.Errorf("%w: entry %d: %s listed twice", ErrMalformed, i, e.Key)
		case i > 0 && compare(m.Entries[i-1], e) >= 0:
			return nil, fmt.Errorf("%w: entry %d (%s) is out of canonical order", ErrRoot, i, e.Key)
		case e.Kind == KindSegment && e.Init != "" && !seen[e.Init]:
			return nil, fmt.Errorf("%w: entry %d (%s) needs init %s, which is not listed before it", ErrMalformed, i, e.Key, e.Init)
		}
		seen[e.Key] = true
	}
	for i, p := range m.Previous {
		if p.Version < 1 || p.Version >= m.Version || (i > 0 && p.Version <= m.Previous[i-1].Version) || len(p.MerkleRoot) != 64 {
			return nil, fmt.Errorf("%w: previous version %d of %d: out of order or bad root", ErrMalformed, p.Version, m.Version)
		}
	}
	root := Root(m.Entries)
	if got := hex.EncodeToString(root[:]); got != m.MerkleRoot {
		return nil, fmt.Errorf("%w: the entries give %s, the manifest states %s", ErrRoot, got, m.MerkleRoot)
	}
	return &m, nil
}

// Verify checks the signature of a manifest file with key.
func Verify(manifest, signature []byte, key ed25519.PublicKey) error {
	if len(signature) != ed25519.SignatureSize || !ed25519.Verify(key, manifest, signature) {
		return fmt.Errorf("%w with key %s", ErrSignature, KeyID(key))
	}
	return nil
}

// Breaks returns where consecutive media segments of a stream in entries
// (canonical order) do not link: a sequence is skipped, or a segment's
// prev_chain is not the chain value of the one before, or its chain value is
// not its prev_chain linked with its SHA-256.
func Breaks(entries []Entry) []Gap {
	var gaps []Gap
	var prev *Entry
	for i := range entries {
		e := &entries[i]
		if e.Kind != KindSegment {
			continue
		}
		if want, err := chain.Next(e.PrevChain, e.SHA256); err != nil || want != e.Chain {
			gaps = append(gaps, Gap{Stream: e.Stream, After: e.Sequence - 1, Next: e.Sequence,
				Detail: fmt.Sprintf("segment %d: chain value does not follow from its prev_chain and sha256", e.Sequence)})
		}
		if prev != nil && prev.Stream == e.Stream {
			switch {
			case e.Sequence != prev.Sequence+1:
				gaps = append(gaps, Gap{Stream: e.Stream, After: prev.Sequence, Next: e.Sequence,
					Detail: fmt.Sprintf("segments %d to %d are missing", prev.Sequence+1, e.Sequence-1)})
			case e.PrevChain != prev.Chain:
				gaps = append(gaps, Gap{Stream: e.Stream, After: prev.Sequence, Next: e.Sequence,
					Detail: fmt.Sprintf("segment %d does not follow segment %d (prev_chain %s, chain before %s)",
						e.Sequence, prev.Sequence, short(e.PrevChain), short(prev.Chain))})
			}
		}
		prev = e
	}
	return gaps
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
