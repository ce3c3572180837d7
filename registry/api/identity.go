package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// identityStore lists what the identity check routes call of the registry's
// database.
type identityStore interface {
	ExamCandidate(ctx context.Context, exam, candidate string) (store.ExamCandidate, error)
	IdentityDocuments(ctx context.Context, exam, candidate string) ([]store.Document, error)
	Identity(ctx context.Context, exam, candidate string) (store.IdentityCheck, error)
	RecordIdentity(ctx context.Context, c store.IdentityCheck) error
}

// identityRoles may see a candidate's identity documents at admission: the
// site that checks them, and those above it. An expert reviews the
// procedure and never sees a candidate's papers.
var identityRoles = []string{store.RoleNARK, store.RoleCouncil, store.RoleCenter, store.RoleSite}

type identityCheckJSON struct {
	Confirmed bool      `json:"confirmed"`
	Document  string    `json:"document,omitempty"`
	Photo     string    `json:"photo,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	CheckedBy string    `json:"checked_by"`
	CheckedAt time.Time `json:"checked_at"`
}

type identityJSON struct {
	Exam      string             `json:"exam"`
	Candidate candidateJSON      `json:"candidate"`
	Documents []documentJSON     `json:"documents"`
	Check     *identityCheckJSON `json:"check"`
}

// identityDocumentURL is where the identity check reads document id.
func identityDocumentURL(exam, cand, id string) string {
	return "/api/v1/exams/" + exam + "/candidates/" + cand + "/identity/documents/" + id
}

// getIdentity handles GET /api/v1/exams/{exam}/candidates/{candidate}/identity:
// what the site checks at admission: the candidate (name and identity
// document), the scans of their identity documents and the candidate-exam's
// photo, and the check recorded, if any.
func (s *Server) getIdentity(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c, identityRoles...)
	if err != nil {
		return err
	}
	ec, err := s.db.identity.ExamCandidate(r.Context(), exam, cand)
	if err != nil {
		return fail(err, "candidate of the exam")
	}
	docs, err := s.db.identity.IdentityDocuments(r.Context(), exam, cand)
	if err != nil {
		return err
	}
	out := identityJSON{Exam: exam, Candidate: newCandidateJSON(ec.Candidate, c.user), Documents: []documentJSON{}}
	for _, d := range docs {
		j := newDocumentJSON(d)
		j.URL = identityDocumentURL(exam, cand, d.ID)
		out.Documents = append(out.Documents, j)
	}
	check, err := s.db.identity.Identity(r.Context(), exam, cand)
	switch {
	case err == nil:
		out.Check = &identityCheckJSON{Confirmed: check.Confirmed, Document: check.DocumentID, Photo: check.PhotoID, Reason: check.Reason,
			CheckedBy: check.CheckedByLogin, CheckedAt: check.CheckedAt.UTC()}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getIdentityDocument handles GET .../identity/documents/{document}: the
// bytes of one of the documents getIdentity lists, audited.
func (s *Server) getIdentityDocument(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c, identityRoles...)
	if err != nil {
		return err
	}
	docs, err := s.db.identity.IdentityDocuments(r.Context(), exam, cand)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(docs, func(d store.Document) bool { return d.ID == r.PathValue("document") })
	if i < 0 {
		return errorf(http.StatusNotFound, "unknown identity document of the candidate")
	}
	return s.serveDocument(w, r, c, docs[i], map[string]any{"purpose": "identity_check"})
}

// uploadIdentityDocument handles POST .../identity/documents?filename=: the
// site uploads a missing scan of the candidate's identity document (the
// body); it becomes one of the candidate's documents (kind passport).
func (s *Server) uploadIdentityDocument(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c, store.RoleSite)
	if err != nil {
		return err
	}
	d := &store.Document{CandidateID: cand, Kind: store.DocumentPassport, Filename: r.URL.Query().Get("filename")}
	return s.storeIdentityDocument(w, r, c, exam, d, "candidates/"+cand)
}

// uploadIdentityPhoto handles POST .../identity/photo: the site stores a
// photo from the candidate's webcam taken at the identity check (the body,
// image/jpeg or image/png), a document of the candidate-exam.
func (s *Server) uploadIdentityPhoto(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c, store.RoleSite)
	if err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "image/jpeg" && ct != "image/png" {
		return errorf(http.StatusUnsupportedMediaType, "a webcam photo is image/jpeg or image/png, not %q", ct)
	}
	d := &store.Document{CandidateID: cand, ExamID: exam, Kind: store.DocumentIdentityPhoto, Filename: r.URL.Query().Get("filename")}
	return s.storeIdentityDocument(w, r, c, exam, d, "exams/"+exam+"/"+cand)
}

// storeIdentityDocument stores the body as document d of d.CandidateID
// under owner's keys, audits the upload as part of the identity check at
// exam, and answers 201 with the document and its identity-check URL.
func (s *Server) storeIdentityDocument(w http.ResponseWriter, r *http.Request, c *caller, exam string, d *store.Document, owner string) error {
	if err := s.storeDocument(r, c, d, owner); err != nil {
		return err
	}
	if err := s.audit(r, c, "document.upload", d.ID, map[string]any{"candidate": d.CandidateID, "exam": exam, "kind": d.Kind,
		"bytes": d.Bytes, "sha256": d.SHA256, "purpose": "identity_check"}); err != nil {
		return err
	}
	j := newDocumentJSON(*d)
	j.URL = identityDocumentURL(exam, d.CandidateID, d.ID)
	writeJSON(w, http.StatusCreated, j)
	return nil
}

// setIdentity handles PUT /api/v1/exams/{exam}/candidates/{candidate}/identity
// {"confirmed":true,"document","photo"} or {"confirmed":false,"reason"}:
// the site records the identity check; a refusal refuses the candidate's
// admission with the reason.
func (s *Server) setIdentity(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c, store.RoleSite)
	if err != nil {
		return err
	}
	var req struct {
		Confirmed bool   `json:"confirmed"`
		Document  string `json:"document"`
		Photo     string `json:"photo"`
		Reason    string `json:"reason"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := s.db.identity.RecordIdentity(r.Context(), store.IdentityCheck{ExamID: exam, CandidateID: cand, Confirmed: req.Confirmed,
		DocumentID: req.Document, PhotoID: req.Photo, Reason: req.Reason, CheckedBy: c.user.ID, CheckedAt: s.now()}); err != nil {
		return fail(err, "candidate of the exam")
	}
	if !req.Confirmed {
		s.kickOutbox()
	}
	if err := s.audit(r, c, "exam.identity", exam+"/"+cand, map[string]any{"confirmed": req.Confirmed, "document": req.Document,
		"photo": req.Photo, "reason": req.Reason}); err != nil {
		return err
	}
	return s.getIdentity(w, r, c)
}
