// Package transcoder turns raw segments into what an expert reviews: for
// each SegmentClosed event it fetches the segment and its init segment from
// the blob store, decodes them once with the FFmpeg libraries (go-astiav),
// and makes
//
//   - a review rendition: H.264 (libx264) and AAC in a CMAF fMP4 segment
//     (ISO/IEC 23000-19) covering exactly the raw segment's time span, with
//     the same decode time (tfdt), so that a player can switch between raw
//     and review at any segment boundary;
//   - a JPEG sprite of thumbnails for scrubbing, with a WebVTT fragment whose
//     cues point into it (#xywh=);
//   - observations (black or covered camera, frozen picture, silence,
//     sudden scene change), detected across segment boundaries.
//
// The outputs are stored under keys derived from the raw segment, the
// observations are published on events.TopicObservations, and a
// RenditionReady event on events.TopicRenditions names the outputs once all
// are stored.
//
// Object keys, for a raw segment of stream <site>/<device>:
//
//	review/<site>/<device>/<date>/<seq>-<segment id>.m4s   rendition segment
//	review/<site>/<device>/init/<sha256>.mp4               rendition init segment, content-addressed
//	review/<site>/<device>/<date>/<seq>-<segment id>.jpg   thumbnail sprite
//	review/<site>/<device>/<date>/<seq>-<segment id>.vtt   WebVTT fragment
//	review/<site>/<device>/state/<seq>.json                detector state after the segment (deleted once the next one's is stored)
//	review/<site>/<device>/<date>/<seq>-<segment id>.json  manifest: the RenditionReady event, written last
//
// A segment whose manifest exists for the same raw bytes is done: it is not
// transcoded again, its RenditionReady is published again (the registry
// indexes it once). A segment that cannot be decoded is reported as an
// undecodable observation and dead-lettered; the next one is handled as
// usual.
package transcoder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/internal/bus"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/transcoder/detect"
)

// Group is the transcoder's consumer group of the segments topic.
const Group = "transcoder"

// Reporter is the name observations are reported under.
const Reporter = "transcoder"

// maxGap is the largest jump between one segment's end and the next one's
// start that still counts as continuous, as in the registry's playlists.
const maxGap = time.Second

// Bus is what the transcoder needs of the bus.
type Bus interface {
	Publish(ctx context.Context, topic, key string, value []byte) error
	Consume(ctx context.Context, topic, group string, h bus.Handler) error
}

// Blobs is what the transcoder needs of the blob store.
type Blobs interface {
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	Stat(ctx context.Context, key string) (blob.Attrs, error)
	Delete(ctx context.Context, key string) error
}

// Deps are the transcoder's collaborators.
type Deps struct {
	Bus      Bus
	Blob     Blobs
	Log      *slog.Logger
	Registry prometheus.Registerer
	Now      func() time.Time // time.Now if nil
}

// Service is the transcoder.
type Service struct {
	cfg Config
	bus Bus
	bls Blobs
	log *slog.Logger
	now func() time.Time
	met *metrics

	// inflight holds the raw bytes of the segments being handled
	// (cfg.InflightBytes).
	inflight *semaphore.Weighted

	mu       sync.Mutex
	streams  map[string]*stream
	attempts map[string]int // segment id → failed attempts
	// held counts the streams holding their video codecs
	// (cfg.KeepCodecs).
	held atomic.Int64
}

// stream is what the transcoder remembers of one stream between segments.
type stream struct {
	mu sync.Mutex
	// seq is the sequence number of the last segment handled, -1 for
	// none; end is the wall clock at which it ended.
	seq int64
	end time.Time
	// site and device name the stream in observations.
	site, device string
	det          detect.State
	// seen is when a segment of the stream was last handled.
	seen time.Time
	// codecs are the video codecs its last segment left for the next,
	// or nil.
	codecs *videoCodecs
}

