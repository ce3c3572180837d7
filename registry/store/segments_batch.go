package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
)

// IndexSegments indexes a batch of SegmentClosed events in one round trip
// and one transaction, with the semantics of IndexSegment for each: for
// event i, inserted[i] reports whether it was new, and errs[i] is non-nil
// (wrapping ErrInvalid or ErrConflict) if it can never be indexed. err is a
// failure of the whole batch (the database), after which nothing of it is
// indexed and the batch may be retried.
func (s *Store) IndexSegments(ctx context.Context, evs []*events.SegmentClosed) (inserted []bool, errs []error, err error) {
	inserted, errs = make([]bool, len(evs)), make([]error, len(evs))
	// The columns, for unnest; one row per distinct valid segment id.
	var (
		ids, streams, sha, prev, chain, objs []string
		seqs, bytes                          []int64
		starts, ends                         []time.Time
		durs                                 []float64
		disc, salv, indep, hexes             []bool
		firsts                               []*events.SegmentClosed
	)
	first := map[string]int{} // segment id → index of its first event in the batch
	for i, e := range evs {
		if verr := e.Validate(); verr != nil {
			errs[i] = fmt.Errorf("index segment: %w: %w", ErrInvalid, verr)
			continue
		}
		if _, dup := first[e.SegmentID]; dup {
			continue
		}
		first[e.SegmentID] = i
		firsts = append(firsts, e)
		ids, streams = append(ids, e.SegmentID), append(streams, e.StreamID)
		sha, prev, chain, objs = append(sha, e.SHA256), append(prev, e.PrevChain), append(chain, e.Chain), append(objs, e.ObjectKey)
		hexes = append(hexes, lowerHex(e.SHA256) && lowerHex(e.PrevChain) && lowerHex(e.Chain))
		seqs, bytes = append(seqs, e.Sequence), append(bytes, e.Bytes)
		starts, ends = append(starts, e.Start), append(ends, e.Start.Add(time.Duration(e.Duration*float64(time.Second))))
		durs, disc, salv = append(durs, e.Duration), append(disc, e.Discontinuity), append(salv, e.Salvaged)
		indep = append(indep, e.IsIndependent())
	}
	if len(ids) == 0 {
		return inserted, errs, nil
	}
	var fresh []string
	var stored map[string]Segment
	var swept map[string]string // object key → SHA-256, of swept segments
	var made map[string]int32   // profiles this transaction looked up, cached once it commits
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var profiles []int32
		var err error
		if profiles, made, err = s.segmentProfiles(ctx, tx, firsts); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			WITH ids AS (
				INSERT INTO segment_ids (segment_id, start_at, stream_id) SELECT * FROM unnest($1::text[], $3::timestamptz[], $2::text[])
				ON CONFLICT DO NOTHING RETURNING segment_id
			)
			INSERT INTO segment_rows (sequence, start_at, duration, end_at, bytes, profile_id, discontinuity, salvaged,
				independent, segment_id, stream_id, sha256, prev_chain, chain, object_key, hashes_text)
			SELECT u.sequence, u.start_at, u.duration, u.end_at, u.bytes, u.profile_id, u.discontinuity, u.salvaged,
				u.independent, u.segment_id, u.stream_id,
				CASE WHEN u.hex THEN decode(u.sha256, 'hex') ELSE '' END,
				CASE WHEN u.hex THEN decode(u.prev_chain, 'hex') ELSE '' END,
				CASE WHEN u.hex THEN decode(u.chain, 'hex') ELSE '' END,
				NULLIF(u.object_key, segment_object_key(u.stream_id, u.start_at, u.sequence, u.segment_id)),
				CASE WHEN u.hex THEN NULL ELSE ARRAY[u.sha256, u.prev_chain, u.chain] END
			FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bigint[], $5::float8[], $6::timestamptz[],
				$7::bigint[], $8::int[], $9::bool[], $10::bool[], $11::bool[], $12::text[], $13::text[], $14::text[],
				$15::text[], $16::bool[])
				AS u(segment_id, stream_id, start_at, sequence, duration, end_at, bytes, profile_id, discontinuity,
					salvaged, independent, sha256, prev_chain, chain, object_key, hex)
			WHERE u.segment_id IN (SELECT segment_id FROM ids)
			RETURNING segment_id`,
			ids, streams, starts, seqs, durs, ends, bytes, profiles, disc, salv, indep, sha, prev, chain, objs, hexes)
		if err != nil {
			return err
		}
		if fresh, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		if len(fresh) == len(ids) {
			return nil
		}
		// Duplicates: harmless if they are the same segment.
		rows, err = tx.Query(ctx, `SELECT `+segmentColumns+` FROM segments
			WHERE (stream_id, start_at, segment_id) IN (SELECT stream_id, start_at, segment_id FROM segment_ids WHERE segment_id = ANY($1))`, ids)
		if err != nil {
			return err
		}
		segs, err := collectSegments(rows, len(ids)-len(fresh))
		if err != nil {
			return err
		}
		stored = make(map[string]Segment, len(segs))
		for _, g := range segs {
			stored[g.SegmentID] = g
		}
		// Known ids without a row may have been deleted by the sweeper.
		var gone []*events.SegmentClosed
		for _, e := range evs {
			if _, ok := stored[e.SegmentID]; !ok && !slices.Contains(fresh, e.SegmentID) {
				gone = append(gone, e)
			}
		}
		if len(gone) > 0 {
			swept, err = s.sweptSegments(ctx, tx, gone)
		}
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("index %d segments: %w", len(ids), err)
	}
	for k, id := range made {
		s.cacheProfileID(k, id)
	}
	isNew := make(map[string]bool, len(fresh))
	for _, id := range fresh {
		isNew[id] = true
	}
	for i, e := range evs {
		if errs[i] != nil {
			continue
		}
		if isNew[e.SegmentID] && first[e.SegmentID] == i {
			inserted[i] = true
			continue
		}
		g, ok := stored[e.SegmentID]
		if sum, gone := swept[e.ObjectKey]; !ok && gone && sum == e.SHA256 {
			continue // indexed once and since swept: a replay, not a conflict
		}
		if isNew[e.SegmentID] {
			g, ok = Segment{SegmentClosed: *evs[first[e.SegmentID]]}, true
		}
		if !ok || g.StreamID != e.StreamID || g.Sequence != e.Sequence || g.Bytes != e.Bytes || g.SHA256 != e.SHA256 ||
			g.Chain != e.Chain || g.ObjectKey != e.ObjectKey || g.InitKey != e.InitKey {
			errs[i] = fmt.Errorf("index segment %s: %w", e.SegmentID, ErrConflict)
		}
	}
	return inserted, errs, nil
}

// codecArray passes a list of codec lists as a text[] of PostgreSQL array
// literals, which unnest turns back into text[] values: unnest of a
// two-dimensional array would flatten it, and lists differ in length.
func codecArray(codecs [][]string) []string {
	out := make([]string, len(codecs))
	for i, c := range codecs {
		lit := "{"
		for j, s := range c {
			if j > 0 {
				lit += ","
			}
			lit += `"` + escapeArrayElem(s) + `"`
		}
		out[i] = lit + "}"
	}
	return out
}

func escapeArrayElem(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// lowerHex reports whether v is bytes in lowercase hex, as ingest writes
// hashes: the index stores those as the bytes (segment_rows).
func lowerHex(v string) bool {
	if len(v)%2 != 0 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// profileKey is what makes the events' segments share a row of
// segment_profiles: the fields the same for every segment of a stream with
// one init segment from one ingest node. Validate refuses a NUL in any of
// them, so joined by NUL they are one string a profile.
func profileKey(e *events.SegmentClosed) string {
	return strings.Join(append([]string{e.Site, e.Device, e.Source, e.InitKey, e.InitSHA256,
		strconv.FormatInt(e.InitBytes, 10), e.IngestNode}, e.Codecs...), "\x00")
}

// segmentProfiles returns the segment_profiles row of each event, making
// those that are missing, and the ids it read from the database (the
// caller caches them once tx commits: a profile is never changed or
// deleted, but one made by a transaction that rolls back never was).
func (s *Store) segmentProfiles(ctx context.Context, tx pgx.Tx, evs []*events.SegmentClosed) ([]int32, map[string]int32, error) {
	out := make([]int32, len(evs))
	keys := make([]string, len(evs))
	type pending struct {
		key string
		e   *events.SegmentClosed
	}
	var missing []pending
	seen := map[string]bool{}
	for i, e := range evs {
		keys[i] = profileKey(e)
		if id, ok := s.profiles.Load(keys[i]); ok {
			out[i] = id.(int32)
		} else if !seen[keys[i]] {
			seen[keys[i]] = true
			missing = append(missing, pending{keys[i], e})
		}
	}
	if len(missing) == 0 {
		return out, nil, nil
	}
	// In one order, so that two transactions making the same profiles
	// wait for each other rather than deadlock.
	slices.SortFunc(missing, func(a, b pending) int { return strings.Compare(a.key, b.key) })
	var sites, devices, sources, inits, initSHA, nodes, segs []string
	var initBytes []int64
	codecs := make([][]string, 0, len(missing))
	for _, m := range missing {
		e := m.e
		sites, devices, sources = append(sites, e.Site), append(devices, e.Device), append(sources, e.Source)
		inits, initSHA, nodes = append(inits, e.InitKey), append(initSHA, e.InitSHA256), append(nodes, e.IngestNode)
		initBytes, segs = append(initBytes, e.InitBytes), append(segs, e.SegmentID)
		c := e.Codecs
		if c == nil {
			c = []string{}
		}
		codecs = append(codecs, c)
	}
	args := []any{sites, devices, sources, codecArray(codecs), inits, initSHA, initBytes, nodes, segs}
	const fields = `unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::text[])
		WITH ORDINALITY AS u(site, device, source, codecs, init_key, init_sha256, init_bytes, ingest_node, segment_id, i)`
	// Two statements: the second's snapshot sees a profile that another
	// transaction made while the first waited for it.
	if _, err := tx.Exec(ctx, `INSERT INTO segment_profiles (site, device, source, codecs, init_key, init_sha256, init_bytes,
			ingest_node, segment_id)
		SELECT site, device, source, codecs::text[], init_key, init_sha256, init_bytes, ingest_node, segment_id FROM `+fields+`
		ORDER BY i ON CONFLICT (fingerprint) DO NOTHING`, args...); err != nil {
		return nil, nil, fmt.Errorf("segment profiles: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT u.i, p.profile_id FROM `+fields+`
		JOIN segment_profiles p ON p.fingerprint = segment_profile_key(u.site, u.device, u.source, u.codecs::text[], u.init_key,
			u.init_sha256, u.init_bytes, u.ingest_node)`, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("segment profiles: %w", err)
	}
	made := make(map[string]int32, len(missing))
	var i int64
	var id int32
	if _, err := pgx.ForEachRow(rows, []any{&i, &id}, func() error {
		made[missing[i-1].key] = id
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("segment profiles: %w", err)
	}
	for j, k := range keys {
		if id, ok := made[k]; ok {
			out[j] = id
		} else if out[j] == 0 {
			return nil, nil, fmt.Errorf("segment profiles: no profile for segment %s", evs[j].SegmentID)
		}
	}
	return out, made, nil
}
