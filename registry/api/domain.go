package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/nokstream/nokstream/internal/events"
	"github.com/nokstream/nokstream/registry/store"
)

// domainStore lists what the outbox relay and the domain routes' shared exam
// checks call of the registry's database.
type domainStore interface {
	PruneOutbox(ctx context.Context, before time.Time) (int64, error)
	RelayOutbox(ctx context.Context, limit int, now time.Time, publish func(context.Context, store.OutboxEvent) error) (int, error)
	FactsWatermark(ctx context.Context) (events.FactsWatermark, bool, error)
	ExamCandidate(ctx context.Context, exam, candidate string) (store.ExamCandidate, error)
	ExamOwner(ctx context.Context, id string) (store.Owner, error)
}

// domainRoutes registers the routes of the НОК domain. Access to each is
// decided in scope.go; the OpenAPI document (openapi.json) describes each.
func (s *Server) domainRoutes() {
	s.route("GET /api/v1/openapi.json", authNone, s.openAPI)
	s.route("GET /api/v1/auth/me", authPasswordChange, s.me)
	s.route("POST /api/v1/exam/login", authNone, s.examLogin)
	s.route("GET /api/v1/exam/session", authCandidate, s.examSession)

	s.route("GET /api/v1/councils", authBearer, s.listCouncils)
	s.route("GET /api/v1/councils/{council}", authBearer, s.getCouncil)
	s.route("PUT /api/v1/councils/{council}/commission", authBearer, s.setCommission)
	s.route("GET /api/v1/councils/{council}/retention", authBearer, s.getRetention)
	s.route("PUT /api/v1/councils/{council}/retention", authBearer, s.setRetention)
	s.route("GET /api/v1/centers", authBearer, s.listCenters)
	s.route("GET /api/v1/centers/{center}", authBearer, s.getCenter)
	s.route("PUT /api/v1/centers/{center}", authBearer, s.updateCenter)
	s.route("PUT /api/v1/centers/{center}/qualifications", authBearer, s.setCenterQualifications)
	s.route("POST /api/v1/centers/{center}/authorisations", authBearer, s.authoriseCenter)
	s.route("DELETE /api/v1/centers/{center}/authorisations/{qualification}", authBearer, s.withdrawAuthorisation)
	s.route("GET /api/v1/sites", authBearer, s.listSites)
	s.route("GET /api/v1/sites/{site}", authBearer, s.getSite)
	s.route("PUT /api/v1/sites/{site}", authBearer, s.updateSite)
	s.route("GET /api/v1/sites/{site}/devices", authBearer, s.siteDevices)
	s.route("GET /api/v1/qualifications", authBearer, s.listQualifications)
	s.route("GET /api/v1/qualifications/{code}", authBearer, s.getQualification)
	s.route("POST /api/v1/qualifications/{code}/tools", authBearer, s.addTool)

	s.route("GET /api/v1/candidates", authBearer, s.listCandidates)
	s.route("POST /api/v1/candidates", authBearer, s.createCandidate)
	s.route("GET /api/v1/candidates/{candidate}", authBearer, s.getCandidate)
	s.route("PUT /api/v1/candidates/{candidate}", authBearer, s.updateCandidate)
	s.route("GET /api/v1/candidates/{candidate}/documents", authBearer, s.listDocuments)
	s.route("POST /api/v1/candidates/{candidate}/documents", authBearer, s.uploadDocument)
	s.route("GET /api/v1/documents/{document}", authBearerOrSigned, s.getDocument)

	s.route("GET /api/v1/exams", authBearer, s.listExams)
	s.route("POST /api/v1/exams", authBearer, s.createExam)
	s.route("GET /api/v1/exams/{exam}", authBearer, s.getExam)
	s.route("POST /api/v1/exams/{exam}/experts", authBearer, s.appointExpert)
	s.route("GET /api/v1/exams/{exam}/preconditions", authBearer, s.preconditions)
	s.route("GET /api/v1/exams/{exam}/candidates", authBearer, s.listExamCandidates)
	s.route("POST /api/v1/exams/{exam}/candidates", authBearer, s.addExamCandidate)
	s.route("GET /api/v1/exams/{exam}/candidates/{candidate}", authBearer, s.getExamCandidate)
	s.route("PUT /api/v1/exams/{exam}/candidates/{candidate}/admission", authBearer, s.setAdmission)
	s.route("POST /api/v1/exams/{exam}/candidates/{candidate}/password", authBearer, s.issuePassword)
	s.route("GET /api/v1/exams/{exam}/candidates/{candidate}/media", authBearer, s.candidateMedia)
	s.route("GET /api/v1/exams/{exam}/candidates/{candidate}/result", authBearer, s.getResult)
	s.route("PUT /api/v1/exams/{exam}/candidates/{candidate}/result", authBearer, s.recordResult)
	s.route("GET /api/v1/exams/{exam}/candidates/{candidate}/marks", authBearer, s.listMarks)
	s.route("POST /api/v1/exams/{exam}/candidates/{candidate}/marks", authBearer, s.addMark)
	s.route("PUT /api/v1/exams/{exam}/candidates/{candidate}/verdict", authBearer, s.setVerdict)
	s.route("GET /api/v1/exams/{exam}/candidates/{candidate}/review", authBearer, s.getReview)
	s.route("POST /api/v1/exams/{exam}/candidates/{candidate}/appeals", authBearer, s.openAppeal)
	s.route("POST /api/v1/exams/{exam}/candidates/{candidate}/evidence/disposal", authBearer, s.disposeEvidence)
	s.route("GET /api/v1/exams/{exam}/protocol", authBearer, s.getProtocol)
	s.route("PUT /api/v1/exams/{exam}/protocol", authBearer, s.uploadProtocol)
	s.route("POST /api/v1/exams/{exam}/protocol/approval", authBearer, s.approveProtocol)
	s.route("GET /api/v1/exams/{exam}/decisions", authBearer, s.listDecisions)
	s.route("POST /api/v1/exams/{exam}/decision", authBearer, s.recordDecision)
	s.route("POST /api/v1/exams/{exam}/verification", authBearer, s.recordVerification)

	s.route("GET /api/v1/certificates/{number}", authBearer, s.getCertificate)
	s.route("POST /api/v1/certificates/{number}/extend", authBearer, s.extendCertificate)
	s.route("POST /api/v1/certificates/{number}/revoke", authBearer, s.revokeCertificate)
	s.route("GET /api/v1/deadlines", authBearer, s.listDeadlines)
	s.route("GET /api/v1/deadlines/overdue", authBearer, s.listOverdue)

	s.workflowRoutes()

	s.route("GET /api/v1/appeals", authBearer, s.listAppeals)
	s.route("GET /api/v1/appeals/{appeal}", authBearer, s.getAppeal)
	s.route("POST /api/v1/appeals/{appeal}/decision", authBearer, s.decideAppeal)
	s.route("POST /api/v1/appeals/{appeal}/close", authBearer, s.closeAppeal)
}

