package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// examStore lists what the routes of exams, their experts and candidates
// call of the registry's database.
type examStore interface {
	Exams(ctx context.Context, sc store.Scope, from, to time.Time) ([]store.Exam, error)
	CreateExam(ctx context.Context, e *store.Exam) error
	Exam(ctx context.Context, id string) (store.Exam, error)
	AppointExpert(ctx context.Context, exam, login string, by int64) (store.Expert, error)
	ResultPreconditions(ctx context.Context, exam string) ([]store.Precondition, error)
	ExamCandidates(ctx context.Context, exam string) ([]store.ExamCandidate, error)
	AddExamCandidate(ctx context.Context, exam, candidate, webcam, screen string, now time.Time) error
	ExamCandidate(ctx context.Context, exam, candidate string) (store.ExamCandidate, error)
	SetAdmission(ctx context.Context, exam, candidate string, admitted bool, reason string, by int64, now time.Time) error
	IssueExamPassword(ctx context.Context, exam, candidate string, now time.Time) (string, error)
	CandidateEvidence(ctx context.Context, exam, candidate string) ([]store.EvidenceStream, error)
}

type partJSON struct {
	Kind     string    `json:"kind"`
	StartsAt time.Time `json:"starts_at"`
	EndsAt   time.Time `json:"ends_at"`
}

type expertJSON struct {
	ID    int64  `json:"id"`
	Login string `json:"login"`
	// FullName is the expert's name from their profile: whoever sees the
	// exam needs to know who reviews it (omitted while not given).
	FullName    string    `json:"full_name,omitempty"`
	AppointedAt time.Time `json:"appointed_at"`
}

type examJSON struct {
	ID            string       `json:"id"`
	Center        string       `json:"center"`
	Council       string       `json:"council"`
	Site          string       `json:"site"`
	Qualification string       `json:"qualification"`
	StartsAt      time.Time    `json:"starts_at"`
	EndsAt        time.Time    `json:"ends_at"`
	Parts         []partJSON   `json:"parts"`
	Experts       []expertJSON `json:"experts"`
	CreatedAt     time.Time    `json:"created_at"`
}

func newExamJSON(e store.Exam) examJSON {
	out := examJSON{ID: e.ID, Center: e.CenterID, Council: e.CouncilID, Site: e.SiteID, Qualification: e.Qualification,
		StartsAt: e.Start.UTC(), EndsAt: e.End.UTC(), Parts: []partJSON{}, Experts: []expertJSON{}, CreatedAt: e.CreatedAt.UTC()}
	for _, p := range e.Parts {
		out.Parts = append(out.Parts, partJSON{Kind: p.Kind, StartsAt: p.Start.UTC(), EndsAt: p.End.UTC()})
	}
	for _, x := range e.Experts {
		out.Experts = append(out.Experts, expertJSON{ID: x.ID, Login: x.Login, FullName: x.FullName, AppointedAt: x.AppointedAt.UTC()})
	}
	return out
}