// New returns a Service. It starts nothing: Run does.
func New(cfg Config, d Deps) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case d.Bus == nil:
		return nil, errors.New("transcoder: no bus")
	case d.Blob == nil:
		return nil, errors.New("transcoder: no blob store")
	case d.Log == nil:
		return nil, errors.New("transcoder: no logger")
	case d.Registry == nil:
		return nil, errors.New("transcoder: no metrics registry")
	}
	met, err := newMetrics(d.Registry)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, bus: d.Bus, bls: d.Blob, log: d.Log, now: d.Now, met: met,
		streams: map[string]*stream{}, attempts: map[string]int{}, inflight: semaphore.NewWeighted(cfg.InflightBytes)}
	if s.now == nil {
		s.now = time.Now
	}
	routeFFmpegLog(d.Log)
	tuneAllocator()
	return s, nil
}

// Run consumes segment events with cfg.Workers consumers until ctx ends, and
// reports observations still in progress on streams that went quiet. It
// returns after every goroutine it started has returned.
func (s *Service) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for range s.cfg.Workers {
		g.Go(func() error { return s.bus.Consume(ctx, events.TopicSegments, Group, s.Handle) })
	}
	g.Go(func() error {
		t := time.NewTicker(max(s.cfg.IdleFlush/4, 100*time.Millisecond))
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				s.flushIdle(ctx)
			}
		}
	})
	err := g.Wait()
	s.dropAllCodecs()
	return err
}

// dropAllCodecs frees the video codecs every stream holds.
func (s *Service) dropAllCodecs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.streams {
		st.mu.Lock()
		s.dropCodecs(st)
		st.mu.Unlock()
	}
}

// dropCodecs frees the video codecs a stream holds. Its lock is held.
func (s *Service) dropCodecs(st *stream) {
	if st.codecs != nil {
		st.codecs.free()
		st.codecs = nil
		s.held.Add(-1)
	}
}

// keepCodecs lets a stream hold the video codecs its segment left for the
// next one, if fewer than cfg.KeepCodecs streams do, and frees them
// otherwise. Its lock is held.
func (s *Service) keepCodecs(st *stream, c *videoCodecs) {
	if c == nil {
		return
	}
	if s.held.Add(1) > int64(s.cfg.KeepCodecs) {
		s.held.Add(-1)
		c.free()
		return
	}
	st.codecs = c
}

// Handle transcodes the segment of one SegmentClosed event.
func (s *Service) Handle(ctx context.Context, m bus.Message) error {
	ev, err := events.DecodeSegmentClosed(m.Value)
	if err != nil {
		s.met.segments.WithLabelValues("invalid").Inc()
		return bus.Permanent(err)
	}
	log := s.log.With("stream", ev.StreamID, "segment_id", ev.SegmentID, "sequence", ev.Sequence)
	st := s.stream(ev)
	st.mu.Lock()
	defer st.mu.Unlock()
	start := s.now()
	result, err := s.handle(ctx, log, st, ev)
	s.met.handleSeconds.Observe(s.now().Sub(start).Seconds())
	if err == nil {
		s.met.segments.WithLabelValues(result).Inc()
		s.forget(ev.SegmentID)
		end := ev.Start.Add(seconds(ev.Duration))
		s.met.lag.Set(max(s.now().Sub(end), 0).Seconds())
		return nil
	}
	if bus.IsPermanent(err) || ctx.Err() != nil {
		s.forget(ev.SegmentID)
		return err
	}
	if n := s.failed(ev.SegmentID); n >= s.cfg.MaxAttempts {
		s.met.segments.WithLabelValues("failed").Inc()
		log.Error("give up on segment", "attempts", n, "err", err)
		s.forget(ev.SegmentID)
		return bus.Permanent(fmt.Errorf("transcode segment %s: %d attempts: %w", ev.SegmentID, n, err))
	}
	return err
}

