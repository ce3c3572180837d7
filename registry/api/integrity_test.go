package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

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
