package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/webvtt"
	"github.com/nokstream/nokstream/registry/store"
)

// reviewStore lists what the HLS review routes call of the registry's
// database.
type reviewStore interface {
	Segments(ctx context.Context, site, device string, from, to time.Time) ([]store.Segment, error)
	Renditions(ctx context.Context, site, device, variant string, from, to time.Time) ([]events.RenditionReady, error)
	RenditionMedia(ctx context.Context, site, device, variant string, from, to time.Time) ([]store.RenditionMedia, error)
	ObjectByKey(ctx context.Context, key string) (store.Object, error)
	RenditionObjectByKey(ctx context.Context, key string) (store.Object, error)
}

// The transcoder's review variant of a stream (issue 6): its playlist is
// playlist.m3u8?variant=review, master.m3u8 offers it beside the raw one,
// and thumbnails.vtt is the track of scrubbing thumbnails. All three cover
// the raw playlist's segments for the same from and to, on the same
// timeline, so that a player can switch variants at any segment boundary
// and the thumbnails line up with either.

// variantSegments returns the segments of the playlist of the variant that
// the request's variant parameter asks for: the raw segments (the default),
// or for "review" each segment's review rendition, and the raw segment
// where there is none yet (the transcoder is behind, or the segment could
// not be decoded), behind a discontinuity, so that the review playlist has
// the raw one's timeline.
func (s *Server) variantSegments(r *http.Request, site, device string, from, to time.Time) (string, []store.Segment, error) {
	variant := r.URL.Query().Get("variant")
	if variant == "" {
		variant = events.VariantRaw
	}
	switch variant {
	case events.VariantRaw:
		segs, err := s.db.review.Segments(r.Context(), site, device, from, to)
		return variant, segs, err
	case events.VariantReview:
		segs, rends, err := s.reviewMedia(r.Context(), site, device, from, to)
		if err != nil {
			return "", nil, err
		}
		for i, g := range segs {
			if m, ok := rends[g.SegmentID]; ok {
				segs[i] = asRendition(g, m)
			}
		}
		return variant, segs, nil
	}
	return "", nil, errorf(http.StatusBadRequest, "variant %q: want %s or %s", variant, events.VariantRaw, events.VariantReview)
}

// reviewSegments returns the raw segments of a range and the review
// renditions of those that have one, by segment id.
func (s *Server) reviewSegments(ctx context.Context, site, device string, from, to time.Time) ([]store.Segment, map[string]events.RenditionReady, error) {
	segs, err := s.db.review.Segments(ctx, site, device, from, to)
	if err != nil {
		return nil, nil, err
	}
	rs, err := s.db.review.Renditions(ctx, site, device, events.VariantReview, from, to)
	if err != nil {
		return nil, nil, err
	}
	rends := make(map[string]events.RenditionReady, len(rs))
	for _, rr := range rs {
		rends[rr.SegmentID] = rr
	}
	return segs, rends, nil
}

// reviewMedia returns the raw segments of a range and what the playlist
// and the thumbnails track need of the review renditions of those that
// have one, by segment id (store.RenditionMedia: no whole events).
func (s *Server) reviewMedia(ctx context.Context, site, device string, from, to time.Time) ([]store.Segment, map[string]store.RenditionMedia, error) {
	segs, err := s.db.review.Segments(ctx, site, device, from, to)
	if err != nil {
		return nil, nil, err
	}
	rs, err := s.db.review.RenditionMedia(ctx, site, device, events.VariantReview, from, to)
	if err != nil {
		return nil, nil, err
	}
	rends := make(map[string]store.RenditionMedia, len(rs))
	for _, m := range rs {
		rends[m.SegmentID] = m
	}
	return segs, rends, nil
}

// asRendition returns segment g as its rendition m plays it: same place in
// the stream and time span, the rendition's objects and codecs.
func asRendition(g store.Segment, m store.RenditionMedia) store.Segment {
	g.ObjectKey, g.Bytes, g.SHA256 = m.Object.Key, m.Object.Bytes, m.Object.SHA256
	g.InitKey, g.InitBytes, g.InitSHA256 = m.Init.Key, m.Init.Bytes, m.Init.SHA256
	g.Codecs = m.Codecs
	return g
}

// variantInfo is what a master playlist says of a variant (RFC 8216,
// 4.3.4.2).
type variantInfo struct {
	peak, average float64 // bits per second
	codecs        []string
	width, height int
	frameRate     float64
}