// handle does the work of Handle for a stream whose lock is held, and
// returns the result for the metrics.
func (s *Service) handle(ctx context.Context, log *slog.Logger, st *stream, ev *events.SegmentClosed) (string, error) {
	k := keysOf(ev)
	if done, err := s.done(ctx, ev, k); err != nil {
		return "", err
	} else if done != nil {
		// Already transcoded: carry on from its state and announce it
		// again, in case it was stored but not announced.
		if err := s.restore(ctx, st, ev.Sequence, k.stateKey(ev.Sequence)); err != nil {
			return "", err
		}
		if err := s.publish(ctx, events.TopicRenditions, ev.StreamID, done); err != nil {
			return "", err
		}
		st.seen = s.now()
		log.Debug("segment already transcoded")
		return "skipped", nil
	}

	// Room for the bytes before they are fetched; a segment too large to
	// ever fit is refused, not waited for.
	size := max(ev.Bytes, 0) + max(ev.InitBytes, 0)
	if size > s.cfg.MaxSegmentBytes {
		s.met.segments.WithLabelValues("too_large").Inc()
		return "", bus.Permanent(fmt.Errorf("segment %s is %d bytes with its init segment, above the %d this transcoder takes (max_segment_bytes)",
			ev.SegmentID, size, s.cfg.MaxSegmentBytes))
	}
	if err := s.inflight.Acquire(ctx, size); err != nil {
		return "", err
	}
	defer s.inflight.Release(size)

	initBytes, err := s.fetch(ctx, ev.InitKey, ev.InitBytes, ev.InitSHA256)
	if err != nil {
		return "", err
	}
	data, err := s.fetch(ctx, ev.ObjectKey, ev.Bytes, ev.SHA256)
	if err != nil {
		return "", err
	}

	// The detectors carry on from the previous segment of the stream, in
	// memory or, after a restart, from its stored state.
	if st.seq != ev.Sequence-1 {
		if err := s.restore(ctx, st, ev.Sequence-1, k.stateKey(ev.Sequence-1)); err != nil {
			return "", err
		}
	}
	det := detect.New(s.cfg.Detect, st.det.Clone())
	var found []detect.Event
	if gap := ev.Start.Sub(st.end); st.seq >= 0 && (ev.Discontinuity || gap > maxGap || gap < -maxGap) {
		found = det.Flush(st.end)
	}

	profile, ok := s.cfg.Profiles[ev.Source]
	if !ok {
		profile = s.cfg.Profiles[events.SourceRoom]
	}
	codecs := st.codecs
	if codecs != nil {
		st.codecs = nil
		s.held.Add(-1)
	}
	out, err := transcode(job{
		init: initBytes, data: data, start: ev.Start, sequence: ev.Sequence,
		profile: profile, thumbs: s.cfg.Thumbnails, spriteName: k.sprite,
		analysisFPS: s.cfg.AnalysisFPS, threads: s.cfg.Threads, det: det, codecs: codecs,
	})
	if err == nil {
		s.keepCodecs(st, out.next)
	}
	if errors.Is(err, errUndecodable) {
		return "", s.undecodable(ctx, log, st, ev, k, det, found, err)
	}
	if err != nil {
		return "", fmt.Errorf("transcode segment %s: %w", ev.SegmentID, err)
	}
	if out.reused {
		s.met.codecsReused.Inc()
	}
	found = append(found, out.events...)
	if out.audioErr != nil {
		log.Warn("rendition without audio", "err", out.audioErr)
	}

	rr, err := s.store(ctx, ev, k, out)
	if err != nil {
		return "", err
	}
	if err := s.observe(ctx, ev, found); err != nil {
		return "", err
	}
	// The state, then the manifest that says the segment is done, then
	// the announcement.
	next := det.State()
	if err := s.putJSON(ctx, k.stateKey(ev.Sequence), savedState{SegmentID: ev.SegmentID, Sequence: ev.Sequence,
		End: ev.Start.Add(seconds(ev.Duration)), Detector: next}); err != nil {
		return "", err
	}
	if err := s.putJSON(ctx, k.manifest, rr); err != nil {
		return "", err
	}
	if err := s.publish(ctx, events.TopicRenditions, ev.StreamID, rr); err != nil {
		return "", err
	}
	s.dropState(ctx, log, k, ev.Sequence-1)
	st.seq, st.end, st.det, st.seen = ev.Sequence, ev.Start.Add(seconds(ev.Duration)), next, s.now()
	s.met.mediaSeconds.Add(ev.Duration)
	log.Debug("segment transcoded", "object_key", rr.Rendition.Object.Key, "observations", len(found),
		"frames", out.frames, "not_decoded", out.skipped, "codecs_reused", out.reused)
	return "done", nil
}

