package e2e

import (
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/testenv"
)

// observation is one element of the observations endpoint.
type observation struct {
	ObservationID string    `json:"observation_id"`
	Kind          string    `json:"kind"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	Measure       float64   `json:"measure"`
	Detail        string    `json:"detail"`
	Reporter      string    `json:"reporter"`
}

func (a *api) observations(stream string) []observation {
	a.t.Helper()
	var obs []observation
	q := "?from=" + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339) + "&to=" + time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	a.do("GET", "/api/v1/streams/"+stream+"/observations"+q, nil, http.StatusOK, &obs)
	return obs
}

func kinds(obs []observation, kind string) []observation {
	var out []observation
	for _, o := range obs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// clip encodes a small test clip once per test binary run.
var clipOnce = struct {
	sync.Mutex
	paths map[string]string
}{paths: map[string]string{}}

// clipPath returns a 10 s H.264 (25 fps, 2 s GOPs) + AAC clip of size,
// encoded once per test binary run.
func clipPath(t *testing.T, size string) string {
	t.Helper()
	clipOnce.Lock()
	defer clipOnce.Unlock()
	path := clipOnce.paths[size]
	if path == "" {
		path = testenv.EncodeClip(t, filepath.Dir(binary), testenv.ClipSpec{Size: size, FPS: 25, Seconds: 10, Audio: true})
		clipOnce.paths[size] = path
	}
	return path
}

// smallClipPath returns the 320x240 clip.
func smallClipPath(t *testing.T) string {
	t.Helper()
	return clipPath(t, "320x240")
}

func smallClip(t *testing.T) *testenv.Clip {
	t.Helper()
	c, err := testenv.ReadClip(smallClipPath(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPullCamera is the pulled-camera acceptance test: a camera
// registered with `device add --pull` is recorded; the camera goes away for
// 10 s and comes back; the observations show one gap and one outage of
// about 10 s, and the recording resumes without a restart of ingest. The
// camera's password appears in no log.
func TestPullCamera(t *testing.T) {
	t.Parallel()
	cam := testenv.NewCamera(t, smallClip(t))
	key := filepath.Join(t.TempDir(), "secrets.key")
	in := startAllWith(t, 2*time.Second, options{
		env:  []string{"NOKSTREAM_SECRETS_KEY=" + key},
		args: map[string][]string{"all": {"--pull-refresh", "1s", "--pull-retry-max", "1s"}},
	})
	out := cli(t, in.env, "device", "add", "site1/cam1", "--pull", cam.URL())
	if strings.Contains(out, cam.Password) {
		t.Errorf("device add prints the camera password: %q", out)
	}
	in.waitIndexed("site1/cam1", 6, 30*time.Second)

	cam.Stop()
	stopped := time.Now()
	outage := time.NewTimer(10 * time.Second) // the scenario: the camera is off for 10 s
	<-outage.C
	if err := cam.Start(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	testenv.WaitFor(t, 30*time.Second, "the recording to resume after the camera came back", func() bool {
		segs := in.api.segments("site1/cam1")
		return len(segs) > 0 && segs[len(segs)-1].Start.After(restarted.Add(3*time.Second))
	})
	var obs []observation
	testenv.WaitFor(t, 10*time.Second, "the gap to be indexed", func() bool {
		obs = in.api.observations("site1/cam1")
		return len(kinds(obs, "gap")) > 0 && len(kinds(obs, "outage")) > 0
	})
	gaps, outages := kinds(obs, "gap"), kinds(obs, "outage")
	if len(gaps) != 1 {
		t.Fatalf("%d gaps, want one: %+v", len(gaps), obs)
	}
	if g := gaps[0]; g.Measure < 8 || g.Measure > 12 || g.Start.Before(stopped.Add(-2*time.Second)) || g.End.After(restarted.Add(2*time.Second)) {
		t.Errorf("gap %+v, want about 10 s from %s to %s", g, stopped.Format(time.RFC3339Nano), restarted.Format(time.RFC3339Nano))
	}
	if len(outages) != 1 || outages[0].Measure < 8 || outages[0].Measure > 12 {
		t.Errorf("outages %+v, want one of about 10 s", outages)
	}
	if n := len(kinds(obs, "reconnect")); n != 1 {
		t.Errorf("%d reconnects, want 1", n)
	}
	if n := len(kinds(obs, "start")); n != 2 {
		t.Errorf("%d session starts, want 2 (before and after the outage)", n)
	}
	for _, o := range obs {
		if o.Reporter != "ingest" || o.ObservationID == "" || strings.Contains(o.Detail, cam.Password) {
			t.Errorf("observation %+v: want reporter ingest, an id and no camera password", o)
		}
	}
	segs := in.api.segments("site1/cam1")
	in.checkSegments(segs)
	if log := in.procs["all"].output(); strings.Contains(log, cam.Password) {
		t.Errorf("the camera password is in the log of nokstream all")
	}
	if n := strings.Count(in.procs["all"].output(), "camera reconnected"); n != 1 {
		t.Errorf("log says %d times that the camera reconnected, want 1", n)
	}

}
