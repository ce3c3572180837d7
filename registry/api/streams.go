package api

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// streamStore lists what the stream routes call of the registry's database.
type streamStore interface {
	StreamExists(ctx context.Context, site, device string) (bool, error)
	Segments(ctx context.Context, site, device string, from, to time.Time) ([]store.Segment, error)
}

// mediaPrefix is where media objects are served: mediaPrefix + object key.
const mediaPrefix = "/api/v1/media/"

// stream returns the site and device of a stream route, if the stream exists
// and c may see it in the range of the request (canSee in scope.go), and a
// 404 otherwise: streams a user may not see answer as unknown ones do, so
// that their names cannot be probed. A malformed range is a 400.
func (s *Server) stream(r *http.Request, c *caller) (site, device string, err error) {
	site, device = r.PathValue("site"), r.PathValue("device")
	notFound := errorf(http.StatusNotFound, "unknown stream %s/%s", site, device)
	if !store.ValidName(site) || !store.ValidName(device) {
		return "", "", notFound
	}
	from, to, err := timeRange(r.URL.Query(), s.now())
	if err != nil {
		return "", "", err
	}
	ok, err := s.canSee(r.Context(), c.user, site, device, from, to, true)
	if err != nil {
		return "", "", err
	}
	if !ok {
		return "", "", notFound
	}
	ok, err = s.db.streams.StreamExists(r.Context(), site, device)
	if err != nil {
		return "", "", err
	}
	if !ok {
		return "", "", notFound
	}
	return site, device, nil
}

// timeRange returns the [from, to) of a stream request: to defaults to now,
// from to DefaultRange before to, and the range may not exceed MaxRange.
func timeRange(q url.Values, now time.Time) (from, to time.Time, err error) {
	to = now
	if v := q.Get("to"); v != "" {
		if to, err = parseTime("to", v); err != nil {
			return time.Time{}, time.Time{}, err
		}
	}
	from = to.Add(-DefaultRange)
	if v := q.Get("from"); v != "" {
		if from, err = parseTime("from", v); err != nil {
			return time.Time{}, time.Time{}, err
		}
	}
	if !from.Before(to) {
		return time.Time{}, time.Time{}, errorf(http.StatusBadRequest, "from must be before to")
	}
	if to.Sub(from) > MaxRange {
		return time.Time{}, time.Time{}, errorf(http.StatusBadRequest, "from to to spans %v, more than %v", to.Sub(from), MaxRange)
	}
	return from, to, nil
}

// parseTime parses an RFC 3339 time of query parameter name.
func parseTime(name, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil && strings.Contains(v, " ") {
		// The '+' of a zone offset that was not percent-encoded arrives
		// as a space.
		t, err = time.Parse(time.RFC3339Nano, strings.ReplaceAll(v, " ", "+"))
	}
	if err != nil {
		return time.Time{}, errorf(http.StatusBadRequest, "%s: %q is not an RFC 3339 time such as 2025-03-01T10:00:00Z", name, v)
	}
	return t, nil
}