// undecodable reports a segment that cannot be decoded and dead-letters it.
// Observations in progress end where the segment begins.
func (s *Service) undecodable(ctx context.Context, log *slog.Logger, st *stream, ev *events.SegmentClosed, k keys,
	det *detect.Detector, found []detect.Event, cause error) error {
	found = append(found, det.Flush(ev.Start)...)
	found = append(found, detect.Event{Kind: events.ObsUndecodable, Start: ev.Start,
		End: ev.Start.Add(seconds(ev.Duration)), Detail: cause.Error()})
	if err := s.observe(ctx, ev, found); err != nil {
		return err
	}
	next := det.State()
	if err := s.putJSON(ctx, k.stateKey(ev.Sequence), savedState{SegmentID: ev.SegmentID, Sequence: ev.Sequence,
		End: ev.Start.Add(seconds(ev.Duration)), Detector: next}); err != nil {
		return err
	}
	s.dropState(ctx, log, k, ev.Sequence-1)
	st.seq, st.end, st.det, st.seen = ev.Sequence, ev.Start.Add(seconds(ev.Duration)), next, s.now()
	s.met.segments.WithLabelValues("undecodable").Inc()
	log.Error("segment cannot be decoded", "object_key", ev.ObjectKey, "err", cause)
	return bus.Permanent(fmt.Errorf("transcode segment %s: %w", ev.SegmentID, cause))
}

// done returns the manifest of a segment already transcoded from the same
// bytes, or nil.
func (s *Service) done(ctx context.Context, ev *events.SegmentClosed, k keys) (*events.RenditionReady, error) {
	b, err := s.get(ctx, k.manifest, 0)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rr, err := events.DecodeRenditionReady(b)
	if err != nil {
		// A manifest is written whole or not at all: this one was
		// damaged after. Transcoding again replaces it.
		s.log.Warn("bad manifest, transcoding again", "object_key", k.manifest, "err", err)
		return nil, nil
	}
	if rr.SourceSHA256 != ev.SHA256 {
		return nil, bus.Permanent(fmt.Errorf("segment %s was transcoded from other bytes (sha256 %s, now %s)",
			ev.SegmentID, rr.SourceSHA256, ev.SHA256))
	}
	return rr, nil
}

// savedState is the detector state stored after each segment.
type savedState struct {
	SegmentID string       `json:"segment_id"`
	Sequence  int64        `json:"sequence"`
	End       time.Time    `json:"end"`
	Detector  detect.State `json:"detector"`
}

// dropState deletes the detector state stored after segment seq, once the
// state after the next segment is stored: only a stream's latest state is
// ever read (restore), so a stream keeps one state object, not one per
// segment. The state is the transcoder's scratch, not evidence: it holds a
// 64×36 luma grid of the last picture, which is not kept beyond need
// (152-FZ). Failing to delete costs nothing but the object, and is logged.
func (s *Service) dropState(ctx context.Context, log *slog.Logger, k keys, seq int64) {
	if seq < 0 {
		return
	}
	if err := s.bls.Delete(ctx, k.stateKey(seq)); err != nil {
		log.Warn("delete superseded detector state", "object_key", k.stateKey(seq), "err", err)
	}
}

