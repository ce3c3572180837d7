package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/nokstream/nokstream/internal/events"
)

// The segment index's rows are compact (migration 00120): the fields a
// stream's segments share are a profile, hashes are bytes, and an object
// key of ingest's form is derived. The view segments shows them as they
// came, computing that per row in SQL; the queries that read thousands of
// rows (playlists, an exam's media) read segment_rows itself and do it
// here, with the profiles cached.

// segmentProfile is a row of segment_profiles.
type segmentProfile struct {
	site, device, source string
	codecs               []string
	initKey, initSHA256  string
	initBytes            int64
	ingestNode           string
}

// maxCachedProfiles bounds each of the profile caches: a profile is a
// stream's init segment from one ingest node, and a registry that runs for
// months sees new ones every day. Past it, a cache starts again empty.
const maxCachedProfiles = 100_000

// cacheProfileID remembers the id of the profile of key.
func (s *Store) cacheProfileID(key string, id int32) {
	storeBounded(&s.profiles, &s.profileIDs, key, id)
}

// storeBounded stores k → v in m, which holds n entries: emptied first
// when that reaches maxCachedProfiles.
func storeBounded(m *sync.Map, n *atomic.Int64, k, v any) {
	if n.Add(1) > maxCachedProfiles {
		m.Clear()
		n.Store(1)
	}
	m.Store(k, v)
}

// profileRefs collects the profiles of a query's rows, in their order, and
// then reads them (profilesByID).
type profileRefs struct {
	ids  []int32 // each row's
	byID map[int32]*segmentProfile
}

func (r *profileRefs) add(id int32) {
	if r.byID == nil {
		r.byID = map[int32]*segmentProfile{}
	}
	if len(r.ids) == 0 || r.ids[len(r.ids)-1] != id {
		if _, ok := r.byID[id]; !ok {
			r.byID[id] = nil
		}
	}
	r.ids = append(r.ids, id)
}

// resolve reads the profiles and returns row i's as each(i, profile).
func (r *profileRefs) resolve(ctx context.Context, s *Store, each func(i int, p *segmentProfile)) error {
	if len(r.ids) == 0 {
		return nil
	}
	if err := s.profilesByID(ctx, r.byID); err != nil {
		return err
	}
	for i, id := range r.ids {
		each(i, r.byID[id])
	}
	return nil
}

// profilesByID fills ids with their profiles, from the cache or, for those
// it lacks, in one query. A profile never changes once made.
func (s *Store) profilesByID(ctx context.Context, ids map[int32]*segmentProfile) error {
	var missing []int32
	for id := range ids {
		if p, ok := s.profileRows.Load(id); ok {
			ids[id] = p.(*segmentProfile)
		} else {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	rows, err := s.pool.Query(ctx, `SELECT profile_id, site, device, source, codecs, init_key, init_sha256, init_bytes, ingest_node
		FROM segment_profiles WHERE profile_id = ANY($1)`, missing)
	if err != nil {
		return fmt.Errorf("segment profiles: %w", err)
	}
	var id int32
	var p segmentProfile
	_, err = pgx.ForEachRow(rows, []any{&id, &p.site, &p.device, &p.source, &p.codecs, &p.initKey, &p.initSHA256, &p.initBytes,
		&p.ingestNode}, func() error {
		q := p
		if q.codecs == nil {
			q.codecs = []string{}
		}
		ids[id] = &q
		storeBounded(&s.profileRows, &s.profileRowsN, id, &q)
		return nil
	})
	if err != nil {
		return fmt.Errorf("segment profiles: %w", err)
	}
	for id, p := range ids {
		if p == nil {
			return fmt.Errorf("segment profiles: profile %d of an indexed segment is missing", id)
		}
	}
	return nil
}

// derivedKeys decodes the hashes and object key of a row of segment_rows
// (see the migration) into strings of strs.
type derivedKeys struct {
	strs *rowStrings
}

// hash returns hash i of the row (0 sha256, 1 prev_chain, 2 chain): the
// bytes b in hex, or the text it came as (hashesText, NULL or three).
func (d *derivedKeys) hash(i int, b []byte, hashesText []string) (string, error) {
	if hashesText != nil {
		if len(hashesText) != 3 {
			return "", fmt.Errorf("hashes_text of %d hashes", len(hashesText))
		}
		return hashesText[i], nil
	}
	return d.strs.appendString(2*len(b), func(dst []byte) []byte { return hex.AppendEncode(dst, b) }), nil
}

// objectKey returns the row's object key: the stored one, or ingest's form
// when none is stored. The index stores none only for a key equal to
// segment_object_key's, which has one only for a start in the years
// 1000-9999 and a sequence not negative, where it and this give the same
// (TestIndexSegmentsHostileFields). segmentID is only read.
func (d *derivedKeys) objectKey(stored []byte, streamID string, start time.Time, sequence int64, segmentID string) string {
	if stored != nil {
		return d.strs.copy(stored)
	}
	// raw/ stream / date / ten digits - id .m4s
	n := len(streamID) + len(segmentID) + 4 + 1 + 10 + 1 + 10 + 1 + 4
	return d.strs.appendString(n, func(dst []byte) []byte {
		return events.AppendSegmentObjectKey(dst, streamID, start, sequence, segmentID)
	})
}

// rawSegmentColumns are the columns of segment_rows collectRawSegments
// reads, in its order.
const rawSegmentColumns = `segment_id, stream_id, sequence, start_at, duration, end_at, bytes, sha256, prev_chain, chain,
	object_key, hashes_text, profile_id, discontinuity, salvaged, indexed_at, independent`

// collectRawSegments reads rows of rawSegmentColumns, expecting about hint
// of them, as collectSegments reads the view's.
func (s *Store) collectRawSegments(ctx context.Context, rows pgx.Rows, hint int) ([]Segment, error) {
	out := make([]Segment, 0, min(max(hint, 0), 1<<16))
	var refs profileRefs
	err := func() error {
		defer rows.Close()
		var id, stream, sha, prev, chain, key pgtype.DriverBytes
		var hashes []string // a text[] into DriverBytes is planned again at every row
		strs := newRowStrings(2)
		d := derivedKeys{strs: strs}
		var g Segment
		var profile int32
		var independent bool
		dest := []any{&id, &stream, &g.Sequence, &g.Start, &g.Duration, &g.End, &g.Bytes, &sha, &prev, &chain, &key, &hashes,
			&profile, &g.Discontinuity, &g.Salvaged, &g.IndexedAt, &independent}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			h := g
			h.SegmentID, h.StreamID = strs.get(0, id), strs.get(1, stream)
			var err error
			if h.SHA256, err = d.hash(0, sha, hashes); err != nil {
				return err
			}
			if h.PrevChain, err = d.hash(1, prev, hashes); err != nil {
				return err
			}
			if h.Chain, err = d.hash(2, chain, hashes); err != nil {
				return err
			}
			h.ObjectKey = d.objectKey(key, h.StreamID, h.Start, h.Sequence, h.SegmentID)
			h.Independent = nil
			if !independent {
				h.Independent = new(bool)
			}
			refs.add(profile)
			out = append(out, h)
		}
		return rows.Err()
	}()
	if err != nil {
		return nil, err
	}
	err = refs.resolve(ctx, s, func(i int, p *segmentProfile) {
		g := &out[i]
		g.Source, g.Site, g.Device, g.Codecs = p.source, p.site, p.device, p.codecs
		g.InitKey, g.InitSHA256, g.InitBytes, g.IngestNode = p.initKey, p.initSHA256, p.initBytes, p.ingestNode
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
