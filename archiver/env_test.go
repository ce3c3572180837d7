package archiver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nokstream/nokstream/archiver"
	astore "github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/chain"
	"github.com/nokstream/nokstream/internal/testenv"
	regindex "github.com/nokstream/nokstream/registry/index"
	"github.com/nokstream/nokstream/registry/store"
	"github.com/nokstream/nokstream/registry/store/storetest"
)

// clock is a settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// recBus records what is published; the tests call the handlers directly.
type recBus struct {
	mu   sync.Mutex
	msgs []bus.Message
}

func (b *recBus) Publish(_ context.Context, topic, key string, value []byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.msgs = append(b.msgs, bus.Message{Topic: topic, Key: key, Value: value})
	return nil
}

func (b *recBus) Consume(context.Context, string, string, bus.Handler) error {
	return errors.New("recBus does not consume")
}

func (b *recBus) Close() error { return nil }

func (b *recBus) observations(t *testing.T) []events.Observation {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []events.Observation
	for _, m := range b.msgs {
		if m.Topic != events.TopicObservations {
			continue
		}
		o, err := events.DecodeObservation(m.Value)
		if err != nil {
			t.Fatalf("published observation: %v", err)
		}
		out = append(out, *o)
	}
	return out
}

// env is an archiver on a real PostgreSQL and blob store, with the НОК
// organisation of a test: council spk1, center cok1, site site1 with room
// camera cam1 and workstations ws1 and ws2 (webcam and screen each),
// qualification q1, candidates c1 and c2.
type env struct {
	t     *testing.T
	dsn   string        // of the registry's database, for tests that tamper with it
	st    *store.Store  // the registry's
	ast   *astore.Store // the archiver's own
	facts *copyFacts    // the archiver's copy of the registry's facts, in ast
	blob  archiver.Blob
	svc   *archiver.Service
	bus   *recBus
	clock *clock
	key   ed25519.PrivateKey
	reg   *prometheus.Registry

	mu     sync.Mutex
	chains map[string]chainState
	// delivered is how many of bus's messages deliverDeletions has
	// looked at.
	delivered int
}

type chainState struct {
	seq   int64
	chain string
}

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newEnv starts an archiver on a fresh database and b, with cfg, and the
// clock now (nil: the real clock).
func newEnv(t *testing.T, b archiver.Blob, cfg archiver.Config, c *clock) *env {
	t.Helper()
	return newEnvBus(t, b, cfg, c, nil)
}