// restore loads into st the stored state after segment seq, or a fresh one
// if there is none.
func (s *Service) restore(ctx context.Context, st *stream, seq int64, key string) error {
	if st.seq == seq {
		return nil
	}
	st.seq, st.end, st.det = -1, time.Time{}, detect.State{}
	if seq < 0 {
		return nil
	}
	b, err := s.get(ctx, key, 0)
	if errors.Is(err, blob.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var saved savedState
	if err := json.Unmarshal(b, &saved); err != nil || saved.Sequence != seq {
		s.log.Warn("bad detector state, starting afresh", "object_key", key, "err", err)
		return nil
	}
	st.seq, st.end, st.det = saved.Sequence, saved.End, saved.Detector
	return nil
}

// store uploads the outputs and returns the event that names them.
func (s *Service) store(ctx context.Context, ev *events.SegmentClosed, k keys, out *output) (*events.RenditionReady, error) {
	initKey := k.init(out.init)
	seconds := out.duration.Seconds()
	if seconds <= 0 {
		seconds = ev.Duration
	}
	rr := &events.RenditionReady{
		SegmentID:    ev.SegmentID,
		StreamID:     ev.StreamID,
		Source:       ev.Source,
		Site:         ev.Site,
		Device:       ev.Device,
		Sequence:     ev.Sequence,
		Start:        ev.Start,
		Duration:     ev.Duration,
		SourceSHA256: ev.SHA256,
		SourceWidth:  out.srcWidth,
		SourceHeight: out.srcHeight,
		MediaStart:   out.mediaStart.Seconds(),
		Variant:      events.VariantReview,
		Rendition: events.Rendition{
			Object:    ref(k.segment, out.segment),
			Init:      ref(initKey, out.init),
			Codecs:    out.codecs,
			Width:     out.width,
			Height:    out.height,
			FrameRate: round3(float64(out.frames) / seconds),
			Bandwidth: int64(float64(len(out.segment)*8) / seconds),
		},
		Transcoder: s.cfg.Node,
	}
	// The init segment is shared by the segments of a stream that have
	// the same encoding: store it once.
	if _, err := s.bls.Stat(ctx, initKey); errors.Is(err, blob.ErrNotFound) {
		if err := s.put(ctx, initKey, out.init); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("stat %s: %w", initKey, err)
	}
	if err := s.put(ctx, k.segment, out.segment); err != nil {
		return nil, err
	}
	if out.sprite != nil {
		if err := s.put(ctx, k.sprite, out.sprite); err != nil {
			return nil, err
		}
		if err := s.put(ctx, k.vtt, out.vtt); err != nil {
			return nil, err
		}
		rr.Thumbnails = &events.Thumbnails{
			Sprite: ref(k.sprite, out.sprite), VTT: ref(k.vtt, out.vtt),
			Tiles: out.tiles, Columns: out.cols, TileWidth: out.tileW, TileHeight: out.tileH,
			Interval: s.cfg.Thumbnails.Interval.Seconds(),
		}
	}
	rr.Done = s.now().UTC()
	for _, b := range [][]byte{out.segment, out.sprite, out.vtt} {
		s.met.outputBytes.Add(float64(len(b)))
	}
	return rr, nil
}

// observe publishes what the detectors found.
func (s *Service) observe(ctx context.Context, ev *events.SegmentClosed, found []detect.Event) error {
	for _, f := range found {
		o := events.Observation{
			ObservationID: events.NewObservationID(ev.StreamID, f.Kind, Reporter, f.Start),
			StreamID:      ev.StreamID,
			Site:          ev.Site,
			Device:        ev.Device,
			Kind:          f.Kind,
			Start:         f.Start.UTC(),
			End:           f.End.UTC(),
			Measure:       f.Measure,
			Detail:        f.Detail,
			Reporter:      Reporter,
			SegmentID:     ev.SegmentID,
		}
		if err := s.publish(ctx, events.TopicObservations, ev.StreamID, &o); err != nil {
			return err
		}
		s.met.observations.WithLabelValues(f.Kind).Inc()
	}
	return nil
}

// flushIdle reports the observations in progress on streams that sent no
// segment for cfg.IdleFlush, ending them where the last segment ended, and
// forgets streams that have been quiet for long.
func (s *Service) flushIdle(ctx context.Context) {
	now := s.now()
	var idle []*stream
	s.mu.Lock()
	for id, st := range s.streams {
		if !st.mu.TryLock() {
			continue // a segment of it is being handled: it is not quiet
		}
		quiet := now.Sub(st.seen)
		if quiet >= s.cfg.IdleFlush {
			s.dropCodecs(st)
		}
		switch {
		case st.seen.IsZero():
		case st.det.Ongoing() && quiet >= s.cfg.IdleFlush:
			idle = append(idle, st)
		case !st.det.Ongoing() && quiet >= forgetAfter:
			s.dropCodecs(st)
			delete(s.streams, id)
		}
		st.mu.Unlock()
	}
	s.mu.Unlock()
	for _, st := range idle {
		s.flushStream(ctx, st)
	}
}

// forgetAfter is how long the state of a quiet stream is kept in memory; it
// is stored after every segment anyway.
const forgetAfter = time.Hour

func (s *Service) flushStream(ctx context.Context, st *stream) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.det.Ongoing() || s.now().Sub(st.seen) < s.cfg.IdleFlush {
		return
	}
	det := detect.New(s.cfg.Detect, st.det.Clone())
	found := det.Flush(st.end)
	ev := &events.SegmentClosed{StreamID: st.site + "/" + st.device, Site: st.site, Device: st.device}
	if err := s.observe(ctx, ev, found); err != nil {
		s.log.Warn("report observations of a quiet stream, will retry", "stream", ev.StreamID, "err", err)
		return
	}
	st.det = det.State()
	if len(found) > 0 {
		s.log.Info("reported observations of a quiet stream", "stream", ev.StreamID, "observations", len(found))
	}
}

