package api

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"time"

	"github.com/nokstream/nokstream/internal/evidence/bundle"
	"github.com/nokstream/nokstream/internal/evidence/seal"
	"github.com/nokstream/nokstream/registry/export"
	"github.com/nokstream/nokstream/registry/store"
)

// The evidence routes of issue 5, registered when Deps.SealKey is set:
//
//	GET  /api/v1/keys/seal                                           the archiver's public key: {"algorithm","key_id","public_key","pem"}, or PEM with ?format=pem
//	GET  /api/v1/exams/{exam}/candidates/{candidate}/evidence        ?purpose= (or X-Purpose) → the evidence bundle (application/x-tar)
//	POST /api/v1/evidence/verify                                     a bundle as the body → its verification report (JSON)
//
// The key is public: anyone checking a bundle may fetch it, without a
// session. A bundle may be exported by NARK and by the exam's council, with a
// purpose, which goes to the audit log before the first byte.
//
// Those who may export a bundle (NARK and council users) may also have the
// registry verify one, as `nokstream verify --pubkey` does: with the
// archive's own key, so a bundle that verifies was exported by this archive
// and is intact. The body is checked as it streams in, up to
// Config.MaxBundleBytes. Every body that could be read is answered 200 with
// the report, "valid" false and the problems for one that does not verify,
// a body that is no tar at all included; the verification is audited as
// evidence.verify of the bundle's candidate-exam.

// evidenceStore is what an export reads; *store.Store is one.
type evidenceStore = export.Store

// evidenceRoutes registers the evidence routes.
func (s *Server) evidenceRoutes() {
	if len(s.sealKey) != ed25519.PrivateKeySize {
		return
	}
	s.route("GET /api/v1/keys/seal", authNone, s.sealPublicKey)
	s.route("GET /api/v1/exams/{exam}/candidates/{candidate}/evidence", authBearer, s.evidence)
	s.route("POST /api/v1/evidence/verify", authBearer, s.verifyEvidence)
}

// sealPublicKey handles GET /api/v1/keys/seal.
func (s *Server) sealPublicKey(w http.ResponseWriter, r *http.Request, _ *caller) error {
	pub := s.sealKey.Public().(ed25519.PublicKey)
	pem := seal.MarshalPublicKey(pub)
	if r.URL.Query().Get("format") == "pem" {
		w.Header().Set("Content-Type", "application/x-pem-file")
		_, err := w.Write(pem)
		return err
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"algorithm":  "Ed25519",
		"key_id":     seal.KeyID(pub),
		"public_key": base64.StdEncoding.EncodeToString(pub),
		"pem":        string(pem),
	})
	return nil
}

