// Package spool keeps segments durably on local disk between the segmenter
// and the blob store.
//
// Layout under the spool directory:
//
//	init/<sha256>.mp4        init segments, content-addressed
//	open/<id>.json, <id>.m4s a segment being written; parts are appended and fsync'd
//	ready/<id>.m4s, <id>.json a closed segment and its SegmentClosed event
//	streams/<site>~<device>.json the next sequence number, chain value and
//	                         time of the last media of a stream
//	obs/<ulid>.json          observations (events.Observation) waiting to be
//	                         published, in the order they were made
//
// Every file is written to a temporary name, fsync'd and renamed, except the
// open segment, which is appended to and fsync'd after every part. The event
// (ready/<id>.json) is written last: a ready segment without it is finished on
// recovery from its open meta. A segment leaves the spool only when Done is
// called, after it was uploaded and announced; an observation only when
// ObservationDone is called, after it was published.
//
// Nothing in the spool is ever deleted before it was shipped: a full disk
// fails the writes (the transport then stops the publisher), it never makes
// room by dropping evidence.
package spool

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/nokstream/nokstream/ingest/segmenter"
	"github.com/nokstream/nokstream/internal/atomicfile"
	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/chain"
)

// openMeta is what is known of a segment when it is opened.
type openMeta struct {
	SegmentID     string    `json:"segment_id"`
	Site          string    `json:"site"`
	Device        string    `json:"device"`
	Source        string    `json:"source"`
	Start         time.Time `json:"start"`
	InitSHA256    string    `json:"init_sha256"`
	InitBytes     int64     `json:"init_bytes"`
	Codecs        []string  `json:"codecs"`
	Discontinuity bool      `json:"discontinuity"`
	// NotIndependent: the segment does not start on a keyframe (cut at a
	// size or duration limit). Absent in spools written before it.
	NotIndependent bool `json:"not_independent,omitempty"`
}

type streamState struct {
	NextSequence int64  `json:"next_sequence"`
	Chain        string `json:"chain"`
	// LastMedia is the wall clock of the stream's last media that the
	// spool knows of: the end of its last segment, or the last packet of
	// its last session. The next session's gap is measured from it.
	LastMedia time.Time `json:"last_media,omitzero"`
}

// Pending is a closed segment waiting to be uploaded and announced.
type Pending struct {
	Event       events.SegmentClosed
	SegmentPath string
	InitPath    string
	ClosedAt    time.Time
}

// Spool is a durable local queue of segments.
type Spool struct {
	dir  string
	node string
	log  *slog.Logger
	now  func() time.Time

	mu      sync.Mutex
	streams map[string]*streamState
	entropy io.Reader
	notify  chan struct{}

	// used is the bytes of every file in the spool, for the quota.
	used atomic.Int64
	m    *Metrics
}

// Open opens (creating if needed) a spool directory and recovers what a crash
// left: open segments are salvaged up to their last complete part, ready
// segments without an event are finished.
func Open(dir, node string, log *slog.Logger, now func() time.Time) (*Spool, error) {
	for _, d := range []string{"init", "open", "ready", "streams", "obs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			return nil, fmt.Errorf("open spool: %w", err)
		}
	}
	s := &Spool{
		dir:     dir,
		node:    node,
		log:     log,
		now:     now,
		streams: map[string]*streamState{},
		entropy: ulid.Monotonic(rand.Reader, 0),
		notify:  make(chan struct{}, 1),
	}
	if err := s.recover(); err != nil {
		return nil, fmt.Errorf("recover spool %s: %w", dir, err)
	}
	used, err := dirSize(dir)
	if err != nil {
		return nil, fmt.Errorf("measure spool %s: %w", dir, err)
	}
	s.used.Store(used)
	return s, nil
}

// Used returns the bytes the spool holds on disk (segments open and ready,
// init segments, events, observations).
func (s *Spool) Used() int64 { return s.used.Load() }

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n, err
}

// Notify returns a channel that receives a value when a segment is ready.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

func (s *Spool) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Stream returns the segmenter output of one stream.
func (s *Spool) Stream(site, device, source string) *Stream {
	return &Stream{s: s, site: site, device: device, source: source}
}

// Stream writes the segments of one stream into the spool.
type Stream struct {
	s                    *Spool
	site, device, source string
}

