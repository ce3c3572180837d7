package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/store"
)

// TestWorkstationFixedOnceStarted: before an exam starts, the center may
// move a candidate to another workstation; from its start, whose footage a
// workstation records cannot change: 409 with the reason, and the candidate
// keeps the workstation they had.
func TestWorkstationFixedOnceStarted(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	center := o.tokens[store.RoleCenter]
	start := examStart.Add(48 * time.Hour)
	must(t, e.store.CreateExam(context.Background(), &store.Exam{ID: "exam-later", CenterID: o.center, SiteID: o.site,
		Qualification: o.qual, Start: start, End: start.Add(2 * time.Hour)}))
	place := func(webcam, screen string) response {
		return e.do("POST", "/api/v1/exams/exam-later/candidates", center,
			map[string]string{"candidate": o.loner, "webcam": webcam, "screen": screen})
	}
	workstation := func() string {
		t.Helper()
		r := e.do("GET", "/api/v1/exams/exam-later/candidates/"+o.loner, center, nil)
		if r.code != http.StatusOK {
			t.Fatalf("get candidate: %d %s", r.code, r.body)
		}
		v := decode[struct{ Webcam, Screen string }](t, r)
		return v.Webcam + " " + v.Screen
	}

	e.clock.Set(start.Add(-time.Hour))
	if r := place("ws1-cam", "ws1-screen"); r.code != http.StatusCreated {
		t.Fatalf("place before the start: %d %s", r.code, r.body)
	}
	if r := place("ws2-cam", "ws2-screen"); r.code != http.StatusCreated {
		t.Fatalf("move before the start: %d %s", r.code, r.body)
	}
	if got := workstation(); got != "ws2-cam ws2-screen" {
		t.Errorf("workstation after the move before the start: %q", got)
	}

	for _, at := range []time.Time{start, start.Add(time.Hour), start.Add(30 * 24 * time.Hour)} {
		e.clock.Set(at)
		for _, ws := range [][2]string{{"ws1-cam", "ws1-screen"}, {"ws1-cam", "ws2-screen"}, {"ws2-cam", "ws1-screen"}} {
			r := place(ws[0], ws[1])
			if r.code != http.StatusConflict || !strings.Contains(string(r.body), "started") || !strings.Contains(string(r.body), "ws2-cam") {
				t.Errorf("move to %v at %v: %d %s, want 409 saying the exam started and where the candidate stays", ws, at, r.code, r.body)
			}
		}
		if got := workstation(); got != "ws2-cam ws2-screen" {
			t.Errorf("workstation at %v: %q, want unchanged", at, got)
		}
	}
	// Placing the candidate again where they are changes nothing and is
	// not an error.
	if r := place("ws2-cam", "ws2-screen"); r.code != http.StatusCreated {
		t.Errorf("the same workstation again after the start: %d %s", r.code, r.body)
	}
}

// TestRetentionFloors: a council's or a qualification's period below the
// legal floor of the configuration is refused with 422 naming the floor;
// at the floor it is accepted.
func TestRetentionFloors(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	council := o.tokens[store.RoleCouncil]
	path := "/api/v1/councils/" + o.council + "/retention"
	for _, c := range []struct {
		body  map[string]any
		floor string
	}{
		{map[string]any{"appeal_window_days": 29, "provisional_days": 90, "unlinked_days": 30}, "appeal_window of 29 days is below the legal floor of 30 days"},
		{map[string]any{"appeal_window_days": 30, "provisional_days": 60, "unlinked_days": 30}, "provisional of 60 days is below the legal floor of 90 days"},
		{map[string]any{"appeal_window_days": 30, "provisional_days": 90, "unlinked_days": 3}, "unlinked of 3 days is below the legal floor of 7 days"},
		{map[string]any{"qualification": o.qual, "appeal_window_days": 30, "provisional_days": 30, "unlinked_days": 30}, "provisional of 30 days is below the legal floor of 90 days"},
	} {
		r := e.do("PUT", path, council, c.body)
		if r.code != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), c.floor) {
			t.Errorf("PUT %v: %d %s, want 422 saying %q", c.body, r.code, r.body, c.floor)
		}
	}
	if r := e.do("PUT", path, council, map[string]any{"appeal_window_days": 30, "provisional_days": 90, "unlinked_days": 7}); r.code != http.StatusOK {
		t.Errorf("at the floors: %d %s", r.code, r.body)
	}
	// The floors are the configuration's, not the API's.
	e2 := newDomainEnv(t, nil, func(c *api.Config) { c.RetentionFloors.Provisional = 120 * 24 * time.Hour })
	w2 := newWorld(t, e2)
	r := e2.do("PUT", "/api/v1/councils/"+w2.orgs[1].council+"/retention", w2.orgs[1].tokens[store.RoleCouncil],
		map[string]any{"appeal_window_days": 30, "provisional_days": 90, "unlinked_days": 30})
	if r.code != http.StatusUnprocessableEntity || !strings.Contains(string(r.body), "floor of 120 days") {
		t.Errorf("with a 120-day floor configured: %d %s, want 422 naming it", r.code, r.body)
	}
}

