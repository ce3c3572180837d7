// Package segmenter cuts timestamped access units into keyframe-aligned
// fragmented MP4 (CMAF, ISO/IEC 23000-19) segments without decoding them.
//
// A Segmenter is fed samples of one or more tracks (the transport, RTSP or
// WHIP, has already depacketized RTP and computed timestamps). It writes one
// init segment per codec configuration and media segments that start on a
// video sync sample and last about Config.SegmentDuration (longer when
// keyframes are sparse, but never longer than Config.MaxSegmentDuration or
// larger than Config.MaxSegmentBytes: past either limit a segment is cut
// whatever the keyframes, and the next one, which does not start on a
// keyframe, is marked not independent: it plays only after its
// predecessor). A session above Config.MaxBitrate is refused with
// ErrBitrate, so that one publisher cannot fill the spool. Each segment is written as a series of parts
// (moof+mdat pairs) of about Config.PartDuration, so that the spool can fsync
// the open segment at least every part and lose at most one part on a crash.
//
// Decode timestamps in the fragments (tfdt) are continuous for the whole
// publisher session, so consecutive segments of one session play back to back
// with one init; a new session or a codec change starts a new init and is
// marked as a discontinuity.
package segmenter

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

// ErrWaitingKeyframe is returned when a video writer lost its way in the
// stream (a decode-order error after packet loss): it drops what follows
// until the next keyframe, which a publisher that can be asked for one
// (WebRTC PLI) should be asked for at once.
var ErrWaitingKeyframe = errors.New("waiting for the next keyframe")

// ErrTimestampBack is returned when a sample's decode timestamp is not after
// the previous sample of its track. The sample is dropped.
var ErrTimestampBack = errors.New("decode timestamp went back")

// ErrBitrate is returned, wrapped in a *BitrateError, when a session sends
// more than Config.MaxBitrate: the transport ends the session and says why.
var ErrBitrate = errors.New("session above the bitrate cap")

// BitrateError says how fast a session sent, over which media time.
type BitrateError struct {
	Bitrate, Cap int64 // bits per second
	Over         time.Duration
}

func (e *BitrateError) Error() string {
	return fmt.Sprintf("%s: %.1f Mbit/s over %s, the cap is %.1f Mbit/s", ErrBitrate, float64(e.Bitrate)/1e6,
		e.Over, float64(e.Cap)/1e6)
}

// Unwrap returns ErrBitrate.
func (e *BitrateError) Unwrap() error { return ErrBitrate }

// ErrCodec is returned, wrapped, for a codec configuration that cannot be
// used (for example an H.264 SPS that does not parse). The sample is dropped.
var ErrCodec = errors.New("bad codec configuration")

// ErrCodecChanges is returned when a session changes a track's codec
// configuration more than maxCodecChanges times within codecChangeWindow:
// each change cuts a segment and writes a new init, so a publisher whose
// parameter sets flip at every keyframe would make a segment of every
// frame (a file, an fsync and an event each). The change is applied; the
// transport ends the session and says why.
var ErrCodecChanges = errors.New("codec configuration changes too often")

// A resolution that adapts to the network (WebRTC senders) changes the
// configuration every few seconds at worst.
const (
	maxCodecChanges   = 30
	codecChangeWindow = time.Minute
)

// OutputError wraps a failure of the Output (the spool): the media was fine
// but could not be stored. Transports stop the publisher on it.
type OutputError struct{ Err error }

func (e *OutputError) Error() string { return "store segment: " + e.Err.Error() }

// Unwrap returns the Output's error.
func (e *OutputError) Unwrap() error { return e.Err }

// dtsShift keeps tfdt positive: with B-frames the first decode timestamps of
// a session may be slightly negative. It is applied to every track alike so
// the tracks stay in sync.
const dtsShift = 10 * time.Second

// maxPartBytes bounds the memory held for one part.
const maxPartBytes = 32 << 20

// keptPartBuf is the largest part buffer a segmenter keeps for the next
// part: a second of the highest bitrates a site sends, with room to spare.
const keptPartBuf = 4 << 20

// The hard limits of a segment, whatever the configuration and the
// keyframes.
const (
	LimitSegmentDuration = 60 * time.Second
	LimitSegmentBytes    = 256 << 20
)

// bitrateWindow is the media time over which a session's bitrate is
// measured against Config.MaxBitrate: long enough that a keyframe burst
// does not count as a high bitrate.
const bitrateWindow = 5 * time.Second

