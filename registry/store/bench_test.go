package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/oklog/ulid/v2"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
	"github.com/nokstream/nokstream/registry/store/storetest"
)

// Shape of the synthetic index: sites with a room camera and ten
// workstations (webcam and screen) each, recording 4-hour exams of ten
// candidates from 1 January 2025, in 6 s segments. Every site holds an exam
// every day, so a day adds ~2.5 M rows, about the national rate (~7·10^8
// rows a year over ~250 working days): 100 M rows are about two months of
// national footage, in two monthly partitions, as they would be.
const (
	benchSites        = 50
	benchWorkstations = 10
	benchExamHours    = 4
	benchSegment      = 6 * time.Second
)

// BenchmarkSegmentIndex loads NOKSTREAM_BENCH_SEGMENTS synthetic segments
// (default 10 000 000; make bench asks for 100 000 000) into a fresh
// database with COPY, or as many as the disk of the database holds with
// 10 GB to spare (at ~0.6 GB a million rows with their indexes), then
// measures the queries playback and review make, reporting p50 and p99 in
// ms:
//
//   - exam-evidence: the evidence listing of a candidate's 4-hour exam
//     (store.CandidateEvidence: their webcam, screen and room camera);
//   - exam-media: all media of a candidate's 4-hour exam, every segment of
//     those three streams in the window (store.ExamMedia, 7 200 rows);
//   - exam-all-segments: the same through three full playlist queries
//     (store.Segments, every column);
//   - playlist: one stream's segments for an hour (600 rows), the default
//     playlist;
//
// and sustained indexing into that index through the registry's batch
// consumer (index.Batcher behind index.Handler, JSON events in), with 3
// consumers (one registry's members of the group), 32 and 256 (as many
// events in flight), in segments a second. It prints BENCHTABLE lines (make bench) for the exam
// media and playlist p99 and the indexing rates.
//
// Run it with `make bench` (or go test -run '^$' -bench SegmentIndex
// ./registry/store); the goal is a p99 of 20 ms or less.
func BenchmarkSegmentIndex(b *testing.B) {
	n := 10_000_000
	if v := os.Getenv("NOKSTREAM_BENCH_SEGMENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatalf("NOKSTREAM_BENCH_SEGMENTS=%q: %v", v, err)
		}
	}
	ctx := context.Background()
	dsn := testenv.Postgres(b)
	if err := store.Migrate(ctx, dsn); err != nil {
		b.Fatal(err)
	}
	s, err := store.Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close(ctx)
	asked := n
	if fits := rowsThatFit(b, db); n > fits {
		b.Logf("%d segments need ~%.0f GB; the database's disk holds %d with 10 GB to spare: loading those", n, float64(n)*benchBytesPerRow/1e9, fits)
		n = fits
	}

	perExam := (2*benchWorkstations + 1) * int(benchExamHours*time.Hour/benchSegment)
	exams := max(1, n/perExam)
	start := time.Now()
	examList := benchWorld(b, s, exams)
	for _, m := range []time.Month{1, 5, 9} {
		if _, err := s.EnsureSegmentPartitions(ctx, time.Date(2025, m, 1, 0, 0, 0, 0, time.UTC)); err != nil {
			b.Fatal(err)
		}
	}
	// Month by month, each month's index rebuilt (nokstream index compact)
	// once it has ended and its grace passed, as the owner's monthly timer
	// would have; NOKSTREAM_BENCH_COMPACT=0 leaves them as footage left
	// them.
	ld := &segmentLoader{profiles: map[string]int32{}, seqs: map[string]int64{}}
	var rows int64
	for i := 0; i < len(examList); {
		j := i
		y, m, _ := examList[i].start.Date()
		for j < len(examList) && examList[j].start.Year() == y && examList[j].start.Month() == m {
			j++
		}
		rows += loadSegments(b, db, examList[i:j], ld)
		i = j
		if os.Getenv("NOKSTREAM_BENCH_COMPACT") == "0" {
			continue
		}
		timer := time.Date(y, m+1, 1, 0, 0, 0, 0, time.UTC).Add(store.CompactionGrace)
		_, err := store.CompactSegmentIndex(ctx, dsn, timer, store.CompactionGrace, func(p store.CompactedPartition) {
			if p.Took > 0 && p.Rows > 0 {
				b.Logf("compacted %s: %d rows, %.0f → %.0f bytes a row, in %v", p.Partition, p.Rows,
					float64(p.BytesBefore)/float64(p.Rows), float64(p.BytesAfter)/float64(p.Rows), p.Took.Round(time.Second))
				fmt.Printf("BENCHTABLE|rebuild of a month's covering index (nokstream index compact), %s: %.3g M rows, %.0f → %.0f bytes a row|%v|—|—|—\n",
					p.Partition, float64(p.Rows)/1e6, float64(p.BytesBefore)/float64(p.Rows), float64(p.BytesAfter)/float64(p.Rows), p.Took.Round(time.Second))
			}
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	rows0 := rows
	if _, err := db.Exec(ctx, `INSERT INTO segment_ids (segment_id, start_at, stream_id) SELECT segment_id, start_at, stream_id FROM segment_rows`); err != nil {
		b.Fatal(err)
	}
	// What autovacuum does to a table that only grows, so that index-only
	// scans need no heap.
	if _, err := db.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
	// The load leaves gigabytes of dirty pages, which the checkpointer
	// would write out while the queries are timed (the playlist's p99 went
	// from 9 to 22 ms between two runs): a register is not bulk-loaded a
	// minute before it is read, so write them first.
	if _, err := db.Exec(ctx, `CHECKPOINT`); err != nil {
		b.Fatal(err)
	}
	var size string
	if err := db.QueryRow(ctx, `SELECT pg_size_pretty(pg_database_size(current_database()))`).Scan(&size); err != nil {
		b.Fatal(err)
	}
	// What a row takes: the partitions with their indexes, and segment_ids.
	var indexBytes int64
	if err := db.QueryRow(ctx, `SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c
		WHERE c.relkind = 'r' AND (c.relname LIKE 'segment\_rows\_%' OR c.relname = 'segment_ids')`).Scan(&indexBytes); err != nil {
		b.Fatal(err)
	}
	if rows, err := db.Query(ctx, `SELECT coalesce(pi.relname, c.relname), sum(pg_relation_size(c.oid))::bigint FROM pg_class c
			LEFT JOIN pg_inherits h ON h.inhrelid = c.oid LEFT JOIN pg_class pi ON pi.oid = h.inhparent
			WHERE c.relkind IN ('r', 'i') AND (c.relname LIKE 'segment\_rows%' OR c.relname LIKE 'segment\_ids%') GROUP BY 1 ORDER BY 1`); err == nil {
		var parts []string
		var name string
		var n int64
		_, err = pgx.ForEachRow(rows, []any{&name, &n}, func() error {
			parts = append(parts, fmt.Sprintf("%s %.0f", name, float64(n)/float64(max(rows0, 1))))
			return nil
		})
		b.Logf("bytes a segment by relation: %s (%v)", strings.Join(parts, ", "), err)
	}
	loadTime := time.Since(start)
	b.Logf("loaded %d segments of %d exams at %d sites in %v (%.0f rows/s with the partition, segment_ids and VACUUM ANALYZE); database %s, %.0f bytes a segment",
		rows, len(examList), benchSites, loadTime.Round(time.Second), float64(rows)/loadTime.Seconds(), size, float64(indexBytes)/float64(rows))
	scale := fmt.Sprintf("%.3g M rows", float64(rows)/1e6)
	if asked > n {
		scale += fmt.Sprintf(", %.0f M asked did not fit", float64(asked)/1e6)
	}

	if os.Getenv("NOKSTREAM_BENCH_EXPLAIN") != "" {
		e := examList[len(examList)*3/4] // a stream's later days: its first inserted alone
		// ExamMedia's query of one stream, and CandidateEvidence's.
		for _, q := range []string{`SELECT sequence, start_at, duration, segment_id, object_key, profile_id, bytes, sha256, hashes_text
			FROM segment_rows WHERE stream_id = $1 AND start_at >= $2 AND start_at < $3 AND end_at > $4 ORDER BY start_at`,
			`SELECT stream_id, count(*), sum(bytes)::bigint, min(start_at), max(end_at) FROM segments
			WHERE stream_id = ANY(ARRAY[$1]) AND start_at >= $2 AND start_at < $3 AND end_at > $4 GROUP BY stream_id`} {
			rows, err := db.Query(ctx, `EXPLAIN (ANALYZE, BUFFERS) `+q, e.site+"/ws1-cam", e.start.Add(-10*time.Minute), e.start.Add(4*time.Hour), e.start)
			if err != nil {
				b.Fatal(err)
			}
			lines, _ := pgx.CollectRows(rows, pgx.RowTo[string])
			for _, l := range lines {
				b.Log(l)
			}
		}
	}
	// ExamMedia orders by sequence in Go: its answer is what ordering by
	// sequence in SQL gives.
	for _, e := range examList[:min(3, len(examList))] {
		media, err := s.ExamMedia(ctx, e.id, e.id+"-c1")
		if err != nil {
			b.Fatal(err)
		}
		rows, err := db.Query(ctx, `SELECT stream_id, sequence, start_at, duration, object_key, init_key, bytes, sha256 FROM segments
			WHERE stream_id = ANY($1) AND start_at >= $2 AND start_at < $3 AND end_at > $4 ORDER BY stream_id, sequence`,
			[]string{e.site + "/ws1-cam", e.site + "/ws1-screen", e.site + "/room1"}, e.start.Add(-10*time.Minute), e.start.Add(benchExamHours*time.Hour), e.start)
		if err != nil {
			b.Fatal(err)
		}
		want, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.MediaRef, error) {
			var m store.MediaRef
			err := r.Scan(&m.StreamID, &m.Sequence, &m.Start, &m.Duration, &m.ObjectKey, &m.InitKey, &m.Bytes, &m.SHA256)
			return m, err
		})
		if err != nil || !slices.Equal(media, want) {
			b.Fatalf("media of %s: %d rows, want the %d of the SQL order by sequence (%v)", e.id, len(media), len(want), err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() benchExam { return examList[rng.IntN(len(examList))] }
	var p99 time.Duration // of the last measure
	// A p99 needs samples: at least benchSamples queries (the 1 s of
	// -benchtime is some 80 of the exam's media, whose p99 is then the
	// second slowest), each of a random exam and workstation.
	measure := func(b *testing.B, q func(e benchExam, ws int) int) {
		n := max(b.N, benchSamples)
		lat := make([]time.Duration, 0, n)
		rowsSeen := 0
		b.ResetTimer()
		for range n {
			e := pick()
			t0 := time.Now()
			rowsSeen += q(e, 1+rng.IntN(benchWorkstations))
			lat = append(lat, time.Since(t0))
		}
		b.StopTimer()
		var total time.Duration
		for _, d := range lat {
			total += d
		}
		slices.Sort(lat)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(float64(total.Nanoseconds())/float64(n), "ns/op")
		b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
		p99 = lat[min(len(lat)-1, len(lat)*99/100)]
		b.ReportMetric(ms(p99), "p99-ms")
		b.ReportMetric(float64(n), "samples")
		b.ReportMetric(float64(rowsSeen)/float64(n), "rows/op")
	}
	b.Run("exam-evidence", func(b *testing.B) {
		measure(b, func(e benchExam, ws int) int {
			ev, err := s.CandidateEvidence(ctx, e.id, fmt.Sprintf("%s-c%d", e.id, ws))
			if err != nil || len(ev) != 3 || ev[0].Segments == 0 {
				b.Fatalf("evidence of %s: %v %+v", e.id, err, ev)
			}
			return len(ev)
		})
	})
	p99 = 0
	b.Run("exam-media", func(b *testing.B) {
		measure(b, func(e benchExam, ws int) int {
			media, err := s.ExamMedia(ctx, e.id, fmt.Sprintf("%s-c%d", e.id, ws))
			if err != nil || len(media) != 3*int(benchExamHours*time.Hour/benchSegment) {
				b.Fatalf("media of %s: %d %v", e.id, len(media), err)
			}
			return len(media)
		})
	})
	benchTable(fmt.Sprintf("index p99: all media of a candidate's 4-hour exam, 7 200 rows (%s)", scale), p99, 20*time.Millisecond)
	p99 = 0
	b.Run("exam-all-segments", func(b *testing.B) {
		measure(b, func(e benchExam, ws int) int {
			total := 0
			for _, dev := range []string{fmt.Sprintf("ws%d-cam", ws), fmt.Sprintf("ws%d-screen", ws), "room1"} {
				segs, err := s.Segments(ctx, e.site, dev, e.start, e.start.Add(benchExamHours*time.Hour))
				if err != nil || len(segs) == 0 {
					b.Fatalf("segments of %s/%s: %d %v", e.site, dev, len(segs), err)
				}
				total += len(segs)
			}
			return total
		})
	})
	benchTable(fmt.Sprintf("index p99: the same 7 200 rows as the review page asks them, three 4-hour playlist queries of every column (%s)", scale), p99, 20*time.Millisecond)
	p99 = 0
	b.Run("playlist", func(b *testing.B) {
		measure(b, func(e benchExam, ws int) int {
			from := e.start.Add(time.Duration(rng.IntN(3)) * time.Hour)
			segs, err := s.Segments(ctx, e.site, fmt.Sprintf("ws%d-cam", ws), from, from.Add(time.Hour))
			if err != nil || len(segs) == 0 {
				b.Fatalf("playlist of %s: %d %v", e.site, len(segs), err)
			}
			return len(segs)
		})
	})
	benchTable(fmt.Sprintf("index p99: one-hour playlist, 600 rows (%s)", scale), p99, 10*time.Millisecond)
	for _, consumers := range []int{3, 32, 256} {
		rate := batchIndexing(b, s, consumers, 20*time.Second)
		b.Logf("indexing through the batch consumer, %d consumers: %.0f segments/s", consumers, rate)
		fmt.Printf("BENCHTABLE|indexing one event in flight per consumer (before), %d consumers (%s)|%.0f segments/s|—|—|≥ 5 000/s\n", consumers, scale, rate)
	}
	local, err := bus.NewLocal("", nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = local.Close() }()
	kafka, err := bus.NewKafka(bus.KafkaConfig{Brokers: testenv.Kafka(b), ClientID: "bench",
		TopicPrefix: testenv.TopicPrefix(b), Partitions: 6}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = kafka.Close() }()
	for _, c := range []struct {
		name string
		bus  interface {
			bus.Bus
			bus.BatchConsumer
		}
		members int
	}{
		{"in-process bus (nokstream all), 1 consumer", local, 1},
		{"Kafka (kfake in the benchmark's process), 3 members", kafka, 3},
	} {
		rate := busBatchIndexing(b, s, c.bus, c.members, 100_000)
		b.Logf("indexing through the bus's batch consumer (ConsumeBatch, 500 events or 50 ms), %s: %.0f segments/s", c.name, rate)
		fmt.Printf("BENCHTABLE|indexing through the bus's batch consumer, %s (%s)|%.0f segments/s|—|—|≥ 5 000/s\n", c.name, scale, rate)
	}
}

// busBatchIndexing publishes backlog SegmentClosed events (JSON, 64 streams
// interleaved) to k (the in-process bus, or Kafka: kfake in this process,
// through testenv, 6 partitions) and times members of the registry's group,
// as the registry runs them (bus.ConsumeBatch with index.BatchHandler, 500
// events or 50 ms a batch, committed after each), draining it: segments
// new in the index a second, from the first batch handed out to the last
// one stored.
func busBatchIndexing(b *testing.B, s *store.Store, k interface {
	bus.Bus
	bus.BatchConsumer
}, members, backlog int) float64 {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := strings.TrimPrefix(fmt.Sprintf("%T", k), "*bus.") // Local or Kafka: ids of their own
	const streams = 64
	at := time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)
	var (
		wg   sync.WaitGroup
		perr atomic.Value
	)
	for c := range streams {
		wg.Go(func() {
			site := fmt.Sprintf("site%d", c%benchSites)
			dev := fmt.Sprintf("ws%d-screen", 1+(c/benchSites)%benchWorkstations)
			stream := site + "/" + dev
			for seq := int64(0); seq < int64(backlog/streams); seq++ {
				ev := &events.SegmentClosed{SegmentID: fmt.Sprintf("busbench-%s-%s-%08d", run, stream, seq), StreamID: stream,
					Source: events.SourceScreen, Site: site, Device: dev, Sequence: seq, Start: at.Add(time.Duration(seq) * benchSegment),
					Duration: benchSegment.Seconds(), Codecs: []string{"avc1.64001f"}, Bytes: 750_000,
					SHA256: fmt.Sprintf("%064x", seq*7919+int64(c)), PrevChain: fmt.Sprintf("%064x", seq), Chain: fmt.Sprintf("%064x", seq+1),
					ObjectKey: fmt.Sprintf("raw/%s/busbench%s/%012d.m4s", stream, run, seq), InitKey: "raw/" + stream + "/init-0.mp4",
					InitSHA256: strings.Repeat("ab", 32), InitBytes: 900, IngestNode: "bench"}
				v, err := json.Marshal(ev)
				if err == nil {
					err = k.Publish(ctx, events.TopicSegments, stream, v)
				}
				if err != nil {
					perr.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := perr.Load().(error); err != nil {
		b.Fatalf("publish the backlog: %v", err)
	}
	want := int64(backlog / streams * streams)

	// Counted as stored when new in the index, so that a batch handed
	// out again (after a rebalance) is not counted twice.
	ci := &newCounter{s: s, want: want, finished: make(chan time.Time, 1)}
	h := index.BatchHandler(ci, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var (
		firstMu sync.Mutex
		first   time.Time
	)
	counted := func(ctx context.Context, ms []bus.Message) error {
		firstMu.Lock()
		if first.IsZero() {
			first = time.Now()
		}
		firstMu.Unlock()
		return h(ctx, ms)
	}
	errs := make(chan error, members)
	for range members {
		go func() {
			errs <- k.ConsumeBatch(ctx, events.TopicSegments, "registry", bus.BatchOptions{}, counted)
		}()
	}
	var end time.Time
	select {
	case end = <-ci.finished:
	case err := <-errs:
		b.Fatalf("batch consumer stopped: %v", err)
	case <-time.After(10 * time.Minute):
		b.Fatalf("the backlog of %d was not indexed in 10 minutes (%d were)", want, ci.n.Load())
	}
	cancel()
	for range members {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	firstMu.Lock()
	defer firstMu.Unlock()
	return float64(ci.n.Load()) / end.Sub(first).Seconds()
}

// newCounter is the store, counting the segments new in the index; finished
// gets the time when want were.
type newCounter struct {
	s        *store.Store
	want     int64
	n        atomic.Int64
	finished chan time.Time
}

func (c *newCounter) IndexSegments(ctx context.Context, evs []*events.SegmentClosed) ([]bool, []error, error) {
	ins, errs, err := c.s.IndexSegments(ctx, evs)
	if err != nil {
		return nil, nil, err
	}
	fresh := int64(0)
	for _, in := range ins {
		if in {
			fresh++
		}
	}
	if c.n.Add(fresh) >= c.want {
		select {
		case c.finished <- time.Now():
		default:
		}
	}
	return ins, errs, nil
}

// benchTable prints a line of the make bench table (deploy/local/bench.sh)
// for a p99 with a goal and no anchor.
func benchTable(figure string, p99, goal time.Duration) {
	if p99 == 0 {
		return // its sub-benchmark did not run (-bench chose others)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("BENCHTABLE|%s|%.1f ms|—|—|≤ %.0f ms\n", figure, ms(p99), ms(goal))
}

// benchSamples is the fewest queries a p99 of BenchmarkSegmentIndex is
// taken from.
const benchSamples = 1000

// benchBytesPerRow is what a segment row takes with its indexes and its
// segment_ids row, in the compact layout of migration 00120 as this
// benchmark loads it, with some margin (before it, 1 300).
const benchBytesPerRow = 600

// rowsThatFit is how many segment rows the disk of db's data directory
// holds while 10 GB stay free for everything else on the machine.
func rowsThatFit(b *testing.B, db *pgx.Conn) int {
	b.Helper()
	var dir string
	if err := db.QueryRow(context.Background(), `SHOW data_directory`).Scan(&dir); err != nil {
		b.Fatal(err)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		b.Logf("free space of %s unknown (%v): not capping the load", dir, err)
		return math.MaxInt
	}
	free := float64(fs.Bavail) * float64(fs.Bsize)
	return max(0, int((free-10e9)/benchBytesPerRow))
}

// batchIndexing indexes new segments for d through index.Handler over an
// index.Batcher, as the registry's consumers do, with consumers of them
// side by side, each handling its own streams' events one after another
// (as a consumer handles its partition), and returns segments a second.
func batchIndexing(b *testing.B, s *store.Store, consumers int, d time.Duration) float64 {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	batcher := index.NewBatcher(s, 500)
	ran := make(chan error, 1)
	go func() { ran <- batcher.Run(ctx) }()
	h := index.Handler(batcher, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var done atomic.Int64
	var failed atomic.Value
	deadline := time.Now().Add(d)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range consumers {
		wg.Go(func() {
			// Streams of their own, in November, after the exams.
			at := time.Date(2025, 11, 1, 0, 0, 0, 0, time.UTC)
			for seq := int64(0); time.Now().Before(deadline); seq++ {
				site := fmt.Sprintf("site%d", c%benchSites)
				dev := fmt.Sprintf("ws%d-cam", 1+(c/benchSites)%benchWorkstations)
				stream := site + "/" + dev
				ev := &events.SegmentClosed{SegmentID: fmt.Sprintf("bench-%d-%s-%08d", consumers, stream, seq), StreamID: stream,
					Source: events.SourceWebcam, Site: site, Device: dev, Sequence: seq, Start: at.Add(time.Duration(seq) * benchSegment),
					Duration: benchSegment.Seconds(), Codecs: []string{"avc1.64001f", "mp4a.40.2"}, Bytes: 750_000,
					SHA256: fmt.Sprintf("%064x", seq*7919+int64(c)), PrevChain: fmt.Sprintf("%064x", seq), Chain: fmt.Sprintf("%064x", seq+1),
					ObjectKey: fmt.Sprintf("raw/%s/bench%d/%012d.m4s", stream, consumers, seq), InitKey: "raw/" + stream + "/init-0.mp4",
					InitSHA256: strings.Repeat("ab", 32), InitBytes: 900, IngestNode: "bench"}
				v, err := json.Marshal(ev)
				if err != nil {
					failed.Store(err)
					return
				}
				if err := h(ctx, bus.Message{Topic: events.TopicSegments, Key: stream, Value: v}); err != nil {
					failed.Store(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cancel()
	if err := <-ran; err != nil {
		b.Fatal(err)
	}
	if err, _ := failed.Load().(error); err != nil {
		b.Fatalf("index through the batch consumer: %v", err)
	}
	return float64(done.Load()) / elapsed.Seconds()
}

// TestExamMedia: the media of a candidate's exam are every segment of
// their webcam and screen and of the site's room cameras overlapping the
// exam window, by stream and sequence, even where a stream's sequence does
// not follow its start times (ExamMedia orders by sequence in Go).
func TestExamMedia(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := open(t)
	world(t, s)
	index := func(device string, seq int64, at time.Duration) {
		t.Helper()
		e := segmentEvent(seq, examDay.Add(at))
		e.StreamID, e.Device, e.SegmentID = "site1/"+device, device, fmt.Sprintf("%s-%d-%v", device, seq, at)
		e.ObjectKey, e.InitKey = fmt.Sprintf("site1/%s/%06d-%v.m4s", device, seq, at), "site1/"+device+"/init.mp4"
		if _, err := s.IndexSegment(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	index("ws1-cam", 7, -6*time.Second) // ends as the window starts
	index("ws1-cam", 8, -3*time.Second) // overlaps its start
	index("ws1-cam", 9, 3*time.Second)
	index("ws1-cam", 10, 4*time.Hour) // after the window
	// Indexed out of order, and a sequence that starts over (a new
	// publisher) before the later ones: by sequence, not by start.
	index("ws1-screen", 1, 18*time.Second)
	index("ws1-screen", 10, 0)
	index("ws1-screen", 0, 12*time.Second)
	index("ws1-screen", 11, 6*time.Second)
	index("room1", 0, time.Hour)
	index("room1", 1, 2*time.Hour)
	index("room1", 2, 3*time.Hour)
	index("ws2-cam", 0, time.Hour) // petrov's
	media, err := s.ExamMedia(ctx, "exam1", "ivanov")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range media {
		got = append(got, fmt.Sprintf("%s:%d", m.StreamID, m.Sequence))
	}
	want := []string{"site1/room1:0", "site1/room1:1", "site1/room1:2", "site1/ws1-cam:8", "site1/ws1-cam:9",
		"site1/ws1-screen:0", "site1/ws1-screen:1", "site1/ws1-screen:10", "site1/ws1-screen:11"}
	if !slices.Equal(got, want) {
		t.Errorf("media %v, want %v", got, want)
	}
	// The streams' rows are gathered in one array, each stream in room
	// for so many: the same answer whether every stream fits its room
	// (4: ws1-cam's rows move down), one outgrows it before another that
	// fits (2: room1's three, then ws1-cam's two), or there is none (0).
	for _, room := range []int{4, 2, 1, 0} {
		restore := store.SetExamMediaRegion(room)
		again, err := s.ExamMedia(ctx, "exam1", "ivanov")
		restore()
		if err != nil || !slices.Equal(again, media) {
			t.Errorf("with room for %d rows a stream: %d media (%v), want the %d above", room, len(again), err, len(media))
		}
	}
	m := media[4]
	if !m.Start.Equal(examDay.Add(3*time.Second)) || m.Duration != 6 || m.ObjectKey != "site1/ws1-cam/000009-3s.m4s" ||
		m.InitKey != "site1/ws1-cam/init.mp4" || m.Bytes != 1009 || m.SHA256 != strings.Repeat("09", 32) {
		t.Errorf("media %+v", m)
	}
	if _, err := s.ExamMedia(ctx, "exam1", "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("candidate not in the exam: %v, want ErrNotFound", err)
	}
}

type benchExam struct {
	id, site string
	start    time.Time
}

// benchWorld makes the sites, their devices, and exams exams with ten
// candidates each, spread over the sites and the days of 2025.
func benchWorld(b *testing.B, s *store.Store, exams int) []benchExam {
	b.Helper()
	ctx := context.Background()
	storetest.Org(b, s, "council1", "center1", "")
	if _, err := s.SaveQualification(ctx, store.Qualification{Code: "q1", CouncilID: "council1", Name: "q", ValidityYears: 3}); err != nil {
		b.Fatal(err)
	}
	c, err := s.Center(ctx, "center1")
	if err != nil {
		b.Fatal(err)
	}
	c.Qualifications = []string{"q1"}
	if _, err := s.SaveCenter(ctx, c); err != nil {
		b.Fatal(err)
	}
	for i := range benchSites {
		site := fmt.Sprintf("site%d", i)
		if _, err := s.SaveSite(ctx, store.Site{ID: site, CenterID: "center1"}); err != nil {
			b.Fatal(err)
		}
		if _, err := s.AddDevice(ctx, site, "room1", store.KindRoom); err != nil {
			b.Fatal(err)
		}
		for w := 1; w <= benchWorkstations; w++ {
			for _, d := range []struct{ name, kind string }{{fmt.Sprintf("ws%d-cam", w), store.KindWebcam}, {fmt.Sprintf("ws%d-screen", w), store.KindScreen}} {
				if _, err := s.AddDevice(ctx, site, d.name, d.kind); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	var out []benchExam
	for i := range exams {
		site := fmt.Sprintf("site%d", i%benchSites)
		day := i / benchSites
		e := benchExam{id: fmt.Sprintf("exam%d", i), site: site, start: time.Date(2025, 1, 1, 8, 0, 0, 0, time.UTC).AddDate(0, 0, day)}
		if err := s.CreateExam(ctx, &store.Exam{ID: e.id, CenterID: "center1", SiteID: site, Qualification: "q1",
			Start: e.start, End: e.start.Add(benchExamHours * time.Hour)}); err != nil {
			b.Fatal(err)
		}
		for w := 1; w <= benchWorkstations; w++ {
			cand := fmt.Sprintf("%s-c%d", e.id, w)
			if _, err := s.SaveCandidate(ctx, store.Candidate{ID: cand, CenterID: "center1", LastName: "L", FirstName: "F", Document: cand}); err != nil {
				b.Fatal(err)
			}
			if err := s.AddExamCandidate(ctx, e.id, cand, fmt.Sprintf("ws%d-cam", w), fmt.Sprintf("ws%d-screen", w), e.start); err != nil {
				b.Fatal(err)
			}
		}
		out = append(out, e)
	}
	return out
}

// segmentLoader is what loadSegments keeps from one call to the next: the
// streams' profiles and next sequence numbers.
type segmentLoader struct {
	profiles map[string]int32
	seqs     map[string]int64
}

// loadSegments COPYs the segments of every stream of every exam's site
// through its window and returns how many.
func loadSegments(b *testing.B, db *pgx.Conn, exams []benchExam, ld *segmentLoader) int64 {
	b.Helper()
	ctx := context.Background()
	devices := []string{"room1"}
	for w := 1; w <= benchWorkstations; w++ {
		devices = append(devices, fmt.Sprintf("ws%d-cam", w), fmt.Sprintf("ws%d-screen", w))
	}
	sourceOf := func(dev string) string {
		switch {
		case dev == "room1":
			return events.SourceRoom
		case strings.HasSuffix(dev, "-cam"):
			return events.SourceWebcam
		}
		return events.SourceScreen
	}
	// Rows shaped like ingest's: ULID segment ids, object keys of ingest's
	// form (derived, not stored), init keys named by the init's hash, one
	// init a stream (a profile of segment_profiles), hashes of 32 bytes.
	hex := func(x int64) string { return fmt.Sprintf("%064x", x) }
	profiles := ld.profiles
	for _, e := range exams {
		if _, ok := profiles[e.site+"/room1"]; ok {
			continue
		}
		for di, dev := range devices {
			var id int32
			err := db.QueryRow(ctx, `INSERT INTO segment_profiles (site, device, source, codecs, init_key, init_sha256, init_bytes,
					ingest_node, segment_id)
				VALUES ($1, $2, $3, '{avc1.64001f,mp4a.40.2}', $4, $5, 900, $6, '') RETURNING profile_id`,
				e.site, dev, sourceOf(dev), fmt.Sprintf("raw/%s/%s/init/%s.mp4", e.site, dev, hex(int64(di))), hex(int64(di)),
				"node-"+e.site).Scan(&id)
			if err != nil {
				b.Fatal(err)
			}
			profiles[e.site+"/"+dev] = id
		}
	}
	perStream := int(benchExamHours * time.Hour / benchSegment)
	seqs := ld.seqs
	ei, di, k := 0, 0, 0
	entropy := rand.NewChaCha8([32]byte{3, 4})
	var row []any
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if k == perStream {
			k, di = 0, di+1
		}
		if di == len(devices) {
			di, ei = 0, ei+1
		}
		if ei == len(exams) {
			return nil, nil
		}
		e, dev := exams[ei], devices[di]
		stream := e.site + "/" + dev
		seq := seqs[stream]
		seqs[stream] = seq + 1
		at := e.start.Add(time.Duration(k) * benchSegment)
		id := ulid.MustNew(ulid.Timestamp(at), entropy).String()
		sum := func(x int64) []byte {
			v := sha256.Sum256(binary.BigEndian.AppendUint64(nil, uint64(x)))
			return v[:]
		}
		row = append(row[:0], seq, at, benchSegment.Seconds(), at.Add(benchSegment), int64(750_000), profiles[stream], k == 0,
			id, stream, sum(seq*7919+int64(ei)), sum(seq), sum(seq+1))
		k++
		return row, nil
	})
	n, err := db.CopyFrom(ctx, pgx.Identifier{"segment_rows"}, []string{"sequence", "start_at", "duration", "end_at", "bytes",
		"profile_id", "discontinuity", "segment_id", "stream_id", "sha256", "prev_chain", "chain"}, src)
	if err != nil {
		b.Fatal(err)
	}
	return n
}
