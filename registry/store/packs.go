package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Segment packs (migration 00122): an hour of a stream's index rows, as
// ExamMedia reads them, in one bytea. PostgreSQL spends most of an exam's
// media query making each of its 7 200 rows' columns into their wire
// format; a pack is sent as one value. The rows stay the record: a pack is
// made from them, used only while no change to its hour is pending
// (segment_pack_todo), and a pack that does not decode is passed over for
// the rows.

// PackDelay is how long after an hour ends its rows are packed: footage of
// that hour is still being uploaded and indexed until then. Footage that
// comes later is found all the same (its hour goes back on the list) and
// packed again.
const PackDelay = 15 * time.Minute

// packBatch is how many stream-hours one transaction of PackSegments packs:
// some 40 000 rows, a fraction of a second that a writer of those streams
// may wait.
const packBatch = 64

// packFormat is the first byte of a pack.
const packFormat = 1

// packRow is what a pack keeps of a row of segment_rows.
type packRow struct {
	sequence     int64
	start, end   int64 // µs since the Unix epoch
	duration     float64
	bytes        int64
	profile      int32
	segmentID    []byte
	objectKey    []byte // nil: NULL (derived)
	sha256       []byte
	hashesText   []string // nil: NULL
	hashesIsNull bool
}

// appendPack appends the pack of rows (one stream's, one hour's, by start)
// to dst. Numbers are varints, most of them the difference from the
// previous row's: a pack is ~85 bytes a row.
func appendPack(dst []byte, rows []packRow) []byte {
	dst = append(dst, packFormat)
	dst = binary.AppendUvarint(dst, uint64(len(rows)))
	var seq, start int64
	var profile int32
	for i := range rows {
		r := &rows[i]
		dst = binary.AppendVarint(dst, r.sequence-seq)
		dst = binary.AppendVarint(dst, r.start-start)
		dst = binary.AppendVarint(dst, r.end-r.start)
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(r.duration))
		dst = binary.AppendVarint(dst, r.bytes)
		dst = binary.AppendVarint(dst, int64(r.profile)-int64(profile))
		dst = appendPackBytes(dst, r.segmentID, false)
		dst = appendPackBytes(dst, r.objectKey, true)
		dst = appendPackBytes(dst, r.sha256, false)
		if r.hashesIsNull {
			dst = binary.AppendUvarint(dst, 0)
		} else {
			dst = binary.AppendUvarint(dst, uint64(len(r.hashesText))+1)
			for _, h := range r.hashesText {
				dst = appendPackBytes(dst, []byte(h), false)
			}
		}
		seq, start, profile = r.sequence, r.start, r.profile
	}
	return dst
}

// appendPackBytes appends b with its length; nullable, the length plus one
// and 0 for nil.
func appendPackBytes(dst, b []byte, nullable bool) []byte {
	n := uint64(len(b))
	if nullable {
		if b == nil {
			return binary.AppendUvarint(dst, 0)
		}
		n++
	}
	dst = binary.AppendUvarint(dst, n)
	return append(dst, b...)
}

var errBadPack = errors.New("segment pack does not decode")

// packReader reads a pack's rows in order; the byte slices of a row point
// into the pack.
type packReader struct {
	b        []byte
	left     int
	prev     packRow
	err      error
	hashes   []string
	started  bool
	wantRows int
}

func newPackReader(b []byte, rows int) *packReader {
	p := &packReader{b: b, wantRows: rows}
	if len(b) == 0 || b[0] != packFormat {
		p.err = fmt.Errorf("%w: format %v", errBadPack, b[:min(1, len(b))])
		return p
	}
	p.b = b[1:]
	n := p.uvarint()
	if p.err == nil && (n != uint64(rows) || n > uint64(len(p.b))) {
		p.err = fmt.Errorf("%w: %d rows, its row says %d", errBadPack, n, rows)
	}
	p.left = int(n) //nolint:gosec // bounded by len(p.b) above
	return p
}

func (p *packReader) uvarint() uint64 {
	v, n := binary.Uvarint(p.b)
	if n <= 0 {
		p.fail()
		return 0
	}
	p.b = p.b[n:]
	return v
}