// Config sets segment and part durations and the limits of a session.
// A zero field takes its DefaultConfig value.
type Config struct {
	// SegmentDuration is the target: a segment is cut at the first video
	// keyframe after it.
	SegmentDuration time.Duration `yaml:"segment_duration"`
	PartDuration    time.Duration `yaml:"part_duration"`
	// MaxSegmentDuration and MaxSegmentBytes cut a segment whatever the
	// keyframes (at most 60 s and 256 MiB).
	MaxSegmentDuration time.Duration `yaml:"max_segment_duration"`
	MaxSegmentBytes    int64         `yaml:"max_segment_bytes"`
	// MaxBitrate is the most a session may send, in bits per second over
	// 5 s of media; -1 sets no cap.
	MaxBitrate int64 `yaml:"max_bitrate"`
	// UnrecordedAfter is how long a track's media may keep arriving with
	// none of it recorded (parameter sets that do not parse and none in
	// band, no keyframe, every frame refused) before the transport reports
	// it on the stream's timeline (Progress); 15 s by default, longer than
	// a camera's keyframe interval.
	UnrecordedAfter time.Duration `yaml:"unrecorded_after"`
}

// DefaultConfig returns 6 s segments of 1 s parts, cut at 60 s or 256 MiB
// whatever the keyframes, and a cap of 40 Mbit/s per session.
func DefaultConfig() Config {
	return Config{SegmentDuration: 6 * time.Second, PartDuration: time.Second,
		MaxSegmentDuration: LimitSegmentDuration, MaxSegmentBytes: LimitSegmentBytes, MaxBitrate: 40_000_000,
		UnrecordedAfter: 15 * time.Second}
}

// withDefaults fills the zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxSegmentDuration == 0 {
		c.MaxSegmentDuration = d.MaxSegmentDuration
	}
	if c.MaxSegmentBytes == 0 {
		c.MaxSegmentBytes = d.MaxSegmentBytes
	}
	if c.MaxBitrate == 0 {
		c.MaxBitrate = d.MaxBitrate
	}
	if c.UnrecordedAfter == 0 {
		c.UnrecordedAfter = d.UnrecordedAfter
	}
	return c
}

// Validate checks the durations and limits.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.SegmentDuration < time.Second || c.SegmentDuration > LimitSegmentDuration {
		return fmt.Errorf("segment duration %s: must be between 1s and 60s", c.SegmentDuration)
	}
	if c.PartDuration < 100*time.Millisecond || c.PartDuration > c.SegmentDuration {
		return fmt.Errorf("part duration %s: must be between 100ms and the segment duration", c.PartDuration)
	}
	if c.MaxSegmentDuration < c.SegmentDuration || c.MaxSegmentDuration > LimitSegmentDuration {
		return fmt.Errorf("max segment duration %s: must be between the segment duration and 60s", c.MaxSegmentDuration)
	}
	if c.MaxSegmentBytes < 1<<20 || c.MaxSegmentBytes > LimitSegmentBytes {
		return fmt.Errorf("max segment bytes %d: must be between 1 MiB and 256 MiB", c.MaxSegmentBytes)
	}
	if c.MaxBitrate < -1 || (c.MaxBitrate > 0 && c.MaxBitrate < 1_000_000) {
		return fmt.Errorf("max bitrate %d: must be at least 1 Mbit/s, or -1 for no cap", c.MaxBitrate)
	}
	if c.UnrecordedAfter < time.Second || c.UnrecordedAfter > 10*time.Minute {
		return fmt.Errorf("unrecorded after %s: must be between 1s and 10m", c.UnrecordedAfter)
	}
	return nil
}

// Track describes one elementary stream.
type Track struct {
	Codec     mp4.Codec
	TimeScale uint32 // clock rate of the timestamps passed to WriteSample
}

// Header describes a segment when it is opened.
type Header struct {
	Start         time.Time // wall clock of the first sample
	Init          []byte    // the init segment (ftyp+moov) the segment needs
	Codecs        []string  // RFC 6381 codec strings of the tracks
	Discontinuity bool      // first segment of a session or after a codec change
	// NotIndependent is set on a segment cut at a size or duration limit
	// without a keyframe: it does not start on one, and plays only after
	// its predecessor.
	NotIndependent bool
}

// SegmentWriter receives the parts of one open segment.
type SegmentWriter interface {
	// WritePart appends one moof+mdat fragment and makes it durable. b is
	// the segmenter's, reused for the next part: copy what is kept.
	WritePart(b []byte) error
	// Close finishes the segment. duration is its media duration.
	Close(duration time.Duration) error
}

