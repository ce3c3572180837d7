package store

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// TestSegmentPackCodec: rows come out of a pack as they went in, whatever
// their values (the extremes of every number, NULL and empty keys and
// hashes, ids of any bytes).
func TestSegmentPackCodec(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	pick := func(vs ...int64) int64 { return vs[rng.IntN(len(vs))] }
	for round := range 200 {
		rows := make([]packRow, rng.IntN(700))
		for i := range rows {
			r := &rows[i]
			r.sequence = pick(int64(i), -1, math.MinInt64, math.MaxInt64, rng.Int64())
			r.start = pick(int64(i)*6_000_000, math.MinInt64, math.MaxInt64, -rng.Int64())
			r.end = pick(r.start+6_000_000, r.start, math.MinInt64, math.MaxInt64)
			r.duration = []float64{6, 0.04, math.Inf(1), math.NaN(), -0, math.MaxFloat64}[rng.IntN(6)]
			r.bytes = pick(750_000, 0, -1, math.MaxInt64)
			r.profile = int32(pick(1, 2, math.MaxInt32, math.MinInt32)) //nolint:gosec // within int32
			r.segmentID = []byte{}
			for range rng.IntN(40) {
				r.segmentID = append(r.segmentID, byte(rng.IntN(256)))
			}
			switch rng.IntN(3) {
			case 1:
				r.objectKey = []byte{}
			case 2:
				r.objectKey = []byte("legacy/key.m4s")
			}
			r.sha256 = make([]byte, []int{32, 0, 5}[rng.IntN(3)])
			r.hashesIsNull = rng.IntN(3) > 0
			if !r.hashesIsNull {
				r.hashesText = []string{}
				for range rng.IntN(4) {
					r.hashesText = append(r.hashesText, []string{"", "AB", "сегмент"}[rng.IntN(3)])
				}
			}
		}
		pack := appendPack(nil, rows)
		p := newPackReader(pack, len(rows))
		var got packRow
		for i := 0; p.next(&got); i++ {
			w := rows[i]
			g := got
			g.hashesText = append([]string(nil), got.hashesText...)
			if g.hashesText == nil && got.hashesText != nil {
				g.hashesText = []string{}
			}
			if math.Float64bits(g.duration) != math.Float64bits(w.duration) {
				t.Fatalf("round %d row %d: duration %v, want %v", round, i, g.duration, w.duration)
			}
			g.duration, w.duration = 0, 0 // NaN is not DeepEqual to itself
			if !reflect.DeepEqual(g, w) {
				t.Fatalf("round %d row %d: %+v, want %+v", round, i, g, w)
			}
		}
		if p.err != nil || p.left != 0 {
			t.Fatalf("round %d: %v, %d rows left", round, p.err, p.left)
		}
	}
}

// FuzzSegmentPack: a pack of any bytes, with any count, decodes or fails
// with an error; it never panics nor reads past its end.
func FuzzSegmentPack(f *testing.F) {
	f.Add(appendPack(nil, []packRow{{sequence: 1, start: 2, end: 3, duration: 6, segmentID: []byte("id"), sha256: make([]byte, 32),
		hashesIsNull: true}}), 1)
	f.Add(appendPack(nil, []packRow{{hashesText: []string{"a", "b", "c"}}, {objectKey: []byte("k"), hashesIsNull: true}}), 2)
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 3)
	f.Add([]byte{}, 0)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		p := newPackReader(b, n)
		var r packRow
		rows := 0
		for p.next(&r) {
			rows++
		}
		if p.err == nil && rows != n {
			t.Fatalf("%d rows decoded without an error, the pack's row says %d", rows, n)
		}
	})
}
