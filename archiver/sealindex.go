package archiver

import (
	"context"
	"time"

	"github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/facts"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// sealIndex is what seal.Collect reads for the archiver's seals: the
// archived objects from the archiver's own store, the evidence documents
// from the registry's, with what the archiver did with them from its own
// (the registry's copy of that may lag).
type sealIndex struct {
	docs interface {
		EvidenceDocuments(ctx context.Context, exam, candidate string) ([]facts.EvidenceDocument, error)
	}
	st interface {
		ArchivedSegments(ctx context.Context, site string, from, to time.Time, afterKey string, limit int) ([]store.ArchiveObject, error)
		ArchiveObjectsByKeys(ctx context.Context, keys []string) ([]store.ArchiveObject, error)
	}
}

func (x sealIndex) Segments(ctx context.Context, site string, from, to time.Time, afterKey string, limit int) ([]seal.Object, error) {
	objs, err := x.st.ArchivedSegments(ctx, site, from, to, afterKey, limit)
	return sealObjects(objs), err
}

func (x sealIndex) Objects(ctx context.Context, keys []string) ([]seal.Object, error) {
	objs, err := x.st.ArchiveObjectsByKeys(ctx, keys)
	return sealObjects(objs), err
}

func (x sealIndex) Documents(ctx context.Context, exam, candidate string) ([]seal.Document, error) {
	docs, err := x.docs.EvidenceDocuments(ctx, exam, candidate)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(docs))
	for _, d := range docs {
		keys = append(keys, d.ObjectKey)
	}
	archived, err := x.st.ArchiveObjectsByKeys(ctx, keys)
	if err != nil {
		return nil, err
	}
	took := make(map[string]store.ArchiveObject, len(archived))
	for _, o := range archived {
		took[o.Key] = o
	}
	out := make([]seal.Document, 0, len(docs))
	for _, d := range docs {
		o, ok := took[d.ObjectKey]
		out = append(out, seal.Document{Key: d.ObjectKey, Kind: d.Kind, Size: d.Bytes, SHA256: d.SHA256,
			UploadedAt: d.UploadedAt, Archived: ok, Verified: ok && o.Verified, Deleted: ok && o.DeletedAt != nil})
	}
	return out, nil
}

func sealObjects(objs []store.ArchiveObject) []seal.Object {
	if objs == nil {
		return nil
	}
	out := make([]seal.Object, 0, len(objs))
	for _, o := range objs {
		out = append(out, seal.Object{Key: o.Key, Stream: o.StreamID, Device: o.Device, Source: o.Source,
			Room: o.Source == events.SourceRoom, Sequence: o.Sequence, Start: o.Start, End: o.End, Size: o.Bytes,
			SHA256: o.SHA256, PrevChain: o.PrevChain, Chain: o.Chain, Init: o.InitKey, Verified: o.Verified})
	}
	return out
}
