package e2e

import (
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/nokstream/nokstream/internal/testenv"
	"github.com/nokstream/nokstream/internal/webvtt"
)

// checkReview plays what an expert gets of a recorded stream once the
// transcoder has caught up: the review playlist (ffprobe reads it as long as
// the raw one, H.264 at 640×360 with AAC), the master playlist offering both
// variants, and the thumbnails track covering the recording with sprites
// that the signed URLs serve.
func (in *installation) checkReview(stream string, segs []segment) {
	t := in.t
	var total float64
	for _, s := range segs {
		total += s.Duration
	}
	from, to := segs[0].Start.Add(-time.Second), segs[len(segs)-1].Start.Add(time.Minute)
	q := "?from=" + url.QueryEscape(from.UTC().Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.UTC().Format(time.RFC3339))
	base := "/api/v1/streams/" + stream + "/"

	// Every segment has its rendition when the review playlist points
	// only at review objects.
	var review string
	testenv.WaitFor(t, 90*time.Second, "every segment of "+stream+" transcoded", func() bool {
		review = in.api.getText(base + "playlist.m3u8" + q + "&variant=review")
		n := 0
		for _, line := range strings.Split(review, "\n") {
			if !strings.HasPrefix(line, "#") && line != "" {
				if !strings.HasPrefix(line, "/api/v1/media/review/") {
					return false
				}
				n++
			}
		}
		return n == len(segs)
	})

	reviewURL := in.api.link(base + "playlist.m3u8" + q + "&variant=review")
	probe := testenv.FFprobe(t, reviewURL)
	if d := testenv.Plays(t, reviewURL); math.Abs(d-total) > 1 {
		t.Errorf("the review playlist, read whole, plays %.2f s, the recording is %.2f s", d, total)
	}
	if got := strings.Join(probe.Codecs(), ","); got != "video:h264,audio:aac" {
		t.Errorf("review playlist streams %s, want video:h264,audio:aac", got)
	}
	if len(probe.Streams) > 0 && (probe.Streams[0].Width != 640 || probe.Streams[0].Height != 360) {
		t.Errorf("review picture %dx%d, want 640x360", probe.Streams[0].Width, probe.Streams[0].Height)
	}

	master := in.api.getText(base + "master.m3u8" + q)
	if n := strings.Count(master, "#EXT-X-STREAM-INF:"); n != 2 || !strings.Contains(master, "RESOLUTION=640x360") ||
		!strings.Contains(master, "RESOLUTION=1280x720") {
		t.Errorf("master playlist does not offer review and raw:\n%s", master)
	}

	vtt := in.api.getText(base + "thumbnails.vtt" + q)
	cues, err := webvtt.Parse([]byte(vtt))
	if err != nil {
		t.Fatalf("thumbnails track: %v\n%s", err, vtt)
	}
	want := 0
	for _, s := range segs {
		want += int(math.Ceil(s.Duration/2 - 1e-6))
	}
	if len(cues) != want {
		t.Errorf("thumbnails track has %d cues, want %d (one per 2 s of each segment)", len(cues), want)
	}
	if len(cues) > 0 {
		if first, last := cues[0].Start, cues[len(cues)-1].End; first != 0 || math.Abs(last.Seconds()-total) > 0.01 {
			t.Errorf("thumbnails cover %v to %v, want 0 to %.3f s", first, last, total)
		}
		sprite, _, _ := strings.Cut(cues[0].Text, "#")
		resp, err := http.Get(in.api.base + sprite)
		if err != nil {
			t.Fatalf("get sprite: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/jpeg" {
			t.Errorf("sprite %s: %d %q", sprite, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

// getText GETs a path with the session token and returns the body.
func (a *api) getText(path string) string {
	a.t.Helper()
	req, err := http.NewRequest("GET", a.base+path, nil)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("get %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		a.t.Fatalf("get %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}
