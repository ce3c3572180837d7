package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/nokstream/nokstream/internal/evidence/retention"
)

// TopicRetentionV2 carries the registry's facts of candidate-exams to the
// archiver (RetentionChanged v2): a snapshot of one candidate-exam's facts
// (RetentionChangedV2), a council's retention settings
// (RetentionSettingsChanged), and the relay's watermark (FactsWatermark).
// Every message has the key RetentionV2Key, so the topic has the outbox's
// order on one partition: a watermark comes after every event it covers.
const TopicRetentionV2 = "nokstream.retention.v2"

// RetentionV2Key is the key of every message on TopicRetentionV2.
const RetentionV2Key = "facts"

// Types of the messages on TopicRetentionV2 (their "type" field).
const (
	FactsCandidateExam = "candidate_exam"
	FactsSettings      = "settings"
	FactsWatermarkType = "watermark"
)

// RetentionChangedV2 is a snapshot of what the registry knows of one
// candidate-exam that bears on the retention of its evidence, written to
// the registry's outbox in the transaction of every change to it. Seq is the
// outbox id: a snapshot replaces one of the same candidate-exam only if its
// Seq is higher, so delivery order does not matter.
type RetentionChangedV2 struct {
	Type          string    `json:"type"` // FactsCandidateExam
	Seq           int64     `json:"seq"`
	Reason        string    `json:"reason"` // as RetentionChanged's, or "backfill", "document_added"
	At            time.Time `json:"at"`
	ExamID        string    `json:"exam_id"`
	CandidateID   string    `json:"candidate_id"`
	Council       string    `json:"council"` // the exam's council, whose settings apply
	Center        string    `json:"center"`
	Site          string    `json:"site"`
	Qualification string    `json:"qualification"`
	// Start and End are the exam window.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Webcam and Screen are the candidate's devices at Site.
	Webcam    string `json:"webcam"`
	Screen    string `json:"screen"`
	Admission string `json:"admission"` // pending, admitted or refused
	// Result is "" while no result is in the register, else certificate
	// or conclusion; ResultAt is when the appeal window starts (the later
	// of the result's date and its entry in the register).
	Result      string            `json:"result,omitempty"`
	ResultAt    time.Time         `json:"result_at,omitzero"`
	Certificate *CertificateFacts `json:"certificate,omitempty"`
	// Appeals are every appeal of the candidate-exam, oldest first.
	Appeals []AppealFacts `json:"appeals"`
	// DisposedAt is when the council disposed of overdue evidence.
	DisposedAt time.Time `json:"disposed_at,omitzero"`
	// Documents are the documents that are evidence of the candidate-exam.
	Documents []DocumentFacts `json:"documents"`
}

// CertificateFacts is a candidate-exam's certificate, as the retention
// rules take it (the same JSON).
type CertificateFacts = retention.Certificate

// AppealFacts is one appeal: it holds the evidence until it is closed.
type AppealFacts = retention.Appeal

// DocumentFacts is a document that is evidence of a candidate-exam: the
// candidate's own (ExamID "" or this exam) or the exam's commission protocol
// (CandidateID "").
type DocumentFacts struct {
	ID          string    `json:"id"`
	ExamID      string    `json:"exam_id,omitempty"`
	CandidateID string    `json:"candidate_id,omitempty"`
	Key         string    `json:"key"`
	Kind        string    `json:"kind"`
	Bytes       int64     `json:"bytes"`
	SHA256      string    `json:"sha256"`
	UploadedAt  time.Time `json:"uploaded_at"`
}

// Validate checks the fields the archiver relies on.
func (e *RetentionChangedV2) Validate() error {
	id := e.ExamID + "/" + e.CandidateID
	switch {
	case e.Type != FactsCandidateExam:
		return fmt.Errorf("retention facts: type %q, want %q", e.Type, FactsCandidateExam)
	case e.Seq <= 0:
		return fmt.Errorf("retention facts %s: seq %d is not positive", id, e.Seq)
	case e.ExamID == "" || e.CandidateID == "":
		return fmt.Errorf("retention facts: missing exam_id or candidate_id")
	case e.Site == "" || e.Webcam == "" || e.Screen == "":
		return fmt.Errorf("retention facts %s: missing site, webcam or screen", id)
	case !e.Start.Before(e.End):
		return fmt.Errorf("retention facts %s: window %s–%s is empty", id, e.Start.Format(time.RFC3339), e.End.Format(time.RFC3339))
	case e.Result != "" && e.Result != "certificate" && e.Result != "conclusion":
		return fmt.Errorf("retention facts %s: unknown result %q", id, e.Result)
	case e.Result == "" && (e.Certificate != nil || !e.ResultAt.IsZero()):
		return fmt.Errorf("retention facts %s: a certificate or result date without a result", id)
	case e.Certificate != nil && (e.Certificate.Number == "" || e.Certificate.ValidUntil.IsZero()):
		return fmt.Errorf("retention facts %s: certificate without number or validity", id)
	}
	for _, a := range e.Appeals {
		if a.ID == "" || a.OpenedAt.IsZero() {
			return fmt.Errorf("retention facts %s: appeal without id or opening", id)
		}
	}
	for _, d := range e.Documents {
		if d.Key == "" || d.ID == "" || d.Bytes < 0 || (d.ExamID == "" && d.CandidateID == "") {
			return fmt.Errorf("retention facts %s: document %q: missing id, key, owner or size", id, d.Key)
		}
	}
	return nil
}

