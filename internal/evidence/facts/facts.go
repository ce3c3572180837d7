// Package facts holds what the archiver knows of the registry's
// candidate-exams to decide how long their evidence is kept: the
// candidate-exam with its result, appeals and place (EvidenceExam), the
// documents that are its evidence, and overdue evidence. The registry's
// store answers with these types from its tables; the archiver's store from
// its own copy, fed by events.RetentionChangedV2 (docs/NOTES.md, Session 6).
package facts

import (
	"errors"
	"slices"
	"time"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/internal/evidence/retention"
	"github.com/nokstream/nokstream/internal/evidence/seal"
)

// ErrNotFound is returned for a candidate-exam that is not known.
var ErrNotFound = errors.New("candidate-exam not found")

// EvidenceExam is a candidate's exam as the archiver sees it: what bears on
// the retention of its evidence (retention.CandidateExam) and where the
// evidence is: the room cameras of Site during the exam window, and the
// candidate's Webcam and Screen devices there.
type EvidenceExam struct {
	retention.CandidateExam
	Site      string
	Webcam    string
	Screen    string
	Admission string
}

// Serves reports whether footage of device (a room camera when room) is
// evidence for the candidate-exam.
func (e EvidenceExam) Serves(device string, room bool) bool {
	return e.Scope().Serves(device, room)
}

// Scope returns where the evidence of the candidate-exam is, as
// seal.Collect takes it.
func (e EvidenceExam) Scope() seal.Scope {
	return seal.Scope{ExamID: e.ExamID, CandidateID: e.CandidateID, Site: e.Site, Start: e.Start, End: e.End,
		Webcam: e.Webcam, Screen: e.Screen}
}

// EvidenceDocument is a document that is evidence of a candidate-exam, with
// what the archiver recorded of it (Archived false: not yet).
type EvidenceDocument struct {
	ID          string
	CandidateID string // one of CandidateID and ExamID is set
	ExamID      string
	Kind        string
	ObjectKey   string
	Bytes       int64
	SHA256      string
	UploadedAt  time.Time
	Archived    bool
	Verified    bool
	DeletedAt   *time.Time
}

// CandidateExamRef names a candidate-exam.
type CandidateExamRef struct {
	ExamID      string
	CandidateID string
}

// OverdueEvidence is a candidate-exam whose evidence is overdue: its result
// is still missing when the provisional period after the exam is over.
type OverdueEvidence struct {
	ExamID, CandidateID         string
	CouncilID, CenterID, SiteID string
	Qualification               string
	ExamEnd                     time.Time
	ProvisionalDays             int
	Due                         time.Time // the end of the provisional period
}

// FromSnapshot returns the candidate-exam of a RetentionChangedV2
// snapshot, under the settings in force for its council and qualification
// (Settings.Policy).
func FromSnapshot(ev *events.RetentionChangedV2, s Settings) EvidenceExam {
	e := EvidenceExam{
		CandidateExam: retention.CandidateExam{ExamID: ev.ExamID, CandidateID: ev.CandidateID, Council: ev.Council,
			Qualification: ev.Qualification, Start: ev.Start, End: ev.End, Result: retention.ResultKind(ev.Result),
			ResultAt: ev.ResultAt, DisposedAt: ev.DisposedAt, Policy: s.Policy(ev.Qualification)},
		Site: ev.Site, Webcam: ev.Webcam, Screen: ev.Screen, Admission: ev.Admission,
	}
	if c := ev.Certificate; c != nil {
		cert := *c
		e.Certificate = &cert
	}
	if len(ev.Appeals) > 0 {
		e.Appeals = slices.Clone(ev.Appeals)
	}
	return e
}

// Settings are a council's retention settings as RetentionSettingsChanged
// carries them; nil is a council that set none.
type Settings []events.CouncilSettings

// row returns the row for qualification, else the council's row for all
// its qualifications (""), else the zero row (the archiver's defaults).
func (s Settings) row(qualification string, field func(events.CouncilSettings) int) int {
	for _, q := range []string{qualification, ""} {
		for _, r := range s {
			if r.Qualification == q {
				return field(r)
			}
		}
		if qualification == "" {
			break
		}
	}
	return 0
}

// Policy returns the periods in force for qualification: each period from
// the qualification's own row, else from the council's row, zero (the
// archiver's default) if neither has one — as the registry's own query
// takes them.
func (s Settings) Policy(qualification string) retention.Policy {
	return retention.Policy{
		AppealWindow: time.Duration(s.row(qualification, func(r events.CouncilSettings) int { return r.AppealWindowDays })) * retention.Day,
		Provisional:  time.Duration(s.row(qualification, func(r events.CouncilSettings) int { return r.ProvisionalDays })) * retention.Day,
	}
}

// ProvisionalDays returns the provisional period in days for
// qualification, or def if the council set none.
func (s Settings) ProvisionalDays(qualification string, def int) int {
	if d := s.row(qualification, func(r events.CouncilSettings) int { return r.ProvisionalDays }); d != 0 {
		return d
	}
	return def
}

// Unlinked returns the unlinked period the council set for footage of no
// exam at its sites (its row for all qualifications), zero if none.
func (s Settings) Unlinked() time.Duration {
	for _, r := range s {
		if r.Qualification == "" {
			return time.Duration(r.UnlinkedDays) * retention.Day
		}
	}
	return 0
}
