package e2e

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	astore "github.com/nokstream/nokstream/archiver/store"
	"github.com/nokstream/nokstream/internal/evidence/retention"
	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/registry/store"
)

// evidenceClip is what the room camera of TestSplitEvidence films, in
// seconds of media from its start: a black picture, a frozen one and a
// silent microphone, each longer than the transcoder's thresholds below and
// apart from the others.
var evidenceClip = struct {
	seconds                    int
	black, frozen, silent      [2]float64
	blackMin, frozenMin, quiet string // the transcoder's thresholds
}{
	seconds: 22,
	black:   [2]float64{2, 5}, frozen: [2]float64{8, 12}, silent: [2]float64{14, 19},
	blackMin: "2s", frozenMin: "2s", quiet: "3s",
}

// The archiver of TestSplitEvidence counts a day of its retention flags as
// a second (--retention-day), keeps footage of no exam for unlinkedDays of
// them, and sweeps every second without a delay: the test watches that
// period run out. The exam's footage is kept for the default provisional
// period, 90 "days" after the exam's end, well after the test.
const (
	retentionDay = time.Second
	unlinkedDays = 20
)

// TestSplitEvidence runs one split deployment (ingest, transcoder, archiver
// and registry as separate processes over the Kafka protocol, MinIO with
// Object Lock) and checks what the archive promises on the storage itself:
// a room camera films an exam with 3 s of black, 4 s frozen and 5 s of
// silence; the transcoder process reports each, where it was; and every
// object in the bucket (segments, init segments, renditions, thumbnails),
// read back from MinIO, is under COMPLIANCE retention until exactly the
// date the registry records for it, which for the exam's footage is the
// provisional period after the exam's end. Then a camera of another site,
// filming no exam, records a few seconds: once its period has run out the
// sweeper deletes exactly its objects, logging each, and nothing of the
// exam.
func TestSplitEvidence(t *testing.T) {
	t.Parallel()
	m := testenv.MinIO(t)
	s3 := fmt.Sprintf("s3://%s:%s@%s/%s?ssl=false", url.QueryEscape(m.AccessKey), url.QueryEscape(m.SecretKey), m.Endpoint, m.Bucket)
	c := evidenceClip
	in := startSplitWith(t, 2*time.Second, options{s3: s3, args: map[string][]string{
		"transcoder": {"--black-min", c.blackMin, "--frozen-min", c.frozenMin, "--silent-min", c.quiet},
		"archiver": {"--retention-day", retentionDay.String(), "--unlinked-days", fmt.Sprint(unlinkedDays),
			"--floor-unlinked-days", "0", "--sweep-interval", "1s", "--sweep-delay", "0s"},
	}}, "cam1")
	w := newWebExam(t, in, 1)

	// The room camera films the exam.
	vf := fmt.Sprintf("testsrc2=size=320x240:rate=25,drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='between(t,%g,%g)',"+
		"split[a][b];[a][b]freezeframes=first=%d:last=%d:replace=%d[out0]",
		c.black[0], c.black[1], int(c.frozen[0]*25), int(c.frozen[1]*25), int(c.frozen[0]*25)-1)
	af := fmt.Sprintf("sine=frequency=440:sample_rate=48000,volume=volume=0:enable='between(t,%g,%g)'", c.silent[0], c.silent[1])
	ctx, cancel := context.WithTimeout(t.Context(), time.Duration(c.seconds+90)*time.Second)
	defer cancel()
	ff := exec.CommandContext(ctx, testenv.Tool(t, "ffmpeg"), "-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", vf, "-f", "lavfi", "-i", af, "-t", fmt.Sprint(c.seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "main", "-bf", "2", "-g", "50", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k", "-f", "rtsp", "-rtsp_transport", "tcp", in.publish["cam1"])
	if out, err := ff.CombinedOutput(); err != nil {
		t.Fatalf("publish the clip: %v\n%s", err, out)
	}
	segs := in.waitIndexed("site1/cam1", float64(c.seconds)-1, time.Minute)
	origin := segs[0].Start

	// The transcoder process saw each, where it was in the footage.
	want := map[string][2]float64{"black": c.black, "frozen": c.frozen, "silent": c.silent}
	var obs []observation
	testenv.WaitFor(t, 3*time.Minute, "the transcoder's black, frozen and silent observations", func() bool {
		obs = in.api.observations("site1/cam1")
		for kind := range want {
			if len(kinds(obs, kind)) == 0 {
				return false
			}
		}
		return true
	})
	for kind, span := range want {
		got := kinds(obs, kind)
		if len(got) != 1 {
			t.Errorf("%d %s observations, want 1: %+v", len(got), kind, got)
			continue
		}
		o := got[0]
		from, to := o.Start.Sub(origin).Seconds(), o.End.Sub(origin).Seconds()
		if o.Reporter != "transcoder" || math.Abs(from-span[0]) > 1.5 || math.Abs(to-span[1]) > 1.5 {
			t.Errorf("%s observed by %q from %.1f s to %.1f s of the footage, want the transcoder's, %g s to %g s (± 1.5 s)",
				kind, o.Reporter, from, to, span[0], span[1])
		}
	}

	// Every object is under COMPLIANCE retention, in MinIO itself, until
	// the registry's date for it. The transcoder's renditions and
	// thumbnails are archived after the segments: wait for every segment
	// to have its rendition in the archive.
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
	// The transcoder's detector state (one object a stream) is scratch, not
	// evidence: the archiver does not know it. Its manifest of each segment
	// (the RenditionReady event, written last, beside the rendition) is
	// archived with the rendition, and must be locked as it is.
	bookkeeping := detectorState
	type object struct{ key, version string }
	list := func() []object {
		var out []object
		for o := range raw.ListObjectsIter(t.Context(), m.Bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
			if o.Err != nil {
				t.Fatalf("list %s: %v", m.Bucket, o.Err)
			}
			if bookkeeping(o.Key) {
				continue
			}
			out = append(out, object{o.Key, o.VersionID})
		}
		return out
	}
	var objs []object
	var pending []string // stored, not yet archived
	renditions := 0
	defer func() {
		if t.Failed() {
			t.Logf("%d objects stored, %d renditions archived for %d segments; stored but not archived: %q", len(objs), renditions, len(segs), pending)
		}
	}()
	testenv.WaitFor(t, 3*time.Minute, "every segment's rendition archived", func() bool {
		objs, pending, renditions = list(), nil, 0
		for _, o := range objs {
			a, err := arc.ArchiveObject(t.Context(), o.key)
			if errors.Is(err, astore.ErrNotFound) {
				pending = append(pending, o.key)
				continue
			}
			if err != nil {
				t.Fatalf("archive row of %s: %v", o.key, err)
			}
			if a.Kind == astore.ArchiveRendition && strings.HasSuffix(o.key, ".m4s") {
				renditions++
			}
		}
		return len(pending) == 0 && renditions >= len(segs)
	})
	provisional := w.end.Add(retention.DefaultSettings().Default.Provisional / retention.Day * retentionDay)
	kindsSeen := map[string]int{}
	for _, o := range objs {
		a, err := arc.ArchiveObject(t.Context(), o.key)
		if err != nil {
			t.Fatalf("archive row of %s: %v", o.key, err)
		}
		kindsSeen[a.Kind]++
		mode, until, err := raw.GetObjectRetention(t.Context(), m.Bucket, o.key, o.version)
		if err != nil || mode == nil || *mode != minio.Compliance || until == nil {
			t.Errorf("%s (%s) version %s: retention %v %v %v, want COMPLIANCE", o.key, a.Kind, o.version, mode, until, err)
			continue
		}
		if want := ceilSecond(a.RetainUntil); !until.Equal(want) {
			t.Errorf("%s (%s): MinIO keeps it until %s, the registry says %s", o.key, a.Kind, until.UTC(), a.RetainUntil.UTC())
		}
		// The exam's footage, and what is made of it, is kept for the
		// provisional period after the exam: no result is recorded.
		if a.Kind != astore.ArchiveSeal && !a.RetainUntil.Equal(provisional) {
			t.Errorf("%s (%s): kept until %s by rule %s, want the provisional period after the exam, %s",
				o.key, a.Kind, a.RetainUntil.UTC(), a.Rule, provisional.UTC())
		}
	}
	for _, k := range []string{astore.ArchiveSegment, astore.ArchiveInit, astore.ArchiveRendition} {
		if kindsSeen[k] == 0 {
			t.Errorf("no %s objects in the bucket; saw %v", k, kindsSeen)
		}
	}

	// Footage of no exam: a camera of another site. Once archived, it is
	// kept unlinkedDays "days" after it was recorded, then swept.
	cli(t, in.env, "org", "add", "site", "site2", "--center", "center1", "--name", "Site 2")
	cam9 := cli(t, in.env, "device", "add", "site2/cam9", "--host", in.rtspHost())
	if stderr, err := publish(t, cam9, 4, "320x240", "aac"); err != nil {
		t.Fatalf("publish site2/cam9: %v\n%s", err, stderr)
	}
	in.waitIndexed("site2/cam9", 3, time.Minute)
	isCam9 := func(key string) bool { return strings.Contains(key, "site2/cam9/") }
	var cam9Objs []string
	testenv.WaitFor(t, 2*time.Minute, "site2/cam9's footage archived", func() bool {
		cam9Objs = cam9Objs[:0]
		for _, o := range list() {
			if isCam9(o.key) {
				if _, err := arc.ArchiveObject(t.Context(), o.key); err != nil {
					return false
				}
				cam9Objs = append(cam9Objs, o.key)
			}
		}
		return len(cam9Objs) > 0
	})
	for _, k := range cam9Objs {
		// An init segment is kept as long as the segments it serves.
		want := "unlinked"
		if strings.Contains(k, "/init/") {
			want = "serves"
		}
		if a, err := arc.ArchiveObject(t.Context(), k); err != nil || a.Rule != want {
			t.Errorf("%s: rule %q (%v), want %s", k, a.Rule, err, want)
		}
	}
	testenv.WaitFor(t, 3*time.Minute, "the sweeper to delete site2/cam9's expired footage", func() bool {
		for _, o := range list() {
			if isCam9(o.key) {
				return false
			}
		}
		return true
	})
	// Exactly those: every object of the exam is still there, and each
	// deletion is in the archiver's log.
	left := map[string]bool{}
	for _, o := range list() {
		left[o.key+" "+o.version] = true
	}
	for _, o := range objs {
		if !left[o.key+" "+o.version] {
			t.Errorf("%s of the exam deleted with the expired footage", o.key)
		}
	}
	// The log line follows the deletion (after its audit row): wait for it.
	unlogged := func() []string {
		var out []string
		lines := strings.Split(in.procs["archiver"].output(), "\n")
		for _, k := range cam9Objs {
			logged := false
			for _, line := range lines {
				if strings.Contains(line, "deleted expired object") && strings.Contains(line, "object_key="+k+" ") {
					logged = true
				}
			}
			if !logged {
				out = append(out, k)
			}
		}
		return out
	}
	defer func() {
		if t.Failed() {
			t.Logf("deleted without a log line: %q", unlogged())
		}
	}()
	testenv.WaitFor(t, time.Minute, "the archiver to log each deletion", func() bool { return len(unlogged()) == 0 })
}

// ceilSecond rounds t up to the second, as S3 keeps retention dates.
func ceilSecond(t time.Time) time.Time {
	if c := t.Truncate(time.Second); c.Before(t) {
		return c.Add(time.Second)
	}
	return t
}
