// Package bundle writes and verifies evidence bundles: one tar file with
// everything a council, an appeals commission or a court needs to see and to
// check the evidence of one candidate's exam, offline, years later.
//
// # Layout
//
// Every file of the bundle is under one directory, evidence-<exam>-<candidate>/,
// in this order (the verifier reads the tar once, front to back):
//
//	README.txt           how to check the bundle, in Russian and English
//	seal/seal.pub        the archiver's Ed25519 public key (PEM)
//	seal/manifest.json   the seal's manifest (internal/evidence/seal): every object, its
//	                     size, SHA-256, stream, time range and chain values, and
//	                     the Merkle root
//	seal/manifest.sig    the Ed25519 signature of manifest.json (64 bytes)
//	objects/<key>        each object of the manifest, the original bytes, in
//	                     the manifest's order (init segments before the media
//	                     segments of their stream)
//	timeline.json        the candidate's timeline: exam, admission, result,
//	                     appeals, expert marks and verdicts, observations
//	audit.json           the audit trail of this evidence
//	export.json          who exported it, when, why; the SHA-256 of every file
//	                     above that the seal does not cover
//	export.sig           the Ed25519 signature of export.json, same key
//
// The seal covers the media; export.json and its signature cover the rest,
// and name the exam, the candidate and the SHA-256 of the manifest.
//
// A bundle has each of these files once, in this order, each object once,
// and nothing outside its directory, whose name is the manifest's exam and
// candidate. The verifier holds a bundle that breaks any of this as forged:
// a second manifest, for one, would be a second truth beside the signed one.
package bundle

