package api

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// resultStore lists what the routes of results, certificates, protocols and
// decisions call of the registry's database.
type resultStore interface {
	Result(ctx context.Context, exam, candidate string) (store.Result, error)
	SaveCard(ctx context.Context, r *store.Result, by int64, now time.Time) (bool, error)
	Certificate(ctx context.Context, number string) (store.Result, error)
	ExamOwner(ctx context.Context, id string) (store.Owner, error)
	ExtendCertificate(ctx context.Context, number string, validUntil time.Time, reason string, by int64, now time.Time) error
	RevokeCertificate(ctx context.Context, number, reason string, by int64, now time.Time) error
	SetProtocol(ctx context.Context, p store.Protocol) error
	ExamProtocol(ctx context.Context, exam string) (store.Protocol, error)
	ApproveProtocol(ctx context.Context, exam string, expert int64, approved bool, comment string, now time.Time) error
	ExamDecisions(ctx context.Context, exam string) ([]store.Decision, []store.Verification, error)
	RecordDecision(ctx context.Context, d *store.Decision) error
	RecordVerification(ctx context.Context, v store.Verification) error
	Deadlines(ctx context.Context, sc store.Scope, now time.Time, overdueOnly bool) ([]store.Deadline, error)
}

type certificateChangeJSON struct {
	Change     string    `json:"change"`
	ValidUntil date      `json:"valid_until"`
	Reason     string    `json:"reason,omitempty"`
	ChangedAt  time.Time `json:"changed_at"`
}

type resultJSON struct {
	Exam              string                  `json:"exam"`
	Candidate         string                  `json:"candidate"`
	Kind              string                  `json:"kind"`
	CertificateNumber string                  `json:"certificate_number,omitempty"`
	IssuedOn          date                    `json:"issued_on"`
	ValidUntil        *date                   `json:"valid_until,omitempty"`
	Conclusion        string                  `json:"conclusion,omitempty"`
	RevokedAt         *time.Time              `json:"revoked_at,omitempty"`
	RevocationReason  string                  `json:"revocation_reason,omitempty"`
	RecordedAt        time.Time               `json:"recorded_at"`
	Changes           []certificateChangeJSON `json:"changes"`
	State             string                  `json:"state"`
	StateReason       string                  `json:"state_reason,omitempty"`
	StateAt           time.Time               `json:"state_at"`
	SubmittedAt       *time.Time              `json:"submitted_at,omitempty"`
	ApprovedAt        *time.Time              `json:"approved_at,omitempty"`
	UpdatedAt         time.Time               `json:"updated_at"`
}

func newResultJSON(r store.Result) resultJSON {
	out := resultJSON{Exam: r.ExamID, Candidate: r.CandidateID, Kind: r.Kind, CertificateNumber: r.CertificateNumber,
		IssuedOn: date{r.IssuedOn}, Conclusion: r.Conclusion, RevokedAt: utcPtr(r.RevokedAt), RevocationReason: r.RevocationReason,
		RecordedAt: r.RecordedAt.UTC(), Changes: []certificateChangeJSON{}, State: r.State, StateReason: r.StateReason,
		StateAt: r.StateAt.UTC(), SubmittedAt: utcPtr(r.SubmittedAt), ApprovedAt: utcPtr(r.ApprovedAt), UpdatedAt: r.UpdatedAt.UTC()}
	if !r.ValidUntil.IsZero() {
		out.ValidUntil = &date{r.ValidUntil}
	}
	for _, c := range r.Changes {
		out.Changes = append(out.Changes, certificateChangeJSON{Change: c.Change, ValidUntil: date{c.ValidUntil}, Reason: c.Reason, ChangedAt: c.ChangedAt.UTC()})
	}
	return out
}

func (s *Server) getResult(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c)
	if err != nil {
		return err
	}
	res, err := s.db.results.Result(r.Context(), exam, cand)
	if err != nil {
		return fail(err, "result")
	}
	writeJSON(w, http.StatusOK, newResultJSON(res))
	return nil
}

