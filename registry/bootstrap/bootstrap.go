// Package bootstrap stands up registry data from a JSON file without the
// API: councils, qualifications, centers, sites with their devices, staff
// users, candidates and exams with their candidates and experts. It is what
// `nokstream import` runs.
//
// Applying a file is idempotent: organisations, qualifications and
// candidates are created or updated, devices and users are created if
// missing (an existing one is left alone), exams are created if missing and
// their candidates and experts added. New device secrets and temporary
// passwords are returned once, in the Report.
package bootstrap

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// File is the import file format.
type File struct {
	Councils       []Council       `json:"councils"`
	Qualifications []Qualification `json:"qualifications"`
	Centers        []Center        `json:"centers"`
	Sites          []Site          `json:"sites"`
	Users          []User          `json:"users"`
	Candidates     []Candidate     `json:"candidates"`
	Exams          []Exam          `json:"exams"`
}

// Council is a council with its appeals commission and, optionally, its
// retention settings.
type Council struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Commission Commission `json:"commission"`
	Retention  *Retention `json:"retention,omitempty"`
}

// Commission is a council's appeals commission.
type Commission struct {
	Members []string `json:"members"`
	Address string   `json:"address"`
	Email   string   `json:"email"`
	Phones  []string `json:"phones"`
}

// Retention are retention settings in days.
type Retention struct {
	AppealWindowDays int `json:"appeal_window_days"`
	ProvisionalDays  int `json:"provisional_days"`
	UnlinkedDays     int `json:"unlinked_days"`
}

// Qualification is a qualification of a council.
type Qualification struct {
	Code          string `json:"code"`
	Council       string `json:"council"`
	Name          string `json:"name"`
	ValidityYears int    `json:"validity_years"`
	Tools         []Tool `json:"tools"`
}

// Tool is a set of assessment tools.
type Tool struct {
	Reference string `json:"reference"`
	Link      string `json:"link"`
}

// Center is an assessment center.
type Center struct {
	ID             string   `json:"id"`
	Council        string   `json:"council"`
	Name           string   `json:"name"`
	Head           string   `json:"head"`
	Website        string   `json:"website"`
	LegalAddress   string   `json:"legal_address"`
	ActualAddress  string   `json:"actual_address"`
	PostalAddress  string   `json:"postal_address"`
	Email          string   `json:"email"`
	Phones         []string `json:"phones"`
	Qualifications []string `json:"qualifications"`
}

// Site is an exam site with its devices.
type Site struct {
	ID      string   `json:"id"`
	Center  string   `json:"center"`
	Name    string   `json:"name"`
	Address string   `json:"address"`
	Email   string   `json:"email"`
	Phones  []string `json:"phones"`
	Devices []Device `json:"devices"`
}

// Device is a device of a site.
type Device struct {
	Name string `json:"name"`
	Kind string `json:"kind"` // room, webcam or screen
}

// User is a staff user.
type User struct {
	Login string `json:"login"`
	Role  string `json:"role"`
	Org   string `json:"org,omitempty"`
}

// Candidate is a candidate of a center.
type Candidate struct {
	ID         string `json:"id"`
	Center     string `json:"center"`
	LastName   string `json:"last_name"`
	FirstName  string `json:"first_name"`
	MiddleName string `json:"middle_name"`
	SNILS      string `json:"snils"`
	Document   string `json:"document"`
	Email      string `json:"email"`
	Phone      string `json:"phone"`
}

// Exam is an exam with its parts, experts and candidates.
type Exam struct {
	ID            string          `json:"id"`
	Center        string          `json:"center"`
	Site          string          `json:"site"`
	Qualification string          `json:"qualification"`
	StartsAt      time.Time       `json:"starts_at"`
	EndsAt        time.Time       `json:"ends_at"`
	Parts         []Part          `json:"parts"`
	Experts       []string        `json:"experts"`
	Candidates    []ExamCandidate `json:"candidates"`
}

// Part is the theory or practical part of an exam.
type Part struct {
	Kind     string    `json:"kind"`
	StartsAt time.Time `json:"starts_at"`
	EndsAt   time.Time `json:"ends_at"`
}

// ExamCandidate is a candidate of an exam at a workstation, optionally with
// their admission.
type ExamCandidate struct {
	Candidate     string `json:"candidate"`
	Webcam        string `json:"webcam"`
	Screen        string `json:"screen"`
	Admission     string `json:"admission,omitempty"` // "", pending, admitted or refused
	RefusalReason string `json:"refusal_reason,omitempty"`
}

