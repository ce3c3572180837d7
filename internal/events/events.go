// Package events defines the messages that nokstream services exchange on the bus.
//
// Events are JSON, one topic per type, keyed by stream id so that one stream's
// events stay in order. Media never travels on the bus, only object keys.
package events

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Topic names. The suffix is the schema version.
const (
	TopicSegments     = "nokstream.segments.v1"
	TopicRenditions   = "nokstream.renditions.v1"
	TopicObservations = "nokstream.observations.v1"
	TopicRetention    = "nokstream.retention.v1"
	// TopicArchive carries what the archiver did that the registry
	// records: ObjectDeleted, SealWritten, ObjectArchived and
	// SegmentChecked (records.go), told apart by their "type".
	TopicArchive = "nokstream.archive.v1"
)

// Source kinds of a stream.
const (
	SourceRoom   = "room"
	SourceWebcam = "webcam"
	SourceScreen = "screen"
)

// SegmentClosed announces a raw fMP4 segment that ingest has stored in the blob
// store. It is published only after the segment and its init segment were
// uploaded.
type SegmentClosed struct {
	SegmentID  string    `json:"segment_id"`
	StreamID   string    `json:"stream_id"` // "<site>/<device>"
	Source     string    `json:"source"`    // room, webcam or screen
	Site       string    `json:"site"`
	Device     string    `json:"device"`
	Sequence   int64     `json:"sequence"`   // 0-based, contiguous per stream
	Start      time.Time `json:"start"`      // wall clock of the first sample
	Duration   float64   `json:"duration"`   // seconds
	Codecs     []string  `json:"codecs"`     // RFC 6381 codec strings, e.g. avc1.64001f, mp4a.40.2, opus
	Bytes      int64     `json:"bytes"`      // size of the segment object
	SHA256     string    `json:"sha256"`     // hex SHA-256 of the segment object
	PrevChain  string    `json:"prev_chain"` // chain value of the previous segment of the stream (64 zeros for the first)
	Chain      string    `json:"chain"`      // hex SHA-256(prev_chain bytes || sha256 bytes)
	ObjectKey  string    `json:"object_key"`
	InitKey    string    `json:"init_key"`
	InitSHA256 string    `json:"init_sha256"`
	InitBytes  int64     `json:"init_bytes"`
	IngestNode string    `json:"ingest_node"`
	// Discontinuity is set on the first segment after the stream was
	// interrupted (new publisher session, codec change, restart).
	Discontinuity bool `json:"discontinuity,omitempty"`
	// Salvaged is set on a segment recovered from the spool after a crash,
	// cut at its last complete part.
	Salvaged bool `json:"salvaged,omitempty"`
	// Independent is false for a segment that does not start on a
	// keyframe: ingest cut it at a size or duration limit (a publisher
	// that sent no keyframe for that long), and it plays only after its
	// predecessor. Absent means true, as in events from before it existed.
	Independent *bool `json:"independent,omitempty"`
}

// IsIndependent reports whether the segment starts on a keyframe and plays
// on its own (Independent absent or true).
func (e *SegmentClosed) IsIndependent() bool { return e.Independent == nil || *e.Independent }

// Validate checks that the event carries what consumers rely on.
func (e *SegmentClosed) Validate() error {
	switch {
	case e.SegmentID == "":
		return fmt.Errorf("segment event: missing segment_id")
	case e.Site == "" || e.Device == "" || e.StreamID != e.Site+"/"+e.Device:
		return fmt.Errorf("segment event %s: bad stream %q", e.SegmentID, e.StreamID)
	case e.Sequence < 0:
		return fmt.Errorf("segment event %s: negative sequence", e.SegmentID)
	case len(e.SHA256) != 64 || len(e.Chain) != 64:
		return fmt.Errorf("segment event %s: bad sha256 or chain", e.SegmentID)
	case e.ObjectKey == "" || e.InitKey == "":
		return fmt.Errorf("segment event %s: missing object keys", e.SegmentID)
	case e.Start.IsZero() || e.Duration <= 0:
		return fmt.Errorf("segment event %s: bad start or duration", e.SegmentID)
	}
	// Lengths and text the index can hold: a field it cannot store would
	// fail the database's insert of the whole batch, again at every retry.
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"segment_id", e.SegmentID, 128}, {"site", e.Site, 128}, {"device", e.Device, 128}, {"source", e.Source, 32},
		{"sha256", e.SHA256, 64}, {"chain", e.Chain, 64}, {"prev_chain", e.PrevChain, 128},
		{"object_key", e.ObjectKey, MaxObjectKey}, {"init_key", e.InitKey, MaxObjectKey},
		{"init_sha256", e.InitSHA256, 128}, {"ingest_node", e.IngestNode, 255},
	} {
		if err := checkText(f.name, f.v, f.max); err != nil {
			return fmt.Errorf("segment event %.128q: %w", e.SegmentID, err)
		}
	}
	if len(e.Codecs) > 16 {
		return fmt.Errorf("segment event %.128q: %d codecs, at most 16", e.SegmentID, len(e.Codecs))
	}
	for _, c := range e.Codecs {
		if err := checkText("codec", c, 64); err != nil {
			return fmt.Errorf("segment event %.128q: %w", e.SegmentID, err)
		}
	}
	return nil
}

// SegmentObjectKey is the object key ingest stores a segment under:
// raw/<site>/<device>/<UTC date of its start>/<sequence, ten digits>-<id>.m4s.
// The registry's index derives it from those fields rather than store it
// (migration 00120's segment_object_key), and stores only a key of
// another form.
func SegmentObjectKey(site, device string, start time.Time, sequence int64, segmentID string) string {
	return string(AppendSegmentObjectKey(nil, site+"/"+device, start, sequence, segmentID))
}

// AppendSegmentObjectKey appends SegmentObjectKey of stream <site>/<device>
// to b, without allocating when b has room (the registry derives a key for
// every row of a playlist).
func AppendSegmentObjectKey(b []byte, streamID string, start time.Time, sequence int64, segmentID string) []byte {
	b = append(b, "raw/"...)
	b = append(b, streamID...)
	b = append(b, '/')
	// The date as "2006-01-02" gives it, by hand where that is four
	// digits of year: AppendFormat was a tenth of a playlist's Go side.
	if y, m, d := start.UTC().Date(); y >= 1000 && y <= 9999 {
		b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-',
			byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10))
	} else {
		b = start.UTC().AppendFormat(b, "2006-01-02")
	}
	b = append(b, '/')
	var num [20]byte
	digits := strconv.AppendInt(num[:0], sequence, 10)
	if sequence >= 0 {
		for range 10 - len(digits) {
			b = append(b, '0')
		}
	}
	b = append(b, digits...)
	b = append(b, '-')
	b = append(b, segmentID...)
	return append(b, ".m4s"...)
}

// MaxObjectKey is the longest object key in bytes, S3's limit.
const MaxObjectKey = 1024

// checkText refuses a field longer than max bytes, with a NUL byte
// (PostgreSQL's text cannot hold one) or not UTF-8.
func checkText(name, v string, max int) error {
	switch {
	case len(v) > max:
		return fmt.Errorf("%s of %d bytes, at most %d", name, len(v), max)
	case strings.IndexByte(v, 0) >= 0:
		return fmt.Errorf("%s has a NUL byte", name)
	case !utf8.ValidString(v):
		return fmt.Errorf("%s is not UTF-8", name)
	}
	return nil
}

// DecodeSegmentClosed parses a JSON event and validates it.
func DecodeSegmentClosed(b []byte) (*SegmentClosed, error) {
	var e SegmentClosed
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("decode segment event: %w", err)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}