// OpenSegment implements segmenter.Output.
func (st *Stream) OpenSegment(h segmenter.Header) (segmenter.SegmentWriter, error) {
	s := st.s
	initSum := sha256.Sum256(h.Init)
	initSHA := hex.EncodeToString(initSum[:])
	initPath := filepath.Join(s.dir, "init", initSHA+".mp4")
	if _, err := os.Stat(initPath); errors.Is(err, fs.ErrNotExist) {
		if err := atomicfile.WriteFile(initPath, h.Init, 0o600); err != nil {
			return nil, fmt.Errorf("spool init: %w", err)
		}
		s.used.Add(int64(len(h.Init)))
	}
	s.mu.Lock()
	id, err := ulid.New(ulid.Timestamp(s.now()), s.entropy)
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("segment id: %w", err)
	}
	m := openMeta{
		SegmentID:      id.String(),
		Site:           st.site,
		Device:         st.device,
		Source:         st.source,
		Start:          h.Start.UTC(),
		InitSHA256:     initSHA,
		InitBytes:      int64(len(h.Init)),
		Codecs:         h.Codecs,
		Discontinuity:  h.Discontinuity,
		NotIndependent: h.NotIndependent,
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(s.path("open", m.SegmentID+".json"), b, 0o600); err != nil {
		return nil, fmt.Errorf("spool open meta: %w", err)
	}
	f, err := os.OpenFile(s.path("open", m.SegmentID+".m4s"), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool open segment: %w", err)
	}
	return &segmentWriter{s: s, meta: m, f: f, h: sha256.New()}, nil
}

type segmentWriter struct {
	s    *Spool
	meta openMeta
	f    *os.File
	h    hash.Hash
	size int64
}

// WritePart appends a fragment and fsyncs it: after a crash, the segment is
// recovered up to its last complete part.
func (w *segmentWriter) WritePart(b []byte) error {
	if _, err := w.f.Write(b); err != nil {
		return fmt.Errorf("spool write %s: %w", w.meta.SegmentID, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("spool sync %s: %w", w.meta.SegmentID, err)
	}
	w.h.Write(b)
	w.size += int64(len(b))
	w.s.used.Add(int64(len(b)))
	if w.s.m != nil {
		w.s.m.bytesIn.Add(float64(len(b)))
	}
	return nil
}

func (w *segmentWriter) Close(d time.Duration) error {
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("spool close %s: %w", w.meta.SegmentID, err)
	}
	if w.size == 0 {
		return w.s.discardOpen(w.meta.SegmentID)
	}
	return w.s.finish(w.meta, hex.EncodeToString(w.h.Sum(nil)), w.size, d, false)
}

func (s *Spool) path(parts ...string) string {
	return filepath.Join(append([]string{s.dir}, parts...)...)
}

func streamFile(site, device string) string { return site + "~" + device + ".json" }

func (s *Spool) stateLocked(site, device string) (*streamState, error) {
	key := site + "/" + device
	if st, ok := s.streams[key]; ok {
		return st, nil
	}
	st := &streamState{Chain: chain.Zero}
	b, err := os.ReadFile(s.path("streams", streamFile(site, device)))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, st); err != nil {
			return nil, fmt.Errorf("stream state %s: %w", key, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("stream state %s: %w", key, err)
	}
	s.streams[key] = st
	return st, nil
}

