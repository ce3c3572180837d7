// Package export writes the evidence bundle of a candidate-exam
// (internal/evidence/bundle) from the registry's records: the archiver's
// latest seal of it (the registry's copy, or a newer one in the blob
// store), the objects the seal lists, the candidate's timeline and the
// audit trail of the evidence. The registry's API and `nokstream
// evidence export` serve it; it links no service but the registry's store.
package export

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/seal"
	"github.com/nokstream/nokstream/registry/store"
)

// ErrNoPurpose is returned by Bundle when no purpose is given:
// every export of evidence must say why.
var ErrNoPurpose = errors.New("an export of evidence needs a purpose")

// Store is what an export reads and writes; *store.Store is one.
type Store interface {
	ExamEvidence(ctx context.Context, exam, candidate string) ([]store.EvidenceExam, error)
	LatestSeal(ctx context.Context, exam, candidate string) (store.Seal, error)
	ArchivedSegments(ctx context.Context, site string, from, to time.Time, afterKey string, limit int) ([]seal.Object, error)
	ArchivedObjects(ctx context.Context, keys []string) ([]seal.Object, error)
	EvidenceDocuments(ctx context.Context, exam, candidate string) ([]store.EvidenceDocument, error)
	EvidenceTimeline(ctx context.Context, exam, candidate string) (store.Timeline, error)
	ObjectAudit(ctx context.Context, objects []string, since time.Time, limit int) ([]store.AuditEntry, error)
	Audit(ctx context.Context, e store.AuditEntry) error
}

// Request says whose evidence to export, by whom and why.
type Request struct {
	ExamID      string
	CandidateID string
	Purpose     string
	ActorID     int64
	ActorLogin  string
	RemoteAddr  string
}

// AuditObject is the audit log's name for a candidate-exam's evidence.
func AuditObject(exam, candidate string) string { return "evidence/" + exam + "/" + candidate }

// maxAuditEntries bounds the audit trail put in a bundle.
const maxAuditEntries = 100000

// Bundle writes the evidence bundle of a candidate-exam to w: its latest
// seal, or, before any seal, a manifest made and signed now (seal.Collect),
// with the objects it lists read from objs, the candidate's timeline and the
// audit trail of the evidence. The export is written to the audit log before
// the first byte.
func Bundle(ctx context.Context, w io.Writer, st Store, objs bundle.Objects, key ed25519.PrivateKey,
	req Request, now time.Time) (bundle.Summary, error) {
	req.Purpose = strings.TrimSpace(req.Purpose)
	if req.Purpose == "" {
		return bundle.Summary{}, ErrNoPurpose
	}
	ces, err := st.ExamEvidence(ctx, req.ExamID, req.CandidateID)
	if err != nil {
		return bundle.Summary{}, err
	}
	ce := ces[0]
	manifest, sig, sealVersion, err := exportSeal(ctx, st, objs, key, ce, now)
	if err != nil {
		return bundle.Summary{}, err
	}
	m, err := seal.Parse(manifest)
	if err != nil {
		return bundle.Summary{}, fmt.Errorf("export evidence: the stored seal: %w", err)
	}
	object := AuditObject(req.ExamID, req.CandidateID)
	if err := st.Audit(ctx, store.AuditEntry{At: now, ActorID: req.ActorID, ActorLogin: req.ActorLogin,
		Action: "evidence.export", Object: object, RemoteAddr: req.RemoteAddr, Purpose: req.Purpose,
		Detail: map[string]any{"seal_version": sealVersion, "merkle_root": m.MerkleRoot, "objects": m.Objects, "bytes": m.Bytes}}); err != nil {
		return bundle.Summary{}, err
	}
	timeline, err := st.EvidenceTimeline(ctx, req.ExamID, req.CandidateID)
	if err != nil {
		return bundle.Summary{}, err
	}
	names := []string{object, req.ExamID + "/" + req.CandidateID, timeline.Candidate.Webcam, timeline.Candidate.Screen}
	streams := map[string]bool{}
	for _, e := range m.Entries {
		names = append(names, e.Key)
		if !streams[e.Stream] {
			streams[e.Stream] = true
			names = append(names, e.Stream)
		}
	}
	trail, err := st.ObjectAudit(ctx, names, ce.Start.Add(-24*time.Hour), maxAuditEntries)
	if err != nil {
		return bundle.Summary{}, err
	}
	audit := make([]map[string]any, 0, len(trail))
	for _, a := range trail {
		audit = append(audit, map[string]any{"id": a.ID, "at": a.At.UTC(), "actor": a.ActorLogin, "action": a.Action,
			"object": a.Object, "remote_addr": a.RemoteAddr, "purpose": a.Purpose, "detail": a.Detail})
	}
	by := req.ActorLogin
	if by == "" {
		by = "operator"
	}
	return bundle.Write(ctx, w, objs, bundle.Request{Purpose: req.Purpose, ExportedBy: by, ExportedAt: now,
		Manifest: manifest, Signature: sig, Timeline: timeline, Audit: audit, Key: key})
}

// maxUnheardSeals bounds how many seals newer than the registry's copy an
// export looks for in the blob store.
const maxUnheardSeals = 1000

// exportSeal returns the latest seal of a candidate-exam, or a manifest made
// and signed now (version 0, not stored) if it has none yet.
//
// The registry learns of seals from the archiver's events (SealWritten), so
// its copy may lag a seal just written. The blob store does not: a seal's
// manifest is stored last, under a key of its version (seal.Keys), and
// versions go up by one. So the export takes the registry's newest seal
// and then any newer version whose manifest is stored; it makes a version-0
// manifest only when the blob store has no seal of the candidate-exam
// either.
func exportSeal(ctx context.Context, st Store, objs bundle.Objects, key ed25519.PrivateKey, ce store.EvidenceExam,
	now time.Time) (manifest, sig []byte, version int, err error) {
	sl, err := st.LatestSeal(ctx, ce.ExamID, ce.CandidateID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, 0, err
	}
	version = sl.Version
	mKey, sKey := sl.ManifestKey, sl.SignatureKey
	for range maxUnheardSeals {
		next, nextSig := seal.Keys(ce.ExamID, ce.CandidateID, version+1)
		_, err := objs.Stat(ctx, next)
		if errors.Is(err, blob.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, nil, 0, fmt.Errorf("look for a seal of exam %s candidate %s: %w", ce.ExamID, ce.CandidateID, err)
		}
		version, mKey, sKey = version+1, next, nextSig
	}
	if version > 0 {
		if manifest, err = readObject(ctx, objs, mKey); err != nil {
			return nil, nil, 0, err
		}
		if sig, err = readObject(ctx, objs, sKey); err != nil {
			return nil, nil, 0, err
		}
		return manifest, sig, version, nil
	}
	entries, problems, err := seal.Collect(ctx, store.SealIndex(st), ce.Scope(), 1000)
	if err != nil {
		return nil, nil, 0, err
	}
	m := &seal.Manifest{ExamID: ce.ExamID, CandidateID: ce.CandidateID, Version: 0, SealedAt: now.UTC(), Site: ce.Site,
		WindowStart: ce.Start.UTC(), WindowEnd: ce.End.UTC(), Result: string(ce.Result), Entries: entries,
		Gaps: seal.Breaks(entries), Problems: problems}
	manifest, sig, err = seal.Seal(m, key)
	return manifest, sig, 0, err
}

func readObject(ctx context.Context, objs bundle.Objects, key string) ([]byte, error) {
	r, err := objs.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return b, nil
}