// recordResult handles PUT /api/v1/exams/{exam}/candidates/{candidate}/result:
// the center fills the candidate's result card, a draft: a certificate
// {"kind":"certificate", "certificate_number","issued_on"} (valid until is
// computed from the qualification) or a conclusion {"kind":"conclusion",
// "issued_on", "conclusion"}. Only a draft or a returned card changes; the
// card reaches the register through the procedure (workflow.go). 201 for a
// new card, 200 for an edit.
func (s *Server) recordResult(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c, store.RoleCenter)
	if err != nil {
		return err
	}
	var req struct {
		Kind              string `json:"kind"`
		CertificateNumber string `json:"certificate_number"`
		IssuedOn          date   `json:"issued_on"`
		Conclusion        string `json:"conclusion"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	res := &store.Result{ExamID: exam, CandidateID: cand, Kind: req.Kind, CertificateNumber: req.CertificateNumber,
		IssuedOn: req.IssuedOn.Time, Conclusion: req.Conclusion}
	created, err := s.db.results.SaveCard(r.Context(), res, c.user.ID, s.now())
	if err != nil {
		return fail(err, "candidate of the exam")
	}
	if err := s.audit(r, c, "result.card", exam+"/"+cand, map[string]any{"kind": res.Kind, "certificate_number": res.CertificateNumber,
		"issued_on": res.IssuedOn.Format(time.DateOnly), "created": created}); err != nil {
		return err
	}
	got, err := s.db.results.Result(r.Context(), exam, cand)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, newResultJSON(got))
	return nil
}

// certificate returns the certificate of the route after checking c may see
// its exam with one of roles.
func (s *Server) certificate(r *http.Request, c *caller, roles ...string) (store.Result, error) {
	res, err := s.db.results.Certificate(r.Context(), r.PathValue("number"))
	if err != nil {
		return res, fail(err, "certificate")
	}
	o, err := s.db.results.ExamOwner(r.Context(), res.ExamID)
	if err != nil {
		return res, err
	}
	return res, allow(c, o, "certificate", roles...)
}

func (s *Server) getCertificate(w http.ResponseWriter, r *http.Request, c *caller) error {
	res, err := s.certificate(r, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newResultJSON(res))
	return nil
}

// extendCertificate handles POST /api/v1/certificates/{number}/extend
// {"valid_until","reason"}.
func (s *Server) extendCertificate(w http.ResponseWriter, r *http.Request, c *caller) error {
	res, err := s.certificate(r, c, store.RoleCouncil)
	if err != nil {
		return err
	}
	var req struct {
		ValidUntil date   `json:"valid_until"`
		Reason     string `json:"reason"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.ValidUntil.IsZero() {
		return errorf(http.StatusUnprocessableEntity, "valid_until is required")
	}
	if err := s.db.results.ExtendCertificate(r.Context(), res.CertificateNumber, req.ValidUntil.Time, req.Reason, c.user.ID, s.now()); err != nil {
		return fail(err, "certificate")
	}
	s.kickOutbox()
	if err := s.audit(r, c, "certificate.extend", res.CertificateNumber, map[string]any{"valid_until": req.ValidUntil.Format(time.DateOnly)}); err != nil {
		return err
	}
	return s.getCertificate(w, r, c)
}

