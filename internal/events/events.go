// Package events defines the messages that nokstream services exchange on the bus.
//
// Events are JSON, one topic per type, keyed by stream id so that one stream's
// events stay in order. Media never travels on the bus, only object keys.
package events

import (
	"encoding/json"
	"fmt"
	"time"
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
