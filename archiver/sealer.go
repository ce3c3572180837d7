package archiver

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/facts"
	"github.com/nokstream/nokstream/internal/evidence/retention"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// SealKeys returns the object keys of version v of a candidate-exam's seal:
// the manifest and its signature, stored beside the media.
func SealKeys(exam, candidate string, v int) (manifest, signature string) {
	return seal.Keys(exam, candidate, v)
}

// sealIfDue seals a candidate-exam whose result is recorded and whose exam
// is over, unless its latest seal already covers exactly its objects: a seal
// is made once, and again only if footage arrived after it (a late upload).
func (s *Service) sealIfDue(ctx context.Context, ce facts.EvidenceExam) error {
	if ce.Result == retention.ResultNone || s.now().Before(ce.End) {
		return nil
	}
	_, err := s.Seal(ctx, ce, false)
	return err
}

// Seal seals a candidate-exam: it writes the manifest of its objects and the
// signature beside the media, gives them the candidate-exam's retention, and
// records the seal. Unless force is set, nothing is written when the latest
// seal has the same entries. It returns the seal written or found. Its
// callers take the candidate-exam's documents first (Recompute,
// takeNewDocuments), so that what it lists is locked.
func (s *Service) Seal(ctx context.Context, ce facts.EvidenceExam, force bool) (store.Seal, error) {
	entries, problems, err := seal.Collect(ctx, sealIndex{docs: s.d.Facts, st: s.d.Store}, ce.Scope(), s.cfg.Batch)
	if err != nil {
		return store.Seal{}, err
	}
	latest, err := s.d.Store.LatestSeal(ctx, ce.ExamID, ce.CandidateID)
	var previous []seal.Previous
	switch {
	case err == nil:
		// Append-only: what the latest version listed stays listed, and
		// is signed again; so only a version this archive sealed is
		// carried.
		prev, err := s.readSealed(ctx, latest)
		if err != nil {
			return store.Seal{}, err
		}
		entries, problems, previous = seal.Carry(prev, entries, problems)
	case !errors.Is(err, store.ErrNotFound):
		return store.Seal{}, err
	}
	root := seal.Root(entries)
	if latest.Version > 0 && !force && latest.MerkleRoot == hex.EncodeToString(root[:]) {
		return latest, nil
	}
	now := s.now().UTC()
	m := &seal.Manifest{
		ExamID: ce.ExamID, CandidateID: ce.CandidateID, Version: latest.Version + 1, SealedAt: now,
		Site: ce.Site, WindowStart: ce.Start.UTC(), WindowEnd: ce.End.UTC(), Result: string(ce.Result),
		Entries: entries, Gaps: seal.Breaks(entries), Problems: problems, Previous: previous,
	}
	manifest, sig, err := seal.Seal(m, s.d.SealKey)
	if err != nil {
		return store.Seal{}, err
	}
	mKey, sKey := SealKeys(ce.ExamID, ce.CandidateID, m.Version)
	// The signature first, the manifest last: a manifest in the store is
	// a complete seal.
	if err := s.d.Blob.Put(ctx, sKey, bytes.NewReader(sig), int64(len(sig))); err != nil {
		return store.Seal{}, fmt.Errorf("store seal signature: %w", err)
	}
	if err := s.d.Blob.Put(ctx, mKey, bytes.NewReader(manifest), int64(len(manifest))); err != nil {
		return store.Seal{}, fmt.Errorf("store seal manifest: %w", err)
	}
	d := s.settings.Decide(retention.Object{Key: mKey, End: ce.End}, []retention.CandidateExam{ce.CandidateExam}, retention.Applied{})
	var objs []store.ArchiveObject
	for _, k := range []struct {
		key  string
		size int
	}{{mKey, len(manifest)}, {sKey, len(sig)}} {
		o := store.ArchiveObject{Key: k.key, Kind: store.ArchiveSeal, Site: ce.Site, Start: ce.Start, End: ce.End,
			Bytes: int64(k.size), ExamID: ce.ExamID, CandidateID: ce.CandidateID, Verified: true, DecidedAt: now}
		if err := s.applyDecision(ctx, o, d, true); err != nil {
			return store.Seal{}, err
		}
		setDecision(&o, d)
		objs = append(objs, o)
	}
	rec := store.Seal{ExamID: ce.ExamID, CandidateID: ce.CandidateID, Version: m.Version, ManifestKey: mKey,
		SignatureKey: sKey, MerkleRoot: m.MerkleRoot, KeyID: m.KeyID, Objects: m.Objects, Bytes: m.Bytes, SealedAt: now}
	if err := s.d.Store.SaveSeal(ctx, rec, objs...); err != nil {
		return store.Seal{}, err
	}
	s.m.seals.Inc()
	s.d.Log.Info("sealed candidate-exam", "exam_id", ce.ExamID, "candidate_id", ce.CandidateID, "version", m.Version,
		"objects", m.Objects, "merkle_root", m.MerkleRoot, "gaps", len(m.Gaps), "problems", len(m.Problems))
	return rec, nil
}

// readSealed reads a stored version of a seal and checks that it is the
// one sealed: the manifest its record names, of its candidate-exam and
// version, with the Merkle root recorded, and signed by the archive's key if
// that signed it (a seal of an earlier key has the recorded root to go by).
// A new version carries the old one's entries and signs them again: an
// earlier manifest altered in the blob store would otherwise come out of
// the next seal signed. A mismatch is an ALERT and an error; nothing is
// sealed over it.
func (s *Service) readSealed(ctx context.Context, rec store.Seal) (*seal.Manifest, error) {
	b, err := s.readObject(ctx, rec.ManifestKey, bundle.MaxManifestSize)
	if err != nil {
		return nil, fmt.Errorf("read seal manifest: %w", err)
	}
	m, err := seal.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("seal manifest %s: %w", rec.ManifestKey, err)
	}
	var why string
	pub := s.d.SealKey.Public().(ed25519.PublicKey)
	switch {
	case m.ExamID != rec.ExamID || m.CandidateID != rec.CandidateID || m.Version != rec.Version:
		why = fmt.Sprintf("it is version %d of exam %s, candidate %s", m.Version, m.ExamID, m.CandidateID)
	case m.MerkleRoot != rec.MerkleRoot:
		why = fmt.Sprintf("its Merkle root is %s, the seal recorded %s", m.MerkleRoot, rec.MerkleRoot)
	case rec.KeyID == seal.KeyID(pub):
		sig, err := s.readObject(ctx, rec.SignatureKey, 1<<10)
		if err != nil {
			return nil, fmt.Errorf("read seal signature: %w", err)
		}
		if err := seal.Verify(b, sig, pub); err != nil {
			why = fmt.Sprintf("its signature %s: %v", rec.SignatureKey, err)
		}
	}
	if why != "" {
		s.d.Log.Error("ALERT stored seal is not the one sealed", "exam_id", rec.ExamID, "candidate_id", rec.CandidateID,
			"version", rec.Version, "manifest", rec.ManifestKey, "detail", why)
		return nil, fmt.Errorf("seal version %d of exam %s, candidate %s (%s) is not the seal this archive made: %s; "+
			"not sealing over it: restore it from a bundle or a backup, and find who changed it", rec.Version, rec.ExamID,
			rec.CandidateID, rec.ManifestKey, why)
	}
	return m, nil
}

// readObject reads a stored object of at most limit bytes.
func (s *Service) readObject(ctx context.Context, key string, limit int64) ([]byte, error) {
	rc, err := s.d.Blob.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("read %s: more than %d bytes", key, limit)
	}
	return b, nil
}