// add accounts for one segment of the variant.
func (v *variantInfo) add(bytes int64, seconds float64, codecs []string, total *float64) {
	if seconds > 0 {
		v.peak = math.Max(v.peak, float64(bytes*8)/seconds)
	}
	v.average += float64(bytes * 8)
	*total += seconds
	for _, c := range codecs {
		if !containsString(v.codecs, c) {
			v.codecs = append(v.codecs, c)
		}
	}
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// master handles GET /api/v1/streams/{site}/{device}/master.m3u8: an HLS
// master playlist (RFC 8216, 4.3.4) offering the review and the raw
// variant of the range, each a signed playlist URL with the range made
// explicit, so that both cover the same segments.
func (s *Server) master(w http.ResponseWriter, r *http.Request, c *caller) error {
	site, device, from, to, now, err := s.streamRange(r, c)
	if err != nil {
		return err
	}
	segs, rends, err := s.reviewSegments(r.Context(), site, device, from, to)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return noSegments(site, device, from, to)
	}
	if err := s.audit(r, c, "master.get", site+"/"+device, rangeDetail(from, to, len(segs))); err != nil {
		return err
	}
	var raw, review variantInfo
	var rawTotal, reviewTotal float64
	for _, g := range segs {
		raw.add(g.Bytes, g.Duration, g.Codecs, &rawTotal)
		rr, ok := rends[g.SegmentID]
		if !ok {
			review.add(g.Bytes, g.Duration, g.Codecs, &reviewTotal)
			continue
		}
		review.add(rr.Rendition.Object.Bytes, g.Duration, rr.Rendition.Codecs, &reviewTotal)
		review.width, review.height = max(review.width, rr.Rendition.Width), max(review.height, rr.Rendition.Height)
		review.frameRate = math.Max(review.frameRate, rr.Rendition.FrameRate)
		raw.width, raw.height = max(raw.width, rr.SourceWidth), max(raw.height, rr.SourceHeight)
	}
	raw.average /= math.Max(rawTotal, 1e-3)
	review.average /= math.Max(reviewTotal, 1e-3)

	expires := now.Add(s.cfg.LinkTTL + time.Duration(rawTotal*float64(time.Second)))
	q := url.Values{"from": {from.UTC().Format(time.RFC3339Nano)}, "to": {to.UTC().Format(time.RFC3339Nano)}}
	if p := purpose(r); p != "" {
		q.Set("purpose", p)
	}
	playlist := "/api/v1/streams/" + site + "/" + device + "/playlist.m3u8"
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	if len(rends) > 0 {
		rq := url.Values{"variant": {events.VariantReview}}
		for k, v := range q {
			rq[k] = v
		}
		writeVariant(&b, review, s.sign(playlist, rq, c.user.ID, c.session, expires))
	}
	writeVariant(&b, raw, s.sign(playlist, q, c.user.ID, c.session, expires))
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(b.Bytes())
	return err
}

