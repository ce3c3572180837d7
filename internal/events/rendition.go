package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// Variants of a stream that players can choose from.
const (
	VariantRaw    = "raw"    // the segments as ingest recorded them
	VariantReview = "review" // the transcoder's light copy
)

// ObjectRef names a stored object and what its bytes must be.
type ObjectRef struct {
	Key    string `json:"key"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"` // hex
}

// validate checks that r names an object with a size and a hash.
func (r ObjectRef) validate(what string) error {
	if r.Key == "" || r.Bytes <= 0 || len(r.SHA256) != 64 {
		return fmt.Errorf("%s: want key, bytes and sha256", what)
	}
	return nil
}

// Rendition describes a review rendition of one segment: a CMAF fMP4
// segment with its init segment.
type Rendition struct {
	Object ObjectRef `json:"object"`
	Init   ObjectRef `json:"init"`
	// Codecs are RFC 6381 codec strings, e.g. avc1.64001e, mp4a.40.2.
	Codecs    []string `json:"codecs"`
	Width     int      `json:"width"`
	Height    int      `json:"height"`
	FrameRate float64  `json:"frame_rate"`
	// Bandwidth is the segment's bit rate, in bits per second.
	Bandwidth int64 `json:"bandwidth"`
}

// Thumbnails describes the thumbnails of one segment: a JPEG sprite of
// Tiles tiles of TileWidth×TileHeight, Columns a row, and a WebVTT fragment
// whose cues point into it with #xywh= fragments. The cue times are on the
// stream's media timeline: the segment starts at RenditionReady.MediaStart.
type Thumbnails struct {
	Sprite     ObjectRef `json:"sprite"`
	VTT        ObjectRef `json:"vtt"`
	Tiles      int       `json:"tiles"`
	Columns    int       `json:"columns"`
	TileWidth  int       `json:"tile_width"`
	TileHeight int       `json:"tile_height"`
	Interval   float64   `json:"interval"` // seconds between thumbnails
}

// RenditionReady announces what the transcoder made of a raw segment: its
// review rendition and thumbnails. It is published on TopicRenditions, keyed
// by stream id, after every object it names was stored.
type RenditionReady struct {
	SegmentID string    `json:"segment_id"` // of the raw segment
	StreamID  string    `json:"stream_id"`
	Source    string    `json:"source"`
	Site      string    `json:"site"`
	Device    string    `json:"device"`
	Sequence  int64     `json:"sequence"`
	Start     time.Time `json:"start"`    // as the raw segment's
	Duration  float64   `json:"duration"` // seconds, as the raw segment's
	// SourceSHA256 is the hash of the raw segment it was made from.
	SourceSHA256 string `json:"source_sha256"`
	// SourceWidth and SourceHeight are the raw segment's picture size.
	SourceWidth  int `json:"source_width"`
	SourceHeight int `json:"source_height"`
	// MediaStart is the segment's decode time on its stream's media
	// timeline (the tfdt of its first sample), in seconds; the rendition
	// has the same.
	MediaStart float64     `json:"media_start"`
	Variant    string      `json:"variant"` // review
	Rendition  Rendition   `json:"rendition"`
	Thumbnails *Thumbnails `json:"thumbnails,omitempty"`
	Transcoder string      `json:"transcoder"` // node
	// Done is when the transcoder finished the segment.
	Done time.Time `json:"done"`
}

// Validate checks that the event carries what consumers rely on.
func (e *RenditionReady) Validate() error {
	switch {
	case e.SegmentID == "":
		return fmt.Errorf("rendition event: missing segment_id")
	case e.Site == "" || e.Device == "" || e.StreamID != e.Site+"/"+e.Device:
		return fmt.Errorf("rendition event %s: bad stream %q", e.SegmentID, e.StreamID)
	case e.Sequence < 0:
		return fmt.Errorf("rendition event %s: negative sequence", e.SegmentID)
	case e.Start.IsZero() || e.Duration <= 0:
		return fmt.Errorf("rendition event %s: bad start or duration", e.SegmentID)
	case len(e.SourceSHA256) != 64:
		return fmt.Errorf("rendition event %s: bad source_sha256", e.SegmentID)
	case e.Variant == "":
		return fmt.Errorf("rendition event %s: missing variant", e.SegmentID)
	}
	if err := e.Rendition.Object.validate("rendition object"); err != nil {
		return fmt.Errorf("rendition event %s: %w", e.SegmentID, err)
	}
	if err := e.Rendition.Init.validate("rendition init"); err != nil {
		return fmt.Errorf("rendition event %s: %w", e.SegmentID, err)
	}
	if t := e.Thumbnails; t != nil {
		if err := t.Sprite.validate("sprite"); err != nil {
			return fmt.Errorf("rendition event %s: %w", e.SegmentID, err)
		}
		if err := t.VTT.validate("thumbnails vtt"); err != nil {
			return fmt.Errorf("rendition event %s: %w", e.SegmentID, err)
		}
		if t.Tiles < 1 || t.Columns < 1 || t.TileWidth < 1 || t.TileHeight < 1 {
			return fmt.Errorf("rendition event %s: bad thumbnail layout", e.SegmentID)
		}
	}
	return nil
}

// DecodeRenditionReady parses a JSON event and validates it.
func DecodeRenditionReady(b []byte) (*RenditionReady, error) {
	var e RenditionReady
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("decode rendition event: %w", err)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}
