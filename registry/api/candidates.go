package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/nokstream/nokstream/internal/blob"
	"github.com/nokstream/nokstream/registry/store"
)

// candidateStore lists what the routes of candidates and their documents
// call of the registry's database.
type candidateStore interface {
	Candidates(ctx context.Context, sc store.Scope) ([]store.Candidate, error)
	Candidate(ctx context.Context, id string) (store.Candidate, error)
	SaveCandidate(ctx context.Context, c store.Candidate) (bool, error)
	AddDocument(ctx context.Context, d *store.Document) error
	CandidateDocuments(ctx context.Context, candidate string) ([]store.Document, error)
	Document(ctx context.Context, id string) (store.Document, error)
	ExamOwner(ctx context.Context, id string) (store.Owner, error)
}

// candidateJSON is a candidate as a caller may see them: the fields
// beyond the name are nil, and left out, for a role that may not read them
// (candidateFieldsOf).
type candidateJSON struct {
	ID         string    `json:"id"`
	Center     string    `json:"center"`
	LastName   string    `json:"last_name"`
	FirstName  string    `json:"first_name"`
	MiddleName string    `json:"middle_name"`
	FullName   string    `json:"full_name"`
	SNILS      *string   `json:"snils,omitempty"`
	Document   *string   `json:"document,omitempty"`
	Email      *string   `json:"email,omitempty"`
	Phone      *string   `json:"phone,omitempty"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// newCandidateJSON returns k as u may see them.
func newCandidateJSON(k store.Candidate, u store.User) candidateJSON {
	out := candidateJSON{ID: k.ID, Center: k.CenterID, LastName: k.LastName, FirstName: k.FirstName, MiddleName: k.MiddleName,
		FullName: k.FullName(), UpdatedAt: k.UpdatedAt.UTC()}
	f := candidateFieldsOf(u.Role)
	if f.document {
		out.Document = &k.Document
	}
	if f.snils {
		out.SNILS = &k.SNILS
	}
	if f.contacts {
		out.Email, out.Phone = &k.Email, &k.Phone
	}
	return out
}

// candidateRequest is the body that creates or updates a candidate.
type candidateRequest struct {
	ID         string `json:"id"`
	LastName   string `json:"last_name"`
	FirstName  string `json:"first_name"`
	MiddleName string `json:"middle_name"`
	SNILS      string `json:"snils"`
	Document   string `json:"document"`
	Email      string `json:"email"`
	Phone      string `json:"phone"`
}

func (q candidateRequest) candidate(id, center string) store.Candidate {
	return store.Candidate{ID: id, CenterID: center, LastName: q.LastName, FirstName: q.FirstName, MiddleName: q.MiddleName,
		SNILS: q.SNILS, Document: q.Document, Email: q.Email, Phone: q.Phone}
}

func (s *Server) listCandidates(w http.ResponseWriter, r *http.Request, c *caller) error {
	list, err := s.db.candidates.Candidates(r.Context(), scopeOf(c.user))
	if err != nil {
		return err
	}
	out := []candidateJSON{}
	for _, k := range list {
		if visible(c.user, k.Owner()) {
			out = append(out, newCandidateJSON(k, c.user))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// createCandidate handles POST /api/v1/candidates: a center registers a
// candidate (the id is generated when not given).
func (s *Server) createCandidate(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := allowRole(c, store.RoleCenter); err != nil {
		return err
	}
	var req candidateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	id := req.ID
	if id == "" {
		id = store.NewID()
	}
	if existing, err := s.db.candidates.Candidate(r.Context(), id); err == nil {
		if existing.CenterID == c.user.OrgID {
			return errorf(http.StatusConflict, "candidate %s exists: PUT /api/v1/candidates/%s to change it", id, id)
		}
		return errorf(http.StatusConflict, "candidate id %s is taken", id)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if _, err := s.db.candidates.SaveCandidate(r.Context(), req.candidate(id, c.user.OrgID)); err != nil {
		return fail(err, "center")
	}
	if err := s.audit(r, c, "candidate.create", id, nil); err != nil {
		return err
	}
	k, err := s.db.candidates.Candidate(r.Context(), id)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/candidates/"+id)
	writeJSON(w, http.StatusCreated, newCandidateJSON(k, c.user))
	return nil
}

func (s *Server) candidate(r *http.Request, c *caller, roles ...string) (store.Candidate, error) {
	k, err := s.db.candidates.Candidate(r.Context(), r.PathValue("candidate"))
	if err != nil {
		return k, fail(err, "candidate")
	}
	return k, allow(c, k.Owner(), "candidate", roles...)
}

func (s *Server) getCandidate(w http.ResponseWriter, r *http.Request, c *caller) error {
	k, err := s.candidate(r, c)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newCandidateJSON(k, c.user))
	return nil
}

// updateCandidate handles PUT /api/v1/candidates/{candidate}.
func (s *Server) updateCandidate(w http.ResponseWriter, r *http.Request, c *caller) error {
	k, err := s.candidate(r, c, store.RoleCenter)
	if err != nil {
		return err
	}
	var req candidateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.ID != "" && req.ID != k.ID {
		return errorf(http.StatusUnprocessableEntity, "id %q differs from the candidate's %q", req.ID, k.ID)
	}
	if _, err := s.db.candidates.SaveCandidate(r.Context(), req.candidate(k.ID, k.CenterID)); err != nil {
		return fail(err, "candidate")
	}
	if err := s.audit(r, c, "candidate.update", k.ID, nil); err != nil {
		return err
	}
	return s.getCandidate(w, r, c)
}

type documentJSON struct {
	ID          string    `json:"id"`
	Candidate   string    `json:"candidate,omitempty"`
	Exam        string    `json:"exam,omitempty"`
	Kind        string    `json:"kind"`
	Filename    string    `json:"filename"`
	ContentType string    `json:"content_type"`
	Bytes       int64     `json:"bytes"`
	SHA256      string    `json:"sha256"`
	URL         string    `json:"url"` // GET it with the bearer token
	UploadedAt  time.Time `json:"uploaded_at"`
}

func newDocumentJSON(d store.Document) documentJSON {
	return documentJSON{ID: d.ID, Candidate: d.CandidateID, Exam: d.ExamID, Kind: d.Kind, Filename: d.Filename,
		ContentType: d.ContentType, Bytes: d.Bytes, SHA256: d.SHA256, URL: "/api/v1/documents/" + d.ID, UploadedAt: d.UploadedAt.UTC()}
}

// documentTypes are the content types of documents that may be uploaded:
// scans.
var documentTypes = map[string]bool{"application/pdf": true, "image/jpeg": true, "image/png": true, "image/tiff": true}

// filenamePattern is what a document's file name may be.
var filenamePattern = regexp.MustCompile(`^[^/\\\x00-\x1f]{0,255}$`)

// storeDocument reads the body of r, a scan of at most
// Config.MaxDocumentBytes, stores it in the blob store under a new key of
// owner and records it: the index row is written after the object, so an
// object without a row is an upload that never completed.
func (s *Server) storeDocument(r *http.Request, c *caller, d *store.Document, owner string) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !documentTypes[mt] {
		return errorf(http.StatusUnsupportedMediaType, "a document is application/pdf, image/jpeg, image/png or image/tiff, not %q", r.Header.Get("Content-Type"))
	}
	if !filenamePattern.MatchString(d.Filename) {
		return errorf(http.StatusUnprocessableEntity, "filename %q: at most 255 characters, without '/' or '\\'", d.Filename)
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, s.cfg.MaxDocumentBytes))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errorf(http.StatusRequestEntityTooLarge, "a document may have at most %d bytes", s.cfg.MaxDocumentBytes)
	}
	if err != nil {
		return fmt.Errorf("read document: %w", err)
	}
	if len(body) == 0 {
		return errorf(http.StatusBadRequest, "the document is empty")
	}
	sum := sha256.Sum256(body)
	d.ID = store.NewID()
	d.ContentType, d.Bytes, d.SHA256, d.UploadedBy = mt, int64(len(body)), hex.EncodeToString(sum[:]), c.user.ID
	d.ObjectKey = store.DocumentKey(owner, d.ID)
	if err := s.blobs.Put(r.Context(), d.ObjectKey, bytes.NewReader(body), int64(len(body))); err != nil {
		return fmt.Errorf("store document %s: %w", d.ObjectKey, err)
	}
	if err := s.db.candidates.AddDocument(r.Context(), d); err != nil {
		return fail(err, "document owner")
	}
	return nil
}

// uploadDocument handles POST /api/v1/candidates/{candidate}/documents: the
// body is the scan, ?kind= what it is (passport, snils, diploma,
// application, consent, other) and ?filename= its name.
func (s *Server) uploadDocument(w http.ResponseWriter, r *http.Request, c *caller) error {
	k, err := s.candidate(r, c, store.RoleCenter)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	d := &store.Document{CandidateID: k.ID, Kind: q.Get("kind"), Filename: q.Get("filename")}
	if d.Kind == "" {
		return errorf(http.StatusBadRequest, "?kind= is required: passport, snils, diploma, application, consent or other")
	}
	if err := s.storeDocument(r, c, d, "candidates/"+k.ID); err != nil {
		return err
	}
	if err := s.audit(r, c, "document.upload", d.ID, map[string]any{"candidate": k.ID, "kind": d.Kind, "bytes": d.Bytes, "sha256": d.SHA256}); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/documents/"+d.ID)
	writeJSON(w, http.StatusCreated, newDocumentJSON(*d))
	return nil
}

func (s *Server) listDocuments(w http.ResponseWriter, r *http.Request, c *caller) error {
	k, err := s.candidate(r, c)
	if err != nil {
		return err
	}
	docs, err := s.db.candidates.CandidateDocuments(r.Context(), k.ID)
	if err != nil {
		return err
	}
	out := []documentJSON{}
	for _, d := range docs {
		out = append(out, newDocumentJSON(d))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// getDocument handles GET /api/v1/documents/{document}: the bytes of a
// candidate's document or an exam's protocol, to whoever sees its owner.
// Every download is audited.
func (s *Server) getDocument(w http.ResponseWriter, r *http.Request, c *caller) error {
	d, err := s.db.candidates.Document(r.Context(), r.PathValue("document"))
	if err != nil {
		return fail(err, "document")
	}
	var o store.Owner
	if d.CandidateID != "" {
		k, err := s.db.candidates.Candidate(r.Context(), d.CandidateID)
		if err != nil {
			return err
		}
		o = k.Owner()
		if d.ExamID != "" {
			// A document of a candidate-exam (an identity photo) is that
			// exam's: of the candidate's councils, only the exam's sees it.
			eo, err := s.db.candidates.ExamOwner(r.Context(), d.ExamID)
			if err != nil {
				return err
			}
			o.Councils = []string{eo.Council}
		}
	} else if o, err = s.db.candidates.ExamOwner(r.Context(), d.ExamID); err != nil {
		return err
	}
	if err := allow(c, o, "document"); err != nil {
		return err
	}
	return s.serveDocument(w, r, c, d, nil)
}

// serveDocument answers the bytes of d, checked against its record, as an
// attachment, and audits the download (document.get, with detail added).
func (s *Server) serveDocument(w http.ResponseWriter, r *http.Request, c *caller, d store.Document, detail map[string]any) error {
	rc, err := s.blobs.Get(r.Context(), d.ObjectKey)
	if errors.Is(err, blob.ErrNotFound) {
		return errorf(http.StatusNotFound, "document is recorded but not stored")
	}
	if err != nil {
		return fmt.Errorf("get document %s: %w", d.ObjectKey, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, d.Bytes+1))
	if err != nil {
		return fmt.Errorf("read document %s: %w", d.ObjectKey, err)
	}
	if sum := sha256.Sum256(b); int64(len(b)) != d.Bytes || hex.EncodeToString(sum[:]) != d.SHA256 {
		s.log.Error("stored document does not match its record", "object_key", d.ObjectKey)
		return errorf(http.StatusInternalServerError, "stored document does not match its record")
	}
	audited := map[string]any{"candidate": d.CandidateID, "exam": d.ExamID, "kind": d.Kind}
	for k, v := range detail {
		audited[k] = v
	}
	if err := s.audit(r, c, "document.get", d.ID, audited); err != nil {
		return err
	}
	w.Header().Set("Content-Type", d.ContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	// A document downloads as a file, never renders as a page of this
	// origin, whatever type its uploader gave it.
	filename := d.Filename
	if filename == "" {
		filename = d.ID
	}
	disposition := mime.FormatMediaType("attachment", map[string]string{"filename": filename})
	if disposition == "" {
		disposition = "attachment"
	}
	w.Header().Set("Content-Disposition", disposition)
	w.Header().Set("Content-Security-Policy", "default-src 'none'; sandbox; frame-ancestors 'none'")
	w.Header().Set("Cache-Control", "no-store")
	_, err = w.Write(b)
	return err
}
