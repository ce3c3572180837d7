package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// examLoginStore lists what a candidate's exam login and session call of the
// registry's database.
type examLoginStore interface {
	ExamLogin(ctx context.Context, password string, now time.Time) (string, store.ExamSession, error)
	AuditLogin(ctx context.Context, at time.Time, action, login, addr string) error
	CancelLoginAttempt(ctx context.Context, id int64) error
	LoginSucceeded(ctx context.Context, id int64, kind, login, addr string, now time.Time) error
	ExamSessionByToken(ctx context.Context, token string, now time.Time) (store.ExamSession, error)
}

// examSessionJSON is the answer of an exam login and of the exam session
// route.
type examSessionJSON struct {
	Token       string    `json:"token,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
	ExamID      string    `json:"exam_id"`
	CandidateID string    `json:"candidate_id"`
	Site        string    `json:"site"`
	Webcam      string    `json:"webcam"` // device name at Site
	Screen      string    `json:"screen"`
	StartsAt    time.Time `json:"starts_at"`
	EndsAt      time.Time `json:"ends_at"`
	// WHIP are the endpoints (RFC 9725) the candidate publishes to with
	// the token as bearer: webcam and screen.
	WHIP map[string]string `json:"whip"`
}

func newExamSessionJSON(token string, es store.ExamSession) examSessionJSON {
	return examSessionJSON{
		Token: token, ExpiresAt: es.ExpiresAt.UTC(), ExamID: es.ExamID, CandidateID: es.CandidateID,
		Site: es.SiteID, Webcam: es.Webcam, Screen: es.Screen, StartsAt: es.Start.UTC(), EndsAt: es.End.UTC(),
		WHIP: map[string]string{
			"webcam": "/whip/" + es.SiteID + "/" + es.Webcam,
			"screen": "/whip/" + es.SiteID + "/" + es.Screen,
		},
	}
}

// examLogin handles POST /api/v1/exam/login: a candidate logs in with the
// exam password the site gave them and gets an exam token, bound to their
// exam and workstation, that works until the end of the exam window.
func (s *Server) examLogin(w http.ResponseWriter, r *http.Request, _ *caller) error {
	var req struct {
		Password string `json:"password"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Password) == "" {
		return errorf(http.StatusBadRequest, "password is required")
	}
	id, err := s.attempt(w, r, store.LoginExam, "exam.login", "")
	if err != nil {
		return err
	}
	token, es, err := s.db.examLogin.ExamLogin(r.Context(), req.Password, s.now())
	var we *store.WindowError
	switch {
	case errors.Is(err, store.ErrBadCredentials):
		if err := s.db.examLogin.AuditLogin(r.Context(), s.now(), "exam.login_failed", "", s.clientAddr(r)); err != nil {
			return err
		}
		return errorf(http.StatusUnauthorized, "wrong exam password")
	case errors.As(err, &we):
		// The right password at the wrong time is no guess.
		if err := s.db.examLogin.CancelLoginAttempt(r.Context(), id); err != nil {
			return err
		}
		if err := s.audit(r, nil, "exam.login_outside_window", "", map[string]any{"starts_at": we.Start.UTC(), "ends_at": we.End.UTC()}); err != nil {
			return err
		}
		return &apiError{status: http.StatusForbidden,
			msg:   fmt.Sprintf("the exam password works only during the exam, from %s to %s", we.Start.UTC().Format(time.RFC3339), we.End.UTC().Format(time.RFC3339)),
			extra: map[string]any{"starts_at": we.Start.UTC(), "ends_at": we.End.UTC()}}
	case err != nil:
		return err
	}
	if err := s.db.examLogin.LoginSucceeded(r.Context(), id, store.LoginExam, "", s.clientAddr(r), s.now()); err != nil {
		return err
	}
	if err := s.audit(r, nil, "exam.login", es.ExamID+"/"+es.CandidateID, nil, func(e *store.AuditEntry) {
		e.ActorLogin = "candidate:" + es.CandidateID
	}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newExamSessionJSON(token, es))
	return nil
}

// examSession handles GET /api/v1/exam/session: the candidate's own exam
// session.
func (s *Server) examSession(w http.ResponseWriter, _ *http.Request, c *caller) error {
	writeJSON(w, http.StatusOK, newExamSessionJSON("", *c.exam))
	return nil
}

// authenticateCandidate returns the caller of r holding an exam token.
func (s *Server) authenticateCandidate(r *http.Request) (*caller, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, errorf(http.StatusUnauthorized, "authorization required: Authorization: Bearer <exam token from POST /api/v1/exam/login>")
	}
	es, err := s.db.examLogin.ExamSessionByToken(r.Context(), token, s.now())
	if errors.Is(err, store.ErrBadCredentials) {
		return nil, errorf(http.StatusUnauthorized, "invalid or expired exam token")
	}
	if err != nil {
		return nil, err
	}
	return &caller{token: token, exam: &es}, nil
}