// Output opens segments.
type Output interface {
	OpenSegment(h Header) (SegmentWriter, error)
}

type sample struct {
	fmp4.Sample
	dts int64 // shifted, in the track's timescale
}

type track struct {
	id      int
	codec   mp4.Codec
	scale   uint32
	video   bool
	next    *sample // held until the following sample gives its duration
	samples int64   // taken so far
	lastDur uint32
	lastDTS int64
	started bool
}

type segment struct {
	w        SegmentWriter
	startPTS time.Duration // of the sync sample that opened it
	startDTS time.Duration // on the session timeline
	endDTS   time.Duration
	part     map[*track]*fmp4.PartTrack
	order    []*track
	partDTS  time.Duration
	partSize int
	bytes    int64 // payload bytes so far
}

// Segmenter cuts one publisher session into segments. It is not safe for
// concurrent use: the caller serializes calls.
type Segmenter struct {
	cfg    Config
	out    Output
	now    func() time.Time
	tracks []*track
	video  *track

	wall0         time.Time // wall clock at session DTS 0
	init          []byte
	initDirty     bool
	discontinuity bool
	cur           *segment
	partSeq       uint32
	partBuf       []byte            // the part being written, reused
	partTracks    []*fmp4.PartTrack // the tracks of the part being written, reused
	closed        bool
	onCodec       func(track int, codec string)
	codecChanges  []time.Time // of the changes within codecChangeWindow

	// The session's bitrate over the current window of media time.
	rateStart time.Duration
	rateBytes int64
	rateOpen  bool
}

// OnCodecChange sets a function called when a track's codec configuration
// changes mid-session (a new init segment follows), so that the transport
// can log why the stream starts a new init.
func (s *Segmenter) OnCodecChange(fn func(track int, codec string)) { s.onCodec = fn }

// New returns a Segmenter for a session with the given tracks. Nothing is
// written until the first sample (the first video sync sample when there is
// video).
func New(cfg Config, tracks []Track, out Output, now func() time.Time) (*Segmenter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if len(tracks) == 0 {
		return nil, fmt.Errorf("new segmenter: no tracks")
	}
	s := &Segmenter{cfg: cfg, out: out, now: now, initDirty: true, discontinuity: true}
	for i, t := range tracks {
		if t.TimeScale == 0 {
			return nil, fmt.Errorf("new segmenter: track %d has no time scale", i)
		}
		tr := &track{id: i + 1, codec: t.Codec, scale: t.TimeScale, video: t.Codec.IsVideo()}
		s.tracks = append(s.tracks, tr)
		if tr.video && s.video == nil {
			s.video = tr
		}
	}
	return s, nil
}

// SetCodec changes the codec configuration of a track (for example new
// H.264 parameter sets). The open segment is closed and the next one starts
// with a new init segment, as a discontinuity.
//
// A session that changes codec configurations more than 30 times a minute
// gets ErrCodecChanges (wrapped) after the change: it should be ended.
func (s *Segmenter) SetCodec(trackIndex int, c mp4.Codec) error {
	tr := s.tracks[trackIndex]
	changed := tr.started
	if s.onCodec != nil && changed {
		s.onCodec(trackIndex, CodecString(c))
	}
	tr.codec = c
	s.initDirty = true
	if err := s.flushHeld(); err != nil {
		return err
	}
	if err := s.closeSegment(); err != nil {
		return err
	}
	s.discontinuity = true
	if !changed {
		return nil
	}
	now := s.now()
	kept := s.codecChanges[:0]
	for _, t := range s.codecChanges {
		if now.Sub(t) < codecChangeWindow {
			kept = append(kept, t)
		}
	}
	s.codecChanges = append(kept, now)
	if n := len(s.codecChanges); n > maxCodecChanges {
		return fmt.Errorf("%w: %d changes within %s, at most %d are taken", ErrCodecChanges, n, codecChangeWindow, maxCodecChanges)
	}
	return nil
}

// Codec returns the current codec of a track.
func (s *Segmenter) Codec(trackIndex int) mp4.Codec { return s.tracks[trackIndex].codec }

