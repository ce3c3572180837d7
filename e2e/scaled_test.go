package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	astore "github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/store"
)

// The archiver of TestScaledOut counts a day of its retention flags as
// scaledDay and keeps footage of no exam for scaledUnlinkedDays of them
// (60 s), so that the sweeper's work falls inside the test, after the
// catch-up; the exam's footage is kept for the provisional period (90
// days, 7.5 min) and then for the certificate's validity, well after it.
const (
	scaledDay          = 5 * time.Second
	scaledUnlinkedDays = 12
)

// scaledReplicasEnv sets how many processes of each service TestScaledOut
// runs (default 2; one of each is killed).
const scaledReplicasEnv = "NOKSTREAM_E2E_REPLICAS"

// TestScaledOut runs the pipeline split into two processes of every
// service (NOKSTREAM_E2E_REPLICAS to try more) over the Kafka protocol,
// MinIO with Object Lock and PostgreSQL; the ingest nodes hold no
// database, each with its own node token on every registry's node API. Room cameras publish over RTSP to both ingest
// nodes and a candidate's webcam over WHIP to the second, during an exam
// whose window ends while the webcam still sends. Mid-stream one registry
// (the first in the ingest nodes' lists, and the test's API), the archiver
// that runs the sweeper and one transcoder are killed with SIGKILL, and new
// cameras publish after the kill. Then, as a user relies on it:
//   - every segment is indexed once, hash-true (checkSegments), and has its
//     review rendition; the catch-up time after the kill is logged;
//   - the WHIP session ends at the exam window's end, and nothing after it
//     is recorded;
//   - every object in the bucket is under COMPLIANCE retention until the
//     date the archiver records for it;
//   - footage of no exam is deleted once its period is over by the
//     surviving archiver: its record of the deletion reported to the
//     registry's audit log, and one log line per object across the
//     archivers; nothing of the exam deleted;
//   - once the result is in the register the candidate-exam is sealed
//     once (one seal version, two seal objects), and stays so;
//   - an appeal opened through the API puts every object of the
//     candidate-exam (what its seal lists, their renditions, the seal)
//     under S3 legal hold, read back from MinIO; closing it lifts them.
func TestScaledOut(t *testing.T) {
	t.Parallel()
	began := time.Now()
	m := testenv.MinIO(t)
	s3 := fmt.Sprintf("s3://%s:%s@%s/%s?ssl=false", url.QueryEscape(m.AccessKey), url.QueryEscape(m.SecretKey), m.Endpoint, m.Bucket)
	replicas := envInt(t, scaledReplicasEnv, 2)
	if replicas < 2 {
		t.Fatalf("%s=%d: the test kills one of each service and needs another", scaledReplicasEnv, replicas)
	}
	archivers := make([]string, replicas)
	for i := range archivers {
		archivers[i] = replica("archiver", i)
	}
	in := startSplitWith(t, 2*time.Second, options{s3: s3, replicas: replicas, args: map[string][]string{
		"archiver": {"--retention-day", scaledDay.String(), "--unlinked-days", fmt.Sprint(scaledUnlinkedDays), "--floor-unlinked-days", "0",
			"--sweep-interval", "1s", "--sweep-delay", "0s", "--lease-retry", "1s"},
	}}, "room1", "room2", "room3", "room4")
	t.Logf("%d processes started in %s", len(in.procs), time.Since(began).Round(100*time.Millisecond))
	st, err := store.Open(t.Context(), in.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The archive's records are the archiver's own (schema archiver).
	arc, err := astore.Open(t.Context(), in.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer arc.Close()
	raw, err := minio.New(m.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(m.AccessKey, m.SecretKey, ""), Secure: m.UseSSL})
	if err != nil {
		t.Fatal(err)
	}
	b := &lockedBucket{t: t, raw: raw, name: m.Bucket, arc: arc}

	// A camera of another site, filming no exam.
	cli(t, in.env, "org", "add", "site", "site2", "--center", "center1", "--name", "Site 2")
	cam9 := cli(t, in.env, "device", "add", "site2/cam9", "--host", in.rtspHost())
	// An exam at site1 whose window closes in about 50 s, while the
	// candidate's webcam still sends: long enough for the room cameras,
	// the kill and the catch-up, short enough to watch it end.
	w := newWebExamFor(t, in, 1, 55*time.Second)
	cand, ep := w.cands[0], "/api/v1/exams/"+w.exam
	confirmIdentity(w.site, ep, cand)
	w.site.do("PUT", ep+"/candidates/"+cand+"/admission", map[string]string{"status": "admitted"}, http.StatusOK, nil)
	var pw struct{ Password string }
	w.site.do("POST", ep+"/candidates/"+cand+"/password", nil, http.StatusOK, &pw)
	var sess struct {
		Token string
		WHIP  map[string]string
	}
	(&api{t: t, base: w.base}).do("POST", "/api/v1/exam/login", map[string]string{"password": pw.Password}, http.StatusOK, &sess)
	(&api{t: t, base: w.base, token: sess.Token}).do("POST", "/api/v1/exam/consent",
		map[string]string{"version": "e2e-1", "page": "e2e/scaled_test.go"}, http.StatusCreated, nil)
	webcamMedia := testenv.MakeWHIPMedia(t, 80, "h264", true)

	// onNode is a camera's publish URL on an ingest node.
	onNode := func(node, u string) string {
		return strings.Replace(u, in.rtspHost(), fmt.Sprintf("127.0.0.1:%d", in.nodes[node].rtsp), 1)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var pubErrs []error
	rtsp := func(node, u string, seconds int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if stderr, err := publish(t, onNode(node, u), seconds, "320x240", "aac"); err != nil {
				mu.Lock()
				pubErrs = append(pubErrs, fmt.Errorf("publish %s on %s: %v\n%s", u, node, err, stderr))
				mu.Unlock()
			}
		}()
	}
	// Before the kill: a room camera on each ingest node and the
	// candidate's webcam over WHIP on the second node.
	rtsp("ingest", in.publish["room1"], 12)
	rtsp("ingest2", in.publish["room2"], 12)
	webcam := testenv.NewWHIPClient(t, webcamMedia)
	whipCtx, stopWHIP := context.WithTimeout(context.Background(), 3*time.Minute)
	defer stopWHIP()
	whipURL := "http://" + in.http["ingest2"] + sess.WHIP["webcam"]
	if status, body, err := webcam.Publish(whipCtx, whipURL, sess.Token); err != nil || status != http.StatusCreated {
		t.Fatalf("WHIP POST %s with the exam token: %d %v %s", whipURL, status, err, body)
	}
	whipDone := make(chan struct{})
	go func() {
		defer close(whipDone)
		_ = webcam.Stream(whipCtx) // until ingest ends the session at the window's end
	}()
	defer func() { stopWHIP(); <-whipDone }()

	// Mid-stream: kill one registry, the archiver that runs the sweeper
	// and one transcoder.
	testenv.WaitFor(t, time.Minute, "a segment of each stream indexed", func() bool {
		for _, s := range []string{"site1/room1", "site1/room2", "site1/ws1-cam"} {
			if len(in.api.segments(s)) == 0 {
				return false
			}
		}
		return true
	})
	var leader string
	testenv.WaitFor(t, 30*time.Second, "an archiver to run the sweeper", func() bool {
		for _, a := range archivers {
			if metric(t, in.addrs[a], "nokstream_archiver_sweeper_leader") == 1 {
				leader = a
			}
		}
		return leader != ""
	})
	killed := []string{"registry", leader, "transcoder"}
	killAt := time.Now()
	for _, name := range killed {
		in.procs[name].stop(syscall.SIGKILL)
	}
	t.Logf("killed %s with SIGKILL %s after the start", strings.Join(killed, ", "), killAt.Sub(began).Round(100*time.Millisecond))
	// The API of the surviving registry, with the same sessions.
	w.base = "http://" + in.http["registry2"]
	for _, a := range []*api{in.api, w.center, w.site, w.council} {
		a.base = w.base
	}

	// After the kill: a new camera on each ingest node, and the camera
	// of no exam.
	rtsp("ingest", in.publish["room3"], 8)
	rtsp("ingest2", in.publish["room4"], 8)
	rtsp("ingest", cam9, 4)
	wg.Wait()
	lastStopped := time.Now()
	for _, err := range pubErrs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Catch-up: every closed segment of the RTSP cameras indexed and
	// given its rendition, in the archive (site2/cam9's before its period
	// runs out).
	streams := map[string]string{"site1/room1": "ingest", "site1/room2": "ingest2", "site1/room3": "ingest", "site1/room4": "ingest2",
		"site2/cam9": "ingest"}
	segs := map[string][]segment{}
	caughtUp := func(streams map[string]string) {
		for s, node := range streams {
			segs[s] = in.waitAllClosedOn(node, s, 2*time.Minute)
		}
		testenv.WaitFor(t, 2*time.Minute, "every segment's rendition archived", func() bool {
			return len(b.unrendered(segs, streams)) == 0
		})
	}
	caughtUp(streams)
	rtspCaught := time.Now()
	t.Logf("catch-up after the kill: the RTSP cameras' %d segments indexed and rendered %s after the kill, %s after the last publisher stopped",
		countSegments(segs), rtspCaught.Sub(killAt).Round(100*time.Millisecond), rtspCaught.Sub(lastStopped).Round(100*time.Millisecond))

	// The WHIP session ends with the exam window; nothing after it is
	// recorded.
	ended := `nokstream_ingest_whip_sessions_ended_total{reason="exam_over"}`
	testenv.WaitFor(t, time.Until(w.end)+time.Minute, "the webcam's session to end with the exam window", func() bool {
		return metric(t, in.addrs["ingest2"], ended) == 1
	})
	cutAt := time.Now()
	webcamStream := map[string]string{"site1/ws1-cam": "ingest2"}
	caughtUp(webcamStream)
	streams["site1/ws1-cam"] = "ingest2"
	t.Logf("the webcam's session ended %s after the window closed; all %d segments indexed and rendered %s after the kill",
		cutAt.Sub(w.end).Round(100*time.Millisecond), countSegments(segs), time.Since(killAt).Round(100*time.Millisecond))
	ws := segs["site1/ws1-cam"]
	last := ws[len(ws)-1]
	if end := last.Start.Add(time.Duration(last.Duration * float64(time.Second))); end.After(w.end.Add(time.Second)) || end.Before(w.end.Add(-4*time.Second)) {
		t.Errorf("the webcam's recording ends at %s, want at the exam window's end, %s", end.UTC().Format(time.StampMilli), w.end.UTC().Format(time.StampMilli))
	}

	// Indexed once and hash-true, on the Kafka event as in the index.
	for s := range streams {
		in.checkSegments(segs[s])
	}
	// Each ingest node asked the registries with its own token.
	nodes := cli(t, in.env, "node", "list")
	for i := range replicas {
		name := "e2e-" + replica("ingest", i)
		seen := false
		for _, line := range strings.Split(nodes, "\n") {
			if f := strings.Fields(line); len(f) >= 5 && f[0] == name && f[1] == "active" && f[4] != "never" {
				seen = true
			}
		}
		if !seen {
			t.Errorf("node %s not seen active on the registry's node API:\n%s", name, nodes)
		}
	}

	// The result enters the register: the candidate-exam is due its seal.
	w.recordCertificate(t, in, "40.00800.01.000031")
	var seal astore.Seal
	testenv.WaitFor(t, time.Minute, "the candidate-exam sealed", func() bool {
		seal, err = arc.LatestSeal(t.Context(), w.exam, cand)
		return err == nil
	})

	// Every object, read back from MinIO, is under COMPLIANCE retention
	// until the registry's date for it.
	var problems []string
	defer func() {
		if len(problems) > 0 {
			t.Logf("retention in MinIO against the registry:\n%s", strings.Join(problems, "\n"))
		}
	}()
	testenv.WaitFor(t, time.Minute, "every object locked until the registry's date", func() bool {
		problems = b.retentionProblems()
		return len(problems) == 0
	})
	isCam9 := func(key string) bool { return strings.Contains(key, "site2/cam9/") }
	var cam9Keys, examKeys []string
	for _, o := range b.list() {
		switch {
		case isCam9(o.key) && !slices.Contains(cam9Keys, o.key):
			cam9Keys = append(cam9Keys, o.key)
		case isCam9(o.key):
		case !strings.HasPrefix(o.key, store.DocumentPrefix):
			examKeys = append(examKeys, o.key)
		}
	}

	// What the seal lists, their renditions and the seal itself are the
	// candidate-exam's evidence.
	evidence, kinds := b.evidence(seal)
	t.Logf("the seal lists %d objects; with renditions and the seal, %d objects of the candidate-exam: %v", seal.Objects, len(evidence), kinds)
	for _, k := range []string{astore.ArchiveSegment, astore.ArchiveInit, astore.ArchiveRendition, astore.ArchiveSeal} {
		if kinds[k] == 0 {
			t.Errorf("no %s among the candidate-exam's objects: %v", k, kinds)
		}
	}

	// An appeal holds all of it, in MinIO, until it is closed.
	var appeal struct{ ID string }
	w.council.do("POST", ep+"/candidates/"+cand+"/appeals", map[string]string{"reason": "кандидат не согласен с результатом"}, http.StatusCreated, &appeal)
	var off []string
	defer func() {
		if len(off) > 0 {
			t.Logf("%d of %d objects of the candidate-exam not under legal hold with the appeal open: %q", len(off), len(evidence), off)
		}
	}()
	testenv.WaitFor(t, time.Minute, "a legal hold on every object of the candidate-exam", func() bool {
		off = b.holdsOtherThan(evidence, true)
		return len(off) == 0
	})
	w.council.do("POST", "/api/v1/appeals/"+appeal.ID+"/decision", map[string]string{"outcome": "rejected", "decision": "без изменений"}, http.StatusOK, nil)
	w.council.do("POST", "/api/v1/appeals/"+appeal.ID+"/close", nil, http.StatusOK, nil)
	var held []string
	defer func() {
		if len(held) > 0 {
			t.Logf("%d objects still under legal hold after the appeal closed: %q", len(held), held)
		}
	}()
	testenv.WaitFor(t, time.Minute, "every legal hold lifted", func() bool {
		held = b.holdsOtherThan(evidence, false)
		return len(held) == 0
	})

	// Sealed once, whatever the replicas and the events since.
	if s, err := arc.LatestSeal(t.Context(), w.exam, cand); err != nil || s.Version != 1 {
		t.Errorf("latest seal %+v (%v), want version 1 only", s, err)
	}
	if objs, err := arc.SealObjects(t.Context(), w.exam, cand); err != nil || len(objs) != 2 {
		t.Errorf("%d seal objects (%v), want the manifest and its signature", len(objs), err)
	}
	// Footage of no exam is deleted once, by the archiver that took over
	// the sweeper.
	t.Logf("%s after the start: waiting for the sweeper to delete site2/cam9's %d objects", time.Since(began).Round(100*time.Millisecond), len(cam9Keys))
	testenv.WaitFor(t, 2*time.Minute, "the sweeper to delete site2/cam9's expired footage", func() bool {
		return !slices.ContainsFunc(b.list(), func(o bucketObject) bool { return isCam9(o.key) })
	})
	// The archiver's own record of each deletion, published to the
	// registry (events.ObjectDeleted), whose audit log has one entry for it
	// however often it is delivered.
	testenv.WaitFor(t, 30*time.Second, "every deletion published to the registry", func() bool {
		for _, k := range cam9Keys {
			if d, err := arc.Deletion(t.Context(), k); err != nil || d.ReportedAt == nil {
				return false
			}
		}
		return true
	})
	deletions := map[string]int{}
	testenv.WaitFor(t, 30*time.Second, "the registry to record each deletion in its audit log", func() bool {
		audit, err := st.ObjectAudit(t.Context(), cam9Keys, began, 10000)
		if err != nil {
			t.Logf("read the audit log: %v", err)
			return false
		}
		clear(deletions)
		for _, e := range audit {
			if e.Action == "archive.delete" {
				deletions[e.Object]++
			}
		}
		return len(deletions) == len(cam9Keys)
	})
	// Both records are kept once per object whatever happens (a second
	// report or record of the same deletion changes nothing), so a second
	// deletion of an object would show only in the log, where each
	// deletion has its line, written after its record: wait for them.
	logged := map[string]int{}
	testenv.WaitFor(t, 30*time.Second, "the archivers to log each deletion", func() bool {
		var lines []string
		for _, a := range archivers {
			lines = append(lines, strings.Split(in.procs[a].output(), "\n")...)
		}
		clear(logged)
		for _, k := range cam9Keys {
			for _, line := range lines {
				if strings.Contains(line, "deleted expired object") && strings.Contains(line, "object_key="+k+" ") {
					logged[k]++
				}
			}
		}
		return len(logged) == len(cam9Keys)
	})
	for _, k := range cam9Keys {
		if deletions[k] != 1 || logged[k] != 1 {
			t.Errorf("%s: %d deletion records and %d log lines across the archivers, want one of each", k, deletions[k], logged[k])
		}
	}
	if !slices.ContainsFunc(cam9Keys, func(k string) bool { return strings.HasPrefix(k, "review/") }) {
		t.Errorf("site2/cam9's objects were %q, with no rendition", cam9Keys)
	}

	// Nothing of the exam went with it.
	left := map[string]bool{}
	for _, o := range b.list() {
		left[o.key] = true
	}
	for _, k := range append(evidence, examKeys...) {
		if !left[k] {
			t.Errorf("%s, footage of the exam, is gone", k)
		}
	}
	t.Logf("TestScaledOut took %s", time.Since(began).Round(100*time.Millisecond))
}

// countSegments counts segments.
func countSegments(segs map[string][]segment) int {
	n := 0
	for _, s := range segs {
		n += len(s)
	}
	return n
}

// recordCertificate takes the candidate's certificate into the register
// through the API: the organisations' details that approval requires, the
// commission protocol approved by the expert, the center's card submitted,
// and the council's approval with its protocol's scan.
func (w *webExam) recordCertificate(t *testing.T, in *installation, number string) {
	t.Helper()
	ep := "/api/v1/exams/" + w.exam
	today := time.Now().UTC().Format(time.DateOnly)
	w.council.do("PUT", "/api/v1/councils/council1/commission", map[string]any{"members": []string{"Иванов И. И."},
		"address": "101000, Москва, ул. Мясницкая, 1", "email": "appeals@council1.example", "phones": []string{"+7 495 000-00-00"}}, http.StatusOK, nil)
	w.center.do("PUT", "/api/v1/centers/center1", map[string]any{"name": "Center 1", "head": "Сидоров С. С.", "website": "https://center1.example",
		"legal_address": "101000, Москва, ул. Покровка, 2", "actual_address": "101000, Москва, ул. Покровка, 2",
		"postal_address": "101000, Москва, ул. Покровка, 2", "email": "info@center1.example", "phones": []string{"+7 495 111-11-11"}}, http.StatusOK, nil)
	w.site.do("PUT", "/api/v1/sites/site1", map[string]any{"name": "Site 1", "address": "101000, Москва, ул. Покровка, 2, ауд. 5",
		"email": "site1@center1.example", "phones": []string{"+7 495 222-22-22"}}, http.StatusOK, nil)
	upload(t, w.site, "PUT", ep+"/protocol?number=17&signed_on="+today+"&filename=protocol.pdf", "application/pdf", []byte("%PDF-1.4 commission protocol"))
	expert := login(t, w.base, "expert1", w.expertPW)
	expert.do("POST", ep+"/protocol/approval", map[string]any{"approved": true}, http.StatusOK, nil)
	w.center.do("PUT", ep+"/candidates/"+w.cands[0]+"/result", map[string]string{"kind": "certificate", "certificate_number": number, "issued_on": today},
		http.StatusCreated, nil)
	w.center.do("POST", ep+"/submission", nil, http.StatusOK, nil)
	scan := w.council.upload(ep+"/council-protocol?filename=spk.pdf", "application/pdf", "%PDF-1.4 протокол СПК № 5", http.StatusCreated)
	w.council.do("POST", ep+"/decision", map[string]any{"decision": "approved",
		"protocol": map[string]any{"number": "5", "date": today, "document": scan}}, http.StatusOK, nil)
}

// lockedBucket reads a test's MinIO bucket (every version) beside the
// registry's archive rows.
type lockedBucket struct {
	t    *testing.T
	raw  *minio.Client
	name string
	arc  *astore.Store
}

type bucketObject struct{ key, version string }

// list returns every version of every object but the transcoder's
// detector state (review/<site>/<device>/state/: scratch, one object per
// stream, never archived; see docs/NOTES.md). Its manifests, one per
// segment beside the rendition, are archived with the rendition.
func (b *lockedBucket) list() []bucketObject {
	var out []bucketObject
	for o := range b.raw.ListObjectsIter(b.t.Context(), b.name, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			b.t.Fatalf("list %s: %v", b.name, o.Err)
		}
		if detectorState(o.Key) {
			continue
		}
		out = append(out, bucketObject{o.Key, o.VersionID})
	}
	return out
}