// TestOverdueEvidence: a candidate-exam whose result is still missing when
// the provisional period ends is listed as overdue evidence, to those who
// see it, until the council disposes of it with a reason (audited); a
// disposal of evidence that is not overdue is 409.
func TestOverdueEvidence(t *testing.T) {
	t.Parallel()
	e := newDomainEnv(t, nil, nil)
	w := newWorld(t, e)
	o := w.orgs[1]
	council := o.tokens[store.RoleCouncil]
	type dl struct {
		Kind, Exam, Candidate string
		Overdue               bool
		Due                   time.Time
	}
	evidence := func(token, path string) []dl {
		t.Helper()
		r := e.do("GET", path, token, nil)
		if r.code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.code, r.body)
		}
		var out []dl
		for _, d := range decode[[]dl](t, r) {
			if d.Kind == "evidence_overdue" {
				out = append(out, d)
			}
		}
		return out
	}
	// o.cand has a certificate and o.cand2 an open appeal: neither is
	// overdue. A third candidate of an earlier exam has no result.
	// (The clock stays near the world's: sessions last hours.)
	ctx := context.Background()
	now := examEnd.Add(time.Hour)
	e.clock.Set(now)
	due := now.Add(-3 * 24 * time.Hour)
	start := due.Add(-90*24*time.Hour - 2*time.Hour)
	recent := now.Add(-89 * 24 * time.Hour)
	for _, x := range []struct {
		id    string
		start time.Time
	}{{"exam-noresult", start}, {"exam-recent", recent}} {
		must(t, e.store.CreateExam(ctx, &store.Exam{ID: x.id, CenterID: o.center, SiteID: o.site, Qualification: o.qual,
			Start: x.start, End: x.start.Add(2 * time.Hour)}))
		must(t, e.store.AddExamCandidate(ctx, x.id, o.loner, "ws1-cam", "ws1-screen", x.start.Add(-time.Hour)))
	}
	dispose := func(reason string) response {
		return e.do("POST", "/api/v1/exams/exam-noresult/candidates/"+o.loner+"/evidence/disposal", council, map[string]string{"reason": reason})
	}
	// exam-recent's provisional period is not over: not listed, and its
	// evidence cannot be disposed of.
	if r := e.do("POST", "/api/v1/exams/exam-recent/candidates/"+o.loner+"/evidence/disposal", council,
		map[string]string{"reason": "не будет результата"}); r.code != http.StatusConflict || !strings.Contains(string(r.body), "not overdue") {
		t.Errorf("disposal before the provisional period ends: %d %s, want 409", r.code, r.body)
	}
	for _, tok := range []string{w.nark, council, o.tokens[store.RoleCenter]} {
		got := evidence(tok, "/api/v1/deadlines/overdue")
		if len(got) != 1 || got[0].Exam != "exam-noresult" || got[0].Candidate != o.loner || !got[0].Due.Equal(due) || !got[0].Overdue {
			t.Errorf("overdue evidence: %+v, want exam-noresult/%s due %v", got, o.loner, due)
		}
	}
	if got := evidence(w.orgs[2].tokens[store.RoleCouncil], "/api/v1/deadlines/overdue"); len(got) != 0 {
		t.Errorf("another council sees %+v", got)
	}
	if got := evidence(council, "/api/v1/deadlines"); len(got) != 1 {
		t.Errorf("GET /api/v1/deadlines lists %+v, want the overdue evidence too", got)
	}
	if r := dispose("  "); r.code != http.StatusUnprocessableEntity {
		t.Errorf("disposal without a reason: %d %s, want 422", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/exams/exam-noresult/candidates/"+o.loner+"/evidence/disposal", o.tokens[store.RoleCenter],
		map[string]string{"reason": "x"}); r.code != http.StatusForbidden {
		t.Errorf("disposal by the center: %d %s, want 403", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/exams/"+o.exam+"/candidates/"+o.cand+"/evidence/disposal", council,
		map[string]string{"reason": "x"}); r.code != http.StatusConflict || !strings.Contains(string(r.body), "result is recorded") {
		t.Errorf("disposal of evidence with a result: %d %s, want 409", r.code, r.body)
	}
	if r := dispose("экзамен сорван, результат не будет оформлен"); r.code != http.StatusOK {
		t.Fatalf("disposal: %d %s", r.code, r.body)
	}
	if got := evidence(w.nark, "/api/v1/deadlines/overdue"); len(got) != 0 {
		t.Errorf("overdue evidence after the disposal: %+v", got)
	}
	if r := dispose("ещё раз"); r.code != http.StatusConflict {
		t.Errorf("second disposal: %d %s, want 409", r.code, r.body)
	}
	if n := auditActions(t, e.store)["evidence.dispose"]; n != 1 {
		t.Errorf("%d disposals audited, want 1", n)
	}
}

// TestNotIndependentSegments: a segment ingest marked not independent is
// listed with "independent": false (the others without the field), and the
// playlist of a range holding one does not claim independent segments.
func TestNotIndependentSegments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token := e.operator("operator")
	e.publish(seg{seq: 0, start: 0, duration: 60, init: "a"})
	e.publish(seg{seq: 1, start: 60 * time.Second, duration: 6, init: "a"})
	path := rangeQuery(t0, t0.Add(2*time.Minute))
	r := e.do("GET", "/api/v1/streams/site1/cam1/playlist.m3u8"+path, token, nil)
	if !strings.Contains(string(r.body), "#EXT-X-INDEPENDENT-SEGMENTS") {
		t.Errorf("playlist of keyframe-aligned segments does not say they are independent:\n%s", r.body)
	}
	e.publishWith(seg{seq: 2, start: 66 * time.Second, duration: 60, init: "a"}, func(ev *events.SegmentClosed) {
		ev.Independent = new(bool) // cut at 60 s without a keyframe, as ingest announces it
	})
	r = e.do("GET", "/api/v1/streams/site1/cam1/segments"+path, token, nil)
	if r.code != http.StatusOK {
		t.Fatalf("segments: %d %s", r.code, r.body)
	}
	var list []map[string]any
	if err := json.Unmarshal(r.body, &list); err != nil || len(list) != 3 {
		t.Fatalf("segments %s: %v", r.body, err)
	}
	for i, g := range list {
		v, has := g["independent"]
		if want := i == 2; has != want || (has && v != false) {
			t.Errorf("segment %d: independent %v (present %v), want present and false only for the last", i, v, has)
		}
	}
	r = e.do("GET", "/api/v1/streams/site1/cam1/playlist.m3u8"+path, token, nil)
	if r.code != http.StatusOK || strings.Contains(string(r.body), "#EXT-X-INDEPENDENT-SEGMENTS") {
		t.Errorf("playlist with a segment that is not independent: %d\n%s", r.code, r.body)
	}
}