// finish gives a closed segment its sequence number and chain value and
// moves it to ready/. Order matters for crash safety: the data moves first,
// then the event is written, then the open meta removed, then the stream
// state saved; recovery takes the highest sequence from events and state.
func (s *Spool) finish(m openMeta, sha string, size int64, d time.Duration, salvaged bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stateLocked(m.Site, m.Device)
	if err != nil {
		return err
	}
	value, err := chain.Next(st.Chain, sha)
	if err != nil {
		return err
	}
	seq := st.NextSequence
	ev := events.SegmentClosed{
		SegmentID:     m.SegmentID,
		StreamID:      m.Site + "/" + m.Device,
		Source:        m.Source,
		Site:          m.Site,
		Device:        m.Device,
		Sequence:      seq,
		Start:         m.Start,
		Duration:      d.Seconds(),
		Codecs:        m.Codecs,
		Bytes:         size,
		SHA256:        sha,
		PrevChain:     st.Chain,
		Chain:         value,
		ObjectKey:     events.SegmentObjectKey(m.Site, m.Device, m.Start, seq, m.SegmentID),
		InitKey:       fmt.Sprintf("raw/%s/%s/init/%s.mp4", m.Site, m.Device, m.InitSHA256),
		InitSHA256:    m.InitSHA256,
		InitBytes:     m.InitBytes,
		IngestNode:    s.node,
		Discontinuity: m.Discontinuity,
		Salvaged:      salvaged,
	}
	if m.NotIndependent {
		ev.Independent = new(bool)
	}
	if err := os.Rename(s.path("open", m.SegmentID+".m4s"), s.path("ready", m.SegmentID+".m4s")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool move %s: %w", m.SegmentID, err)
	}
	if err := atomicfile.SyncDir(s.path("ready")); err != nil {
		return err
	}
	b, err := json.Marshal(pendingFile{Event: ev, ClosedAt: s.now().UTC()})
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(s.path("ready", m.SegmentID+".json"), b, 0o600); err != nil {
		return fmt.Errorf("spool event %s: %w", m.SegmentID, err)
	}
	s.used.Add(int64(len(b)))
	if err := os.Remove(s.path("open", m.SegmentID+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool remove open meta %s: %w", m.SegmentID, err)
	}
	st.NextSequence = seq + 1
	st.Chain = value
	if end := m.Start.Add(d); end.After(st.LastMedia) {
		st.LastMedia = end.UTC()
	}
	if err := s.saveStateLocked(m.Site, m.Device, st); err != nil {
		return err
	}
	if s.m != nil {
		s.m.segmentsIn.Inc()
	}
	s.log.Debug("segment closed", "stream", ev.StreamID, "segment_id", ev.SegmentID, "sequence", seq,
		"duration_s", ev.Duration, "bytes", size, "salvaged", salvaged)
	s.wake()
	return nil
}

func (s *Spool) saveStateLocked(site, device string, st *streamState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(s.path("streams", streamFile(site, device)), b, 0o600); err != nil {
		return fmt.Errorf("save stream state %s/%s: %w", site, device, err)
	}
	return nil
}

func (s *Spool) discardOpen(id string) error {
	for _, ext := range []string{".m4s", ".json"} {
		if err := os.Remove(s.path("open", id+ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("discard empty segment %s: %w", id, err)
		}
	}
	return nil
}

type pendingFile struct {
	Event    events.SegmentClosed `json:"event"`
	ClosedAt time.Time            `json:"closed_at"`
}

// Pending lists the closed segments that were not yet Done, oldest first;
// within a stream, in sequence order.
func (s *Spool) Pending() ([]Pending, error) {
	entries, err := os.ReadDir(s.path("ready"))
	if err != nil {
		return nil, fmt.Errorf("list spool: %w", err)
	}
	var out []Pending
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		b, err := os.ReadFile(s.path("ready", name))
		if err != nil {
			return nil, fmt.Errorf("read spool event %s: %w", name, err)
		}
		var pf pendingFile
		if err := json.Unmarshal(b, &pf); err != nil {
			return nil, fmt.Errorf("parse spool event %s: %w", name, err)
		}
		out = append(out, Pending{
			Event:       pf.Event,
			SegmentPath: s.path("ready", pf.Event.SegmentID+".m4s"),
			InitPath:    s.path("init", pf.Event.InitSHA256+".mp4"),
			ClosedAt:    pf.ClosedAt,
		})
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Event, out[j].Event
		if a.StreamID == b.StreamID {
			return a.Sequence < b.Sequence
		}
		return out[i].ClosedAt.Before(out[j].ClosedAt)
	})
	return out, nil
}

