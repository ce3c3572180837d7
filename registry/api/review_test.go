package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/webvtt"
	"github.com/nokstream/nokstream/registry/index"
)

// rendition stores the review rendition and thumbnails of a published
// segment, as the transcoder does, and indexes its RenditionReady event
// through the registry's bus handler. mediaStart is the segment's time on
// the stream's media timeline; the sprite has one tile per 2 s.
func (e *env) rendition(ev *events.SegmentClosed, mediaStart float64) *events.RenditionReady {
	e.t.Helper()
	ctx := context.Background()
	base := fmt.Sprintf("review/site1/cam1/2025-03-01/%010d-%s", ev.Sequence, ev.SegmentID)
	seg := []byte("review segment " + ev.SegmentID)
	init := []byte("review init")
	sprite := []byte("\xff\xd8 sprite " + ev.SegmentID)
	tiles := int((ev.Duration + 1.999) / 2)
	var cues []webvtt.Cue
	for i := range tiles {
		s := time.Duration((mediaStart + 2*float64(i)) * float64(time.Second))
		end := min(s+2*time.Second, time.Duration((mediaStart+ev.Duration)*float64(time.Second)))
		cues = append(cues, webvtt.Cue{Start: s, End: end, Text: fmt.Sprintf("%s.jpg#xywh=%d,0,160,90", base[strings.LastIndex(base, "/")+1:], 160*i)})
	}
	vtt := webvtt.Marshal(cues)
	objects := map[string][]byte{base + ".m4s": seg, "review/site1/cam1/init/" + sha(init) + ".mp4": init,
		base + ".jpg": sprite, base + ".vtt": vtt}
	for k, v := range objects {
		if err := e.blobs.Put(ctx, k, bytes.NewReader(v), int64(len(v))); err != nil {
			e.t.Fatal(err)
		}
	}
	ref := func(key string) events.ObjectRef {
		return events.ObjectRef{Key: key, Bytes: int64(len(objects[key])), SHA256: sha(objects[key])}
	}
	rr := &events.RenditionReady{
		SegmentID: ev.SegmentID, StreamID: ev.StreamID, Source: ev.Source, Site: ev.Site, Device: ev.Device,
		Sequence: ev.Sequence, Start: ev.Start, Duration: ev.Duration, SourceSHA256: ev.SHA256,
		SourceWidth: 1280, SourceHeight: 720, MediaStart: mediaStart, Variant: events.VariantReview,
		Rendition: events.Rendition{Object: ref(base + ".m4s"), Init: ref("review/site1/cam1/init/" + sha(init) + ".mp4"),
			Codecs: []string{"avc1.64001e", "mp4a.40.2"}, Width: 640, Height: 360, FrameRate: 25, Bandwidth: 300_000},
		Thumbnails: &events.Thumbnails{Sprite: ref(base + ".jpg"), VTT: ref(base + ".vtt"), Tiles: tiles, Columns: 5,
			TileWidth: 160, TileHeight: 90, Interval: 2},
		Transcoder: "test", Done: t0.Add(time.Hour),
	}
	if err := e.deliverRendition(rr); err != nil {
		e.t.Fatalf("index rendition: %v", err)
	}
	return rr
}