// archived returns the archive row of key, or false if there is none.
func (b *lockedBucket) archived(key string) (astore.ArchiveObject, bool) {
	a, err := b.arc.ArchiveObject(b.t.Context(), key)
	if errors.Is(err, astore.ErrNotFound) {
		return a, false
	}
	if err != nil {
		b.t.Fatalf("archive row of %s: %v", key, err)
	}
	return a, true
}

// unrendered returns the segments of streams that have no review rendition
// stored and archived.
func (b *lockedBucket) unrendered(segs map[string][]segment, streams map[string]string) []string {
	rendered := map[string]bool{}
	for _, o := range b.list() {
		if !strings.HasPrefix(o.key, "review/") || !strings.HasSuffix(o.key, ".m4s") {
			continue
		}
		if _, id, ok := strings.Cut(strings.TrimSuffix(path.Base(o.key), ".m4s"), "-"); ok {
			if _, ok := b.archived(o.key); ok {
				rendered[id] = true
			}
		}
	}
	var out []string
	for s := range streams {
		for _, sg := range segs[s] {
			if !rendered[sg.SegmentID] {
				out = append(out, s+"#"+fmt.Sprint(sg.Sequence))
			}
		}
	}
	return out
}

// retentionProblems checks every version of every object against the
// registry: COMPLIANCE retention until exactly the archive row's date. A
// document no candidate-exam has taken yet has no archive row and is left
// out; any other object without one is a problem.
func (b *lockedBucket) retentionProblems() []string {
	var out []string
	for _, o := range b.list() {
		a, ok := b.archived(o.key)
		if !ok {
			if !strings.HasPrefix(o.key, store.DocumentPrefix) {
				out = append(out, o.key+": stored, not archived")
			}
			continue
		}
		mode, until, err := b.raw.GetObjectRetention(b.t.Context(), b.name, o.key, o.version)
		switch {
		case err != nil || mode == nil || *mode != minio.Compliance || until == nil:
			out = append(out, fmt.Sprintf("%s (%s) version %s: retention %v %v %v, want COMPLIANCE", o.key, a.Kind, o.version, mode, until, err))
		case !until.Equal(ceilSecond(a.RetainUntil)):
			out = append(out, fmt.Sprintf("%s (%s) version %s: MinIO keeps it until %s, the registry says %s", o.key, a.Kind, o.version,
				until.UTC(), a.RetainUntil.UTC()))
		}
	}
	return out
}

