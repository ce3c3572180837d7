package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/registry/store"
)

// TestSegmentPacks: an exam's media read from the packs of its closed hours
// are exactly what its rows say, before and after packing, with a late
// segment, a deleted one, a pack that does not decode, and a writer in the
// middle of its change while the packer runs; a pack whose hour changed is
// never read.
func TestSegmentPacks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, dsn := open(t)
	world(t, s)
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	index := func(device string, seq int64, at time.Duration, edit func(e *events.SegmentClosed)) {
		t.Helper()
		e := segmentEvent(seq, examDay.Add(at))
		e.StreamID, e.Device, e.SegmentID = "site1/"+device, device, fmt.Sprintf("01JD-%s-%06d", device, seq)
		e.ObjectKey = fmt.Sprintf("raw/site1/%s/%s/%010d-%s.m4s", device, examDay.Add(at).UTC().Format("2006-01-02"), seq, e.SegmentID)
		e.InitKey = "site1/" + device + "/init.mp4"
		if edit != nil {
			edit(e)
		}
		if _, err := s.IndexSegment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// Three streams through the exam's four hours and the ten minutes
	// before: a segment a minute, some of them odd.
	for _, dev := range []string{"ws1-cam", "ws1-screen", "room1"} {
		for k := int64(0); k < 250; k++ {
			index(dev, k, time.Duration(k-10)*time.Minute, func(e *events.SegmentClosed) {
				switch k % 50 {
				case 7: // a key of another form: stored
					e.ObjectKey = fmt.Sprintf("legacy/%s/%d.m4s", dev, k)
				case 13: // hashes not in lowercase hex: kept as they came
					e.SHA256 = strings.ToUpper(e.SHA256)
				case 21: // a segment id of any bytes
					e.SegmentID = fmt.Sprintf("сегмент-%s-%d", dev, k)
					e.ObjectKey = fmt.Sprintf("raw/site1/%s/%s/%010d-%s.m4s", dev, e.Start.UTC().Format("2006-01-02"), k, e.SegmentID)
				case 33: // another init segment
					e.InitKey = "site1/" + dev + "/init-2.mp4"
				}
			})
		}
	}
	// What the rows say: the view, ordered as ExamMedia orders.
	want := func() []store.MediaRef {
		t.Helper()
		rows, err := db.Query(ctx, `SELECT stream_id, sequence, start_at, duration, object_key, init_key, bytes, sha256 FROM segments
			WHERE stream_id = ANY($1) AND start_at >= $2 AND start_at < $3 AND end_at > $4 ORDER BY stream_id, sequence`,
			[]string{"site1/ws1-cam", "site1/ws1-screen", "site1/room1"}, examDay.Add(-10*time.Minute), examDay.Add(4*time.Hour), examDay)
		if err != nil {
			t.Fatal(err)
		}
		w, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.MediaRef, error) {
			var m store.MediaRef
			err := r.Scan(&m.StreamID, &m.Sequence, &m.Start, &m.Duration, &m.ObjectKey, &m.InitKey, &m.Bytes, &m.SHA256)
			return m, err
		})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	check := func(when string) []store.MediaRef {
		t.Helper()
		got, err := s.ExamMedia(ctx, "exam1", "ivanov")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if w := want(); !slices.Equal(got, w) {
			t.Fatalf("%s: %d media, want the rows' %d", when, len(got), len(w))
		}
		return got
	}
	count := func(q string, args ...any) int {
		t.Helper()
		var n int
		if err := db.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// The ten segments before the window's start end before it.
	if before := check("before packing"); len(before) != 3*240 {
		t.Fatalf("%d media before packing, want 720", len(before))
	}

	// At 13:20 the hours to 13:00 have closed, and 15 minutes passed:
	// 09:00-12:59 of three streams are packed, 13:00 stays rows.
	st, err := s.PackSegments(ctx, examDay.Add(3*time.Hour+20*time.Minute), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Hours != 12 || st.Rows != 3*(10+60+60+60) || st.Skipped != 0 {
		t.Errorf("packed %+v, want 12 stream-hours of 570 rows", st)
	}
	check("with three hours packed")
	if _, err := s.PackSegments(ctx, examDay.Add(24*time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT count(*) FROM segment_pack_todo`); n != 0 {
		t.Errorf("%d hours left to pack", n)
	}
	if n := count(`SELECT count(*) FROM segment_packs`); n != 15 {
		t.Errorf("%d packs, want 15 (three streams, five hours)", n)
	}
	packed := check("all packed")

	// The packs are what is read: a row removed behind the triggers' back
	// (as only the owner can) is still there, from its pack.
	if _, err := db.Exec(ctx, `BEGIN; ALTER TABLE segment_rows DISABLE TRIGGER segment_rows_packs_delete;
		DELETE FROM segment_rows WHERE stream_id = 'site1/room1' AND sequence = 100;
		ALTER TABLE segment_rows ENABLE TRIGGER segment_rows_packs_delete; COMMIT`); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ExamMedia(ctx, "exam1", "ivanov"); err != nil || !slices.Equal(got, packed) {
		t.Fatalf("media with a row gone behind the packs: %d (%v), want the packs' %d", len(got), err, len(packed))
	}
	if _, err := db.Exec(ctx, `INSERT INTO segment_pack_todo VALUES ('site1/room1', $1)`, examDay.Add(90*time.Minute).Truncate(time.Hour)); err != nil { // sequence 100 started at 11:30
		t.Fatal(err)
	}
	check("the room's hour listed again")
	if _, err := s.PackSegments(ctx, examDay.Add(24*time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	check("the room's hour packed again")

	// A late segment in a packed hour: there at once, from the rows, and
	// after its hour is packed again.
	index("ws1-screen", 1000, 95*time.Minute+30*time.Second, nil)
	if n := count(`SELECT count(*) FROM segment_pack_todo`); n != 1 {
		t.Errorf("%d hours listed after a late segment, want 1", n)
	}
	late := check("a late segment")
	if len(late) != len(packed) {
		t.Errorf("%d media with the late one, want %d", len(late), len(packed))
	}
	if _, err := s.PackSegments(ctx, examDay.Add(24*time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	check("the late segment packed")

	// A segment deleted the usual way: gone at once.
	if _, err := db.Exec(ctx, `DELETE FROM segment_rows WHERE stream_id = 'site1/ws1-cam' AND sequence = 70`); err != nil {
		t.Fatal(err)
	}
	check("a segment deleted")
	// An hour whose rows are all gone has no pack.
	if _, err := db.Exec(ctx, `DELETE FROM segment_rows WHERE stream_id = 'site1/ws1-cam' AND start_at >= $1 AND start_at < $2`,
		examDay.Add(2*time.Hour), examDay.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	check("an hour deleted")
	if _, err := s.PackSegments(ctx, examDay.Add(24*time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT count(*) FROM segment_packs WHERE stream_id = 'site1/ws1-cam' AND hour = $1`, examDay.Add(2*time.Hour)); n != 0 {
		t.Errorf("the empty hour keeps %d packs", n)
	}
	check("the deletions packed")

	// Packs that do not decode (cut short, a wrong count, another
	// format): their hours are read from the rows.
	if _, err := db.Exec(ctx, `UPDATE segment_packs SET data = substring(data FOR 200) WHERE stream_id = 'site1/room1';
		UPDATE segment_packs SET rows = rows + 1 WHERE stream_id = 'site1/ws1-cam';
		UPDATE segment_packs SET data = '\x02'::bytea || substring(data FROM 2) WHERE stream_id = 'site1/ws1-screen'`); err != nil {
		t.Fatal(err)
	}
	check("broken packs")

	// A writer in the middle of its change holds its stream's lock: the
	// packer leaves that hour for later rather than pack it without the
	// row, or wait. (The hour was listed already by an earlier change, so
	// the writer's listing adds nothing: without the lock, the packer
	// would pack the hour without its row and take it off the list.)
	if _, err := db.Exec(ctx, `INSERT INTO segment_pack_todo VALUES ('site1/room1', $1)`, examDay); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `INSERT INTO segment_rows (sequence, start_at, duration, end_at, bytes, profile_id, segment_id, stream_id,
			sha256, prev_chain, chain)
		SELECT 2000, $1, 6, $1::timestamptz + interval '6 seconds', 5, profile_id, 'inflight', stream_id, sha256, prev_chain, chain
		FROM segment_rows WHERE stream_id = 'site1/room1' AND sequence = 40`, examDay.Add(20*time.Minute)); err != nil {
		t.Fatal(err)
	}
	st, err = s.PackSegments(ctx, examDay.Add(24*time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Skipped != 1 {
		t.Errorf("packed %+v while a writer of the room's 10:00 was in the middle: want it skipped", st)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	media := check("the writer committed")
	if !slices.ContainsFunc(media, func(m store.MediaRef) bool { return m.Sequence == 2000 }) {
		t.Error("the writer's segment is not among the media")
	}
	if _, err := s.PackSegments(ctx, examDay.Add(24*time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	check("packed after the writer")
	if n := count(`SELECT count(*) FROM segment_pack_todo`); n != 0 {
		t.Errorf("%d hours left to pack", n)
	}
}