func (p *packReader) varint() int64 {
	v, n := binary.Varint(p.b)
	if n <= 0 {
		p.fail()
		return 0
	}
	p.b = p.b[n:]
	return v
}

func (p *packReader) fail() {
	if p.err == nil {
		p.err = fmt.Errorf("%w: truncated", errBadPack)
	}
	p.b = nil
}

func (p *packReader) bytes(nullable bool) []byte {
	n := p.uvarint()
	if nullable {
		if n == 0 {
			return nil
		}
		n--
	}
	if n > uint64(len(p.b)) {
		p.fail()
		return nil
	}
	v := p.b[:n:n]
	p.b = p.b[n:]
	if v == nil {
		v = []byte{} // empty, not NULL
	}
	return v
}

// next decodes the next row into r, false at the end or on an error (Err).
// r's slices and hashesText point into the pack or the reader, until the
// next call.
func (p *packReader) next(r *packRow) bool {
	if p.err != nil {
		return false
	}
	if p.left == 0 {
		if len(p.b) != 0 {
			p.err = fmt.Errorf("%w: %d bytes after its rows", errBadPack, len(p.b))
		}
		return false
	}
	p.left--
	r.sequence = p.prev.sequence + p.varint()
	r.start = p.prev.start + p.varint()
	r.end = r.start + p.varint()
	if len(p.b) < 8 {
		p.fail()
		return false
	}
	r.duration = math.Float64frombits(binary.BigEndian.Uint64(p.b))
	p.b = p.b[8:]
	r.bytes = p.varint()
	profile := int64(p.prev.profile) + p.varint()
	if profile < math.MinInt32 || profile > math.MaxInt32 {
		p.fail()
		return false
	}
	r.profile = int32(profile)
	r.segmentID = p.bytes(false)
	r.objectKey = p.bytes(true)
	r.sha256 = p.bytes(false)
	r.hashesText, r.hashesIsNull = nil, true
	if n := p.uvarint(); n > 0 {
		if n-1 > uint64(len(p.b)) {
			p.fail()
			return false
		}
		if p.hashes == nil {
			p.hashes = []string{} // not NULL, even when empty
		}
		p.hashes = p.hashes[:0]
		for range n - 1 {
			p.hashes = append(p.hashes, string(p.bytes(false)))
		}
		r.hashesText, r.hashesIsNull = p.hashes, false
	}
	if p.err != nil {
		return false
	}
	p.prev = *r
	return true
}

// PackStats is what PackSegments did.
type PackStats struct {
	Hours   int           // stream-hours packed (or found empty)
	Rows    int64         // rows packed
	Bytes   int64         // the packs' bytes
	Skipped int           // stream-hours left for later: a writer of the stream was in the middle of a change
	Took    time.Duration //
}

// PackSegments packs every stream-hour on the list (segment_pack_todo) that
// ended PackDelay before now, oldest first, packBatch a transaction, and
// reports each batch to progress (if not nil). An hour whose stream a
// writer is changing at that moment (it holds the stream's lock from its
// trigger to its commit) is left on the list for the next run: the packer
// never waits, so it never holds a writer for long nor deadlocks with one.
// Safe to run from several registries at once (the list's rows are taken
// with SKIP LOCKED).
func (s *Store) PackSegments(ctx context.Context, now time.Time, progress func(PackStats)) (PackStats, error) {
	var total PackStats
	t0 := time.Now()
	cutoff := now.Add(-time.Hour - PackDelay)
	for {
		b, err := s.packBatch(ctx, cutoff)
		total.Hours += b.Hours
		total.Rows += b.Rows
		total.Bytes += b.Bytes
		total.Skipped += b.Skipped
		total.Took = time.Since(t0)
		if err != nil {
			return total, fmt.Errorf("pack the segment index: %w", err)
		}
		if progress != nil && b.Hours > 0 {
			progress(total)
		}
		if b.Hours == 0 {
			return total, nil
		}
	}
}

