package archiver_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/nokstream/nokstream/archiver"
	astore "github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/retention"
	"github.com/nokstream/nokstream/internal/evidence/seal"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/store"
)

const day = retention.Day

func dirStore(t *testing.T, c *clock) *blob.Dir {
	t.Helper()
	opts := []blob.DirOption{}
	if c != nil {
		opts = append(opts, blob.WithClock(c.Now))
	}
	d, err := blob.NewDir(t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestChainBreaks: a segment that never arrived, one that arrives late, one
// whose chain does not link, and a segment delivered twice. Each break is a
// chain_break observation on the stream's timeline and a metric; the
// duplicate is nothing.
func TestChainBreaks(t *testing.T) {
	t.Parallel()
	c := &clock{now: time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)}
	e := newEnv(t, dirStore(t, c), archiver.DefaultConfig(), c)
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	var segs []*events.SegmentClosed
	for i := range 6 {
		segs = append(segs, e.segment("cam1", events.SourceRoom, start.Add(time.Duration(i)*6*time.Second), 6*time.Second))
	}
	// An altered segment: its prev_chain is not segment 5's chain value.
	bad := e.event("site1/cam1", "cam1", events.SourceRoom, 6, strings.Repeat("ab", 32), start.Add(36*time.Second),
		6*time.Second, []byte("forged"), []byte("init of site1/cam1"))

	for _, i := range []int{0, 1, 2, 4} { // 3 is missing
		e.deliver(segs[i])
	}
	e.deliver(segs[4]) // delivered twice: nothing more
	e.deliver(segs[3]) // late: reordered
	e.deliver(segs[5])
	e.deliver(bad)

	var got []string
	for _, o := range e.bus.observations(t) {
		if o.Kind != events.ObsChainBreak || o.StreamID != "site1/cam1" || o.Reporter != "archiver" {
			t.Errorf("observation %+v", o)
		}
		got = append(got, o.SegmentID+" "+o.Detail)
	}
	want := []string{
		segs[4].SegmentID + " missing: segments 3 to 3 never arrived before segment 4",
		segs[3].SegmentID + " reordered: segment 3 arrived after segment 4",
		bad.SegmentID + " altered: segment 6 does not follow segment 5",
	}
	if len(got) != len(want) {
		t.Fatalf("observations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("observation %d: %q, want %q...", i, got[i], want[i])
		}
	}
	for kind, n := range map[string]float64{"missing": 1, "reordered": 1, "altered": 1} {
		if v := metric(t, e, "nokstream_archiver_chain_breaks_total", kind); v != n {
			t.Errorf("chain breaks %s = %v, want %v", kind, v, n)
		}
	}
	// The chain goes on from the latest segment: the next good one after
	// segment 5 would link to it; the forged one replaced the stream's
	// last value, so a break is reported once, not for every later one.
	last, err := e.ast.StreamChain(t.Context(), "site1/cam1")
	if err != nil || last.Sequence != 6 {
		t.Fatalf("stream chain %+v %v, want at sequence 6", last, err)
	}
}

// gauge returns the value of an unlabelled gauge.
func gauge(t *testing.T, e *env, name string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// metric returns the value of a counter with the label value label.
func metric(t *testing.T, e *env, name, label string) float64 {
	t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestRetentionLifecycle follows one exam's footage on a directory store
// for years of an injected clock: provisional retention on arrival, the
// certificate of one candidate and the conclusion of the other, an appeal
// that holds exactly the second candidate's evidence, a revocation that
// shortens nothing, a certificate extension, the sweeper's two phases with
// the audit log, the seal, and explain.
func TestRetentionLifecycle(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	c := &clock{now: t0.Add(7 * time.Hour)}
	d := dirStore(t, c)
	e := newEnv(t, d, archiver.DefaultConfig(), c)
	e.exam("e1", t0, t0.Add(4*time.Hour))

	seg := 6 * time.Second
	before := e.segment("cam1", events.SourceRoom, t0.Add(-2*time.Hour), seg)
	in := e.segment("cam1", events.SourceRoom, t0.Add(time.Hour), seg)
	after := e.segment("cam1", events.SourceRoom, t0.Add(6*time.Hour), seg)
	ws1 := e.segment("ws1-cam", events.SourceWebcam, t0.Add(time.Hour), seg)
	ws2 := e.segment("ws2-cam", events.SourceWebcam, t0.Add(time.Hour), seg)
	for _, ev := range []*events.SegmentClosed{before, in, after, ws1, ws2} {
		e.deliver(ev)
		e.deliver(ev) // twice: the same
	}
	end := func(ev *events.SegmentClosed) time.Time { return ev.Start.Add(seg) }
	provisional := t0.Add(4*time.Hour + 90*day)
	e.expect(before.ObjectKey, end(before).Add(30*day), false, "unlinked")
	e.expect(after.ObjectKey, end(after).Add(30*day), false, "unlinked")
	for _, ev := range []*events.SegmentClosed{in, ws1, ws2} {
		e.expect(ev.ObjectKey, provisional, false, "provisional")
	}
	e.expect(in.InitKey, provisional, false, "serves")
	e.expect(ws1.InitKey, provisional, false, "serves")

	// c1 passes: a certificate valid for the qualification's 3 years.
	c.Set(t0.Add(day))
	if err := e.st.RecordResult(ctx, &store.Result{ExamID: "e1", CandidateID: "c1", Kind: store.ResultCertificate,
		CertificateNumber: "01.00000.01", IssuedOn: t0.Add(day)}, 0, c.Now()); err != nil {
		t.Fatal(err)
	}
	if n := e.relay(c.Now()); n < 1 {
		t.Fatalf("relayed %d events, want the certificate's at least", n)
	}
	certUntil := time.Date(2029, 3, 4, 0, 0, 0, 0, time.UTC) // valid through 2029-03-03
	e.expect(in.ObjectKey, certUntil, false, "certificate_valid_until")
	e.expect(ws1.ObjectKey, certUntil, false, "certificate_valid_until")
	e.expect(ws1.InitKey, certUntil, false, "serves")
	e.expect(in.InitKey, certUntil, false, "serves")
	e.expect(ws2.ObjectKey, provisional, false, "provisional") // c2's webcam: not c1's evidence
	e.expect(before.ObjectKey, end(before).Add(30*day), false, "unlinked")

	// The seal of c1's exam: signed, and exactly c1's objects.
	sl, err := e.ast.LatestSeal(ctx, "e1", "c1")
	if err != nil {
		t.Fatalf("c1 not sealed: %v", err)
	}
	m := readSeal(t, e, sl)
	var keys []string
	for _, en := range m.Entries {
		keys = append(keys, en.Key)
	}
	slices.Sort(keys)
	wantKeys := []string{in.ObjectKey, in.InitKey, ws1.ObjectKey, ws1.InitKey}
	slices.Sort(wantKeys)
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("seal of c1 lists %q, want %q", keys, wantKeys)
	}
	e.expect(sl.ManifestKey, certUntil, false, "certificate_valid_until")

	// c2 fails: the appeal window ends before the provisional period,
	// which is not shortened.
	c.Set(t0.Add(2 * day))
	if err := e.st.RecordResult(ctx, &store.Result{ExamID: "e1", CandidateID: "c2", Kind: store.ResultConclusion,
		Conclusion: "практическая часть не выполнена", IssuedOn: t0.Add(2 * day)}, 0, c.Now()); err != nil {
		t.Fatal(err)
	}
	e.relay(c.Now())
	e.expect(ws2.ObjectKey, provisional, false, "never_shortened")

	// c2 appeals: a legal hold on exactly c2's evidence (their webcam, the
	// room camera in the window, their inits), nothing else.
	c.Set(t0.Add(10 * day))
	appeal := &store.Appeal{ExamID: "e1", CandidateID: "c2", Reason: "нарушена процедура"}
	if err := e.st.OpenAppeal(ctx, appeal, 0, c.Now()); err != nil {
		t.Fatal(err)
	}
	e.relay(c.Now())
	e.expect(ws2.ObjectKey, provisional, true, "")
	e.expect(ws2.InitKey, provisional, true, "")
	e.expect(in.ObjectKey, certUntil, true, "")
	e.expect(in.InitKey, certUntil, true, "")
	e.expect(ws1.ObjectKey, certUntil, false, "")
	e.expect(before.ObjectKey, end(before).Add(30*day), false, "")
	if err := d.Delete(ctx, ws2.ObjectKey); !errors.Is(err, blob.ErrRetained) {
		t.Fatalf("delete of held evidence: %v, want ErrRetained", err)
	}

	// c1's certificate is extended: the evidence follows it.
	c.Set(t0.Add(15 * day))
	if err := e.st.ExtendCertificate(ctx, "01.00000.01", time.Date(2031, 3, 3, 0, 0, 0, 0, time.UTC), "продление", 0, c.Now()); err != nil {
		t.Fatal(err)
	}
	e.relay(c.Now())
	certUntil = time.Date(2031, 3, 4, 0, 0, 0, 0, time.UTC)
	e.expect(ws1.ObjectKey, certUntil, false, "certificate_valid_until")
	e.expect(in.ObjectKey, certUntil, true, "certificate_valid_until")

	// Then revoked: the evidence stays until its date.
	c.Set(t0.Add(20 * day))
	if err := e.st.RevokeCertificate(ctx, "01.00000.01", "подложные документы", 0, c.Now()); err != nil {
		t.Fatal(err)
	}
	e.relay(c.Now())
	e.expect(ws1.ObjectKey, certUntil, false, "certificate_valid_until")

	// The sweeper: unlinked footage expires after 30 days; it is marked,
	// then deleted a day later, with the rule in the audit log.
	c.Set(t0.Add(31 * day))
	st, err := e.svc.Sweep(ctx)
	if err != nil || st.Marked != 2 || st.Deleted != 0 {
		t.Fatalf("first sweep: %+v %v, want 2 marked", st, err)
	}
	c.Set(t0.Add(31*day + 12*time.Hour))
	if st, err := e.svc.Sweep(ctx); err != nil || st.Deleted != 0 {
		t.Fatalf("sweep before the delay: %+v %v, want nothing deleted", st, err)
	}
	c.Set(t0.Add(32 * day))
	st, err = e.svc.Sweep(ctx)
	if err != nil || st.Deleted != 2 {
		t.Fatalf("second sweep: %+v %v, want 2 deleted", st, err)
	}
	// The registry learns of them from the archiver's events, and a
	// redelivery changes nothing more.
	if n := e.deliverDeletions(false); n != 2 {
		t.Fatalf("%d deletions published, want 2", n)
	}
	e.deliverDeletions(true)
	for _, ev := range []*events.SegmentClosed{before, after} {
		if _, err := d.Stat(ctx, ev.ObjectKey); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("%s not deleted: %v", ev.ObjectKey, err)
		}
		// Gone from the index too: no playlist offers it, and its media
		// URL answers 404 rather than a dangling object.
		if _, err := e.st.ObjectByKey(ctx, ev.ObjectKey); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s still in the segment index after its deletion: %v", ev.ObjectKey, err)
		}
		// A replayed SegmentClosed does not bring it back.
		if inserted, err := e.st.IndexSegment(ctx, ev); err != nil || inserted {
			t.Errorf("replayed SegmentClosed of deleted %s: inserted %v, %v", ev.ObjectKey, inserted, err)
		}
	}
	// The same through the batch indexer of the registry's consumer, with
	// a kept segment beside them; an altered replay is still a conflict.
	altered := *before
	altered.SHA256 = strings.Repeat("ab", 32)
	inserted, errs, err := e.st.IndexSegments(ctx, []*events.SegmentClosed{before, in, after, &altered})
	if err != nil || inserted[0] || inserted[1] || inserted[2] || errs[0] != nil || errs[1] != nil || errs[2] != nil ||
		!errors.Is(errs[3], store.ErrConflict) {
		t.Errorf("batch replay after the sweep: inserted %v, errs %v, %v; want nothing new, and a conflict for the altered one", inserted, errs, err)
	}
	if _, err := e.st.ObjectByKey(ctx, in.ObjectKey); err != nil {
		t.Errorf("kept footage %s left the index: %v", in.ObjectKey, err)
	}
	if _, err := d.Stat(ctx, in.InitKey); err != nil {
		t.Errorf("init of kept footage deleted: %v", err)
	}
	entries, err := e.st.ObjectAudit(ctx, []string{before.ObjectKey}, t0, 10)
	if err != nil || len(entries) != 1 || entries[0].Action != "archive.delete" || entries[0].Detail["rule"] != "unlinked" {
		t.Fatalf("audit of the deletion: %+v %v, want archive.delete with rule unlinked", entries, err)
	}

	// The appeal is closed: the hold is lifted, and the evidence is kept a
	// margin after closing.
	c.Set(t0.Add(200 * day))
	if err := e.st.DecideAppeal(ctx, appeal.ID, store.AppealRejected, "rejected", 0, c.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CloseAppeal(ctx, appeal.ID, 0, c.Now()); err != nil {
		t.Fatal(err)
	}
	e.relay(c.Now())
	closed := t0.Add(230 * day)
	e.expect(ws2.ObjectKey, closed, false, "appeal_closed")
	e.expect(ws2.InitKey, closed, false, "serves")
	e.expect(in.ObjectKey, certUntil, false, "certificate_valid_until")

	text, err := archiver.Explain(ctx, e.facts, e.ast, retention.DefaultSettings(), c.Now(), in.ObjectKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"certificate_valid_until", "exam e1, candidate c1", "revoked on 2026-03-22", "exam e1, candidate c2",
		"appeal", "closed on 2026-09-18"} {
		if !strings.Contains(text, want) {
			t.Errorf("explain %s lacks %q:\n%s", in.ObjectKey, want, text)
		}
	}
	t.Logf("explain:\n%s", text)
	text, err = archiver.Explain(ctx, e.facts, e.ast, retention.DefaultSettings(), c.Now(), before.ObjectKey)
	if err != nil || !strings.Contains(text, "DELETED") || !strings.Contains(text, "unlinked") {
		t.Errorf("explain of a deleted object: %v\n%s", err, text)
	}
	t.Logf("explain:\n%s", text)
	text, err = archiver.Explain(ctx, e.facts, e.ast, retention.DefaultSettings(), c.Now(), "e1/c2")
	if err != nil || !strings.Contains(text, "appeal_closed") || !strings.Contains(text, "kept longer") {
		t.Errorf("explain of a candidate-exam: %v\n%s", err, text)
	}
	t.Logf("explain:\n%s", text)

	// c2's evidence expires a margin after the appeal closed; the init
	// goes with its last segment.
	c.Set(closed)
	if _, err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	c.Set(closed.Add(day))
	if st, err := e.svc.Sweep(ctx); err != nil || st.Deleted < 2 {
		t.Fatalf("sweep after the appeal: %+v %v", st, err)
	}
	for _, k := range []string{ws2.ObjectKey, ws2.InitKey} {
		if _, err := d.Stat(ctx, k); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("%s not deleted: %v", k, err)
		}
	}
	if _, err := d.Stat(ctx, in.ObjectKey); err != nil {
		t.Errorf("c1's evidence deleted: %v", err)
	}
}