// writeVariant writes the EXT-X-STREAM-INF of one variant and its URI.
func writeVariant(b *bytes.Buffer, v variantInfo, uri string) {
	fmt.Fprintf(b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d", int64(math.Ceil(v.peak)), int64(math.Ceil(v.average)))
	if len(v.codecs) > 0 {
		fmt.Fprintf(b, ",CODECS=\"%s\"", strings.Join(v.codecs, ","))
	}
	if v.width > 0 && v.height > 0 {
		fmt.Fprintf(b, ",RESOLUTION=%dx%d", v.width, v.height)
	}
	if v.frameRate > 0 {
		fmt.Fprintf(b, ",FRAME-RATE=%.3f", v.frameRate)
	}
	b.WriteString("\n")
	b.WriteString(uri)
	b.WriteString("\n")
}

// maxFragmentReads bounds the thumbnail fragments read at once.
const maxFragmentReads = 8

// thumbnails handles GET /api/v1/streams/{site}/{device}/thumbnails.vtt: the
// WebVTT track of scrubbing thumbnails of the range, joined from the
// per-segment fragments the transcoder made. Cue times are on the
// playlists' timeline (0 is the start of the first segment of the range,
// gaps between sessions are skipped as the playlists skip them), and each
// cue points with #xywh= into a sprite by a signed media URL. Segments
// without thumbnails have no cues.
func (s *Server) thumbnails(w http.ResponseWriter, r *http.Request, c *caller) error {
	site, device, from, to, now, err := s.streamRange(r, c)
	if err != nil {
		return err
	}
	segs, rends, err := s.reviewMedia(r.Context(), site, device, from, to)
	if err != nil {
		return err
	}
	if len(segs) == 0 {
		return noSegments(site, device, from, to)
	}
	if err := s.audit(r, c, "thumbnails.get", site+"/"+device, rangeDetail(from, to, len(segs))); err != nil {
		return err
	}

	// Where each segment starts on the playlist timeline: the sum of the
	// EXTINF durations before it, as written (milliseconds).
	offsets := make([]time.Duration, len(segs))
	var total time.Duration
	for i, g := range segs {
		offsets[i] = total
		total += time.Duration(math.Round(g.Duration*1000)) * time.Millisecond
	}
	expires := now.Add(s.cfg.LinkTTL + total)
	pq := purposeQuery(r)
	frags := make([][]webvtt.Cue, len(segs))
	g, gctx := errgroup.WithContext(r.Context())
	g.SetLimit(maxFragmentReads)
	for i, seg := range segs {
		rr, ok := rends[seg.SegmentID]
		if !ok || rr.Thumbnails == nil {
			continue
		}
		g.Go(func() error {
			cues, err := s.fragment(gctx, rr, offsets[i], seg.Duration, pq, c.user.ID, c.session, expires)
			if err != nil {
				return err
			}
			frags[i] = cues
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var cues []webvtt.Cue
	for _, f := range frags {
		cues = append(cues, f...)
	}
	w.Header().Set("Content-Type", "text/vtt; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(webvtt.Marshal(cues))
	return err
}

// fragment reads the thumbnails fragment of a rendition and moves its cues
// from the stream's media timeline to the playlist timeline, where the
// segment starts at offset and lasts seconds, pointing them at the sprite
// by a signed URL with query q (the declared purpose).
func (s *Server) fragment(ctx context.Context, rr store.RenditionMedia, offset time.Duration, seconds float64,
	q url.Values, uid, sid int64, expires time.Time) ([]webvtt.Cue, error) {
	th := rr.Thumbnails
	b, err := s.readFragment(ctx, th.VTT)
	if err != nil {
		return nil, fmt.Errorf("thumbnails of segment %s: %w", rr.SegmentID, err)
	}
	cues, err := webvtt.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("thumbnails of segment %s: %w", rr.SegmentID, err)
	}
	sprite := s.sign(mediaPrefix+th.Sprite.Key, q, uid, sid, expires)
	base := time.Duration(math.Round(rr.MediaStart*1000)) * time.Millisecond
	end := offset + time.Duration(math.Round(seconds*1000))*time.Millisecond
	out := make([]webvtt.Cue, 0, len(cues))
	for _, cue := range cues {
		name, frag, ok := strings.Cut(cue.Text, "#")
		if !ok || name != path.Base(th.Sprite.Key) {
			continue // not a tile of this segment's sprite
		}
		start := min(max(offset+cue.Start-base, offset), end)
		stop := min(max(offset+cue.End-base, start), end)
		if stop <= start {
			continue
		}
		out = append(out, webvtt.Cue{Start: start, End: stop, Text: sprite + "#" + frag})
	}
	return out, nil
}

// readFragment reads a thumbnails fragment and checks it against the index.
func (s *Server) readFragment(ctx context.Context, ref events.ObjectRef) ([]byte, error) {
	rc, err := s.blobs.Get(ctx, ref.Key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", ref.Key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, ref.Bytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ref.Key, err)
	}
	if sum := sha256.Sum256(b); int64(len(b)) != ref.Bytes || hex.EncodeToString(sum[:]) != ref.SHA256 {
		return nil, fmt.Errorf("%s does not match its index", ref.Key)
	}
	return b, nil
}

// mediaObject returns the indexed object stored under key: a raw segment
// or init segment, or a rendition object.
func (s *Server) mediaObject(ctx context.Context, key string) (store.Object, error) {
	o, err := s.db.review.ObjectByKey(ctx, key)
	if errors.Is(err, store.ErrNotFound) && strings.HasPrefix(key, "review/") {
		return s.db.review.RenditionObjectByKey(ctx, key)
	}
	return o, err
}

// mediaType returns the Content-Type of a media object.
func mediaType(o store.Object) string {
	switch {
	case o.Init:
		return "video/mp4"
	case strings.HasSuffix(o.Key, ".jpg"):
		return "image/jpeg"
	case strings.HasSuffix(o.Key, ".vtt"):
		return "text/vtt; charset=utf-8"
	}
	return "video/iso.segment"
}