// revokeCertificate handles POST /api/v1/certificates/{number}/revoke
// {"reason"}. The evidence is still kept until the certificate's date.
func (s *Server) revokeCertificate(w http.ResponseWriter, r *http.Request, c *caller) error {
	res, err := s.certificate(r, c, store.RoleCouncil)
	if err != nil {
		return err
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := s.db.results.RevokeCertificate(r.Context(), res.CertificateNumber, req.Reason, c.user.ID, s.now()); err != nil {
		return fail(err, "certificate")
	}
	s.kickOutbox()
	if err := s.audit(r, c, "certificate.revoke", res.CertificateNumber, map[string]any{"reason": req.Reason}); err != nil {
		return err
	}
	return s.getCertificate(w, r, c)
}

type protocolJSON struct {
	Exam       string         `json:"exam"`
	Number     string         `json:"number"`
	SignedOn   date           `json:"signed_on"`
	Document   documentJSON   `json:"document"`
	UploadedAt time.Time      `json:"uploaded_at"`
	Approvals  []approvalJSON `json:"approvals"`
}

type approvalJSON struct {
	Expert    string    `json:"expert"`
	Approved  bool      `json:"approved"`
	Comment   string    `json:"comment,omitempty"`
	DecidedAt time.Time `json:"decided_at"`
}

// uploadProtocol handles PUT /api/v1/exams/{exam}/protocol?number=&signed_on=:
// the site uploads the commission protocol (the body is the scan),
// replacing an earlier one.
func (s *Server) uploadProtocol(w http.ResponseWriter, r *http.Request, c *caller) error {
	o, err := s.examOwner(r, c, store.RoleSite)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var signed date
	if err := signed.UnmarshalJSON([]byte(`"` + q.Get("signed_on") + `"`)); err != nil || q.Get("number") == "" {
		return errorf(http.StatusBadRequest, "?number= and ?signed_on=YYYY-MM-DD are required")
	}
	d := &store.Document{ExamID: o.Exam, Kind: "protocol", Filename: q.Get("filename")}
	if err := s.storeDocument(r, c, d, "exams/"+o.Exam); err != nil {
		return err
	}
	p := store.Protocol{ExamID: o.Exam, Number: q.Get("number"), SignedOn: signed.Time, Document: *d, UploadedBy: c.user.ID, UploadedAt: s.now()}
	if err := s.db.results.SetProtocol(r.Context(), p); err != nil {
		return fail(err, "exam")
	}
	if err := s.audit(r, c, "protocol.upload", o.Exam, map[string]any{"number": p.Number, "document": d.ID, "sha256": d.SHA256}); err != nil {
		return err
	}
	return s.getProtocol(w, r, c)
}

func (s *Server) getProtocol(w http.ResponseWriter, r *http.Request, c *caller) error {
	o, err := s.examOwner(r, c)
	if err != nil {
		return err
	}
	p, err := s.db.results.ExamProtocol(r.Context(), o.Exam)
	if err != nil {
		return fail(err, "protocol")
	}
	out := protocolJSON{Exam: p.ExamID, Number: p.Number, SignedOn: date{p.SignedOn}, Document: newDocumentJSON(p.Document),
		UploadedAt: p.UploadedAt.UTC(), Approvals: []approvalJSON{}}
	for _, a := range p.Approvals {
		out.Approvals = append(out.Approvals, approvalJSON{Expert: a.ExpertLogin, Approved: a.Approved, Comment: a.Comment, DecidedAt: a.DecidedAt.UTC()})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// approveProtocol handles POST /api/v1/exams/{exam}/protocol/approval
// {"approved","comment"}: an appointed expert approves the protocol, or
// not with a comment.
func (s *Server) approveProtocol(w http.ResponseWriter, r *http.Request, c *caller) error {
	o, err := s.examOwner(r, c, store.RoleExpert)
	if err != nil {
		return err
	}
	var req struct {
		Approved bool   `json:"approved"`
		Comment  string `json:"comment"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := s.db.results.ApproveProtocol(r.Context(), o.Exam, c.user.ID, req.Approved, req.Comment, s.now()); err != nil {
		return fail(err, "exam")
	}
	if err := s.audit(r, c, "protocol.approval", o.Exam, map[string]any{"approved": req.Approved}); err != nil {
		return err
	}
	return s.getProtocol(w, r, c)
}

// listDecisions handles GET /api/v1/exams/{exam}/decisions: the council's
// decisions and NARK's verifications of the exam's results.
func (s *Server) listDecisions(w http.ResponseWriter, r *http.Request, c *caller) error {
	o, err := s.examOwner(r, c)
	if err != nil {
		return err
	}
	ds, vs, err := s.db.results.ExamDecisions(r.Context(), o.Exam)
	if err != nil {
		return err
	}
	decisions, verifications := []map[string]any{}, []map[string]any{}
	for _, d := range ds {
		j := map[string]any{"decision": d.Decision, "comment": d.Comment, "decided_at": d.DecidedAt.UTC()}
		if d.Protocol.Number != "" {
			p := map[string]any{"number": d.Protocol.Number, "date": date{d.Protocol.Date}}
			if d.Protocol.DocumentID != "" {
				p["document"] = d.Protocol.DocumentID
				p["url"] = "/api/v1/documents/" + d.Protocol.DocumentID
			}
			if d.Protocol.Link != "" {
				p["link"] = d.Protocol.Link
			}
			j["protocol"] = p
		}
		if d.LateReason != "" {
			j["late_reason"] = d.LateReason
		}
		decisions = append(decisions, j)
	}
	for _, v := range vs {
		j := map[string]any{"verified": v.Verified, "comment": v.Comment, "verified_at": v.VerifiedAt.UTC(), "candidates": nonNil(v.Candidates)}
		if v.LateReason != "" {
			j["late_reason"] = v.LateReason
		}
		verifications = append(verifications, j)
	}
	writeJSON(w, http.StatusOK, map[string]any{"exam": o.Exam, "decisions": decisions, "verifications": verifications})
	return nil
}

// recordDecision handles POST /api/v1/exams/{exam}/decision
// {"decision":"approved"|"rejected"|"returned","comment","protocol":
// {"number","date","document"|"link"},"late_reason"}: the council's
// decision on the exam's submitted cards; approved (with the council's
// protocol) puts them in the register, returned sends them back to the
// center. Unmet preconditions answer 409 naming each; a decision after the
// deadline without late_reason is 409.
func (s *Server) recordDecision(w http.ResponseWriter, r *http.Request, c *caller) error {
	o, err := s.examOwner(r, c, store.RoleCouncil)
	if err != nil {
		return err
	}
	var req struct {
		Decision string `json:"decision"`
		Comment  string `json:"comment"`
		Protocol struct {
			Number   string `json:"number"`
			Date     date   `json:"date"`
			Document string `json:"document"`
			Link     string `json:"link"`
		} `json:"protocol"`
		LateReason string `json:"late_reason"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	d := &store.Decision{ExamID: o.Exam, Decision: req.Decision, Comment: req.Comment, LateReason: req.LateReason,
		Protocol:  store.ApprovalProtocol{Number: req.Protocol.Number, Date: req.Protocol.Date.Time, DocumentID: req.Protocol.Document, Link: req.Protocol.Link},
		DecidedBy: c.user.ID, DecidedAt: s.now()}
	if err := s.db.results.RecordDecision(r.Context(), d); err != nil {
		return fail(err, "exam")
	}
	s.kickOutbox()
	if err := s.audit(r, c, "exam.decision", o.Exam, map[string]any{"decision": req.Decision, "cards": d.Cards,
		"protocol": d.Protocol.Number, "late_reason": d.LateReason}); err != nil {
		return err
	}
	return s.listDecisions(w, r, c)
}

// recordVerification handles POST /api/v1/exams/{exam}/verification
// {"verified","comment","candidates","late_reason"}: NARK verifies the
// exam's approved cards (those of candidates, or all), or not with a
// reason.
func (s *Server) recordVerification(w http.ResponseWriter, r *http.Request, c *caller) error {
	o, err := s.examOwner(r, c, store.RoleNARK)
	if err != nil {
		return err
	}
	var req struct {
		Verified   bool     `json:"verified"`
		Comment    string   `json:"comment"`
		Candidates []string `json:"candidates"`
		LateReason string   `json:"late_reason"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := s.db.results.RecordVerification(r.Context(), store.Verification{ExamID: o.Exam, Verified: req.Verified, Comment: req.Comment,
		Candidates: req.Candidates, LateReason: req.LateReason, VerifiedBy: c.user.ID, VerifiedAt: s.now()}); err != nil {
		return fail(err, "exam")
	}
	if err := s.audit(r, c, "exam.verification", o.Exam, map[string]any{"verified": req.Verified, "candidates": req.Candidates,
		"late_reason": req.LateReason}); err != nil {
		return err
	}
	return s.listDecisions(w, r, c)
}

type deadlineJSON struct {
	Kind        string    `json:"kind"`
	Exam        string    `json:"exam"`
	Candidate   string    `json:"candidate,omitempty"` // evidence_overdue only
	Council     string    `json:"council"`
	Center      string    `json:"center"`
	Site        string    `json:"site"`
	Since       time.Time `json:"since"`
	Due         time.Time `json:"due"`
	Overdue     bool      `json:"overdue"`
	OverdueDays int       `json:"overdue_days"`
}

func (s *Server) deadlines(w http.ResponseWriter, r *http.Request, c *caller, overdueOnly bool) error {
	now := s.now()
	list, err := s.db.results.Deadlines(r.Context(), scopeOf(c.user), now, overdueOnly)
	if err != nil {
		return err
	}
	// The query is narrowed to the caller's scope (scopeOf).
	out := []deadlineJSON{}
	for _, d := range list {
		j := deadlineJSON{Kind: d.Kind, Exam: d.ExamID, Council: d.CouncilID, Center: d.CenterID, Site: d.SiteID,
			Since: d.Since.UTC(), Due: d.Due.UTC(), Overdue: d.Overdue}
		if d.Overdue {
			j.OverdueDays = int(now.Sub(d.Due).Hours() / 24)
		}
		out = append(out, j)
	}
	// Overdue evidence is overdue whichever list is asked for.
	evidence, err := s.overdueDeadlines(r.Context(), c, now)
	if err != nil {
		return err
	}
	out = append(out, evidence...)
	slices.SortStableFunc(out, func(a, b deadlineJSON) int { return a.Due.Compare(b.Due) })
	writeJSON(w, http.StatusOK, out)
	return nil
}

// listDeadlines handles GET /api/v1/deadlines: every pending step of the
// registry procedure the caller sees, overdue ones flagged.
func (s *Server) listDeadlines(w http.ResponseWriter, r *http.Request, c *caller) error {
	return s.deadlines(w, r, c, false)
}

// listOverdue handles GET /api/v1/deadlines/overdue: the steps past due.
func (s *Server) listOverdue(w http.ResponseWriter, r *http.Request, c *caller) error {
	return s.deadlines(w, r, c, true)
}