// Decode reads a File, refusing unknown fields. A file that is not JSON,
// holds a value of the wrong type or more than the object is refused with
// the line and column of the fault.
func Decode(r io.Reader) (*File, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read import file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return nil, fmt.Errorf("decode import file: %s: %w", position(b, syn.Offset), err)
		case errors.As(err, &typ):
			return nil, fmt.Errorf("decode import file: %s: %w", position(b, typ.Offset), err)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("decode import file: %s: %w", position(b, int64(len(b))), err)
		}
		return nil, fmt.Errorf("decode import file: %w", err)
	}
	if dec.More() {
		off := dec.InputOffset()
		off += int64(len(b[off:]) - len(bytes.TrimLeft(b[off:], " \t\r\n")))
		return nil, fmt.Errorf("decode import file: %s: data after the object", position(b, off))
	}
	return &f, nil
}

// position names the line and column (1-based, in bytes) of offset off of
// b.
func position(b []byte, off int64) string {
	off = min(max(off, 0), int64(len(b)))
	before := b[:off]
	return fmt.Sprintf("line %d, column %d", 1+bytes.Count(before, []byte("\n")), len(before)-bytes.LastIndexByte(before, '\n'))
}

// Store is what Apply needs of the registry's database; *store.Store is
// one.
type Store interface {
	SaveCouncil(ctx context.Context, c store.Council) (bool, error)
	SetRetentionSettings(ctx context.Context, council, qualification string, rs store.RetentionSettings, by int64) error
	SaveQualification(ctx context.Context, q store.Qualification) (bool, error)
	SaveCenter(ctx context.Context, c store.Center) (bool, error)
	SaveSite(ctx context.Context, s store.Site) (bool, error)
	AddDevice(ctx context.Context, site, device, kind string) (string, error)
	AddUser(ctx context.Context, login, role, orgID string) (string, error)
	SaveCandidate(ctx context.Context, c store.Candidate) (bool, error)
	CreateExam(ctx context.Context, e *store.Exam) error
	AddExamCandidate(ctx context.Context, exam, candidate, webcam, screen string, now time.Time) error
	AppointExpert(ctx context.Context, exam, login string, by int64) (store.Expert, error)
	SetAdmission(ctx context.Context, exam, candidate string, admitted bool, reason string, by int64, now time.Time) error
}

// Report is what Apply did.
type Report struct {
	// Created and Updated name what was created and updated, e.g.
	// "council c1", "exam e1".
	Created, Updated []string
	// DeviceSecrets are the publish secrets of new devices, by stream
	// "<site>/<device>".
	DeviceSecrets map[string]string
	// Passwords are the temporary passwords of new users, by login.
	Passwords map[string]string
}

func (r *Report) saved(created bool, what string) {
	if created {
		r.Created = append(r.Created, what)
	} else {
		r.Updated = append(r.Updated, what)
	}
}