// WriteSample adds one sample to a track. dts is the decode timestamp in the
// track's timescale on the session timeline shared by all tracks (it may be
// slightly negative at the start), ptsOffset is PTS-DTS, payload is the
// sample in MP4 form (AVCC for H.264, raw AU for AAC and Opus).
func (s *Segmenter) WriteSample(trackIndex int, dts int64, ptsOffset int32, sync bool, payload []byte) error {
	if s.closed {
		return fmt.Errorf("write sample: segmenter closed")
	}
	tr := s.tracks[trackIndex]
	shifted := dts + durationToTicks(dtsShift, tr.scale)
	if shifted < 0 {
		return fmt.Errorf("write sample: %w: dts %d before session start", ErrTimestampBack, dts)
	}
	if tr.started && shifted <= tr.lastDTS {
		return fmt.Errorf("write sample on track %d: %w (%d after %d)", tr.id, ErrTimestampBack, shifted, tr.lastDTS)
	}
	if s.wall0.IsZero() {
		s.wall0 = s.now().Add(-ticksToDuration(dts, tr.scale))
	}
	tr.started = true
	tr.lastDTS = shifted
	smp := &sample{Sample: fmp4.Sample{PTSOffset: ptsOffset, IsNonSyncSample: !sync, Payload: payload}, dts: shifted}
	tr.samples++
	prev := tr.next
	tr.next = smp
	if prev == nil {
		return nil
	}
	prev.Duration = uint32(shifted - prev.dts)
	tr.lastDur = prev.Duration
	return s.write(tr, prev)
}

// Close writes what is held and closes the open segment.
func (s *Segmenter) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.flushHeld(); err != nil {
		return err
	}
	return s.closeSegment()
}

// flushHeld writes each track's held sample with the duration of the
// sample before it.
func (s *Segmenter) flushHeld() error {
	for _, tr := range s.tracks {
		if tr.next == nil {
			continue
		}
		smp := tr.next
		tr.next = nil
		smp.Duration = tr.lastDur
		if smp.Duration == 0 {
			smp.Duration = 1
		}
		if err := s.write(tr, smp); err != nil {
			return err
		}
	}
	return nil
}

func (s *Segmenter) write(tr *track, smp *sample) error {
	dts := ticksToDuration(smp.dts, tr.scale)
	// Cut decisions compare presentation times of sync samples: decode
	// times of the first frames of a session are not yet reordered.
	pts := ticksToDuration(smp.dts+int64(smp.PTSOffset), tr.scale)
	cuts := s.video == nil || tr == s.video
	if err := s.meter(dts, len(smp.Payload)); err != nil {
		return err
	}
	switch {
	case s.cur == nil:
		if !cuts || smp.IsNonSyncSample {
			// Segments start on a video sync sample: drop what comes before.
			return nil
		}
		if err := s.openSegment(dts, pts, true); err != nil {
			return err
		}
	case cuts && !smp.IsNonSyncSample && pts-s.cur.startPTS >= s.cfg.SegmentDuration:
		if err := s.closeSegment(); err != nil {
			return err
		}
		if err := s.openSegment(dts, pts, true); err != nil {
			return err
		}
	case dts-s.cur.startDTS >= s.cfg.MaxSegmentDuration || s.cur.bytes+int64(len(smp.Payload)) > s.cfg.MaxSegmentBytes:
		// A limit, whatever the keyframes: the next segment starts
		// here, on a keyframe only by chance.
		if err := s.closeSegment(); err != nil {
			return err
		}
		if err := s.openSegment(dts, pts, cuts && !smp.IsNonSyncSample); err != nil {
			return err
		}
	}
	seg := s.cur
	if len(seg.part) > 0 && (dts-seg.partDTS >= s.cfg.PartDuration || seg.partSize+len(smp.Payload) > maxPartBytes) {
		if err := s.flushPart(); err != nil {
			return err
		}
	}
	pt, ok := seg.part[tr]
	if !ok {
		if len(seg.part) == 0 {
			seg.partDTS = dts
		}
		pt = &fmp4.PartTrack{ID: tr.id, BaseTime: uint64(smp.dts)}
		seg.part[tr] = pt
		seg.order = append(seg.order, tr)
	}
	pt.Samples = append(pt.Samples, &smp.Sample)
	seg.partSize += len(smp.Payload)
	seg.bytes += int64(len(smp.Payload))
	if cuts {
		if end := dts + ticksToDuration(int64(smp.Duration), tr.scale); end > seg.endDTS {
			seg.endDTS = end
		}
	}
	return nil
}

// meter counts n bytes at dts against the session's bitrate cap, over
// windows of bitrateWindow of media time.
func (s *Segmenter) meter(dts time.Duration, n int) error {
	if s.cfg.MaxBitrate < 0 {
		return nil
	}
	// Tracks interleave a little out of decode order; only a jump back
	// by more than a window (a new timeline) restarts the count.
	if !s.rateOpen || dts < s.rateStart-bitrateWindow {
		s.rateStart, s.rateBytes, s.rateOpen = dts, 0, true
	}
	s.rateBytes += int64(n)
	over := dts - s.rateStart
	if over < bitrateWindow {
		return nil
	}
	rate := s.rateBytes * 8 * int64(time.Second) / int64(over)
	s.rateStart, s.rateBytes = dts, 0
	if rate > s.cfg.MaxBitrate {
		return &BitrateError{Bitrate: rate, Cap: s.cfg.MaxBitrate, Over: over}
	}
	return nil
}