// evidence returns the objects of a candidate-exam: what its seal lists,
// the renditions (and their inits) of the segments among them, and the
// seal's own manifest and signature, with a count of each kind.
func (b *lockedBucket) evidence(s astore.Seal) ([]string, map[string]int) {
	r, err := b.raw.GetObject(b.t.Context(), b.name, s.ManifestKey, minio.GetObjectOptions{})
	if err != nil {
		b.t.Fatalf("get %s: %v", s.ManifestKey, err)
	}
	defer r.Close()
	var manifest struct {
		Entries []struct{ Kind, Key string }
	}
	if err := json.NewDecoder(r).Decode(&manifest); err != nil {
		b.t.Fatalf("decode %s: %v", s.ManifestKey, err)
	}
	keys := []string{s.ManifestKey, s.SignatureKey}
	kinds := map[string]int{astore.ArchiveSeal: 2}
	segmentIDs := map[string]bool{}
	for _, e := range manifest.Entries {
		keys = append(keys, e.Key)
		a, ok := b.archived(e.Key)
		if !ok {
			b.t.Errorf("%s, listed by the seal, is not archived", e.Key)
			continue
		}
		kinds[a.Kind]++
		if a.Kind == astore.ArchiveSegment {
			segmentIDs[a.SegmentID] = true
		}
	}
	for _, o := range b.list() {
		if !strings.HasPrefix(o.key, "review/") || slices.Contains(keys, o.key) {
			continue
		}
		if a, ok := b.archived(o.key); ok && a.Kind == astore.ArchiveRendition && segmentIDs[a.SegmentID] {
			keys = append(keys, o.key)
			kinds[astore.ArchiveRendition]++
			if a.InitKey != "" && !slices.Contains(keys, a.InitKey) {
				keys = append(keys, a.InitKey)
				kinds[astore.ArchiveInit]++
			}
		}
	}
	return keys, kinds
}

// holdsOtherThan returns the versions of keys whose legal hold in MinIO is
// not as wanted (on, or off: not set or unreadable).
func (b *lockedBucket) holdsOtherThan(keys []string, on bool) []string {
	var out []string
	for _, o := range b.list() {
		if !slices.Contains(keys, o.key) {
			continue
		}
		st, err := b.raw.GetObjectLegalHold(b.t.Context(), b.name, o.key, minio.GetObjectLegalHoldOptions{VersionID: o.version})
		held := err == nil && st != nil && *st == minio.LegalHoldEnabled
		if held != on {
			out = append(out, fmt.Sprintf("%s@%s (%v)", o.key, o.version, err))
		}
	}
	return out
}

// detectorState reports whether key is the transcoder's detector state of a
// stream (review/<site>/<device>/state/<seq>.json): scratch, not archived.
func detectorState(key string) bool {
	return strings.HasPrefix(key, "review/") && strings.Contains(key, "/state/") && strings.HasSuffix(key, ".json")
}