// publishWith is publish with the event changed by edit before it is
// indexed.
func (e *env) publishWith(s seg, edit func(*events.SegmentClosed)) *events.SegmentClosed {
	e.t.Helper()
	data := bytes.Repeat([]byte{byte(s.seq)}, 3000)
	initData := []byte("init segment " + s.init)
	key, initKey := fmt.Sprintf("site1/cam1/%06d.m4s", s.seq), "site1/cam1/init-"+s.init+".mp4"
	for k, v := range map[string][]byte{key: data, initKey: initData} {
		if err := e.blobs.Put(context.Background(), k, bytes.NewReader(v), int64(len(v))); err != nil {
			e.t.Fatal(err)
		}
	}
	ev := &events.SegmentClosed{
		SegmentID: fmt.Sprintf("seg-%d", s.seq), StreamID: "site1/cam1", Source: events.SourceRoom,
		Site: "site1", Device: "cam1", Sequence: s.seq, Start: t0.Add(s.start), Duration: s.duration,
		Codecs: []string{"avc1.64001f"}, Bytes: int64(len(data)), SHA256: sha(data),
		PrevChain: strings.Repeat("0", 64), Chain: strings.Repeat("1", 64),
		ObjectKey: key, InitKey: initKey, InitSHA256: sha(initData), InitBytes: int64(len(initData)), IngestNode: "node1",
	}
	edit(ev)
	e.deliver(ev)
	return ev
}
