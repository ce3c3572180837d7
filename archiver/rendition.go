package archiver

import (
	"context"
	"errors"

	"github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
)

// HandleRendition handles one RenditionReady event: the review rendition of
// a raw segment, its init segment, and its thumbnail sprite and track are
// footage of the same stream and time, and get the same retention as the
// segment (the rendition's init, as every init, as long as what uses it).
// They are not part of the seal: the seal is of the original bytes. The
// same event twice changes nothing more.
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