// Apply stores f in st, in dependency order, and stops at the first error,
// which names the record. now is when admissions are recorded.
func Apply(ctx context.Context, st Store, f *File, now time.Time) (*Report, error) {
	r := &Report{DeviceSecrets: map[string]string{}, Passwords: map[string]string{}}
	for _, c := range f.Councils {
		created, err := st.SaveCouncil(ctx, store.Council{ID: c.ID, Name: c.Name, Commission: store.Commission(c.Commission)})
		if err != nil {
			return r, fmt.Errorf("import council %q: %w", c.ID, err)
		}
		r.saved(created, "council "+c.ID)
		if c.Retention != nil {
			if err := st.SetRetentionSettings(ctx, c.ID, "", store.RetentionSettings(*c.Retention), 0); err != nil {
				return r, fmt.Errorf("import retention settings of council %q: %w", c.ID, err)
			}
		}
	}
	for _, q := range f.Qualifications {
		tools := make([]store.AssessmentTool, len(q.Tools))
		for i, t := range q.Tools {
			tools[i] = store.AssessmentTool{Reference: t.Reference, Link: t.Link}
		}
		created, err := st.SaveQualification(ctx, store.Qualification{Code: q.Code, CouncilID: q.Council, Name: q.Name,
			ValidityYears: q.ValidityYears, Tools: tools})
		if err != nil {
			return r, fmt.Errorf("import qualification %q: %w", q.Code, err)
		}
		r.saved(created, "qualification "+q.Code)
	}
	for _, c := range f.Centers {
		quals := c.Qualifications
		if quals == nil {
			quals = []string{}
		}
		created, err := st.SaveCenter(ctx, store.Center{ID: c.ID, CouncilID: c.Council, Name: c.Name, Head: c.Head,
			Website: c.Website, LegalAddress: c.LegalAddress, ActualAddress: c.ActualAddress, PostalAddress: c.PostalAddress, Email: c.Email,
			Phones: c.Phones, Qualifications: quals})
		if err != nil {
			return r, fmt.Errorf("import center %q: %w", c.ID, err)
		}
		r.saved(created, "center "+c.ID)
	}
	for _, s := range f.Sites {
		created, err := st.SaveSite(ctx, store.Site{ID: s.ID, CenterID: s.Center, Name: s.Name, Address: s.Address,
			Email: s.Email, Phones: s.Phones})
		if err != nil {
			return r, fmt.Errorf("import site %q: %w", s.ID, err)
		}
		r.saved(created, "site "+s.ID)
		for _, d := range s.Devices {
			secret, err := st.AddDevice(ctx, s.ID, d.Name, d.Kind)
			if errors.Is(err, store.ErrExists) {
				continue
			}
			if err != nil {
				return r, fmt.Errorf("import device %s/%s: %w", s.ID, d.Name, err)
			}
			r.Created = append(r.Created, "device "+s.ID+"/"+d.Name)
			r.DeviceSecrets[s.ID+"/"+d.Name] = secret
		}
	}
	for _, u := range f.Users {
		pw, err := st.AddUser(ctx, u.Login, u.Role, u.Org)
		if errors.Is(err, store.ErrExists) {
			continue
		}
		if err != nil {
			return r, fmt.Errorf("import user %q: %w", u.Login, err)
		}
		r.Created = append(r.Created, "user "+u.Login)
		r.Passwords[u.Login] = pw
	}
	for _, c := range f.Candidates {
		created, err := st.SaveCandidate(ctx, store.Candidate{ID: c.ID, CenterID: c.Center, LastName: c.LastName,
			FirstName: c.FirstName, MiddleName: c.MiddleName, SNILS: c.SNILS, Document: c.Document, Email: c.Email, Phone: c.Phone})
		if err != nil {
			return r, fmt.Errorf("import candidate %q: %w", c.ID, err)
		}
		r.saved(created, "candidate "+c.ID)
	}
	for _, e := range f.Exams {
		if err := applyExam(ctx, st, e, r, now); err != nil {
			return r, err
		}
	}
	return r, nil
}

func applyExam(ctx context.Context, st Store, e Exam, r *Report, now time.Time) error {
	ex := &store.Exam{ID: e.ID, CenterID: e.Center, SiteID: e.Site, Qualification: e.Qualification, Start: e.StartsAt, End: e.EndsAt}
	for _, p := range e.Parts {
		ex.Parts = append(ex.Parts, store.ExamPart{Kind: p.Kind, Start: p.StartsAt, End: p.EndsAt})
	}
	err := st.CreateExam(ctx, ex)
	switch {
	case errors.Is(err, store.ErrExists):
		r.Updated = append(r.Updated, "exam "+e.ID)
	case err != nil:
		return fmt.Errorf("import exam %q: %w", e.ID, err)
	default:
		r.Created = append(r.Created, "exam "+e.ID)
	}
	for _, login := range e.Experts {
		if _, err := st.AppointExpert(ctx, e.ID, login, 0); err != nil {
			return fmt.Errorf("import exam %q: appoint expert %q: %w", e.ID, login, err)
		}
	}
	for _, c := range e.Candidates {
		if err := st.AddExamCandidate(ctx, e.ID, c.Candidate, c.Webcam, c.Screen, now); err != nil {
			return fmt.Errorf("import exam %q: candidate %q: %w", e.ID, c.Candidate, err)
		}
		switch c.Admission {
		case "", store.AdmissionPending:
		case store.AdmissionAdmitted, store.AdmissionRefused:
			if err := st.SetAdmission(ctx, e.ID, c.Candidate, c.Admission == store.AdmissionAdmitted, c.RefusalReason, 0, now); err != nil {
				return fmt.Errorf("import exam %q: admission of %q: %w", e.ID, c.Candidate, err)
			}
		default:
			return fmt.Errorf("import exam %q: candidate %q: admission %q is not pending, admitted or refused", e.ID, c.Candidate, c.Admission)
		}
	}
	return nil
}