func (s *Service) stream(ev *events.SegmentClosed) *stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.streams[ev.StreamID]
	if !ok {
		st = &stream{seq: -1, site: ev.Site, device: ev.Device}
		s.streams[ev.StreamID] = st
	}
	return st
}

func (s *Service) failed(segmentID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts[segmentID]++
	return s.attempts[segmentID]
}

func (s *Service) forget(segmentID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.attempts, segmentID)
}

// fetch reads an object whole and checks it against its announcement.
// Bytes that differ from what ingest announced are never transcoded.
func (s *Service) fetch(ctx context.Context, key string, size int64, sha string) ([]byte, error) {
	b, err := s.get(ctx, key, size)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, bus.Permanent(fmt.Errorf("get %s: %w", key, err))
	}
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) != size || hex.EncodeToString(sum[:]) != sha {
		return nil, bus.Permanent(fmt.Errorf("object %s does not match its announcement (%d bytes, sha256 %x)", key, len(b), sum))
	}
	return b, nil
}

// maxSmallObject is the most read of an object of unknown size: a manifest
// or a detector state.
const maxSmallObject = 16 << 20

// get reads an object whole; size, when known, saves growing the buffer and
// bounds what is read.
func (s *Service) get(ctx context.Context, key string, size int64) ([]byte, error) {
	rc, err := s.bls.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	buf.Grow(int(max(size, 0)) + bytes.MinRead)
	// Never more than was announced (and one byte to tell that there was
	// more), or than a manifest or state could be.
	limit := int64(maxSmallObject)
	if size > 0 {
		limit = size + 1
	}
	if _, err := buf.ReadFrom(io.LimitReader(rc, limit)); err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return buf.Bytes(), nil
}

func (s *Service) put(ctx context.Context, key string, b []byte) error {
	if err := s.bls.Put(ctx, key, bytes.NewReader(b), int64(len(b))); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

func (s *Service) putJSON(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	return s.put(ctx, key, b)
}

func (s *Service) publish(ctx context.Context, topic, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode event for %s: %w", topic, err)
	}
	if err := s.bus.Publish(ctx, topic, key, b); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// keys are the object keys of a segment's outputs.
type keys struct {
	prefix   string // review/<site>/<device>/
	segment  string
	sprite   string
	vtt      string
	manifest string
}

func keysOf(ev *events.SegmentClosed) keys {
	prefix := fmt.Sprintf("review/%s/%s/", ev.Site, ev.Device)
	base := fmt.Sprintf("%s%s/%010d-%s", prefix, ev.Start.UTC().Format("2006-01-02"), ev.Sequence, ev.SegmentID)
	return keys{prefix: prefix, segment: base + ".m4s", sprite: base + ".jpg", vtt: base + ".vtt", manifest: base + ".json"}
}

// init returns the content-addressed key of an init segment.
func (k keys) init(b []byte) string {
	sum := sha256.Sum256(b)
	return path.Join(k.prefix, "init", hex.EncodeToString(sum[:])+".mp4")
}

func (k keys) stateKey(seq int64) string {
	return fmt.Sprintf("%sstate/%010d.json", k.prefix, seq)
}

func ref(key string, b []byte) events.ObjectRef {
	sum := sha256.Sum256(b)
	return events.ObjectRef{Key: key, Bytes: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func round3(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }
