package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nokstream/nokstream/internal/events"
)

// Segment is an indexed segment: the SegmentClosed event that announced it,
// its end, and when the registry indexed it. Times have the microsecond
// precision of PostgreSQL.
type Segment struct {
	events.SegmentClosed
	End       time.Time // Start + Duration
	IndexedAt time.Time
}

// segmentColumns are the columns scanSegment reads, in its order.
const segmentColumns = `segment_id, stream_id, source, site, device, sequence, start_at, duration, end_at,
	codecs, bytes, sha256, prev_chain, chain, object_key, init_key, init_sha256, init_bytes,
	ingest_node, discontinuity, salvaged, indexed_at, independent`

// collectSegments reads rows of segmentColumns, expecting about hint of
// them. It is scanSegment for many rows without a string allocated per
// column and row (rowStrings): a playlist of an hour is 600 rows of
// fourteen text columns.
func collectSegments(rows pgx.Rows, hint int) ([]Segment, error) {
	defer rows.Close()
	out := make([]Segment, 0, min(max(hint, 0), 1<<16))
	var txt [12]pgtype.DriverBytes
	strs := newRowStrings(len(txt))
	var codecs textArray
	var g Segment
	var independent bool
	dest := []any{&txt[0], &txt[1], &txt[2], &txt[3], &txt[4], &g.Sequence,
		&g.Start, &g.Duration, &g.End, nil, &g.Bytes, &txt[5], &txt[6], &txt[7],
		&txt[8], &txt[9], &txt[10], &g.InitBytes, &txt[11], &g.Discontinuity,
		&g.Salvaged, &g.IndexedAt, &independent}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		c, err := codecs.get(rows, 9, rows.RawValues()[9]) // skipped by Scan (nil)
		if err != nil {
			return nil, err
		}
		h := g
		h.Codecs = c
		h.SegmentID, h.StreamID, h.Source = strs.get(0, txt[0]), strs.get(1, txt[1]), strs.get(2, txt[2])
		h.Site, h.Device, h.SHA256 = strs.get(3, txt[3]), strs.get(4, txt[4]), strs.get(5, txt[5])
		h.PrevChain, h.Chain, h.ObjectKey = strs.get(6, txt[6]), strs.get(7, txt[7]), strs.get(8, txt[8])
		h.InitKey, h.InitSHA256, h.IngestNode = strs.get(9, txt[9]), strs.get(10, txt[10]), strs.get(11, txt[11])
		h.Independent = nil
		if !independent {
			h.Independent = new(bool)
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

func scanSegment(row pgx.Row) (Segment, error) {
	var g Segment
	var independent bool
	err := row.Scan(&g.SegmentID, &g.StreamID, &g.Source, &g.Site, &g.Device, &g.Sequence,
		&g.Start, &g.Duration, &g.End, &g.Codecs, &g.Bytes, &g.SHA256, &g.PrevChain, &g.Chain,
		&g.ObjectKey, &g.InitKey, &g.InitSHA256, &g.InitBytes, &g.IngestNode, &g.Discontinuity,
		&g.Salvaged, &g.IndexedAt, &independent)
	if !independent {
		g.Independent = new(bool)
	}
	return g, err
}

// IndexSegment adds the segment an event announces to the index and reports
// whether it was new. The same event twice is one row: the second call
// returns false. An event that fails validation is ErrInvalid; one that
// reuses an indexed segment's id for other bytes, keys or another place in
// its stream is ErrConflict. Both are permanent: retrying cannot help.
func (s *Store) IndexSegment(ctx context.Context, e *events.SegmentClosed) (inserted bool, err error) {
	ins, errs, err := s.IndexSegments(ctx, []*events.SegmentClosed{e})
	if err != nil {
		return false, err
	}
	return ins[0], errs[0]
}

// Segments returns the segments of stream <site>/<device> that overlap the
// interval [from, to), ordered by sequence.
//
// The segments of a stream follow each other, so those overlapping the
// interval are the ones starting inside it and at most the last one that
// starts before it: both are found on the (stream_id, start_at) index of
// the partitions of the interval, whatever the length of the stream's
// history.
func (s *Store) Segments(ctx context.Context, site, device string, from, to time.Time) ([]Segment, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+rawSegmentColumns+` FROM (
			(SELECT * FROM segment_rows WHERE stream_id = $1 AND start_at < $2 ORDER BY start_at DESC LIMIT 1)
			UNION ALL
			(SELECT * FROM segment_rows WHERE stream_id = $1 AND start_at >= $2 AND start_at < $3)
		) g WHERE end_at > $2
		ORDER BY sequence, start_at`,
		site+"/"+device, from, to)
	if err != nil {
		return nil, fmt.Errorf("list segments of %s/%s: %w", site, device, err)
	}
	segs, err := s.collectRawSegments(ctx, rows, int(to.Sub(from)/typicalSegment)+2)
	if err != nil {
		return nil, fmt.Errorf("list segments of %s/%s: %w", site, device, err)
	}
	return segs, nil
}

// SegmentByID returns the indexed segment with id, or ErrNotFound.
func (s *Store) SegmentByID(ctx context.Context, id string) (Segment, error) {
	g, err := scanSegment(s.pool.QueryRow(ctx, `SELECT `+segmentColumns+` FROM segments
		WHERE (stream_id, start_at) = (SELECT stream_id, start_at FROM segment_ids WHERE segment_id = $1) AND segment_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Segment{}, fmt.Errorf("get segment %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Segment{}, fmt.Errorf("get segment %s: %w", id, err)
	}
	return g, nil
}

// StreamExists reports whether stream <site>/<device> is known: a device is
// registered for it, or a segment of it is indexed.
func (s *Store) StreamExists(ctx context.Context, site, device string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM devices WHERE site = $1 AND name = $2) OR
		EXISTS (SELECT 1 FROM segments WHERE stream_id = $3)`,
		site, device, site+"/"+device).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("look up stream %s/%s: %w", site, device, err)
	}
	return ok, nil
}

// Object is a blob-store object that the index knows: a segment or an init
// segment.
type Object struct {
	Key       string
	Init      bool   // an init segment rather than a media segment
	Site      string // of the stream it belongs to
	Device    string
	SegmentID string // the segment, or for an init one of the segments that use it
	Bytes     int64
	SHA256    string
}

// ObjectByKey returns the indexed object stored under key, or ErrNotFound if
// no indexed segment has it as its object or init key.
//
// A key of ingest's form names its segment ("…/<sequence>-<id>.m4s"): the
// index finds it by that id and compares the key it derives; a key of
// another form is stored and found by itself; an init key is a profile's.
func (s *Store) ObjectByKey(ctx context.Context, key string) (Object, error) {
	o := Object{Key: key}
	err := s.pool.QueryRow(ctx, `
		(SELECT false, p.site, p.device, r.segment_id, r.bytes,
			CASE WHEN r.hashes_text IS NULL THEN encode(r.sha256, 'hex') ELSE r.hashes_text[1] END
		FROM segment_rows r JOIN segment_profiles p USING (profile_id)
		WHERE (r.stream_id, r.start_at) = (SELECT stream_id, start_at FROM segment_ids WHERE segment_id = $2) AND r.segment_id = $2
			AND coalesce(r.object_key, segment_object_key(r.stream_id, r.start_at, r.sequence, r.segment_id)) = $1 LIMIT 1)
		UNION ALL
		(SELECT false, p.site, p.device, r.segment_id, r.bytes,
			CASE WHEN r.hashes_text IS NULL THEN encode(r.sha256, 'hex') ELSE r.hashes_text[1] END
		FROM segment_rows r JOIN segment_profiles p USING (profile_id) WHERE r.object_key = $1 LIMIT 1)
		UNION ALL
		(SELECT true, site, device, segment_id, init_bytes, init_sha256 FROM segment_profiles WHERE init_key = $1 LIMIT 1)
		LIMIT 1`, key, keySegmentID(key)).Scan(&o.Init, &o.Site, &o.Device, &o.SegmentID, &o.Bytes, &o.SHA256)
	if errors.Is(err, pgx.ErrNoRows) {
		return Object{}, fmt.Errorf("look up object %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return Object{}, fmt.Errorf("look up object %s: %w", key, err)
	}
	return o, nil
}

// keySegmentID returns the segment id that an object key of ingest's form
// names (raw/<site>/<device>/<date>/<sequence>-<id>.m4s), or "".
func keySegmentID(key string) string {
	base, ok := strings.CutSuffix(key[strings.LastIndexByte(key, '/')+1:], ".m4s")
	if !ok {
		return ""
	}
	_, id, _ := strings.Cut(base, "-")
	return id
}

// deleteSegmentByKey deletes the index row of the segment stored under key
// (see ObjectByKey); its segment_ids row stays, so that a replay of its
// event is known.
func deleteSegmentByKey(ctx context.Context, tx pgx.Tx, key string) error {
	tag, err := tx.Exec(ctx, `DELETE FROM segment_rows r
		WHERE (r.stream_id, r.start_at) = (SELECT stream_id, start_at FROM segment_ids WHERE segment_id = $2) AND r.segment_id = $2
			AND coalesce(r.object_key, segment_object_key(r.stream_id, r.start_at, r.sequence, r.segment_id)) = $1`,
		key, keySegmentID(key))
	if err != nil || tag.RowsAffected() > 0 {
		return err
	}
	// A key of another form: stored, found through its hash index.
	_, err = tx.Exec(ctx, `DELETE FROM segment_rows WHERE object_key = $1`, key)
	return err
}

// EnsureSegmentPartitions makes the monthly partitions of the segment index
// for the month of now and the next three, if they are missing, and reports
// how many it made. Rows that a missing month's footage left in the
// default partition move into the new one. Safe to call from several
// registries at once.
func (s *Store) EnsureSegmentPartitions(ctx context.Context, now time.Time) (int, error) {
	var made int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE segments_ensure_partition(m AT TIME ZONE 'UTC'))
		FROM generate_series(date_trunc('month', $1::timestamptz AT TIME ZONE 'UTC'),
			date_trunc('month', $1::timestamptz AT TIME ZONE 'UTC') + interval '3 months', interval '1 month') AS m`, now).Scan(&made)
	if err != nil {
		return 0, fmt.Errorf("make segment partitions: %w", err)
	}
	return made, nil
}

// sweptSegments returns the SHA-256 of each of the events' object keys that
// the sweeper deleted, as the archiver reported it (RecordDeletion): an
// event of such a key and hash announces a segment that was indexed and has
// since been swept.
func (s *Store) sweptSegments(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, evs []*events.SegmentClosed) (map[string]string, error) {
	keys := make([]string, len(evs))
	for i, e := range evs {
		keys[i] = e.ObjectKey
	}
	rows, err := q.Query(ctx, `SELECT object, coalesce(detail->>'sha256', '') FROM audit_log
		WHERE object = ANY($1) AND action = $2 AND detail->>'kind' = 'segment'`, keys, auditArchiveDelete)
	if err != nil {
		return nil, fmt.Errorf("look up swept segments: %w", err)
	}
	deleted := map[string]string{}
	var key, sum string
	_, err = pgx.ForEachRow(rows, []any{&key, &sum}, func() error {
		deleted[key] = sum
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up swept segments: %w", err)
	}
	return deleted, nil
}
