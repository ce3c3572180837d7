package events

import (
	"encoding/json"
	"fmt"
	"time"
)

// ObjectDeleted tells the registry that the archiver's sweeper deleted an
// object whose retention had ended: published by the archiver on
// TopicArchive, keyed by object key, after it recorded the deletion in its
// own schema. The registry writes it to its audit log (action
// archive.delete) and drops a deleted segment from its segment index, once
// however often it is delivered.
type ObjectDeleted struct {
	ObjectKey   string           `json:"object_key"`
	Kind        string           `json:"kind"` // segment, init, rendition, seal or document
	StreamID    string           `json:"stream_id"`
	Bytes       int64            `json:"bytes"`
	SHA256      string           `json:"sha256"`
	Rule        string           `json:"rule"` // the retention rule that let it go
	RetainUntil time.Time        `json:"retain_until"`
	MarkedAt    time.Time        `json:"marked_at"` // the sweeper's mark
	DeletedAt   time.Time        `json:"deleted_at"`
	Reasons     []DeletionReason `json:"reasons"`
	Archiver    string           `json:"archiver"` // the node that deleted it
}

// DeletionReason is one reason of the decision that let an object go: a
// candidate-exam it was evidence of, or the rule for footage of no exam.
type DeletionReason struct {
	Rule        string    `json:"rule"`
	Until       time.Time `json:"until"`
	ExamID      string    `json:"exam_id,omitempty"`
	CandidateID string    `json:"candidate_id,omitempty"`
	Detail      string    `json:"detail"`
}

// Validate checks the fields the registry relies on.
func (d *ObjectDeleted) Validate() error {
	switch {
	case d.ObjectKey == "":
		return fmt.Errorf("object deleted: missing object_key")
	case d.Kind != "segment" && d.Kind != "init" && d.Kind != "rendition" && d.Kind != "seal" && d.Kind != "document":
		return fmt.Errorf("object deleted %s: unknown kind %q", d.ObjectKey, d.Kind)
	case d.DeletedAt.IsZero():
		return fmt.Errorf("object deleted %s: missing deleted_at", d.ObjectKey)
	case d.Rule == "":
		return fmt.Errorf("object deleted %s: missing rule", d.ObjectKey)
	}
	return nil
}

// DecodeObjectDeleted parses and validates an ObjectDeleted event.
func DecodeObjectDeleted(b []byte) (*ObjectDeleted, error) {
	var d ObjectDeleted
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("decode object deleted: %w", err)
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return &d, nil
}