func (e *env) deliverRendition(rr *events.RenditionReady) error {
	e.t.Helper()
	value, err := json.Marshal(rr)
	if err != nil {
		e.t.Fatal(err)
	}
	h := index.RenditionHandler(e.store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return h(context.Background(), bus.Message{Topic: events.TopicRenditions, Key: rr.StreamID, Value: value})
}

// get fetches a URL of the API (a path, or a signed path) without a token.
func (e *env) get(path string) response {
	e.t.Helper()
	return e.do("GET", path, "", nil)
}

// TestReviewPlayback serves the review variant of a stream whose transcoder
// is one segment behind and skipped one it could not decode: the review
// playlist has the raw playlist's segments and timeline, renditions where
// there are some and the raw segments elsewhere; the master playlist offers
// both variants; the thumbnails track lines up with the playlists; and the
// media behind every signed URL is served with its type, and audited.
func TestReviewPlayback(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	token := e.operator("operator")
	segs := []seg{
		{seq: 0, start: 0, duration: 6, init: "a"},
		{seq: 1, start: 6 * time.Second, duration: 5, init: "a"},
		{seq: 2, start: 11 * time.Second, duration: 6, init: "a"},
		// The publisher came back after 10 s: a new session.
		{seq: 3, start: 27 * time.Second, duration: 6, init: "a", disc: true},
		{seq: 4, start: 33 * time.Second, duration: 6, init: "a"},
	}
	var evs []*events.SegmentClosed
	for _, s := range segs {
		evs = append(evs, e.publish(s))
	}
	// Media times: the first session from 10 s, the second from 10 s again.
	rends := map[int64]*events.RenditionReady{
		0: e.rendition(evs[0], 10),
		1: e.rendition(evs[1], 16),
		// 2 could not be decoded.
		3: e.rendition(evs[3], 10),
		// 4 is not transcoded yet.
	}
	q := rangeQuery(t0, t0.Add(time.Minute))
	base := "/api/v1/streams/site1/cam1/"

	raw := e.do("GET", base+"playlist.m3u8"+q, token, nil)
	review := e.do("GET", base+"playlist.m3u8"+q+"&variant=review", token, nil)
	if raw.code != http.StatusOK || review.code != http.StatusOK {
		t.Fatalf("playlists: raw %d %s, review %d %s", raw.code, raw.body, review.code, review.body)
	}
	rp, vp := parsePlaylist(t, raw.body), parsePlaylist(t, review.body)
	if len(vp.entries) != len(rp.entries) || vp.mediaSequence != rp.mediaSequence {
		t.Fatalf("review playlist has %d segments from %d, raw %d from %d", len(vp.entries), vp.mediaSequence, len(rp.entries), rp.mediaSequence)
	}
	for i, v := range vp.entries {
		r := rp.entries[i]
		// A switch of variant within the review playlist restates the
		// date; where the raw one states it, the review one agrees.
		if v.duration != r.duration || (!r.pdt.IsZero() && !v.pdt.Equal(r.pdt)) {
			t.Errorf("segment %d: review EXTINF %s PDT %v, raw %s %v: not the same timeline", i, v.duration, v.pdt, r.duration, r.pdt)
		}
		rr, transcoded := rends[int64(i)]
		wantKey := evs[i].ObjectKey
		if transcoded {
			wantKey = rr.Rendition.Object.Key
		}
		if u := unsigned(t, v.uri); u != "/api/v1/media/"+wantKey {
			t.Errorf("segment %d: review playlist points at %s, want %s", i, u, wantKey)
		}
		// A switch between rendition and raw segment is a discontinuity.
		_, prevTranscoded := rends[int64(i-1)]
		want := i > 0 && (transcoded != prevTranscoded || r.discontinuity)
		if v.discontinuity != want {
			t.Errorf("segment %d: discontinuity %v, want %v", i, v.discontinuity, want)
		}
		wantSHA := evs[i].SHA256
		if transcoded {
			wantSHA = rr.Rendition.Object.SHA256
		}
		if got := e.get(v.uri); got.code != http.StatusOK || sha(got.body) != wantSHA {
			t.Errorf("segment %d: served %d, %d bytes", i, got.code, len(got.body))
		} else if ct := got.header.Get("Content-Type"); ct != "video/iso.segment" {
			t.Errorf("segment %d: Content-Type %q", i, ct)
		}
		if got := e.get(v.mapURI); got.code != http.StatusOK || got.header.Get("Content-Type") != "video/mp4" {
			t.Errorf("segment %d: init segment served %d %q", i, got.code, got.header.Get("Content-Type"))
		}
	}
	if r := e.do("GET", base+"playlist.m3u8"+q+"&variant=best", token, nil); r.code != http.StatusBadRequest {
		t.Errorf("unknown variant: %d, want 400", r.code)
	}

	// The master playlist offers both, the review one first.
	m := e.do("GET", base+"master.m3u8"+q, token, nil)
	if m.code != http.StatusOK || m.header.Get("Content-Type") != "application/vnd.apple.mpegurl" {
		t.Fatalf("master: %d %q %s", m.code, m.header.Get("Content-Type"), m.body)
	}
	variants := parseMaster(t, m.body)
	if len(variants) != 2 {
		t.Fatalf("master offers %d variants, want 2:\n%s", len(variants), m.body)
	}
	if v := variants[0]; v.attrs["RESOLUTION"] != "640x360" || v.attrs["CODECS"] != `"avc1.64001e,mp4a.40.2,avc1.64001f"` {
		t.Errorf("review variant %v", v.attrs)
	}
	if v := variants[1]; v.attrs["RESOLUTION"] != "1280x720" || v.attrs["CODECS"] != `"avc1.64001f"` {
		t.Errorf("raw variant %v", v.attrs)
	}
	for i, v := range variants {
		bw, err := strconv.Atoi(v.attrs["BANDWIDTH"])
		if err != nil || bw <= 0 {
			t.Errorf("variant %d: BANDWIDTH %q", i, v.attrs["BANDWIDTH"])
		}
		got := e.get(v.uri)
		want := [][]byte{review.body, raw.body}[i]
		if got.code != http.StatusOK || len(parsePlaylist(t, got.body).entries) != len(parsePlaylist(t, want).entries) {
			t.Errorf("variant %d: %s answers %d %s", i, v.uri, got.code, got.body)
		}
	}

	// The thumbnails track: one cue per 2 s of each transcoded segment,
	// on the playlist timeline (the 10 s hole is skipped, as the
	// playlists skip it), pointing into signed sprite URLs.
	th := e.do("GET", base+"thumbnails.vtt"+q, token, nil)
	if th.code != http.StatusOK || th.header.Get("Content-Type") != "text/vtt; charset=utf-8" {
		t.Fatalf("thumbnails: %d %q %s", th.code, th.header.Get("Content-Type"), th.body)
	}
	cues, err := webvtt.Parse(th.body)
	if err != nil {
		t.Fatalf("thumbnails track: %v\n%s", err, th.body)
	}
	type want struct {
		from, to float64
		seg      int64
		x        int
	}
	wants := []want{{0, 2, 0, 0}, {2, 4, 0, 160}, {4, 6, 0, 320}, {6, 8, 1, 0}, {8, 10, 1, 160}, {10, 11, 1, 320},
		{17, 19, 3, 0}, {19, 21, 3, 160}, {21, 23, 3, 320}}
	if len(cues) != len(wants) {
		t.Fatalf("%d cues, want %d:\n%s", len(cues), len(wants), th.body)
	}
	xywh := regexp.MustCompile(`^(/api/v1/media/[^#]+)#xywh=(\d+),0,160,90$`)
	for i, w := range wants {
		c := cues[i]
		if c.Start.Seconds() != w.from || c.End.Seconds() != w.to {
			t.Errorf("cue %d: %v --> %v, want %vs --> %vs", i, c.Start, c.End, w.from, w.to)
		}
		mm := xywh.FindStringSubmatch(c.Text)
		if mm == nil || unsigned(t, mm[1]) != "/api/v1/media/"+rends[w.seg].Thumbnails.Sprite.Key || mm[2] != strconv.Itoa(w.x) {
			t.Errorf("cue %d: %q, want tile x=%d of the sprite of segment %d", i, c.Text, w.x, w.seg)
			continue
		}
		if got := e.get(mm[1]); got.code != http.StatusOK || got.header.Get("Content-Type") != "image/jpeg" {
			t.Errorf("cue %d: sprite served %d %q", i, got.code, got.header.Get("Content-Type"))
		}
	}
	must(t, e.srv.CloseMediaAudit(context.Background()))
	if n := auditActions(t, e.store)["media.get"]; n == 0 {
		t.Errorf("media served through signed URLs is not in the audit log")
	}
	for _, action := range []string{"master.get", "thumbnails.get"} {
		if auditActions(t, e.store)[action] == 0 {
			t.Errorf("no %s in the audit log", action)
		}
	}
	if r := e.get(base + "thumbnails.vtt" + q); r.code != http.StatusUnauthorized {
		t.Errorf("thumbnails without a token: %d, want 401", r.code)
	}
}

// TestIndexRendition checks that the rendition index is idempotent: the
// same event twice is one row, a newer transcode of the same bytes replaces
// the old one, and one made from other bytes is refused for good.
func TestIndexRendition(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := e.publish(seg{seq: 0, duration: 6, init: "a"})
	rr := e.rendition(ev, 10)
	if err := e.deliverRendition(rr); err != nil {
		t.Fatalf("the same event again: %v", err)
	}
	got, err := e.store.Renditions(context.Background(), "site1", "cam1", events.VariantReview, t0, t0.Add(time.Minute))
	if err != nil || len(got) != 1 {
		t.Fatalf("renditions %v, %v; want one", got, err)
	}
	newer := *rr
	newer.Done = rr.Done.Add(time.Minute)
	newer.Rendition.Bandwidth = 1
	if err := e.deliverRendition(&newer); err != nil {
		t.Fatalf("newer transcode: %v", err)
	}
	got, _ = e.store.Renditions(context.Background(), "site1", "cam1", events.VariantReview, t0, t0.Add(time.Minute))
	if len(got) != 1 || got[0].Rendition.Bandwidth != 1 {
		t.Errorf("newer transcode not indexed: %+v", got)
	}
	other := newer
	other.SourceSHA256 = strings.Repeat("0", 64)
	other.Done = newer.Done.Add(time.Minute)
	if err := e.deliverRendition(&other); !bus.IsPermanent(err) {
		t.Errorf("rendition of other bytes: %v, want a permanent error", err)
	}
	bad := newer
	bad.Rendition.Object.Key = ""
	if err := e.deliverRendition(&bad); !bus.IsPermanent(err) {
		t.Errorf("invalid event: %v, want a permanent error", err)
	}
}

// masterVariant is one EXT-X-STREAM-INF of a master playlist.
type masterVariant struct {
	attrs map[string]string
	uri   string
}

// parseMaster parses a master playlist (RFC 8216, 4.3.4.2).
func parseMaster(t *testing.T, body []byte) []masterVariant {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	if lines[0] != "#EXTM3U" {
		t.Fatalf("master starts with %q", lines[0])
	}
	attr := regexp.MustCompile(`([A-Z-]+)=("[^"]*"|[^,]*)`)
	var out []masterVariant
	for i := 1; i < len(lines); i++ {
		v, ok := strings.CutPrefix(lines[i], "#EXT-X-STREAM-INF:")
		if !ok {
			continue
		}
		mv := masterVariant{attrs: map[string]string{}}
		for _, m := range attr.FindAllStringSubmatch(v, -1) {
			mv.attrs[m[1]] = m[2]
		}
		if i+1 >= len(lines) || strings.HasPrefix(lines[i+1], "#") {
			t.Fatalf("EXT-X-STREAM-INF without URI")
		}
		mv.uri = lines[i+1]
		out = append(out, mv)
	}
	return out
}

// unsigned returns the path of a signed URL, checking that it is signed.
func unsigned(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil || p.Query().Get("sig") == "" {
		t.Errorf("URL %q is not signed", u)
		return u
	}
	return p.Path
}