// newEnvBus is newEnv with the archiver on bus bb (nil: a recording bus
// that consumes nothing).
func newEnvBus(t *testing.T, b archiver.Blob, cfg archiver.Config, c *clock, bb bus.Bus) *env {
	t.Helper()
	ctx := t.Context()
	dsn := testenv.Postgres(t)
	if err := store.Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := astore.Migrate(ctx, dsn); err != nil {
		t.Fatalf("migrate the archiver's schema: %v", err)
	}
	ast, err := astore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ast.Close)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dsn: dsn, st: st, ast: ast, facts: newCopyFacts(t, dsn, ast), blob: b, bus: &recBus{}, clock: c, key: key, reg: prometheus.NewRegistry(),
		chains: map[string]chainState{}}
	now := time.Now
	if c != nil {
		now = c.Now
	}
	var sb bus.Bus = e.bus
	if bb != nil {
		sb = bb
	}
	e.svc, err = archiver.New(cfg, archiver.Deps{Bus: sb, Blob: b, Store: ast, Facts: e.facts, SealKey: key, Log: testLog(t),
		Registry: e.reg, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	e.org()
	return e
}

func (e *env) org() {
	t, ctx := e.t, e.t.Context()
	storetest.Org(t, e.st, "spk1", "cok1", "site1")
	if _, err := e.st.SaveQualification(ctx, store.Qualification{Code: "q1", CouncilID: "spk1", Name: "Сварщик", ValidityYears: 3,
		Tools: []store.AssessmentTool{{Reference: "ОС-1", Link: "https://example.org/os1"}}}); err != nil {
		t.Fatal(err)
	}
	center, err := e.st.Center(ctx, "cok1")
	if err != nil {
		t.Fatal(err)
	}
	center.Qualifications = []string{"q1"}
	if _, err := e.st.SaveCenter(ctx, center); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct{ name, kind string }{
		{"cam1", store.KindRoom}, {"ws1-cam", store.KindWebcam}, {"ws1-scr", store.KindScreen},
		{"ws2-cam", store.KindWebcam}, {"ws2-scr", store.KindScreen},
	} {
		if _, err := e.st.AddDevice(ctx, "site1", d.name, d.kind); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range []string{"c1", "c2"} {
		if _, err := e.st.SaveCandidate(ctx, store.Candidate{ID: c, CenterID: "cok1", LastName: "Иванов", FirstName: "Иван",
			Document: fmt.Sprintf("паспорт 4500 00000%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// exam creates exam id at site1 in [start, end) with c1 at ws1 and c2 at
// ws2, both admitted.
func (e *env) exam(id string, start, end time.Time) {
	t, ctx := e.t, e.t.Context()
	if err := e.st.CreateExam(ctx, &store.Exam{ID: id, CenterID: "cok1", SiteID: "site1", Qualification: "q1", Start: start, End: end}); err != nil {
		t.Fatal(err)
	}
	for i, c := range []string{"c1", "c2"} {
		ws := fmt.Sprintf("ws%d", i+1)
		if err := e.st.AddExamCandidate(ctx, id, c, ws+"-cam", ws+"-scr", start); err != nil {
			t.Fatal(err)
		}
		if err := e.st.SetAdmission(ctx, id, c, true, "", 0, start); err != nil {
			t.Fatal(err)
		}
	}
}

// segment stores a segment of device at site1 (and its init) and returns
// its event, with the stream's next sequence and chain value.
func (e *env) segment(device, source string, start time.Time, dur time.Duration) *events.SegmentClosed {
	e.t.Helper()
	stream := "site1/" + device
	e.mu.Lock()
	cs, ok := e.chains[stream]
	if !ok {
		cs = chainState{seq: -1, chain: chain.Zero}
	}
	e.mu.Unlock()
	seq := cs.seq + 1
	body := []byte(fmt.Sprintf("fmp4 segment %s %d %s", stream, seq, start.Format(time.RFC3339Nano)))
	init := []byte("init of " + stream)
	ev := e.event(stream, device, source, seq, cs.chain, start, dur, body, init)
	e.mu.Lock()
	e.chains[stream] = chainState{seq: seq, chain: ev.Chain}
	e.mu.Unlock()
	return ev
}

// event stores body and init and returns the event announcing them.
func (e *env) event(stream, device, source string, seq int64, prev string, start time.Time, dur time.Duration, body, init []byte) *events.SegmentClosed {
	e.t.Helper()
	ctx := e.t.Context()
	sum := sha256.Sum256(body)
	isum := sha256.Sum256(init)
	link, err := chain.Next(prev, hex.EncodeToString(sum[:]))
	if err != nil {
		e.t.Fatal(err)
	}
	ev := &events.SegmentClosed{
		SegmentID: fmt.Sprintf("%s-%d-%d", strings.ReplaceAll(stream, "/", "-"), seq, start.UnixNano()),
		StreamID:  stream, Source: source, Site: "site1", Device: device, Sequence: seq,
		Start: start, Duration: dur.Seconds(), Codecs: []string{"avc1.64001f"}, Bytes: int64(len(body)),
		SHA256: hex.EncodeToString(sum[:]), PrevChain: prev, Chain: link,
		ObjectKey:  fmt.Sprintf("raw/%s/%s/%010d-x.m4s", stream, start.UTC().Format("2006-01-02"), seq),
		InitKey:    fmt.Sprintf("raw/%s/init/%s.mp4", stream, hex.EncodeToString(isum[:])),
		InitSHA256: hex.EncodeToString(isum[:]), InitBytes: int64(len(init)), IngestNode: "test",
	}
	if _, err := e.blob.Stat(ctx, ev.InitKey); errors.Is(err, blob.ErrNotFound) {
		if err := e.blob.Put(ctx, ev.InitKey, bytes.NewReader(init), int64(len(init))); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := e.blob.Put(ctx, ev.ObjectKey, bytes.NewReader(body), int64(len(body))); err != nil {
		e.t.Fatal(err)
	}
	return ev
}

// deliver hands a segment event to the registry's index and to the
// archiver, as the bus would.
func (e *env) deliver(ev *events.SegmentClosed) {
	e.t.Helper()
	if _, err := e.st.IndexSegment(e.t.Context(), ev); err != nil {
		e.t.Fatalf("index segment %d of %s: %v", ev.Sequence, ev.StreamID, err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.svc.Handle(e.t.Context(), bus.Message{Topic: events.TopicSegments, Key: ev.StreamID, Value: b}); err != nil {
		e.t.Fatalf("handle segment %d of %s: %v", ev.Sequence, ev.StreamID, err)
	}
}

// relay publishes the registry's pending outbox events to the archiver, as
// the registry's relay and the bus would.
func (e *env) relay(now time.Time) int {
	e.t.Helper()
	n, err := e.st.RelayOutbox(e.t.Context(), 100, now, func(ctx context.Context, ev store.OutboxEvent) error {
		if ev.Topic != events.TopicRetentionV2 {
			return nil // v1: the archiver consumes v2 only
		}
		return e.svc.HandleFacts(ctx, bus.Message{Topic: ev.Topic, Key: ev.Key, Value: ev.Value})
	})
	if err != nil {
		e.t.Fatalf("relay outbox: %v", err)
	}
	return n
}

// deliverDeletions hands the registry what the archiver published on
// events.TopicArchive since the last delivery (every one ever published
// when again is set, as a redelivering bus would), after publishing its
// queued records, through the registry's own consumer, and returns how
// many of them were deletions.
func (e *env) deliverDeletions(again bool) int {
	e.t.Helper()
	if _, err := e.svc.ReportRecords(e.t.Context()); err != nil {
		e.t.Fatalf("report records: %v", err)
	}
	e.bus.mu.Lock()
	var msgs []bus.Message
	for i, m := range e.bus.msgs {
		if m.Topic == events.TopicArchive && (again || i >= e.delivered) {
			msgs = append(msgs, m)
		}
	}
	e.delivered = len(e.bus.msgs)
	e.bus.mu.Unlock()
	h := regindex.ArchiveHandler(e.st, testLog(e.t))
	deletions := 0
	for _, m := range msgs {
		if err := h(e.t.Context(), m); err != nil {
			e.t.Fatalf("registry: record %s: %v", m.Key, err)
		}
		if typ, _ := events.ArchiveType(m.Value); typ == events.ArchiveObjectDeleted {
			deletions++
		}
	}
	return deletions
}

// deliverRecords hands the registry every record the archiver published or
// queued since the last delivery, as the bus would.
func (e *env) deliverRecords() {
	e.t.Helper()
	e.deliverDeletions(false)
}

// object returns the archive row of key.
func (e *env) object(key string) astore.ArchiveObject {
	e.t.Helper()
	o, err := e.ast.ArchiveObject(e.t.Context(), key)
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// stored returns the retention the blob store has for key.
func (e *env) stored(key string) (time.Time, bool) {
	e.t.Helper()
	until, hold, err := e.blob.Retention(e.t.Context(), key)
	if err != nil {
		e.t.Fatalf("retention of %s: %v", key, err)
	}
	return until, hold
}

// expect checks that the archive row of key and the blob store both have
// until and hold (the store's date rounded up to the second, as S3 keeps
// it), and the rule.
func (e *env) expect(key string, until time.Time, hold bool, rule string) {
	e.t.Helper()
	o := e.object(key)
	if !o.RetainUntil.Equal(until) || o.LegalHold != hold || (rule != "" && o.Rule != rule) {
		e.t.Errorf("%s: archived retain-until %s hold %v rule %s, want %s %v %s", key, o.RetainUntil.UTC(), o.LegalHold, o.Rule,
			until.UTC(), hold, rule)
	}
	su, sh := e.stored(key)
	if want := ceilSecond(until); (!su.Equal(want) && !su.Equal(until)) || sh != hold {
		e.t.Errorf("%s: stored retain-until %s hold %v, want %s %v", key, su.UTC(), sh, until.UTC(), hold)
	}
}

func ceilSecond(t time.Time) time.Time {
	if c := t.Truncate(time.Second); c.Before(t) {
		return c.Add(time.Second)
	}
	return t
}