// Routes returns the patterns of every route, in the order registered.
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

// Run relays the events that changes left in the outbox to Deps.Bus until
// ctx ends: at once after a change, and every Config.OutboxInterval, so
// that events written while the bus was down are published when it
// returns. Without a bus it only waits for ctx.
func (s *Server) Run(ctx context.Context) error {
	defer s.runMediaAudit(ctx)() // media access audit: mediaaudit.go
	if s.bus == nil {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(s.cfg.OutboxInterval)
	defer tick.Stop()
	lastPrune := time.Time{}
	for {
		s.relay(ctx)
		if now := s.now(); now.Sub(lastPrune) > time.Hour {
			if _, err := s.db.domain.PruneOutbox(ctx, now.Add(-7*24*time.Hour)); err != nil && ctx.Err() == nil {
				s.log.Warn("prune outbox", "err", err)
			}
			lastPrune = now
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-s.outboxKick:
		}
	}
}

// relay publishes pending outbox events in batches until none is left or
// publishing fails (the rest wait for the next round).
func (s *Server) relay(ctx context.Context) {
	for ctx.Err() == nil {
		n, err := s.db.domain.RelayOutbox(ctx, 100, s.now(), func(ctx context.Context, e store.OutboxEvent) error {
			return s.bus.Publish(ctx, e.Topic, e.Key, e.Value)
		})
		s.published.WithLabelValues("published").Add(float64(n))
		if err != nil {
			if ctx.Err() == nil {
				s.published.WithLabelValues("failed").Inc()
				s.log.Warn("publish outbox events; retrying later", "err", err)
			}
			return
		}
		if n < 100 {
			s.publishWatermark(ctx)
			return
		}
	}
}

// publishWatermark publishes the facts watermark (events.FactsWatermark)
// when nothing of its topic waits in the outbox: after new facts, and every
// 10 outbox intervals without, so that the archiver knows how current its
// copy of the facts is (it deletes nothing on a copy older than a mark).
func (s *Server) publishWatermark(ctx context.Context) {
	w, ok, err := s.db.domain.FactsWatermark(ctx)
	if err != nil || !ok {
		if err != nil && ctx.Err() == nil {
			s.log.Warn("read the facts watermark; retrying later", "err", err)
		}
		return
	}
	if w.Seq == s.lastWatermark.Seq && w.At.Sub(s.lastWatermark.At) < 10*s.cfg.OutboxInterval {
		return
	}
	b, err := json.Marshal(w)
	if err == nil {
		err = s.bus.Publish(ctx, events.TopicRetentionV2, events.RetentionV2Key, b)
	}
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("publish the facts watermark; retrying later", "err", err)
		}
		return
	}
	s.lastWatermark = w
}

// kickOutbox wakes Run after a change wrote to the outbox.
func (s *Server) kickOutbox() {
	select {
	case s.outboxKick <- struct{}{}:
	default:
	}
}

// fail turns a store error into the API's answer: what is not found, 404
// naming what; invalid input, 422; a conflict with what exists or its
// state, 409; unmet preconditions of a result, 409 listing each. Other
// errors are returned as they are (500).
func fail(err error, what string) error {
	var pe *store.PreconditionError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		list := make([]map[string]string, len(pe.Unmet))
		for i, p := range pe.Unmet {
			list[i] = map[string]string{"code": p.Code, "message": p.Message}
		}
		return &apiError{status: http.StatusConflict, msg: pe.Error(), extra: map[string]any{"preconditions": list}}
	case errors.Is(err, store.ErrNotFound):
		return errorf(http.StatusNotFound, "unknown %s", what)
	case errors.Is(err, store.ErrInvalid):
		return errorf(http.StatusUnprocessableEntity, "%s", reason(err))
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrState):
		return errorf(http.StatusConflict, "%s", reason(err))
	}
	return err
}

// reason returns the message of a store error without the context the
// store wraps around it ("save x: invalid: why" → "invalid: why").
func reason(err error) string {
	msg := err.Error()
	for _, sentinel := range []error{store.ErrInvalid, store.ErrExists, store.ErrState} {
		if i := strings.Index(msg, sentinel.Error()); i >= 0 && errors.Is(err, sentinel) {
			return msg[i:]
		}
	}
	return msg
}

// date is a calendar date in JSON: "2025-03-01".
type date struct{ time.Time }

// MarshalJSON writes the date as YYYY-MM-DD.
func (d date) MarshalJSON() ([]byte, error) {
	if d.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(d.Format(time.DateOnly))
}

// UnmarshalJSON reads YYYY-MM-DD.
func (d *date) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*d = date{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return errors.New("a date is written YYYY-MM-DD")
	}
	d.Time = t
	return nil
}

// examCandidateOwner returns the Owner of candidate's part in exam after
// checking c may see it with one of roles (see allow): a 404 for an
// unknown exam, an exam c may not see, or a candidate not in it.
func (s *Server) examCandidateOwner(r *http.Request, c *caller, roles ...string) (exam, candidate string, o store.Owner, err error) {
	exam, candidate = r.PathValue("exam"), r.PathValue("candidate")
	o, err = s.examOwner(r, c, roles...)
	if err != nil {
		return "", "", o, err
	}
	if _, err := s.db.domain.ExamCandidate(r.Context(), exam, candidate); err != nil {
		return "", "", o, fail(err, "candidate of the exam")
	}
	return exam, candidate, o, nil
}

// examOwner returns the Owner of the exam of the route after checking c
// may see it with one of roles (see allow).
func (s *Server) examOwner(r *http.Request, c *caller, roles ...string) (store.Owner, error) {
	o, err := s.db.domain.ExamOwner(r.Context(), r.PathValue("exam"))
	if err != nil {
		return o, fail(err, "exam")
	}
	return o, allow(c, o, "exam", roles...)
}
