package archiver_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nokstream/nokstream/archiver"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/seal"
	"github.com/nokstream/nokstream/registry/export"
	"github.com/nokstream/nokstream/registry/store"
)

// TestExportReadsTheRegistrysCopies: an evidence export reads what the
// archiver reported through its events (the registry's copies), not the
// archiver's tables. Before a seal, its version-0 manifest lists the
// footage the registry has heard of: none before the archiver's records
// arrive, all of it after. Once the archiver has sealed, the export is of
// that seal even while the registry has not heard of it yet (never a
// version 0 when a seal exists), and after. Every bundle verifies.
func TestExportReadsTheRegistrysCopies(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	c := &clock{now: start.Add(5 * time.Hour)}
	e := newEnv(t, dirStore(t, c), archiver.DefaultConfig(), c)
	e.exam("e1", start, start.Add(4*time.Hour))
	var evs []*events.SegmentClosed
	for i := range 4 {
		at := start.Add(time.Hour + time.Duration(i)*6*time.Second)
		evs = append(evs, e.segment("cam1", events.SourceRoom, at, 6*time.Second), e.segment("ws1-cam", events.SourceWebcam, at, 6*time.Second))
	}
	for _, ev := range evs {
		e.deliver(ev)
	}
	pub := e.key.Public().(ed25519.PublicKey)
	exportNow := func(what string) (version, objects int) {
		t.Helper()
		var buf bytes.Buffer
		sum, err := export.Bundle(ctx, &buf, e.st, e.blob, e.key, export.Request{ExamID: "e1", CandidateID: "c1",
			Purpose: "проверка / check", ActorLogin: "nark-user"}, c.Now())
		if err != nil {
			t.Fatalf("%s: export: %v", what, err)
		}
		rep, err := bundle.Verify(bytes.NewReader(buf.Bytes()), pub)
		if err != nil || !rep.OK() {
			t.Fatalf("%s: the bundle does not verify: %v %+v", what, err, rep)
		}
		es := readTar(t, buf.Bytes())
		m, err := seal.Parse(es[index(t, es, "seal/manifest.json")].data)
		if err != nil {
			t.Fatal(err)
		}
		if m.Objects != sum.Objects {
			t.Errorf("%s: manifest lists %d objects, the bundle has %d", what, m.Objects, sum.Objects)
		}
		return m.Version, sum.Objects
	}
	// The archiver has taken all 8 segments, but the registry has not
	// heard yet: nothing to list.
	if v, n := exportNow("before the records"); v != 0 || n != 0 {
		t.Errorf("before the archiver's records reach the registry: version %d with %d objects, want version 0 with none", v, n)
	}
	e.deliverRecords()
	// c1's footage: 4 room and 4 webcam segments and their 2 inits.
	if v, n := exportNow("after the records"); v != 0 || n != 10 {
		t.Errorf("after the archiver's records: version %d with %d objects, want version 0 with 10", v, n)
	}
	keys := []string{evs[0].ObjectKey, evs[0].InitKey, evs[1].ObjectKey}
	own, err := e.ast.ArchiveObjectsByKeys(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	copies, err := e.st.ArchivedObjects(ctx, keys)
	if err != nil || len(copies) != len(own) {
		t.Fatalf("the registry's copies of %v: %+v, %v", keys, copies, err)
	}
	for i, o := range own {
		cp := copies[i]
		if cp.Key != o.Key || cp.Size != o.Bytes || cp.SHA256 != o.SHA256 || cp.Chain != o.Chain || cp.Verified != o.Verified ||
			!cp.Start.Equal(o.Start) || !cp.End.Equal(o.End) || cp.Init != o.InitKey {
			t.Errorf("the registry's copy of %s is %+v; the archiver has %+v", o.Key, cp, o)
		}
	}

	// The result seals the candidate-exam; the registry has not heard
	// of the seal yet, and the export is of it all the same.
	c.Set(start.Add(24 * time.Hour))
	if err := e.st.RecordResult(ctx, &store.Result{ExamID: "e1", CandidateID: "c1", Kind: store.ResultCertificate,
		CertificateNumber: "01.00000.07", IssuedOn: c.Now()}, 0, c.Now()); err != nil {
		t.Fatal(err)
	}
	e.relay(c.Now())
	sl, err := e.ast.LatestSeal(ctx, "e1", "c1")
	if err != nil || sl.Version != 1 {
		t.Fatalf("the archiver's seal: %+v, %v", sl, err)
	}
	if _, err := e.st.LatestSeal(ctx, "e1", "c1"); err == nil {
		t.Fatal("the registry heard of the seal before its record was delivered")
	}
	if v, n := exportNow("before the seal's record"); v != 1 || n != 10 {
		t.Errorf("a seal the registry has not heard of: exported version %d with %d objects, want the seal (1) with 10", v, n)
	}
	e.deliverRecords()
	if got, err := e.st.LatestSeal(ctx, "e1", "c1"); err != nil || got.Version != 1 || got.MerkleRoot != sl.MerkleRoot ||
		got.ManifestKey != sl.ManifestKey || got.Objects != sl.Objects {
		t.Errorf("the registry's copy of the seal: %+v, %v; the archiver's %+v", got, err, sl)
	}
	if v, n := exportNow("after the seal's record"); v != 1 || n != 10 {
		t.Errorf("after the seal's record: version %d with %d objects, want 1 with 10", v, n)
	}
	// The archiver's checks of the segments reached the registry too.
	if cs, err := e.st.SegmentChecks(ctx, evs[0].SegmentID); err != nil || len(cs) != 1 || !cs[0].OK {
		t.Errorf("the registry's copy of the checks of %s: %+v, %v", evs[0].SegmentID, cs, err)
	}
}

// flakyBus is a recording bus whose archive topic can be down.
type flakyBus struct {
	recBus
	down atomic.Bool
}

func (b *flakyBus) Publish(ctx context.Context, topic, key string, value []byte) error {
	if topic == events.TopicArchive && b.down.Load() {
		return errors.New("broker unreachable")
	}
	return b.recBus.Publish(ctx, topic, key, value)
}

// TestRecordsWaitForTheBus: while the bus is down, what the archiver did
// stays queued (the gauge says how much) and none of it is lost; when the
// bus is back, the next pass publishes all of it, once.
func TestRecordsWaitForTheBus(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	c := &clock{now: start.Add(time.Hour)}
	fb := &flakyBus{}
	fb.down.Store(true)
	e := newEnvBus(t, dirStore(t, c), archiver.DefaultConfig(), c, fb)
	for i := range 2 {
		e.deliver(e.segment("cam1", events.SourceRoom, start.Add(time.Duration(i)*6*time.Second), 6*time.Second))
	}
	if _, err := e.svc.ReportRecords(ctx); err == nil {
		t.Fatal("records published on a bus that is down")
	}
	// Per segment: its check, its snapshot and its init's.
	if q := gauge(t, e, "nokstream_archiver_records_queued"); q != 6 {
		t.Errorf("records queued while the bus is down: %v, want 6", q)
	}
	fb.down.Store(false)
	if n, err := e.svc.ReportRecords(ctx); err != nil || n != 6 {
		t.Fatalf("records published when the bus is back: %d, %v; want 6", n, err)
	}
	if n, err := e.svc.ReportRecords(ctx); err != nil || n != 0 {
		t.Errorf("a second pass published %d more (%v), want none", n, err)
	}
	if q := gauge(t, e, "nokstream_archiver_records_queued"); q != 0 {
		t.Errorf("records queued after the bus came back: %v", q)
	}
	fb.mu.Lock()
	objects := map[string]int{}
	for _, m := range fb.msgs {
		if m.Topic != events.TopicArchive {
			continue
		}
		if typ, _ := events.ArchiveType(m.Value); typ == events.ArchiveObjectArchived {
			objects[m.Key]++
		}
	}
	fb.mu.Unlock()
	if len(objects) != 3 { // two segments and their one init
		t.Errorf("objects reported: %v, want the two segments and their init", objects)
	}
}