// listExams handles GET /api/v1/exams?from=&to=: the exams the caller sees
// whose window overlaps [from, to) (either side may be left open).
func (s *Server) listExams(w http.ResponseWriter, r *http.Request, c *caller) error {
	var from, to time.Time
	var err error
	q := r.URL.Query()
	if v := q.Get("from"); v != "" {
		if from, err = parseTime("from", v); err != nil {
			return err
		}
	}
	if v := q.Get("to"); v != "" {
		if to, err = parseTime("to", v); err != nil {
			return err
		}
	}
	list, err := s.db.exams.Exams(r.Context(), scopeOf(c.user), from, to)
	if err != nil {
		return err
	}
	out := []examJSON{}
	for _, e := range list {
		if visible(c.user, e.Owner()) {
			out = append(out, newExamJSON(e))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// createExam handles POST /api/v1/exams: a center forms a group exam at one
// of its sites.
func (s *Server) createExam(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := allowRole(c, store.RoleCenter); err != nil {
		return err
	}
	var req struct {
		ID            string     `json:"id"`
		Site          string     `json:"site"`
		Qualification string     `json:"qualification"`
		StartsAt      time.Time  `json:"starts_at"`
		EndsAt        time.Time  `json:"ends_at"`
		Parts         []partJSON `json:"parts"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	e := &store.Exam{ID: req.ID, CenterID: c.user.OrgID, SiteID: req.Site, Qualification: req.Qualification,
		Start: req.StartsAt, End: req.EndsAt, CreatedBy: c.user.ID}
	for _, p := range req.Parts {
		e.Parts = append(e.Parts, store.ExamPart{Kind: p.Kind, Start: p.StartsAt, End: p.EndsAt})
	}
	if err := s.db.exams.CreateExam(r.Context(), e); err != nil {
		return fail(err, "exam")
	}
	if err := s.audit(r, c, "exam.create", e.ID, map[string]any{"site": e.SiteID, "qualification": e.Qualification,
		"starts_at": e.Start.UTC(), "ends_at": e.End.UTC()}); err != nil {
		return err
	}
	x, err := s.db.exams.Exam(r.Context(), e.ID)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/exams/"+e.ID)
	writeJSON(w, http.StatusCreated, newExamJSON(x))
	return nil
}

func (s *Server) getExam(w http.ResponseWriter, r *http.Request, c *caller) error {
	if _, err := s.examOwner(r, c); err != nil {
		return err
	}
	e, err := s.db.exams.Exam(r.Context(), r.PathValue("exam"))
	if err != nil {
		return fail(err, "exam")
	}
	writeJSON(w, http.StatusOK, newExamJSON(e))
	return nil
}

// appointExpert handles POST /api/v1/exams/{exam}/experts {"login"}: the
// center appoints an expert user to its exam.
func (s *Server) appointExpert(w http.ResponseWriter, r *http.Request, c *caller) error {
	o, err := s.examOwner(r, c, store.RoleCenter)
	if err != nil {
		return err
	}
	var req struct {
		Login string `json:"login"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	x, err := s.db.exams.AppointExpert(r.Context(), o.Exam, req.Login, c.user.ID)
	if err != nil {
		return fail(err, "exam")
	}
	if err := s.audit(r, c, "exam.expert_appoint", o.Exam, map[string]any{"expert": x.Login}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, expertJSON{ID: x.ID, Login: x.Login, AppointedAt: x.AppointedAt.UTC()})
	return nil
}

// preconditions handles GET /api/v1/exams/{exam}/preconditions: what keeps
// a result of the exam from being entered.
func (s *Server) preconditions(w http.ResponseWriter, r *http.Request, c *caller) error {
	o, err := s.examOwner(r, c)
	if err != nil {
		return err
	}
	unmet, err := s.db.exams.ResultPreconditions(r.Context(), o.Exam)
	if err != nil {
		return fail(err, "exam")
	}
	list := []map[string]string{}
	for _, p := range unmet {
		list = append(list, map[string]string{"code": p.Code, "message": p.Message})
	}
	writeJSON(w, http.StatusOK, map[string]any{"ready": len(unmet) == 0, "unmet": list})
	return nil
}

type examCandidateJSON struct {
	Exam             string        `json:"exam"`
	Candidate        candidateJSON `json:"candidate"`
	Site             string        `json:"site"`
	Webcam           string        `json:"webcam"`
	Screen           string        `json:"screen"`
	Admission        string        `json:"admission"`
	RefusalReason    string        `json:"refusal_reason,omitempty"`
	AdmissionAt      *time.Time    `json:"admission_at,omitempty"`
	PasswordIssuedAt *time.Time    `json:"password_issued_at,omitempty"`
	Result           string        `json:"result"` // "", certificate or conclusion
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func newExamCandidateJSON(ec store.ExamCandidate, u store.User) examCandidateJSON {
	return examCandidateJSON{Exam: ec.ExamID, Candidate: newCandidateJSON(ec.Candidate, u), Site: ec.SiteID, Webcam: ec.Webcam,
		Screen: ec.Screen, Admission: ec.Admission, RefusalReason: ec.RefusalReason, AdmissionAt: utcPtr(ec.AdmissionAt),
		PasswordIssuedAt: utcPtr(ec.PasswordIssuedAt), Result: ec.ResultKind}
}

func (s *Server) listExamCandidates(w http.ResponseWriter, r *http.Request, c *caller) error {
	o, err := s.examOwner(r, c)
	if err != nil {
		return err
	}
	list, err := s.db.exams.ExamCandidates(r.Context(), o.Exam)
	if err != nil {
		return err
	}
	out := []examCandidateJSON{}
	for _, ec := range list {
		out = append(out, newExamCandidateJSON(ec, c.user))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// addExamCandidate handles POST /api/v1/exams/{exam}/candidates
// {"candidate","webcam","screen"}: the center puts one of its candidates in
// the exam at the workstation whose webcam and screen devices of the site
// are given.
func (s *Server) addExamCandidate(w http.ResponseWriter, r *http.Request, c *caller) error {
	o, err := s.examOwner(r, c, store.RoleCenter)
	if err != nil {
		return err
	}
	var req struct {
		Candidate string `json:"candidate"`
		Webcam    string `json:"webcam"`
		Screen    string `json:"screen"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := s.db.exams.AddExamCandidate(r.Context(), o.Exam, req.Candidate, req.Webcam, req.Screen, s.now()); err != nil {
		return fail(err, "exam")
	}
	if err := s.audit(r, c, "exam.candidate_add", o.Exam+"/"+req.Candidate, map[string]any{"webcam": req.Webcam, "screen": req.Screen}); err != nil {
		return err
	}
	ec, err := s.db.exams.ExamCandidate(r.Context(), o.Exam, req.Candidate)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, newExamCandidateJSON(ec, c.user))
	return nil
}

func (s *Server) getExamCandidate(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c)
	if err != nil {
		return err
	}
	ec, err := s.db.exams.ExamCandidate(r.Context(), exam, cand)
	if err != nil {
		return fail(err, "candidate of the exam")
	}
	writeJSON(w, http.StatusOK, newExamCandidateJSON(ec, c.user))
	return nil
}

// setAdmission handles PUT /api/v1/exams/{exam}/candidates/{candidate}/admission
// {"status": "admitted"|"refused", "reason"}: the site admits a candidate
// whose identity it confirmed (409 otherwise), or refuses them with a
// reason.
func (s *Server) setAdmission(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c, store.RoleSite)
	if err != nil {
		return err
	}
	var req struct {
		Status string `json:"status"`
		Reason string `json:"reason"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Status != store.AdmissionAdmitted && req.Status != store.AdmissionRefused {
		return errorf(http.StatusUnprocessableEntity, "status %q is not admitted or refused", req.Status)
	}
	if req.Status == store.AdmissionAdmitted {
		// The site admits only a candidate whose identity it confirmed
		// (the register's procedure): the check names the document.
		check, err := s.db.identity.Identity(r.Context(), exam, cand)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err != nil || !check.Confirmed {
			return &apiError{status: http.StatusConflict, extra: map[string]any{"code": "identity_not_confirmed"},
				msg: "confirm the candidate's identity first: PUT /api/v1/exams/" + exam + "/candidates/" + cand + "/identity {\"confirmed\": true, \"document\": …}"}
		}
	}
	if err := s.db.exams.SetAdmission(r.Context(), exam, cand, req.Status == store.AdmissionAdmitted, req.Reason, c.user.ID, s.now()); err != nil {
		return fail(err, "candidate of the exam")
	}
	if err := s.audit(r, c, "exam.admission", exam+"/"+cand, map[string]any{"status": req.Status, "reason": req.Reason}); err != nil {
		return err
	}
	return s.getExamCandidate(w, r, c)
}

// issuePassword handles POST /api/v1/exams/{exam}/candidates/{candidate}/password:
// the site generates the admitted candidate's unique exam password. It is
// shown only in this answer; an earlier one stops working.
func (s *Server) issuePassword(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c, store.RoleSite)
	if err != nil {
		return err
	}
	pw, err := s.db.exams.IssueExamPassword(r.Context(), exam, cand, s.now())
	if err != nil {
		return fail(err, "candidate of the exam")
	}
	e, err := s.db.exams.Exam(r.Context(), exam)
	if err != nil {
		return err
	}
	if err := s.audit(r, c, "exam.password_issue", exam+"/"+cand, nil); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"password": pw, "valid_from": e.Start.UTC(), "valid_until": e.End.UTC()})
	return nil
}

// evidenceStreamJSON is a stream that is evidence for a candidate's exam.
type evidenceStreamJSON struct {
	Stream   string `json:"stream"`
	Site     string `json:"site"`
	Device   string `json:"device"`
	Source   string `json:"source"` // room, webcam or screen
	Segments int    `json:"segments"`
	Bytes    int64  `json:"bytes"`
	// First and Last are the extent of the recorded footage inside the
	// window, absent when there is none.
	First *time.Time `json:"first,omitempty"`
	Last  *time.Time `json:"last,omitempty"`
	// PlaylistURL, SegmentsURL and ObservationsURL are signed and cover
	// the exam window.
	PlaylistURL     string `json:"playlist_url"`
	SegmentsURL     string `json:"segments_url"`
	ObservationsURL string `json:"observations_url"`
}

// candidateMedia handles GET /api/v1/exams/{exam}/candidates/{candidate}/media:
// every stream that is evidence for the candidate's exam (their webcam and
// screen, and the room cameras of the site), each with a signed playlist of
// the exam window, so that all play on one clock: from and to are the
// window, and every playlist carries EXT-X-PROGRAM-DATE-TIME.
func (s *Server) candidateMedia(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c)
	if err != nil {
		return err
	}
	e, err := s.db.exams.Exam(r.Context(), exam)
	if err != nil {
		return err
	}
	streams, err := s.db.exams.CandidateEvidence(r.Context(), exam, cand)
	if err != nil {
		return fail(err, "candidate of the exam")
	}
	if err := s.audit(r, c, "evidence.list", exam+"/"+cand, map[string]any{"streams": len(streams)}); err != nil {
		return err
	}
	window := url.Values{"from": {e.Start.UTC().Format(time.RFC3339)}, "to": {e.End.UTC().Format(time.RFC3339)}}
	if p := purpose(r); p != "" {
		window.Set("purpose", p) // and the media URLs in them: purposeQuery
	}
	// The links must outlive watching the whole exam.
	expires := s.now().Add(s.cfg.LinkTTL + e.End.Sub(e.Start))
	out := []evidenceStreamJSON{}
	for _, st := range streams {
		base := "/api/v1/streams/" + st.Site + "/" + st.Device
		j := evidenceStreamJSON{Stream: st.StreamID(), Site: st.Site, Device: st.Device, Source: st.Source,
			Segments: st.Segments, Bytes: st.Bytes,
			PlaylistURL:     s.sign(base+"/playlist.m3u8", window, c.user.ID, c.session, expires),
			SegmentsURL:     s.sign(base+"/segments", window, c.user.ID, c.session, expires),
			ObservationsURL: s.sign(base+"/observations", window, c.user.ID, c.session, expires)}
		if st.Segments > 0 {
			first, last := st.First.UTC(), st.Last.UTC()
			j.First, j.Last = &first, &last
		}
		out = append(out, j)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"exam": exam, "candidate": cand, "site": e.SiteID,
		"from": e.Start.UTC(), "to": e.End.UTC(), "streams": out,
	})
	return nil
}
