package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// The archiver's records that the registry keeps copies of, beside
// ObjectDeleted on TopicArchive: the seals it wrote (SealWritten), the
// objects it keeps with their retention (ObjectArchived) and its checks of
// stored segments (SegmentChecked). The archiver records each in its own
// schema in the transaction of what it records, then publishes it; one not
// yet published (a crash, the bus down) is published at its next pass, so
// the registry may get one twice or late, and keeps its copy idempotently.
//
// ObjectDeleted came first and carries no type: a message on TopicArchive
// without a "type" field is an ObjectDeleted.

// Types of the messages on TopicArchive (their "type" field).
const (
	ArchiveObjectDeleted  = "object_deleted" // no "type" field on the wire
	ArchiveSealWritten    = "seal_written"
	ArchiveObjectArchived = "object_archived"
	ArchiveSegmentChecked = "segment_checked"
)

// ArchiveType returns the type of a message on TopicArchive: its "type"
// field, or ArchiveObjectDeleted for one without.
func ArchiveType(b []byte) (string, error) {
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return "", fmt.Errorf("decode archive record: %w", err)
	}
	if head.Type == nil {
		return ArchiveObjectDeleted, nil
	}
	switch *head.Type {
	case ArchiveSealWritten, ArchiveObjectArchived, ArchiveSegmentChecked:
		return *head.Type, nil
	}
	return "", fmt.Errorf("decode archive record: unknown type %q", *head.Type)
}

// SealWritten tells the registry that the archiver sealed a candidate-exam:
// version Version of its manifest and signature are in the blob store under
// ManifestKey and SignatureKey (internal/evidence/seal.Keys), covering
// Objects objects of Bytes bytes with the Merkle root MerkleRoot, signed by
// the key KeyID. Keyed by "<exam>/<candidate>".
type SealWritten struct {
	Type         string    `json:"type"` // ArchiveSealWritten
	Seq          int64     `json:"seq"`  // the archiver's record number
	ExamID       string    `json:"exam_id"`
	CandidateID  string    `json:"candidate_id"`
	Version      int       `json:"version"`
	ManifestKey  string    `json:"manifest_key"`
	SignatureKey string    `json:"signature_key"`
	MerkleRoot   string    `json:"merkle_root"`
	KeyID        string    `json:"key_id"`
	Objects      int       `json:"objects"`
	Bytes        int64     `json:"bytes"`
	SealedAt     time.Time `json:"sealed_at"`
}

// Validate checks the fields the registry relies on.
func (e *SealWritten) Validate() error {
	switch {
	case e.Type != ArchiveSealWritten:
		return fmt.Errorf("seal written: type %q", e.Type)
	case e.ExamID == "" || e.CandidateID == "":
		return fmt.Errorf("seal written: missing exam_id or candidate_id")
	case e.Version < 1:
		return fmt.Errorf("seal written of exam %s candidate %s: version %d", e.ExamID, e.CandidateID, e.Version)
	case e.ManifestKey == "" || e.SignatureKey == "":
		return fmt.Errorf("seal written of exam %s candidate %s: missing manifest_key or signature_key", e.ExamID, e.CandidateID)
	case len(e.MerkleRoot) != 64:
		return fmt.Errorf("seal written of exam %s candidate %s: bad merkle_root", e.ExamID, e.CandidateID)
	case e.Objects < 0 || e.Bytes < 0:
		return fmt.Errorf("seal written of exam %s candidate %s: negative counts", e.ExamID, e.CandidateID)
	case e.SealedAt.IsZero():
		return fmt.Errorf("seal written of exam %s candidate %s: missing sealed_at", e.ExamID, e.CandidateID)
	}
	return nil
}

// DecodeSealWritten parses and validates a SealWritten event.
func DecodeSealWritten(b []byte) (*SealWritten, error) {
	var e SealWritten
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("decode seal written: %w", err)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

// ObjectArchived is what the archiver keeps of an object, whenever that
// changes: when it takes the object (a segment, its init segment, a
// rendition, a seal, a document), when it gives it new retention and when
// the sweeper deletes it. It is
// a snapshot, not a change: the registry keeps the one with the highest
// Seq, so that a late or repeated one changes nothing. Keyed by object key.
type ObjectArchived struct {
	Type      string `json:"type"` // ArchiveObjectArchived
	Seq       int64  `json:"seq"`  // the archiver's record number: newer is higher
	ObjectKey string `json:"object_key"`
	Kind      string `json:"kind"` // segment, init, rendition, seal or document
	StreamID  string `json:"stream_id,omitempty"`
	Site      string `json:"site,omitempty"`
	Device    string `json:"device,omitempty"`
	Source    string `json:"source,omitempty"` // the stream's source kind; a document's kind
	Sequence  int64  `json:"sequence,omitempty"`
	// Start and End: a segment's footage; for an init segment, the span
	// of the segments that use it; for a seal, its candidate-exam's
	// window; for a document, its upload.
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Bytes       int64     `json:"bytes"`
	SHA256      string    `json:"sha256,omitempty"`
	PrevChain   string    `json:"prev_chain,omitempty"`
	Chain       string    `json:"chain,omitempty"`
	InitKey     string    `json:"init_key,omitempty"`
	SegmentID   string    `json:"segment_id,omitempty"`
	ExamID      string    `json:"exam_id,omitempty"`
	CandidateID string    `json:"candidate_id,omitempty"`
	// Verified: the stored bytes matched what was announced.
	Verified    bool      `json:"verified"`
	RetainUntil time.Time `json:"retain_until"`
	LegalHold   bool      `json:"legal_hold"`
	Rule        string    `json:"rule"` // the retention rule that decided RetainUntil
	DecidedAt   time.Time `json:"decided_at"`
	// DeletedAt is when the sweeper deleted it (an ObjectDeleted says
	// why); nil while it is kept.
	DeletedAt *time.Time `json:"deleted_at,omitempty"`
}

// Validate checks the fields the registry relies on.
func (e *ObjectArchived) Validate() error {
	switch {
	case e.Type != ArchiveObjectArchived:
		return fmt.Errorf("object archived: type %q", e.Type)
	case e.ObjectKey == "":
		return fmt.Errorf("object archived: missing object_key")
	case e.Seq < 1:
		return fmt.Errorf("object archived %s: seq %d", e.ObjectKey, e.Seq)
	case e.Kind != "segment" && e.Kind != "init" && e.Kind != "rendition" && e.Kind != "seal" && e.Kind != "document":
		return fmt.Errorf("object archived %s: unknown kind %q", e.ObjectKey, e.Kind)
	case e.Bytes < 0:
		return fmt.Errorf("object archived %s: negative bytes", e.ObjectKey)
	case e.End.Before(e.Start):
		return fmt.Errorf("object archived %s: ends before it starts", e.ObjectKey)
	case e.Kind == "segment" && (e.StreamID == "" || e.Site == "" || len(e.SHA256) != 64 || len(e.Chain) != 64):
		return fmt.Errorf("object archived %s: a segment needs stream_id, site, sha256 and chain", e.ObjectKey)
	case e.RetainUntil.IsZero():
		return fmt.Errorf("object archived %s: missing retain_until", e.ObjectKey)
	}
	return nil
}

// DecodeObjectArchived parses and validates an ObjectArchived event.
func DecodeObjectArchived(b []byte) (*ObjectArchived, error) {
	var e ObjectArchived
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("decode object archived: %w", err)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

// SegmentChecked is one check by the archiver of a stored segment (and its
// init segment) against its SegmentClosed: OK when size and SHA-256 match.
// Checking twice is two checks; the same check delivered twice is one
// (Seq names it). Keyed by segment id.
type SegmentChecked struct {
	Type      string    `json:"type"` // ArchiveSegmentChecked
	Seq       int64     `json:"seq"`  // the archiver's record number, the check's id
	SegmentID string    `json:"segment_id"`
	OK        bool      `json:"ok"`
	Detail    string    `json:"detail"` // what was wrong, or what was checked
	CheckedAt time.Time `json:"checked_at"`
	Checker   string    `json:"checker"` // the archiver's node
}

// Validate checks the fields the registry relies on.
func (e *SegmentChecked) Validate() error {
	switch {
	case e.Type != ArchiveSegmentChecked:
		return fmt.Errorf("segment checked: type %q", e.Type)
	case e.SegmentID == "":
		return fmt.Errorf("segment checked: missing segment_id")
	case e.Seq < 1:
		return fmt.Errorf("segment checked %s: seq %d", e.SegmentID, e.Seq)
	case e.CheckedAt.IsZero():
		return fmt.Errorf("segment checked %s: missing checked_at", e.SegmentID)
	}
	return nil
}

// DecodeSegmentChecked parses and validates a SegmentChecked event.
func DecodeSegmentChecked(b []byte) (*SegmentChecked, error) {
	var e SegmentChecked
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("decode segment checked: %w", err)
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}
