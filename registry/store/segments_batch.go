package store

import (
	"context"
	"fmt"
	"slices"
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
		ids, streams, sources, sites, devices, sha, prev, chain, objs, inits, initSHA, nodes []string
		seqs, bytes, initBytes                                                               []int64
		starts, ends                                                                         []time.Time
		durs                                                                                 []float64
		codecs                                                                               [][]string
		disc, salv, indep                                                                    []bool
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
		c := e.Codecs
		if c == nil {
			c = []string{}
		}
		ids, streams, sources, sites, devices = append(ids, e.SegmentID), append(streams, e.StreamID), append(sources, e.Source), append(sites, e.Site), append(devices, e.Device)
		sha, prev, chain, objs, inits = append(sha, e.SHA256), append(prev, e.PrevChain), append(chain, e.Chain), append(objs, e.ObjectKey), append(inits, e.InitKey)
		initSHA, nodes = append(initSHA, e.InitSHA256), append(nodes, e.IngestNode)
		seqs, bytes, initBytes = append(seqs, e.Sequence), append(bytes, e.Bytes), append(initBytes, e.InitBytes)
		starts, ends = append(starts, e.Start), append(ends, e.Start.Add(time.Duration(e.Duration*float64(time.Second))))
		durs, codecs, disc, salv = append(durs, e.Duration), append(codecs, c), append(disc, e.Discontinuity), append(salv, e.Salvaged)
		indep = append(indep, e.IsIndependent())
	}
	if len(ids) == 0 {
		return inserted, errs, nil
	}
	var fresh []string
	var stored map[string]Segment
	var swept map[string]string // object key → SHA-256, of swept segments
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `
			WITH ids AS (
				INSERT INTO segment_ids (segment_id, start_at) SELECT * FROM unnest($1::text[], $7::timestamptz[])
				ON CONFLICT DO NOTHING RETURNING segment_id
			)
			INSERT INTO segments (segment_id, stream_id, source, site, device, sequence, start_at, duration, end_at,
				codecs, bytes, sha256, prev_chain, chain, object_key, init_key, init_sha256, init_bytes,
				ingest_node, discontinuity, salvaged, independent)
			SELECT u.segment_id, u.stream_id, u.source, u.site, u.device, u.sequence, u.start_at, u.duration, u.end_at,
				u.codecs::text[], u.bytes, u.sha256, u.prev_chain, u.chain, u.object_key, u.init_key, u.init_sha256,
				u.init_bytes, u.ingest_node, u.discontinuity, u.salvaged, u.independent
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::timestamptz[],
				$8::float8[], $9::timestamptz[], $10::text[], $11::bigint[], $12::text[], $13::text[], $14::text[], $15::text[],
				$16::text[], $17::text[], $18::bigint[], $19::text[], $20::bool[], $21::bool[], $22::bool[])
				AS u(segment_id, stream_id, source, site, device, sequence, start_at, duration, end_at, codecs, bytes, sha256,
					prev_chain, chain, object_key, init_key, init_sha256, init_bytes, ingest_node, discontinuity, salvaged,
					independent)
			WHERE u.segment_id IN (SELECT segment_id FROM ids)
			RETURNING segment_id`,
			ids, streams, sources, sites, devices, seqs, starts, durs, ends, codecArray(codecs), bytes, sha, prev, chain,
			objs, inits, initSHA, initBytes, nodes, disc, salv, indep)
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
		rows, err = tx.Query(ctx, `SELECT `+segmentColumns+` FROM segments g JOIN segment_ids i USING (segment_id, start_at)
			WHERE i.segment_id = ANY($1)`, ids)
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
