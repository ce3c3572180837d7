package events_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/events"
)

// TestSegmentObjectKeyForm: the key ingest stores a segment under is
// raw/<site>/<device>/<UTC date as "2006-01-02">/<sequence, ten digits>-<id>.m4s
// for every start, in any zone, at every year's edges (the date written by
// hand for four-digit years, by time's layout otherwise), and any sequence
// (a negative one unpadded).
func TestSegmentObjectKeyForm(t *testing.T) {
	msk := time.FixedZone("MSK", 3*3600)
	starts := []time.Time{
		time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2025, 12, 31, 23, 59, 59, 999, time.UTC),
		time.Date(2026, 1, 1, 1, 0, 0, 0, msk), // 31 December 2025 in UTC
		time.Date(999, 12, 31, 23, 0, 0, 0, time.UTC),
		time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 6, 15, 0, 0, 0, 0, time.UTC),
		{},
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for range 2000 {
		starts = append(starts, time.Unix(rng.Int64N(1<<37)-1<<36, rng.Int64N(1e9)).In(msk))
	}
	for i, start := range starts {
		seq := []int64{0, 7, 9_999_999_999, 12_345_678_901, -3}[i%5]
		got := events.SegmentObjectKey("site1", "cam1", start, seq, "01JABC")
		digits := fmt.Sprintf("%010d", seq)
		if seq < 0 { // not padded (the registry stores such a key rather than derive it)
			digits = fmt.Sprint(seq)
		}
		want := fmt.Sprintf("raw/site1/cam1/%s/%s-01JABC.m4s", start.UTC().Format("2006-01-02"), digits)
		if got != want {
			t.Fatalf("start %v, sequence %d: %q, want %q", start, seq, got, want)
		}
	}
}