import (
	"archive/tar"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// ExportFormat is the value of Export.Format.
const ExportFormat = "nokstream-evidence/1"

// Names of the files of a bundle, under its directory.
const (
	fileReadme    = "README.txt"
	filePub       = "seal/seal.pub"
	fileManifest  = "seal/manifest.json"
	fileSignature = "seal/manifest.sig"
	objectsDir    = "objects/"
	fileTimeline  = "timeline.json"
	fileAudit     = "audit.json"
	fileExport    = "export.json"
	fileExportSig = "export.sig"
)

// The most bytes each metadata file of a bundle may have: the verifier
// refuses a larger one unread, and holds at most these in memory.
const (
	// MaxManifestSize bounds seal/manifest.json: about 100,000 objects,
	// a week of six streams in 6 s segments.
	MaxManifestSize  = 64 << 20
	maxExportSize    = 64 << 20
	maxTrailSize     = 256 << 20 // timeline.json, audit.json: hashed as they stream
	maxReadmeSize    = 1 << 20
	maxKeySize       = 64 << 10
	maxSignatureSize = 1 << 10
)

// Dir returns the directory of a bundle.
func Dir(exam, candidate string) string { return "evidence-" + exam + "-" + candidate + "/" }

// Export is the content of export.json.
type Export struct {
	Format      string    `json:"format"`
	ExamID      string    `json:"exam_id"`
	CandidateID string    `json:"candidate_id"`
	Purpose     string    `json:"purpose"`
	ExportedBy  string    `json:"exported_by"`
	ExportedAt  time.Time `json:"exported_at"`
	// ManifestSHA256 is the SHA-256 of seal/manifest.json.
	ManifestSHA256 string `json:"manifest_sha256"`
	KeyID          string `json:"key_id"`
	// Files lists the files the seal does not cover, with their SHA-256.
	Files []File `json:"files"`
	// Problems lists objects of the manifest the exporter could not
	// include as sealed: missing from the store, or other bytes.
	Problems []seal.Problem `json:"problems,omitempty"`
}

// File is a file of the bundle with its size and SHA-256.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Objects opens stored objects; every blob.Store is one.
type Objects interface {
	Stat(ctx context.Context, key string) (blob.Attrs, error)
	Get(ctx context.Context, key string) (io.ReadCloser, error)
}

// Request is what goes into a bundle besides the objects.
type Request struct {
	Purpose    string
	ExportedBy string
	ExportedAt time.Time
	// Manifest and Signature are the seal.
	Manifest  []byte
	Signature []byte
	// Timeline and Audit are written as JSON.
	Timeline any
	Audit    any
	// Key signs export.json; its public half is seal/seal.pub and must be
	// the key that signed the seal.
	Key ed25519.PrivateKey
}

// Summary says what Write wrote.
type Summary struct {
	Objects  int
	Bytes    int64 // of the objects
	Total    int64 // of the tar
	Problems []seal.Problem
}

// Write writes a bundle to w, streaming each object from objs and hashing it
// on the way. An object that is missing, or whose bytes differ from the
// seal, is still written as stored (or left out if missing) and listed in
// export.json's problems: the bundle shows the evidence as it is, and its
// verifier names what is wrong.
func Write(ctx context.Context, w io.Writer, objs Objects, r Request) (Summary, error) {
	var sum Summary
	if len(r.Manifest) > MaxManifestSize {
		return sum, fmt.Errorf("bundle: the manifest has %d bytes, more than the %d a bundle may hold", len(r.Manifest), MaxManifestSize)
	}
	m, err := seal.Parse(r.Manifest)
	if err != nil {
		return sum, fmt.Errorf("bundle: %w", err)
	}
	if err := seal.Verify(r.Manifest, r.Signature, r.Key.Public().(ed25519.PublicKey)); err != nil {
		return sum, fmt.Errorf("bundle: the seal is not signed by the export key: %w", err)
	}
	cw := &countWriter{w: w}
	tw := tar.NewWriter(cw)
	dir := Dir(m.ExamID, m.CandidateID)
	mtime := r.ExportedAt.UTC().Truncate(time.Second)
	x := Export{
		Format: ExportFormat, ExamID: m.ExamID, CandidateID: m.CandidateID, Purpose: r.Purpose,
		ExportedBy: r.ExportedBy, ExportedAt: r.ExportedAt.UTC(), ManifestSHA256: sha256Hex(r.Manifest), KeyID: m.KeyID,
	}
	writeFile := func(name string, b []byte, listed bool) error {
		if err := tw.WriteHeader(&tar.Header{Name: dir + name, Mode: 0o444, Size: int64(len(b)), ModTime: mtime,
			Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := tw.Write(b); err != nil {
			return err
		}
		if listed {
			x.Files = append(x.Files, File{Name: name, Size: int64(len(b)), SHA256: sha256Hex(b)})
		}
		return nil
	}
	pub := seal.MarshalPublicKey(r.Key.Public().(ed25519.PublicKey))
	if err := writeFile(fileReadme, Readme(m, r.Purpose, r.ExportedAt), true); err != nil {
		return sum, fmt.Errorf("bundle: %w", err)
	}
	if err := writeFile(filePub, pub, true); err != nil {
		return sum, fmt.Errorf("bundle: %w", err)
	}
	if err := writeFile(fileManifest, r.Manifest, false); err != nil {
		return sum, fmt.Errorf("bundle: %w", err)
	}
	if err := writeFile(fileSignature, r.Signature, false); err != nil {
		return sum, fmt.Errorf("bundle: %w", err)
	}
	buf := make([]byte, 1<<20)
	for _, e := range m.Entries {
		if err := ctx.Err(); err != nil {
			return sum, err
		}
		p, err := writeObject(ctx, tw, objs, dir, e, mtime, buf)
		if err != nil {
			return sum, fmt.Errorf("bundle: object %s: %w", e.Key, err)
		}
		if p != nil {
			x.Problems = append(x.Problems, *p)
		}
		if p == nil || p.Detail != "missing from the store" {
			sum.Objects++
			sum.Bytes += e.Size
		}
	}
	for _, f := range []struct {
		name string
		v    any
	}{{fileTimeline, r.Timeline}, {fileAudit, r.Audit}} {
		b, err := json.MarshalIndent(f.v, "", "  ")
		if err != nil {
			return sum, fmt.Errorf("bundle: encode %s: %w", f.name, err)
		}
		if err := writeFile(f.name, append(b, '\n'), true); err != nil {
			return sum, fmt.Errorf("bundle: %w", err)
		}
	}
	xb, err := json.MarshalIndent(x, "", "  ")
	if err != nil {
		return sum, fmt.Errorf("bundle: encode export: %w", err)
	}
	xb = append(xb, '\n')
	if err := writeFile(fileExport, xb, false); err != nil {
		return sum, fmt.Errorf("bundle: %w", err)
	}
	if err := writeFile(fileExportSig, ed25519.Sign(r.Key, xb), false); err != nil {
		return sum, fmt.Errorf("bundle: %w", err)
	}
	if err := tw.Close(); err != nil {
		return sum, fmt.Errorf("bundle: %w", err)
	}
	sum.Total, sum.Problems = cw.n, x.Problems
	return sum, nil
}

// writeObject copies one object into the tar, hashing it, and reports a
// problem if it is missing or differs from its entry.
func writeObject(ctx context.Context, tw *tar.Writer, objs Objects, dir string, e seal.Entry, mtime time.Time, buf []byte) (*seal.Problem, error) {
	a, err := objs.Stat(ctx, e.Key)
	if errors.Is(err, blob.ErrNotFound) {
		return &seal.Problem{Key: e.Key, Detail: "missing from the store"}, nil
	}
	if err != nil {
		return nil, err
	}
	rc, err := objs.Get(ctx, e.Key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if err := tw.WriteHeader(&tar.Header{Name: dir + objectsDir + e.Key, Mode: 0o444, Size: a.Size, ModTime: mtime,
		Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(tw, h), io.LimitReader(rc, a.Size), buf)
	if err != nil {
		return nil, err
	}
	if n != a.Size {
		return nil, fmt.Errorf("read %d of %d bytes", n, a.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); a.Size != e.Size || got != e.SHA256 {
		return &seal.Problem{Key: e.Key, Detail: fmt.Sprintf("stored bytes differ from the seal: %d bytes, sha256 %s", a.Size, got)}, nil
	}
	return nil, nil
}

// ObjectPath returns the name of an object's file in a bundle, below its
// directory.
func ObjectPath(key string) string { return path.Join(objectsDir, key) }

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
