package api

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

	"github.com/nokstream/nokstream/archiver"
	"github.com/nokstream/nokstream/archiver/bundle"
	"github.com/nokstream/nokstream/archiver/seal"
	"github.com/nokstream/nokstream/registry/store"
)

// The evidence routes of issue 5, registered when Deps.SealKey is set:
//
//	GET /api/v1/keys/seal                                           the archiver's public key: {"algorithm","key_id","public_key","pem"}, or PEM with ?format=pem
//	GET /api/v1/exams/{exam}/candidates/{candidate}/evidence        ?purpose= (or X-Purpose) → the evidence bundle (application/x-tar)
//
// The key is public: anyone checking a bundle may fetch it, without a
// session. A bundle may be exported by NARK and by the exam's council, with a
// purpose, which goes to the audit log before the first byte.

// evidenceStore is what an export reads; *store.Store is one.
type evidenceStore = archiver.ExportStore

// evidenceRoutes registers the evidence routes.
func (s *Server) evidenceRoutes() {
	if len(s.sealKey) != ed25519.PrivateKeySize {
		return
	}
	s.route("GET /api/v1/keys/seal", authNone, s.sealPublicKey)
	s.route("GET /api/v1/exams/{exam}/candidates/{candidate}/evidence", authBearer, s.evidence)
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
	sum, err := archiver.ExportEvidence(r.Context(), cw, s.store, objs, s.sealKey, archiver.ExportRequest{
		ExamID: exam, CandidateID: cand, Purpose: why, ActorID: c.user.ID, ActorLogin: c.user.Login, RemoteAddr: r.RemoteAddr,
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