// segmentJSON is a segment in the answer of the segments route.
type segmentJSON struct {
	SegmentID     string    `json:"segment_id"`
	StreamID      string    `json:"stream_id"`
	Source        string    `json:"source"`
	Sequence      int64     `json:"sequence"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	Duration      float64   `json:"duration"` // seconds
	Codecs        []string  `json:"codecs"`
	Bytes         int64     `json:"bytes"`
	SHA256        string    `json:"sha256"`
	PrevChain     string    `json:"prev_chain"`
	Chain         string    `json:"chain"`
	Discontinuity bool      `json:"discontinuity"`
	Salvaged      bool      `json:"salvaged"`
	// Independent is false, and present only then, for a segment that
	// does not start on a keyframe (cut at 60 s or 256 MiB): it plays only
	// after its predecessor.
	Independent *bool  `json:"independent,omitempty"`
	ObjectKey   string `json:"object_key"`
	URL         string `json:"url"`
	InitKey     string `json:"init_key"`
	InitURL     string `json:"init_url"`
	InitBytes   int64  `json:"init_bytes"`
	InitSHA256  string `json:"init_sha256"`
}

// segments handles GET /api/v1/streams/{site}/{device}/segments.
func (s *Server) segments(w http.ResponseWriter, r *http.Request, c *caller) error {
	site, device, from, to, now, err := s.streamRange(r, c)
	if err != nil {
		return err
	}
	segs, err := s.db.streams.Segments(r.Context(), site, device, from, to)
	if err != nil {
		return err
	}
	if err := s.audit(r, c, "segments.list", site+"/"+device, rangeDetail(from, to, len(segs))); err != nil {
		return err
	}
	expires := now.Add(s.cfg.LinkTTL)
	pq := purposeQuery(r)
	out := make([]segmentJSON, 0, len(segs))
	for _, g := range segs {
		codecs := g.Codecs
		if codecs == nil {
			codecs = []string{}
		}
		out = append(out, segmentJSON{
			SegmentID:     g.SegmentID,
			StreamID:      g.StreamID,
			Source:        g.Source,
			Sequence:      g.Sequence,
			Start:         g.Start.UTC(),
			End:           g.End.UTC(),
			Duration:      g.Duration,
			Codecs:        codecs,
			Bytes:         g.Bytes,
			SHA256:        g.SHA256,
			PrevChain:     g.PrevChain,
			Chain:         g.Chain,
			Discontinuity: g.Discontinuity,
			Salvaged:      g.Salvaged,
			Independent:   g.Independent,
			ObjectKey:     g.ObjectKey,
			URL:           s.sign(mediaPrefix+g.ObjectKey, pq, c.user.ID, c.session, expires),
			InitKey:       g.InitKey,
			InitURL:       s.sign(mediaPrefix+g.InitKey, pq, c.user.ID, c.session, expires),
			InitBytes:     g.InitBytes,
			InitSHA256:    g.InitSHA256,
		})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// playlist handles GET /api/v1/streams/{site}/{device}/playlist.m3u8, of
// the raw segments or, with variant=review, of their review renditions
// (review.go).
func (s *Server) playlist(w http.ResponseWriter, r *http.Request, c *caller) error {
	site, device, from, to, now, err := s.streamRange(r, c)
	if err != nil {
		return err
	}
	variant, segs, err := s.variantSegments(r, site, device, from, to)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return noSegments(site, device, from, to)
	}
	detail := rangeDetail(from, to, len(segs))
	detail["variant"] = variant
	if err := s.audit(r, c, "playlist.get", site+"/"+device, detail); err != nil {
		return err
	}
	var total float64
	for _, g := range segs {
		total += g.Duration
	}
	// A player fetches a VOD playlist once and its segments as it plays:
	// their URLs must outlive watching the whole playlist.
	expires := now.Add(s.cfg.LinkTTL + time.Duration(total*float64(time.Second)))
	pq := purposeQuery(r)
	body := renderPlaylist(segs, func(key string) string {
		return s.sign(mediaPrefix+key, pq, c.user.ID, c.session, expires)
	})
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(body)
	return err
}

// purposeQuery is the query that carries the purpose declared with r
// into the signed URLs its answer names (nil when none was declared): a
// player fetches them without headers, and each fetch is audited with the
// purpose it was made for (media.get rows are kept per purpose).
func purposeQuery(r *http.Request) url.Values {
	if p := purpose(r); p != "" {
		return url.Values{"purpose": {p}}
	}
	return nil
}

func rangeDetail(from, to time.Time, n int) map[string]any {
	return map[string]any{"from": from.UTC(), "to": to.UTC(), "segments": n}
}

// renderPlaylist writes an HLS media playlist of type VOD (RFC 8216,
// section 4.3) for segs, which are fMP4 segments in playback order; uri
// returns the URI of an object key.
func renderPlaylist(segs []store.Segment, uri func(key string) string) []byte {
	// RFC 8216, 4.3.3.1: every EXTINF duration, rounded to the nearest
	// integer, must be at most the target duration. EXTINF is written with
	// millisecond precision, so round to that first.
	target := 1.0
	for _, g := range segs {
		target = math.Max(target, math.Ceil(math.Round(g.Duration*1000)/1000))
	}
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n")
	b.WriteString("#EXT-X-VERSION:7\n")
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", int64(target))
	b.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", segs[0].Sequence)
	// Ingest cuts segments on keyframes, but at 60 s or 256 MiB whatever
	// the keyframes: a segment cut so is not independent (RFC 8216,
	// 4.3.5.1), and then the playlist does not say they all are.
	if !slices.ContainsFunc(segs, func(g store.Segment) bool { return !g.IsIndependent() }) {
		b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n")
	}
	for i, g := range segs {
		disc := i > 0 && discontinuous(segs[i-1], g)
		if disc {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if i == 0 || g.InitKey != segs[i-1].InitKey {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"%s\"\n", uri(g.InitKey))
		}
		if i == 0 || disc {
			fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n", g.Start.UTC().Format("2006-01-02T15:04:05.000Z07:00"))
		}
		fmt.Fprintf(&b, "#EXTINF:%.3f,\n", g.Duration)
		b.WriteString(uri(g.ObjectKey))
		b.WriteByte('\n')
	}
	b.WriteString("#EXT-X-ENDLIST\n")
	return b.Bytes()
}

// maxGap is the largest difference between one segment's end and the next
// one's start that still counts as continuous.
const maxGap = time.Second

// discontinuous reports whether the stream was interrupted between prev and
// next: ingest says so, the init segment (codec configuration) changed, a
// segment is missing, or the clock jumps by more than maxGap.
func discontinuous(prev, next store.Segment) bool {
	gap := next.Start.Sub(prev.End)
	return next.Discontinuity ||
		next.InitKey != prev.InitKey ||
		next.Sequence != prev.Sequence+1 ||
		gap > maxGap || gap < -maxGap
}

// streamRange reads the stream of a request, checks the caller may see it,
// and reads its from/to range; now is the time the range was read at.
func (s *Server) streamRange(r *http.Request, c *caller) (site, device string, from, to, now time.Time, err error) {
	site, device, err = s.stream(r, c)
	if err != nil {
		return "", "", time.Time{}, time.Time{}, time.Time{}, err
	}
	now = s.now()
	from, to, err = timeRange(r.URL.Query(), now)
	return site, device, from, to, now, err
}

// noSegments is the answer for a range of a stream with no segments.
func noSegments(site, device string, from, to time.Time) error {
	return errorf(http.StatusNotFound, "no segments of %s/%s between %s and %s",
		site, device, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
}