// evidence handles GET /api/v1/exams/{exam}/candidates/{candidate}/evidence:
// the evidence bundle of a candidate's exam, streamed.
func (s *Server) evidence(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c, store.RoleNARK, store.RoleCouncil)
	if err != nil {
		return err
	}
	why := purpose(r)
	if why == "" {
		return errorf(http.StatusBadRequest, "an export of evidence needs a purpose: the purpose query parameter or the X-Purpose header")
	}
	objs, ok := s.blobs.(bundle.Objects)
	if !ok {
		return fmt.Errorf("blob store %T cannot stat objects", s.blobs)
	}
	cw := &startWriter{w: w, start: func() {
		w.Header().Set("Content-Type", "application/x-tar")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="evidence-%s-%s.tar"`, exam, cand))
		w.Header().Set("Cache-Control", "no-store")
	}}
	sum, err := export.Bundle(r.Context(), cw, s.db.evidence, objs, s.sealKey, export.Request{
		ExamID: exam, CandidateID: cand, Purpose: why, ActorID: c.user.ID, ActorLogin: c.user.Login, RemoteAddr: s.auditAddr(r),
	}, s.now())
	switch {
	case err == nil:
		for _, p := range sum.Problems {
			s.log.Error("ALERT evidence exported with an object missing or altered in the store", "exam_id", exam,
				"candidate_id", cand, "object_key", p.Key, "detail", p.Detail)
		}
		return nil
	case cw.started:
		// The client has part of a tar, which its verifier will refuse as
		// truncated; nothing else can be said now.
		s.log.Error("evidence export broke off", "exam_id", exam, "candidate_id", cand, "err", err)
		return nil
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, "unknown candidate of the exam")
	}
	return err
}

// startWriter calls start before the first byte is written.
type startWriter struct {
	w       http.ResponseWriter
	start   func()
	started bool
}

func (s *startWriter) Write(p []byte) (int, error) {
	if !s.started {
		s.started = true
		s.start()
	}
	return s.w.Write(p)
}

// maxReported bounds the problems and warnings a verification answers with;
// the counts say how many there were.
const maxReported = 100

// verifyJSON is the answer of POST /api/v1/evidence/verify.
type verifyJSON struct {
	Valid bool `json:"valid"`
	// Reason is the first problem, as `nokstream verify` names it; empty
	// when the bundle verifies.
	Reason    string `json:"reason,omitempty"`
	Exam      string `json:"exam"`
	Candidate string `json:"candidate"`
	// KeyID is the archive's key the bundle was checked with.
	KeyID      string `json:"key_id"`
	MerkleRoot string `json:"merkle_root"`
	// Objects and Bytes are the media objects (init and media segments)
	// that matched the manifest, and their bytes; Read is the bytes of
	// the tar read.
	Objects       int              `json:"objects"`
	Bytes         int64            `json:"bytes"`
	Read          int64            `json:"read"`
	Problems      []bundle.Problem `json:"problems"`
	ProblemsTotal int              `json:"problems_total"`
	Warnings      []string         `json:"warnings"`
	WarningsTotal int              `json:"warnings_total"`
	Export        *exportJSON      `json:"export,omitempty"`
}

// exportJSON is what export.json of a verified bundle says of its export.
type exportJSON struct {
	Purpose    string    `json:"purpose"`
	ExportedBy string    `json:"exported_by"`
	ExportedAt time.Time `json:"exported_at"`
}

// verifyEvidence handles POST /api/v1/evidence/verify: the evidence bundle
// in the body, checked with bundle.Verify and the archive's key.
func (s *Server) verifyEvidence(w http.ResponseWriter, r *http.Request, c *caller) error {
	if err := allowRole(c, store.RoleNARK, store.RoleCouncil); err != nil {
		return err
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/x-tar" && mt != "application/octet-stream") {
			return errorf(http.StatusUnsupportedMediaType, "content type %q is not application/x-tar or application/octet-stream", ct)
		}
	}
	tooBig := errorf(http.StatusRequestEntityTooLarge, "an evidence bundle to verify may have at most %d bytes", s.cfg.MaxBundleBytes)
	if r.ContentLength > s.cfg.MaxBundleBytes {
		return tooBig
	}
	// What one verification holds is bounded (the manifest, parsed), not
	// how many run: the slots bound that. The route closes a refused
	// request's connection without reading its body.
	select {
	case s.verifySlots <- struct{}{}:
		defer func() { <-s.verifySlots }()
	default:
		w.Header().Set("Retry-After", "60")
		return errorf(http.StatusServiceUnavailable, "%d evidence bundles are being verified, the most at once: try again in a minute",
			cap(s.verifySlots))
	}
	pub := s.sealKey.Public().(ed25519.PublicKey)
	// A streaming route has no read deadline: a body that stops coming
	// would hold its slot for ever. Each read must come within
	// VerifyIdleTimeout.
	body := &errReader{r: http.MaxBytesReader(nil, r.Body, s.cfg.MaxBundleBytes), rc: http.NewResponseController(w),
		idle: s.cfg.VerifyIdleTimeout}
	rep, verr := bundle.Verify(body, pub)
	// The verifier stops at the first thing that is not a bundle; read the
	// rest, so that the client, still sending, gets the answer rather than
	// a reset connection.
	_, _ = io.Copy(io.Discard, body)
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(body.err, &maxErr):
		return tooBig
	case errors.Is(body.err, os.ErrDeadlineExceeded):
		return errorf(http.StatusRequestTimeout, "the bundle stopped coming for %v: send it again", s.cfg.VerifyIdleTimeout)
	case body.err != nil && r.Context().Err() != nil:
		return r.Context().Err()
	case body.err != nil:
		return errorf(http.StatusBadRequest, "read the bundle: %v", body.err)
	case verr != nil:
		return errorf(http.StatusUnprocessableEntity, "cannot read the bundle: %v", verr)
	}

	out := verifyJSON{Valid: rep.OK(), Exam: rep.ExamID, Candidate: rep.CandidateID, KeyID: seal.KeyID(pub),
		MerkleRoot: rep.MerkleRoot, Objects: rep.Objects, Bytes: rep.Bytes, Read: rep.Read,
		Problems: rep.Problems[:min(len(rep.Problems), maxReported)], ProblemsTotal: len(rep.Problems) + rep.MoreProblems,
		Warnings: rep.Warnings[:min(len(rep.Warnings), maxReported)], WarningsTotal: len(rep.Warnings)}
	if out.Problems == nil {
		out.Problems = []bundle.Problem{}
	}
	if out.Warnings == nil {
		out.Warnings = []string{}
	}
	if !out.Valid {
		out.Reason = rep.Problems[0].String()
	}
	if x := rep.Export; x != nil {
		out.Export = &exportJSON{Purpose: x.Purpose, ExportedBy: x.ExportedBy, ExportedAt: x.ExportedAt.UTC()}
	}

	// The audit entry names the bundle's candidate-exam, as the export's
	// does, so that the next export carries this check in its audit trail.
	// What a bundle that does not verify claims is not trusted: the entry
	// says it did not verify.
	object := "evidence"
	if rep.ExamID != "" || rep.CandidateID != "" {
		object = export.AuditObject(limit(rep.ExamID, 200), limit(rep.CandidateID, 200))
	}
	detail := map[string]any{"valid": out.Valid, "key_id": out.KeyID, "merkle_root": out.MerkleRoot,
		"objects": out.Objects, "bytes": out.Bytes, "read": out.Read}
	if !out.Valid {
		detail["problems"] = out.ProblemsTotal
		detail["reason"] = limit(out.Reason, 500)
	}
	if err := s.audit(r, c, "evidence.verify", object, detail); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// errReader remembers the first error other than io.EOF of its reader.
type errReader struct {
	r   io.Reader
	err error
	// With rc, each read must come within idle.
	rc   *http.ResponseController
	idle time.Duration
}

func (e *errReader) Read(p []byte) (int, error) {
	if e.rc != nil {
		_ = e.rc.SetReadDeadline(time.Now().Add(e.idle)) // a test recorder takes none
	}
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}
