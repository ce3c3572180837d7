package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
)

// IndexRendition adds the rendition a RenditionReady event announces to the
// index and reports whether the index changed. The same event twice is one
// row. A later event for the same segment and variant, made from the same
// raw bytes (the transcoder ran again), replaces the row; one made from
// other raw bytes is ErrConflict. An event that fails validation is
// ErrInvalid. Both errors are permanent.
func (s *Store) IndexRendition(ctx context.Context, e *events.RenditionReady) (changed bool, err error) {
	if err := e.Validate(); err != nil {
		return false, fmt.Errorf("index rendition: %w: %w", ErrInvalid, err)
	}
	ev, err := json.Marshal(e)
	if err != nil {
		return false, fmt.Errorf("index rendition %s: %w", e.SegmentID, err)
	}
	end := e.Start.Add(time.Duration(e.Duration * float64(time.Second)))
	var sprite, vtt events.ObjectRef
	if e.Thumbnails != nil {
		sprite, vtt = e.Thumbnails.Sprite, e.Thumbnails.VTT
	}
	r := e.Rendition
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO renditions (segment_id, variant, stream_id, site, device, sequence, start_at, end_at,
			source_sha256, object_key, object_bytes, object_sha256, init_key, init_bytes, init_sha256,
			sprite_key, sprite_bytes, sprite_sha256, vtt_key, vtt_bytes, vtt_sha256, done_at, event)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
			NULLIF($16::text, ''), NULLIF($17::bigint, 0), NULLIF($18::text, ''), NULLIF($19::text, ''), NULLIF($20::bigint, 0), NULLIF($21::text, ''), $22, $23)
		ON CONFLICT (segment_id, variant) DO UPDATE SET
			object_key = EXCLUDED.object_key, object_bytes = EXCLUDED.object_bytes, object_sha256 = EXCLUDED.object_sha256,
			init_key = EXCLUDED.init_key, init_bytes = EXCLUDED.init_bytes, init_sha256 = EXCLUDED.init_sha256,
			sprite_key = EXCLUDED.sprite_key, sprite_bytes = EXCLUDED.sprite_bytes, sprite_sha256 = EXCLUDED.sprite_sha256,
			vtt_key = EXCLUDED.vtt_key, vtt_bytes = EXCLUDED.vtt_bytes, vtt_sha256 = EXCLUDED.vtt_sha256,
			done_at = EXCLUDED.done_at, event = EXCLUDED.event, indexed_at = now()
		WHERE renditions.source_sha256 = EXCLUDED.source_sha256 AND renditions.done_at < EXCLUDED.done_at`,
		e.SegmentID, e.Variant, e.StreamID, e.Site, e.Device, e.Sequence, e.Start, end,
		e.SourceSHA256, r.Object.Key, r.Object.Bytes, r.Object.SHA256, r.Init.Key, r.Init.Bytes, r.Init.SHA256,
		sprite.Key, sprite.Bytes, sprite.SHA256, vtt.Key, vtt.Bytes, vtt.SHA256, e.Done, ev)
	if err != nil {
		return false, fmt.Errorf("index rendition %s: %w", e.SegmentID, err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	// Not inserted nor replaced: a duplicate, or made from other bytes.
	var source string
	err = s.pool.QueryRow(ctx, `SELECT source_sha256 FROM renditions WHERE segment_id = $1 AND variant = $2`,
		e.SegmentID, e.Variant).Scan(&source)
	if err != nil {
		return false, fmt.Errorf("index rendition %s: read indexed duplicate: %w", e.SegmentID, err)
	}
	if source != e.SourceSHA256 {
		return false, fmt.Errorf("index rendition %s: made from sha256 %s, indexed from %s: %w",
			e.SegmentID, e.SourceSHA256, source, ErrConflict)
	}
	return false, nil
}

// Renditions returns the renditions of one variant of stream
// <site>/<device> whose segments overlap [from, to), ordered by sequence.
func (s *Store) Renditions(ctx context.Context, site, device, variant string, from, to time.Time) ([]events.RenditionReady, error) {
	rows, err := s.pool.Query(ctx, `SELECT event FROM renditions
		WHERE stream_id = $1 AND variant = $2 AND start_at < $4 AND end_at > $3
		ORDER BY sequence, start_at`,
		site+"/"+device, variant, from, to)
	if err != nil {
		return nil, fmt.Errorf("list renditions of %s/%s: %w", site, device, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (events.RenditionReady, error) {
		var b []byte
		var e events.RenditionReady
		if err := row.Scan(&b); err != nil {
			return e, err
		}
		return e, json.Unmarshal(b, &e)
	})
	if err != nil {
		return nil, fmt.Errorf("list renditions of %s/%s: %w", site, device, err)
	}
	return out, nil
}

// RenditionMedia is what a playlist and the thumbnails track say of a
// rendition segment: the raw segment it was made from, its objects and
// codecs, its start on the stream's media timeline and its thumbnails (nil
// for none).
type RenditionMedia struct {
	SegmentID  string
	Object     events.ObjectRef
	Init       events.ObjectRef
	Codecs     []string
	MediaStart float64
	Thumbnails *events.Thumbnails
}

// RenditionMedia returns the objects, codecs, media start and thumbnails
// of the renditions of one variant of stream <site>/<device> whose
// segments overlap [from, to), ordered by sequence: what Renditions
// returns for a playlist or a thumbnails track, read from the columns and
// two small parts of the event instead of decoding each whole event (a
// 4-hour stream has 2 400 of them).
func (s *Store) RenditionMedia(ctx context.Context, site, device, variant string, from, to time.Time) ([]RenditionMedia, error) {
	rows, err := s.pool.Query(ctx, `SELECT segment_id, object_key, object_bytes, object_sha256,
			init_key, init_bytes, init_sha256, event->'rendition'->'codecs',
			coalesce((event->>'media_start')::double precision, 0), event->'thumbnails'
		FROM renditions
		WHERE stream_id = $1 AND variant = $2 AND start_at < $4 AND end_at > $3
		ORDER BY sequence, start_at`,
		site+"/"+device, variant, from, to)
	if err != nil {
		return nil, fmt.Errorf("list rendition media of %s/%s: %w", site, device, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RenditionMedia, error) {
		var m RenditionMedia
		err := row.Scan(&m.SegmentID, &m.Object.Key, &m.Object.Bytes, &m.Object.SHA256,
			&m.Init.Key, &m.Init.Bytes, &m.Init.SHA256, &m.Codecs, &m.MediaStart, &m.Thumbnails)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("list rendition media of %s/%s: %w", site, device, err)
	}
	return out, nil
}

// RenditionObjectByKey returns the indexed rendition object stored under
// key (a rendition segment, its init segment, a sprite or a thumbnails
// fragment), or ErrNotFound. Its SegmentID is the raw segment it was made
// from; Init is set for an init segment.
func (s *Store) RenditionObjectByKey(ctx context.Context, key string) (Object, error) {
	o := Object{Key: key}
	err := s.pool.QueryRow(ctx, `
		(SELECT false, site, device, segment_id, object_bytes, object_sha256 FROM renditions WHERE object_key = $1 LIMIT 1)
		UNION ALL
		(SELECT true, site, device, segment_id, init_bytes, init_sha256 FROM renditions WHERE init_key = $1 LIMIT 1)
		UNION ALL
		(SELECT false, site, device, segment_id, sprite_bytes, sprite_sha256 FROM renditions WHERE sprite_key = $1 LIMIT 1)
		UNION ALL
		(SELECT false, site, device, segment_id, vtt_bytes, vtt_sha256 FROM renditions WHERE vtt_key = $1 LIMIT 1)
		LIMIT 1`, key).Scan(&o.Init, &o.Site, &o.Device, &o.SegmentID, &o.Bytes, &o.SHA256)
	if errors.Is(err, pgx.ErrNoRows) {
		return Object{}, fmt.Errorf("look up rendition object %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return Object{}, fmt.Errorf("look up rendition object %s: %w", key, err)
	}
	return o, nil
}
