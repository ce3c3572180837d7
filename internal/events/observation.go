package events

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Observation kinds. Ingest reports continuity; the transcoder reports what
// it sees and hears; the archiver reports integrity.
const (
	ObsStart         = "start"          // a publisher session started
	ObsStop          = "stop"           // a publisher session ended
	ObsReconnect     = "reconnect"      // a pulled camera was reconnected
	ObsGap           = "gap"            // no media for longer than the gap threshold
	ObsOutage        = "outage"         // a pulled camera could not be reached
	ObsSalvaged      = "salvaged"       // a segment was cut short by a crash and recovered
	ObsScreenStopped = "screen_stopped" // a candidate stopped sharing the screen
	ObsBlack         = "black"          // picture black or camera covered
	ObsFrozen        = "frozen"         // picture did not change
	ObsSilent        = "silent"         // audio silent
	ObsScene         = "scene"          // sudden large scene change
	ObsUndecodable   = "undecodable"    // a segment could not be decoded
	ObsChainBreak    = "chain_break"    // the per-stream hash chain does not link
	ObsRefused       = "refused"        // a publisher was refused (bad credentials, media…)
)

// Observation is something a reviewer must see on a stream's timeline:
// published on TopicObservations, keyed by stream id.
type Observation struct {
	// ObservationID is derived from the content (see NewObservationID), so
	// that reporting the same thing twice is one observation.
	ObservationID string    `json:"observation_id"`
	StreamID      string    `json:"stream_id"`
	Site          string    `json:"site"`
	Device        string    `json:"device"`
	Kind          string    `json:"kind"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"` // equal to Start for an instant
	// Measure is the kind's figure: seconds for gap/frozen/silent, mean
	// luma for black, scene-change score for scene, 0 when none applies.
	Measure   float64 `json:"measure"`
	Detail    string  `json:"detail,omitempty"`
	Reporter  string  `json:"reporter"` // ingest, transcoder or archiver
	SegmentID string  `json:"segment_id,omitempty"`
	// Cause says, on a stop, why the session ended: CauseEnded, CauseLost
	// or CauseIngest. Empty when unknown (observations from before causes
	// were reported, and every other kind).
	Cause string `json:"cause,omitempty"`
}

// Causes of a stop observation.
const (
	// CauseEnded: the publisher ended the session on purpose (RTSP
	// TEARDOWN, WHIP DELETE), a new session of the stream replaced it, or
	// the candidate's exam window ended.
	CauseEnded = "ended"
	// CauseLost: the connection was lost, no media came, the handshake
	// timed out, or a pulled camera failed; the publisher (or ingest, for
	// a pulled camera) is expected to reconnect.
	CauseLost = "lost"
	// CauseIngest: ingest stopped or failed (its spool could not take the
	// media), not the publisher.
	CauseIngest = "ingest"
)

// NewObservationID derives an id from what identifies an observation.
func NewObservationID(streamID, kind, reporter string, start time.Time) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\n%s\n%s\n%d", streamID, kind, reporter, start.UnixNano())))
	return hex.EncodeToString(h[:16])
}

// Validate checks the fields consumers rely on.
func (o *Observation) Validate() error {
	switch {
	case o.ObservationID == "":
		return fmt.Errorf("observation: missing observation_id")
	case o.Site == "" || o.Device == "" || o.StreamID != o.Site+"/"+o.Device:
		return fmt.Errorf("observation %s: bad stream %q", o.ObservationID, o.StreamID)
	case o.Kind == "":
		return fmt.Errorf("observation %s: missing kind", o.ObservationID)
	case o.Start.IsZero() || o.End.Before(o.Start):
		return fmt.Errorf("observation %s: bad start/end", o.ObservationID)
	}
	return nil
}

// DecodeObservation parses and validates an observation.
func DecodeObservation(b []byte) (*Observation, error) {
	var o Observation
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("decode observation: %w", err)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &o, nil
}

// Reasons of a RetentionChanged event.
const (
	RetentionResultRecorded      = "result_recorded"
	RetentionCertificateIssued   = "certificate_issued"
	RetentionCertificateExtended = "certificate_extended"
	RetentionCertificateRevoked  = "certificate_revoked"
	RetentionAppealOpened        = "appeal_opened"
	RetentionAppealClosed        = "appeal_closed"
	RetentionExamChanged         = "exam_changed"
	// RetentionEvidenceDisposed: the council disposed of the evidence of
	// a candidate-exam whose result is missing (overdue evidence).
	RetentionEvidenceDisposed = "evidence_disposed"
)

// RetentionChanged tells the archiver that what a candidate's exam owes to
// its footage changed: published by the registry on TopicRetention, keyed by
// exam id. The archiver recomputes from the registry; the event carries no
// dates of its own.
type RetentionChanged struct {
	EventID     string    `json:"event_id"`
	ExamID      string    `json:"exam_id"`
	CandidateID string    `json:"candidate_id"`
	Reason      string    `json:"reason"`
	At          time.Time `json:"at"`
}