// readSeal reads a seal from the blob store and checks it with the
// archiver's public key.
func readSeal(t *testing.T, e *env, sl astore.Seal) *seal.Manifest {
	t.Helper()
	manifest := readAll(t, e, sl.ManifestKey)
	sig := readAll(t, e, sl.SignatureKey)
	m, err := seal.Parse(manifest)
	if err != nil {
		t.Fatal(err)
	}
	if err := seal.Verify(manifest, sig, e.key.Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	return m
}

func readAll(t *testing.T, e *env, key string) []byte {
	t.Helper()
	r, err := e.blob.Get(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestObjectLockMinIO runs the archiver against MinIO with Object Lock:
// every object carries COMPLIANCE retain-until equal to the registry's
// answer, a delete before that date fails at the storage level, an appeal
// puts a legal hold on exactly that candidate-exam's objects and closing it
// lifts it.
//
// COMPLIANCE retention cannot be lifted by anyone and MinIO keeps it by its
// own clock, so the periods here are seconds of the real clock (the
// archiver's defaults, which the council does not override), and the test
// ends by letting the sweeper delete everything once it has expired, which
// empties the bucket. No assertion depends on a loaded machine being quick:
// the periods leave ~20 s for the checks made before a date, a check that
// only holds before a date is made only while it is before that date, and
// everything after a date waits for it with a generous deadline.
func TestObjectLockMinIO(t *testing.T) {
	t.Parallel()
	const provisionalPeriod, unlinkedPeriod = 20 * time.Second, 15 * time.Second
	ctx := t.Context()
	env := testenv.MinIO(t)
	s3, err := blob.NewS3(ctx, env.S3Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s3.Close() })
	cfg := archiver.DefaultConfig()
	cfg.Retention = retention.Settings{
		Default:  retention.Policy{AppealWindow: 3 * time.Second, AppealMargin: 2 * time.Second, Provisional: provisionalPeriod},
		Unlinked: unlinkedPeriod,
	}
	cfg.SweepDelay = 0
	e := newEnv(t, s3, cfg, nil)
	now := time.Now().Truncate(time.Second)
	examStart, examEnd := now.Add(-10*time.Minute), now.Add(-time.Second)
	e.exam("e1", examStart, examEnd)

	seg := 6 * time.Second
	in := e.segment("cam1", events.SourceRoom, examStart.Add(time.Minute), seg)
	outside := e.segment("cam1", events.SourceRoom, examEnd, seg) // just after the exam: unlinked
	ws1 := e.segment("ws1-cam", events.SourceWebcam, examStart.Add(time.Minute), seg)
	ws2 := e.segment("ws2-cam", events.SourceWebcam, examStart.Add(time.Minute), seg)
	all := []*events.SegmentClosed{in, outside, ws1, ws2}
	for _, ev := range all {
		e.deliver(ev)
	}
	// What the registry answers is what the objects carry, in COMPLIANCE
	// mode.
	raw, err := minio.New(env.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(env.AccessKey, env.SecretKey, ""), Secure: env.UseSSL})
	if err != nil {
		t.Fatal(err)
	}
	provisional := examEnd.Add(provisionalPeriod)
	for _, ev := range []*events.SegmentClosed{in, ws1, ws2} {
		e.expect(ev.ObjectKey, provisional, false, "provisional")
	}
	e.expect(outside.ObjectKey, outside.Start.Add(seg+unlinkedPeriod), false, "unlinked")
	for _, ev := range all {
		mode, until, err := raw.GetObjectRetention(ctx, env.Bucket, ev.ObjectKey, "")
		if err != nil || mode == nil || *mode != minio.Compliance || until == nil {
			t.Fatalf("%s: retention %v %v %v, want COMPLIANCE", ev.ObjectKey, mode, until, err)
		}
		// A delete before the date fails at the storage level, through
		// the store and directly; checked only while it is before the
		// date, with a second to spare (MinIO's clock is this machine's).
		if time.Until(*until) < 2*time.Second {
			t.Logf("%s: not checking the refused delete: the machine took until %s to get here", ev.ObjectKey, until)
			continue
		}
		if err := s3.Delete(ctx, ev.ObjectKey); !errors.Is(err, blob.ErrRetained) {
			t.Errorf("delete %s through the store: %v, want ErrRetained", ev.ObjectKey, err)
		}
		st, err := raw.StatObject(ctx, env.Bucket, ev.ObjectKey, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := raw.RemoveObject(ctx, env.Bucket, ev.ObjectKey, minio.RemoveObjectOptions{VersionID: st.VersionID}); err == nil {
			t.Errorf("delete %s directly in MinIO succeeded under COMPLIANCE retention", ev.ObjectKey)
		}
	}

	// c2 fails and appeals: their evidence, and only theirs, is held.
	rnow := time.Now()
	if err := e.st.RecordResult(ctx, &store.Result{ExamID: "e1", CandidateID: "c2", Kind: store.ResultConclusion,
		Conclusion: "не сдал", IssuedOn: rnow}, 0, rnow); err != nil {
		t.Fatal(err)
	}
	appeal := &store.Appeal{ExamID: "e1", CandidateID: "c2", Reason: "нарушена процедура"}
	if err := e.st.OpenAppeal(ctx, appeal, 0, time.Now()); err != nil {
		t.Fatal(err)
	}
	e.relay(time.Now())
	held := map[string]bool{ws2.ObjectKey: true, ws2.InitKey: true, in.ObjectKey: true, in.InitKey: true}
	sl, err := e.ast.LatestSeal(ctx, "e1", "c2")
	if err != nil {
		t.Fatalf("c2 not sealed: %v", err)
	}
	held[sl.ManifestKey], held[sl.SignatureKey] = true, true
	for _, k := range []string{in.ObjectKey, in.InitKey, outside.ObjectKey, ws1.ObjectKey, ws1.InitKey, ws2.ObjectKey, ws2.InitKey,
		sl.ManifestKey, sl.SignatureKey} {
		o := e.object(k)
		_, hold := e.stored(k)
		if hold != held[k] || o.LegalHold != held[k] {
			t.Errorf("%s: stored hold %v, archived %v, want %v", k, hold, o.LegalHold, held[k])
		}
		// The store's date is the registry's answer.
		until, _ := e.stored(k)
		if o.RetainUntil.After(time.Now()) && !until.Equal(ceilSecond(o.RetainUntil)) {
			t.Errorf("%s: stored retain-until %s, registry %s", k, until, o.RetainUntil)
		}
	}
	// Held: not deletable even once the date has passed.
	testenv.WaitFor(t, 2*time.Minute, "the provisional period to pass", func() bool { return time.Now().After(provisional.Add(time.Second)) })
	if err := s3.Delete(ctx, ws2.ObjectKey); !errors.Is(err, blob.ErrRetained) {
		t.Fatalf("delete of held evidence: %v, want ErrRetained", err)
	}

	// Closing the appeal lifts the hold; the margin runs from the close.
	closedAt := time.Now()
	if err := e.st.DecideAppeal(ctx, appeal.ID, store.AppealRejected, "rejected", 0, closedAt); err != nil {
		t.Fatal(err)
	}
	if err := e.st.CloseAppeal(ctx, appeal.ID, 0, closedAt); err != nil {
		t.Fatal(err)
	}
	e.relay(time.Now())
	for k := range held {
		// The room camera is c1's evidence too, and c1 still has no
		// result after the provisional period: it stays held.
		want := k == in.ObjectKey || k == in.InitKey
		if _, hold := e.stored(k); hold != want {
			t.Errorf("%s: held %v after the appeal closed, want %v", k, hold, want)
		}
	}
	o := e.object(ws2.ObjectKey)
	if o.Rule != "appeal_closed" || !o.RetainUntil.Equal(closedAt.Add(2*time.Second).Truncate(time.Microsecond)) {
		t.Errorf("after the close: %s until %s, want appeal_closed until %s", ws2.ObjectKey, o.RetainUntil, closedAt.Add(2*time.Second))
	}

	// c1's result is missing after the provisional period: c1's evidence
	// is overdue. The sweeper holds it in MinIO instead of deleting it,
	// counts it, and explain says why. (What else it deletes depends on
	// how long the machine took to get here: c2's margin and the unlinked
	// footage may have run out by now; the end of the test checks them.)
	c1Evidence := []string{ws1.ObjectKey, ws1.InitKey, in.ObjectKey, in.InitKey}
	st, err := e.svc.Sweep(ctx)
	if err != nil || st.Overdue != 1 {
		t.Fatalf("sweep with c1 overdue: %+v %v, want 1 overdue", st, err)
	}
	for _, k := range c1Evidence {
		if _, hold := e.stored(k); !hold || !e.object(k).LegalHold {
			t.Errorf("%s: overdue evidence of c1 not held in MinIO", k)
		}
	}
	if err := s3.Delete(ctx, ws1.ObjectKey); !errors.Is(err, blob.ErrRetained) {
		t.Fatalf("delete of overdue evidence: %v, want ErrRetained", err)
	}
	if v := gauge(t, e, "nokstream_archiver_overdue_evidence"); v != 1 {
		t.Errorf("nokstream_archiver_overdue_evidence %v, want 1", v)
	}
	text, err := archiver.Explain(ctx, e.facts, e.ast, cfg.Retention, time.Now(), ws1.ObjectKey)
	if err != nil || !strings.Contains(text, "OVERDUE EVIDENCE") || !strings.Contains(text, "overdue_evidence") {
		t.Errorf("explain %s: %v\n%s\nwant it to say the evidence is overdue", ws1.ObjectKey, err, text)
	}
	text, err = archiver.ExplainOverdue(ctx, e.facts, cfg.Retention, time.Now())
	if err != nil || !strings.Contains(text, "e1/c1") || strings.Contains(text, "e1/c2") {
		t.Errorf("explain --overdue: %v\n%s\nwant e1/c1 only", err, text)
	}
	for range 3 { // sweeps later: still there
		if _, err := e.svc.Sweep(ctx); err != nil {
			t.Fatalf("sweep of held overdue evidence: %v", err)
		}
	}
	for _, k := range c1Evidence {
		if _, err := s3.Stat(ctx, k); err != nil {
			t.Fatalf("overdue evidence %s gone: %v", k, err)
		}
	}

	// The council disposes of c1's evidence, with a reason: the hold is
	// lifted and the sweeper may delete it.
	if err := e.st.DisposeEvidence(ctx, store.Disposal{ExamID: "e1", CandidateID: "c1", Reason: "экзамен не состоялся, результата не будет",
		DisposedAt: time.Now()}, cfg.Retention.Default.Provisional, 0); err != nil {
		t.Fatal(err)
	}
	e.relay(time.Now())
	if _, hold := e.stored(ws1.ObjectKey); hold {
		t.Errorf("%s still held after the disposal", ws1.ObjectKey)
	}

	// Once everything has expired, the sweeper deletes it all: the bucket
	// is left empty.
	testenv.WaitFor(t, 2*time.Minute, "the sweeper to delete everything", func() bool {
		if _, err := e.svc.Sweep(ctx); err != nil {
			t.Fatalf("sweep: %v", err)
		}
		n := 0
		for obj := range raw.ListObjectsIter(ctx, env.Bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
			if obj.Err == nil {
				n++
			}
		}
		return n == 0
	})
}

// TestRun runs the archiver's consumers and sweeper on the durable
// in-process bus: segments published by ingest are archived, a registry
// change published through the outbox reaches them, and Run returns, with
// its goroutines gone, when its context ends. It is not parallel: the leak
// check would see the goroutines of the package's parallel tests.
func TestRun(t *testing.T) {
	ctx := t.Context()
	log := testLog(t)
	reg := prometheus.NewRegistry()
	lb, err := bus.NewLocal(t.TempDir(), log, bus.NewMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lb.Close() })
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	c := &clock{now: t0.Add(5 * time.Hour)}
	cfg := archiver.DefaultConfig()
	cfg.SweepInterval = 50 * time.Millisecond
	e := newEnvBus(t, dirStore(t, c), cfg, c, lb)
	e.exam("e1", t0, t0.Add(4*time.Hour))
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.svc.Run(runCtx) }()
	var evs []*events.SegmentClosed
	for i := range 3 {
		ev := e.segment("ws1-cam", events.SourceWebcam, t0.Add(time.Hour+time.Duration(i)*6*time.Second), 6*time.Second)
		b, _ := json.Marshal(ev)
		if err := lb.Publish(ctx, events.TopicSegments, ev.StreamID, b); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	last := evs[len(evs)-1].ObjectKey
	testenv.WaitFor(t, 30*time.Second, "the segments to be archived", func() bool {
		_, err := e.ast.ArchiveObject(ctx, last)
		return err == nil
	})
	if err := e.st.RecordResult(ctx, &store.Result{ExamID: "e1", CandidateID: "c1", Kind: store.ResultConclusion,
		Conclusion: "не сдал", IssuedOn: c.Now()}, 0, c.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.st.OpenAppeal(ctx, &store.Appeal{ExamID: "e1", CandidateID: "c1", Reason: "процедура"}, 0, c.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.RelayOutbox(ctx, 100, c.Now(), func(ctx context.Context, ev store.OutboxEvent) error {
		return lb.Publish(ctx, ev.Topic, ev.Key, ev.Value)
	}); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "the appeal's hold", func() bool {
		o, err := e.ast.ArchiveObject(ctx, last)
		return err == nil && o.LegalHold
	})
	if _, hold := e.stored(last); !hold {
		t.Errorf("%s: no hold in the store", last)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// TestRenditions: the transcoder's rendition, its init and thumbnails of a
// segment are kept as the segment is, follow its changes, and go with it.
func TestRenditions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	c := &clock{now: t0.Add(5 * time.Hour)}
	d := dirStore(t, c)
	e := newEnv(t, d, archiver.DefaultConfig(), c)
	e.exam("e1", t0, t0.Add(4*time.Hour))
	in := e.segment("ws1-cam", events.SourceWebcam, t0.Add(time.Hour), 6*time.Second)
	out := e.segment("ws1-cam", events.SourceWebcam, t0.Add(4*time.Hour+time.Minute), 6*time.Second)
	for _, ev := range []*events.SegmentClosed{in, out} {
		e.deliver(ev)
	}
	put := func(key, body string) events.ObjectRef {
		if err := d.Put(ctx, key, strings.NewReader(body), int64(len(body))); err != nil {
			t.Fatal(err)
		}
		return events.ObjectRef{Key: key, Bytes: int64(len(body)), SHA256: strings.Repeat("ab", 32)}
	}
	rendition := func(ev *events.SegmentClosed) (keys []string) {
		n := fmt.Sprint(ev.Sequence)
		r := events.RenditionReady{SegmentID: ev.SegmentID, StreamID: ev.StreamID, Source: ev.Source, Site: ev.Site,
			Device: ev.Device, Sequence: ev.Sequence, Start: ev.Start, Duration: ev.Duration, SourceSHA256: ev.SHA256,
			Variant: events.VariantReview, Transcoder: "t1", Done: c.Now(),
			Rendition: events.Rendition{Object: put("review/site1/ws1-cam/"+n+".m4s", "review "+n), Init: put("review/site1/ws1-cam/init.mp4", "review init")},
			Thumbnails: &events.Thumbnails{Sprite: put("thumbs/site1/ws1-cam/"+n+".jpg", "sprite "+n), VTT: put("thumbs/site1/ws1-cam/"+n+".vtt", "vtt "+n),
				Tiles: 6, Columns: 6, TileWidth: 160, TileHeight: 90, Interval: 1}}
		b, _ := json.Marshal(r)
		// The transcoder's manifest beside the rendition: the event.
		manifest := put("review/site1/ws1-cam/"+n+".json", string(b)).Key
		for range 2 { // twice: the same
			if err := e.svc.HandleRendition(ctx, bus.Message{Topic: events.TopicRenditions, Key: ev.StreamID, Value: b}); err != nil {
				t.Fatal(err)
			}
		}
		return []string{r.Rendition.Object.Key, r.Thumbnails.Sprite.Key, r.Thumbnails.VTT.Key, manifest}
	}
	inKeys, outKeys := rendition(in), rendition(out)
	for _, k := range inKeys {
		e.expect(k, t0.Add(4*time.Hour+90*day), false, "provisional")
	}
	for _, k := range outKeys {
		e.expect(k, out.Start.Add(6*time.Second+30*day), false, "unlinked")
	}
	e.expect("review/site1/ws1-cam/init.mp4", t0.Add(4*time.Hour+90*day), false, "serves")

	c.Set(t0.Add(day))
	if err := e.st.RecordResult(ctx, &store.Result{ExamID: "e1", CandidateID: "c1", Kind: store.ResultCertificate,
		CertificateNumber: "01.00000.02", IssuedOn: c.Now()}, 0, c.Now()); err != nil {
		t.Fatal(err)
	}
	e.relay(c.Now())
	for _, k := range append(inKeys, "review/site1/ws1-cam/init.mp4") {
		e.expect(k, time.Date(2029, 3, 4, 0, 0, 0, 0, time.UTC), false, "")
	}
	// The seal is of the original bytes only.
	sl, err := e.ast.LatestSeal(ctx, "e1", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if m := readSeal(t, e, sl); m.Objects != 2 {
		t.Errorf("seal lists %d objects, want the raw segment and its init", m.Objects)
	}
	// The unlinked segment and its renditions go together.
	c.Set(out.Start.Add(31 * day))
	if _, err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	c.Set(out.Start.Add(32 * day))
	if st, err := e.svc.Sweep(ctx); err != nil || st.Deleted != 5 {
		t.Fatalf("sweep: %+v %v, want the segment and its 4 derived objects (rendition, sprite, track, manifest) deleted", st, err)
	}
	for _, k := range append(outKeys, out.ObjectKey) {
		if _, err := d.Stat(ctx, k); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("%s not deleted: %v", k, err)
		}
	}
	// An event gives its retention to its own manifest only: what lies
	// beside another rendition is not archived when it is not that
	// rendition's manifest (garbage, another segment's manifest, or more
	// than a manifest can be).
	for i, body := range []string{"not json", "", strings.Repeat(" ", 1<<20+1)} {
		ev := e.segment("ws1-cam", events.SourceWebcam, c.Now().Add(time.Duration(i)*6*time.Second), 6*time.Second)
		e.deliver(ev)
		n := fmt.Sprint(ev.Sequence)
		if body == "" { // in's manifest, copied beside this one
			rc, err := d.Get(ctx, inKeys[3])
			if err != nil {
				t.Fatal(err)
			}
			bb, _ := io.ReadAll(rc)
			_ = rc.Close()
			body = string(bb)
		}
		put("review/site1/ws1-cam/"+n+".json", body)
		r := events.RenditionReady{SegmentID: ev.SegmentID, StreamID: ev.StreamID, Source: ev.Source, Site: ev.Site,
			Device: ev.Device, Sequence: ev.Sequence, Start: ev.Start, Duration: ev.Duration, SourceSHA256: ev.SHA256,
			Variant: events.VariantReview, Transcoder: "t1", Done: c.Now(),
			Rendition: events.Rendition{Object: put("review/site1/ws1-cam/"+n+".m4s", "review "+n), Init: put("review/site1/ws1-cam/init.mp4", "review init")}}
		b, _ := json.Marshal(r)
		if err := e.svc.HandleRendition(ctx, bus.Message{Topic: events.TopicRenditions, Key: ev.StreamID, Value: b}); err != nil {
			t.Fatal(err)
		}
		e.object(r.Rendition.Object.Key) // archived
		if o, err := e.ast.ArchiveObject(ctx, "review/site1/ws1-cam/"+n+".json"); !errors.Is(err, astore.ErrNotFound) {
			t.Errorf("%q beside rendition %s is not its manifest, but archived: %+v %v", body[:min(len(body), 20)], n, o, err)
		}
	}
}
