package archiver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
)

// HandleRendition handles one RenditionReady event: the review rendition of
// a raw segment, its init segment, and its thumbnail sprite and track are
// footage of the same stream and time, and get the same retention as the
// segment (the rendition's init, as every init, as long as what uses it).
// So is the transcoder's manifest of the segment (renditionManifest). They
// are not part of the seal: the seal is of the original bytes. The same
// event twice changes nothing more.
func (s *Service) HandleRendition(ctx context.Context, m bus.Message) error {
	ev, err := events.DecodeRenditionReady(m.Value)
	if err != nil {
		return bus.Permanent(err)
	}
	now := s.now()
	base := store.ArchiveObject{Kind: store.ArchiveRendition, StreamID: ev.StreamID, Site: ev.Site, Device: ev.Device,
		Source: ev.Source, Sequence: ev.Sequence, Start: ev.Start,
		End:       ev.Start.Add(secondsDuration(ev.Duration)),
		SegmentID: ev.SegmentID, Verified: true, DecidedAt: now}
	objs := []store.ArchiveObject{}
	r := base
	r.Key, r.Bytes, r.SHA256, r.InitKey = ev.Rendition.Object.Key, ev.Rendition.Object.Bytes, ev.Rendition.Object.SHA256, ev.Rendition.Init.Key
	objs = append(objs, r)
	if th := ev.Thumbnails; th != nil {
		for _, ref := range []events.ObjectRef{th.Sprite, th.VTT} {
			o := base
			o.Key, o.Bytes, o.SHA256 = ref.Key, ref.Bytes, ref.SHA256
			objs = append(objs, o)
		}
	}
	mf, err := s.renditionManifest(ctx, ev)
	if err != nil {
		return err
	}
	if mf.Key != "" {
		o := base
		o.Key, o.Bytes, o.SHA256 = mf.Key, mf.Bytes, mf.SHA256
		objs = append(objs, o)
	}
	var fresh []store.ArchiveObject
	for _, o := range objs {
		if o.Key == "" {
			continue
		}
		_, err := s.d.Store.ArchiveObject(ctx, o.Key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			fresh = append(fresh, o)
		case err != nil:
			return err
		}
	}
	ds, err := s.decideSegments(ctx, fresh, true)
	if err != nil {
		return err
	}
	for i := range fresh {
		if err := s.applyDecision(ctx, fresh[i], ds[i], true); err != nil {
			return err
		}
		setDecision(&fresh[i], ds[i])
	}
	for _, o := range fresh {
		if o.InitKey == "" {
			if err := s.d.Store.SaveArchiveObject(ctx, o); err != nil {
				return err
			}
			continue
		}
		init := store.ArchiveObject{Key: o.InitKey, Kind: store.ArchiveInit, StreamID: o.StreamID, Site: o.Site,
			Device: o.Device, Source: o.Source, Start: o.Start, End: o.End, Bytes: ev.Rendition.Init.Bytes,
			SHA256: ev.Rendition.Init.SHA256, Verified: true, DecidedAt: now}
		prev, err := s.d.Store.ArchiveObject(ctx, init.Key)
		initNew := errors.Is(err, store.ErrNotFound)
		if err != nil && !initNew {
			return err
		}
		if !initNew {
			init.RetainUntil, init.LegalHold, init.Rule = prev.RetainUntil, prev.LegalHold, prev.Rule
		}
		d, err := s.decideInit(ctx, init, &o)
		if err != nil {
			return err
		}
		if err := s.applyDecision(ctx, init, d, initNew); err != nil {
			return err
		}
		setDecision(&init, d)
		if err := s.d.Store.SaveArchivedSegment(ctx, o, init, store.StreamChain{}); err != nil {
			return err
		}
	}
	return nil
}

// maxManifest is the most of a manifest the archiver reads: the
// transcoder's are a few kilobytes.
const maxManifest = 1 << 20

// renditionManifest returns the transcoder's manifest of ev's segment, the
// object <base>.json beside its rendition <base>.m4s that holds the event
// itself (the transcoder writes it last, before it publishes, and reads it
// to know a segment is done): with its size and SHA-256 as the archiver
// read it, so that it is kept as long as the rendition and deleted with it.
// Without this it was never deleted. Nothing (a zero ObjectRef) when the
// rendition key does not end in .m4s, the manifest is archived already,
// the object is absent (a transcoder from before manifests), larger than
// maxManifest, or is not this event's
// manifest (another segment's or rendition's, or not one at all): an event
// cannot give a retention to an object that is not its manifest.
func (s *Service) renditionManifest(ctx context.Context, ev *events.RenditionReady) (events.ObjectRef, error) {
	base, ok := strings.CutSuffix(ev.Rendition.Object.Key, ".m4s")
	if !ok || base == "" {
		return events.ObjectRef{}, nil
	}
	key := base + ".json"
	// Taken already (the same event again): nothing to read.
	switch _, err := s.d.Store.ArchiveObject(ctx, key); {
	case err == nil:
		return events.ObjectRef{}, nil
	case !errors.Is(err, store.ErrNotFound):
		return events.ObjectRef{}, err
	}
	r, err := s.d.Blob.Get(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return events.ObjectRef{}, nil
	}
	if err != nil {
		return events.ObjectRef{}, fmt.Errorf("get manifest %s: %w", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxManifest+1))
	if err != nil {
		return events.ObjectRef{}, fmt.Errorf("read manifest %s: %w", key, err)
	}
	if len(b) > maxManifest {
		s.d.Log.Warn("rendition manifest too large: not kept with its rendition", "object_key", key)
		return events.ObjectRef{}, nil
	}
	m, err := events.DecodeRenditionReady(b)
	if err != nil || m.SegmentID != ev.SegmentID || m.StreamID != ev.StreamID ||
		m.Rendition.Object.Key != ev.Rendition.Object.Key {
		s.d.Log.Warn("object beside a rendition is not its manifest: not kept with it", "object_key", key,
			"segment_id", ev.SegmentID)
		return events.ObjectRef{}, nil
	}
	sum := sha256.Sum256(b)
	return events.ObjectRef{Key: key, Bytes: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}, nil
}