// Done removes a segment that was uploaded and announced.
func (s *Spool) Done(segmentID string) error {
	for _, ext := range []string{".m4s", ".json"} {
		if fi, err := os.Stat(s.path("ready", segmentID+ext)); err == nil {
			s.used.Add(-fi.Size())
		}
	}
	// The event goes last so that a crash in between leaves a pending
	// segment that is re-sent (idempotently), never a lost one.
	if err := os.Remove(s.path("ready", segmentID+".m4s")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool done %s: %w", segmentID, err)
	}
	if err := os.Remove(s.path("ready", segmentID+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool done %s: %w", segmentID, err)
	}
	return nil
}

// recover finishes what a crash interrupted.
func (s *Spool) recover() error {
	// Stream states: the highest of the saved state and the ready events.
	pend, err := s.Pending()
	if err != nil {
		return err
	}
	for _, p := range pend {
		st, err := s.stateLocked(p.Event.Site, p.Event.Device)
		if err != nil {
			return err
		}
		if p.Event.Sequence >= st.NextSequence {
			st.NextSequence = p.Event.Sequence + 1
			st.Chain = p.Event.Chain
			if err := s.saveStateLocked(p.Event.Site, p.Event.Device, st); err != nil {
				return err
			}
		}
	}
	entries, err := os.ReadDir(s.path("open"))
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		id := strings.TrimSuffix(name, ".json")
		b, err := os.ReadFile(s.path("open", name))
		if err != nil {
			return err
		}
		var m openMeta
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("open meta %s: %w", name, err)
		}
		if err := s.salvage(m); err != nil {
			return fmt.Errorf("salvage %s: %w", id, err)
		}
	}
	return nil
}

// salvage finishes a segment that was open during a crash: it may already
// have moved to ready/ (crash during finish), or be cut at its last complete
// part.
func (s *Spool) salvage(m openMeta) error {
	if _, err := os.Stat(s.path("ready", m.SegmentID+".json")); err == nil {
		// Finished but for removing the open meta.
		return s.discardOpen(m.SegmentID)
	}
	path := s.path("open", m.SegmentID+".m4s")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		path = s.path("ready", m.SegmentID+".m4s")
	}
	var mtime time.Time
	if fi, err := os.Stat(path); err == nil {
		mtime = fi.ModTime()
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s.discardOpen(m.SegmentID)
	}
	if err != nil {
		return err
	}
	n := completeFragments(b)
	if n == 0 {
		s.log.Warn("discarding open segment with no complete part", "segment_id", m.SegmentID, "stream", m.Site+"/"+m.Device)
		if err := os.Remove(path); err != nil {
			return err
		}
		return s.discardOpen(m.SegmentID)
	}
	salvaged := n < len(b)
	if salvaged {
		if err := os.Truncate(path, int64(n)); err != nil {
			return err
		}
		b = b[:n]
	}
	init, err := os.ReadFile(s.path("init", m.InitSHA256+".mp4"))
	if err != nil {
		return fmt.Errorf("init of %s: %w", m.SegmentID, err)
	}
	d, err := segmenter.MediaDuration(init, b)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	if path != s.path("open", m.SegmentID+".m4s") {
		// Already in ready/: finish only writes the event.
		if err := os.Rename(path, s.path("open", m.SegmentID+".m4s")); err != nil {
			return err
		}
	}
	s.log.Warn("salvaged segment after crash", "segment_id", m.SegmentID, "stream", m.Site+"/"+m.Device,
		"bytes", n, "cut_bytes", len(b)-n, "duration_s", d.Seconds())
	if err := s.finish(m, hex.EncodeToString(sum[:]), int64(n), d, true); err != nil {
		return err
	}
	// The observation spans what was lost: from the end of the salvaged
	// media to the last write before the crash.
	end := m.Start.Add(d)
	lost := end
	if mtime.After(lost) {
		lost = mtime
	}
	o := events.Observation{
		StreamID: m.Site + "/" + m.Device, Site: m.Site, Device: m.Device,
		Kind: events.ObsSalvaged, Start: end.UTC(), End: lost.UTC(), Measure: lost.Sub(end).Seconds(),
		Detail:   fmt.Sprintf("segment salvaged after a crash: %.3f s kept, %d bytes of an incomplete part cut", d.Seconds(), len(b)-n),
		Reporter: "ingest", SegmentID: m.SegmentID,
	}
	o.ObservationID = events.NewObservationID(o.StreamID, o.Kind, o.Reporter, o.Start)
	return s.Observe(o)
}

// completeFragments returns the length of the prefix of b made of complete
// top-level boxes ending with an mdat (moof+mdat pairs).
func completeFragments(b []byte) int {
	pos, good := 0, 0
	for pos+8 <= len(b) {
		size := int(binary.BigEndian.Uint32(b[pos:]))
		typ := b[pos+4 : pos+8]
		if size == 1 && pos+16 <= len(b) {
			size = int(binary.BigEndian.Uint64(b[pos+8:]))
		}
		if size < 8 || pos+size > len(b) {
			break
		}
		pos += size
		if bytes.Equal(typ, []byte("mdat")) {
			good = pos
		}
	}
	return good
}
