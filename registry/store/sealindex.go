package store

import (
	"context"
	"time"

	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// ArchiveIndex is what SealIndex reads; *Store is one.
type ArchiveIndex interface {
	ArchivedSegments(ctx context.Context, site string, from, to time.Time, afterKey string, limit int) ([]seal.Object, error)
	ArchivedObjects(ctx context.Context, keys []string) ([]seal.Object, error)
	EvidenceDocuments(ctx context.Context, exam, candidate string) ([]EvidenceDocument, error)
}

// SealIndex reads the registry's copy of the archive's index (what the
// archiver reported it keeps) and the evidence documents from st as
// seal.Collect takes them, for an export's manifest before any seal.
func SealIndex(st ArchiveIndex) seal.Index { return sealIndex{st} }

type sealIndex struct{ st ArchiveIndex }

func (x sealIndex) Segments(ctx context.Context, site string, from, to time.Time, afterKey string, limit int) ([]seal.Object, error) {
	return x.st.ArchivedSegments(ctx, site, from, to, afterKey, limit)
}

func (x sealIndex) Objects(ctx context.Context, keys []string) ([]seal.Object, error) {
	return x.st.ArchivedObjects(ctx, keys)
}

func (x sealIndex) Documents(ctx context.Context, exam, candidate string) ([]seal.Document, error) {
	docs, err := x.st.EvidenceDocuments(ctx, exam, candidate)
	if err != nil {
		return nil, err
	}
	out := make([]seal.Document, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.SealDocument())
	}
	return out, nil
}

// SealDocument returns d as seal.Collect takes it.
func (d EvidenceDocument) SealDocument() seal.Document {
	return seal.Document{Key: d.ObjectKey, Kind: d.Kind, Size: d.Bytes, SHA256: d.SHA256, UploadedAt: d.UploadedAt,
		Archived: d.Archived, Verified: d.Verified, Deleted: d.DeletedAt != nil}
}