// packBatch packs up to packBatch stream-hours that ended before cutoff.
// Skipped counts only the last batch's (an hour skipped is tried again at
// the next run, not in this one).
func (s *Store) packBatch(ctx context.Context, cutoff time.Time) (PackStats, error) {
	var st PackStats
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `WITH todo AS (
				SELECT stream_id, hour FROM segment_pack_todo WHERE hour < $1 ORDER BY hour, stream_id LIMIT $2 FOR UPDATE SKIP LOCKED
			)
			SELECT stream_id, hour, pg_try_advisory_xact_lock(hashtext('segment_packs'), hashtext(stream_id)) FROM todo`,
			cutoff, packBatch)
		if err != nil {
			return err
		}
		var streams []string
		var hours []time.Time
		var stream string
		var hour time.Time
		var locked bool
		if _, err := pgx.ForEachRow(rows, []any{&stream, &hour, &locked}, func() error {
			if locked {
				streams, hours = append(streams, stream), append(hours, hour)
			} else {
				st.Skipped++
			}
			return nil
		}); err != nil {
			return err
		}
		if len(streams) == 0 {
			return nil
		}
		// A statement after the locks: its snapshot has every row of
		// those streams that is committed, and none is being written.
		rows, err = tx.Query(ctx, `SELECT t.i, r.sequence, r.start_at, r.end_at, r.duration, r.bytes, r.profile_id, r.segment_id,
				r.object_key, r.sha256, r.hashes_text
			FROM unnest($1::text[], $2::timestamptz[]) WITH ORDINALITY AS t(stream_id, hour, i)
			JOIN segment_rows r ON r.stream_id = t.stream_id AND r.start_at >= t.hour AND r.start_at < t.hour + interval '1 hour'
			ORDER BY t.i, r.start_at, r.sequence, r.segment_id`, streams, hours)
		if err != nil {
			return err
		}
		packs := make([][]byte, len(streams))
		counts := make([]int32, len(streams))
		var batch []packRow
		cur := int64(-1)
		flush := func() {
			if cur >= 0 {
				packs[cur-1] = appendPack(nil, batch)
				counts[cur-1] = int32(len(batch)) //nolint:gosec // an hour of a stream's rows
				st.Rows += int64(len(batch))
				st.Bytes += int64(len(packs[cur-1]))
			}
			batch = batch[:0]
		}
		var (
			i                         int64
			r                         packRow
			startAt, endAt            time.Time
			segmentID, objectKey, sha []byte
			hashes                    pgtype.FlatArray[pgtype.Text]
		)
		if _, err := pgx.ForEachRow(rows, []any{&i, &r.sequence, &startAt, &endAt, &r.duration, &r.bytes, &r.profile, &segmentID,
			&objectKey, &sha, &hashes}, func() error {
			if i != cur {
				flush()
				cur = i
			}
			r.start, r.end = startAt.UnixMicro(), endAt.UnixMicro()
			r.segmentID, r.objectKey, r.sha256 = segmentID, objectKey, sha
			r.hashesText, r.hashesIsNull = nil, hashes == nil
			for _, h := range hashes {
				if !h.Valid {
					return fmt.Errorf("stream %s: a NULL in hashes_text", streams[i-1])
				}
				r.hashesText = append(r.hashesText, h.String)
			}
			batch = append(batch, r)
			return nil
		}); err != nil {
			return err
		}
		flush()
		// An hour with no rows left (deleted) has no pack.
		if _, err := tx.Exec(ctx, `DELETE FROM segment_packs p USING unnest($1::text[], $2::timestamptz[], $3::int[]) AS t(stream_id, hour, n)
			WHERE p.stream_id = t.stream_id AND p.hour = t.hour AND t.n = 0`, streams, hours, counts); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO segment_packs (stream_id, hour, rows, data)
			SELECT stream_id, hour, n, data FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::bytea[]) AS t(stream_id, hour, n, data)
			WHERE n > 0
			ON CONFLICT (stream_id, hour) DO UPDATE SET rows = excluded.rows, data = excluded.data, packed_at = now()`,
			streams, hours, counts, packs); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM segment_pack_todo t USING unnest($1::text[], $2::timestamptz[]) AS d(stream_id, hour)
			WHERE t.stream_id = d.stream_id AND t.hour = d.hour`, streams, hours)
		st.Hours = len(streams)
		return err
	})
	if err != nil {
		return PackStats{Skipped: st.Skipped}, err
	}
	return st, nil
}