func (s *Segmenter) openSegment(startDTS, startPTS time.Duration, independent bool) error {
	if s.initDirty {
		b, err := s.marshalInit()
		if err != nil {
			return err
		}
		s.init = b
		s.initDirty = false
	}
	h := Header{
		Start:          s.wall0.Add(startDTS - dtsShift),
		Init:           s.init,
		Codecs:         s.codecStrings(),
		Discontinuity:  s.discontinuity,
		NotIndependent: !independent,
	}
	w, err := s.out.OpenSegment(h)
	if err != nil {
		return &OutputError{fmt.Errorf("open segment: %w", err)}
	}
	s.discontinuity = false
	s.cur = &segment{w: w, startDTS: startDTS, startPTS: startPTS, endDTS: startDTS, part: map[*track]*fmp4.PartTrack{}}
	return nil
}

func (s *Segmenter) flushPart() error {
	seg := s.cur
	if len(seg.part) == 0 {
		return nil
	}
	tracks := s.partTracks[:0]
	for _, tr := range seg.order {
		tracks = append(tracks, seg.part[tr])
	}
	seq := s.partSeq
	s.partSeq++
	var err error
	s.partBuf, err = appendPart(s.partBuf[:0], seq, tracks)
	clear(tracks) // the samples are not kept alive by the next part's slice
	s.partTracks = tracks[:0]
	if err != nil {
		return fmt.Errorf("marshal part: %w", err)
	}
	clear(seg.part)
	seg.order = seg.order[:0]
	seg.partSize = 0
	err = seg.w.WritePart(s.partBuf)
	if cap(s.partBuf) > keptPartBuf {
		s.partBuf = nil // an outsized part's buffer is not kept for the session
	}
	if err != nil {
		return &OutputError{fmt.Errorf("write part: %w", err)}
	}
	return nil
}

func (s *Segmenter) closeSegment() error {
	seg := s.cur
	if seg == nil {
		return nil
	}
	err := s.flushPart()
	s.cur = nil
	if err != nil {
		return err
	}
	d := seg.endDTS - seg.startDTS
	if d <= 0 {
		d = time.Millisecond
	}
	if err := seg.w.Close(d); err != nil {
		return &OutputError{fmt.Errorf("close segment: %w", err)}
	}
	return nil
}

func (s *Segmenter) marshalInit() ([]byte, error) {
	var init fmp4.Init
	for _, tr := range s.tracks {
		init.Tracks = append(init.Tracks, &fmp4.InitTrack{ID: tr.id, TimeScale: tr.scale, Codec: tr.codec})
	}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("marshal init: %w", err)
	}
	return buf.Bytes(), nil
}

func (s *Segmenter) codecStrings() []string {
	out := make([]string, 0, len(s.tracks))
	for _, tr := range s.tracks {
		out = append(out, CodecString(tr.codec))
	}
	return out
}

// CodecString returns the RFC 6381 codec string of c.
func CodecString(c mp4.Codec) string {
	switch c := c.(type) {
	case *mp4.CodecH264:
		if len(c.SPS) >= 4 {
			return fmt.Sprintf("avc1.%02x%02x%02x", c.SPS[1], c.SPS[2], c.SPS[3])
		}
		return "avc1"
	case *mp4.CodecH265:
		return "hvc1"
	case *mp4.CodecMPEG4Audio:
		return fmt.Sprintf("mp4a.40.%d", int(c.Config.Type))
	case *mp4.CodecOpus:
		return "opus"
	case *mp4.CodecVP9:
		return vp9CodecString(c)
	case *mp4.CodecAV1:
		return av1CodecString(c)
	default:
		return fmt.Sprintf("%T", c)
	}
}

func durationToTicks(d time.Duration, scale uint32) int64 {
	return int64(d) / int64(time.Millisecond) * int64(scale) / 1000
}

func ticksToDuration(t int64, scale uint32) time.Duration {
	// Split to avoid overflow on long sessions.
	sec := t / int64(scale)
	rem := t % int64(scale)
	return time.Duration(sec)*time.Second + time.Duration(rem)*time.Second/time.Duration(scale)
}