// RetentionSettingsChanged carries a council's retention settings (all of
// them: the snapshot replaces the archiver's copy when Seq is higher) and
// the sites whose footage of no exam takes its unlinked period. Written to
// the outbox when the settings change, when a site is saved, and by the
// backfill.
type RetentionSettingsChanged struct {
	Type    string    `json:"type"` // FactsSettings
	Seq     int64     `json:"seq"`
	At      time.Time `json:"at"`
	Council string    `json:"council"`
	// Settings are the council's rows: Qualification "" is for all its
	// qualifications; a qualification's own row comes first. Zero days
	// take the archiver's defaults.
	Settings []CouncilSettings `json:"settings"`
	// Sites are the sites of the council's centers.
	Sites []string `json:"sites"`
}

// CouncilSettings is one row of a council's retention settings, in days.
type CouncilSettings struct {
	Qualification    string `json:"qualification"`
	AppealWindowDays int    `json:"appeal_window_days"`
	ProvisionalDays  int    `json:"provisional_days"`
	UnlinkedDays     int    `json:"unlinked_days"`
}

// Validate checks the fields the archiver relies on.
func (e *RetentionSettingsChanged) Validate() error {
	switch {
	case e.Type != FactsSettings:
		return fmt.Errorf("retention settings: type %q, want %q", e.Type, FactsSettings)
	case e.Seq <= 0:
		return fmt.Errorf("retention settings of %s: seq %d is not positive", e.Council, e.Seq)
	case e.Council == "":
		return fmt.Errorf("retention settings: missing council")
	}
	for _, s := range e.Settings {
		if s.AppealWindowDays < 0 || s.ProvisionalDays < 0 || s.UnlinkedDays < 0 {
			return fmt.Errorf("retention settings of %s: negative days for %q", e.Council, s.Qualification)
		}
	}
	return nil
}

// FactsWatermark is published by the registry's relay on
// TopicRetentionV2 when no event of the topic waits in its outbox: every
// fact committed before At, and every outbox event up to Seq, is on the
// topic before it. An archiver that has handled it knows the registry's
// facts as of At.
type FactsWatermark struct {
	Type string    `json:"type"` // FactsWatermarkType
	Seq  int64     `json:"seq"`
	At   time.Time `json:"at"`
}

// Validate checks the fields the archiver relies on.
func (w *FactsWatermark) Validate() error {
	switch {
	case w.Type != FactsWatermarkType:
		return fmt.Errorf("facts watermark: type %q, want %q", w.Type, FactsWatermarkType)
	case w.Seq < 0 || w.At.IsZero():
		return fmt.Errorf("facts watermark: seq %d or time missing", w.Seq)
	}
	return nil
}

// FactsMessage is one decoded message of TopicRetentionV2: exactly one of
// its fields is set.
type FactsMessage struct {
	Exam      *RetentionChangedV2
	Settings  *RetentionSettingsChanged
	Watermark *FactsWatermark
}

// DecodeFacts parses and validates a message of TopicRetentionV2 by its
// type.
func DecodeFacts(b []byte) (FactsMessage, error) {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return FactsMessage{}, fmt.Errorf("decode retention facts: %w", err)
	}
	var m FactsMessage
	var v interface{ Validate() error }
	switch head.Type {
	case FactsCandidateExam:
		m.Exam = &RetentionChangedV2{}
		v = m.Exam
	case FactsSettings:
		m.Settings = &RetentionSettingsChanged{}
		v = m.Settings
	case FactsWatermarkType:
		m.Watermark = &FactsWatermark{}
		v = m.Watermark
	default:
		return FactsMessage{}, fmt.Errorf("decode retention facts: unknown type %q", head.Type)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return FactsMessage{}, fmt.Errorf("decode retention facts: %w", err)
	}
	if err := v.Validate(); err != nil {
		return FactsMessage{}, err
	}
	return m, nil
}
