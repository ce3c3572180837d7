package api

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/nokstream/nokstream/registry/store"
)

// workflowStore lists what the routes of the register's procedure call of
// the registry's database.
type workflowStore interface {
	ExamCards(ctx context.Context, exam string) ([]store.Result, error)
	SubmitCards(ctx context.Context, exam string, by int64, now time.Time) (int, error)
	RegisterCards(ctx context.Context, exam string, candidates []string, by int64, now time.Time) ([]string, error)
	CardHistory(ctx context.Context, exam, candidate string) ([]store.Transition, error)
	CorrectCard(ctx context.Context, c store.Correction) (map[string]any, error)
	Result(ctx context.Context, exam, candidate string) (store.Result, error)
	CountPublicCheck(ctx context.Context, addr string, now time.Time) (int, error)
	RegisterCertificates(ctx context.Context, number, snils string) ([]store.PublicCertificate, error)
	Deadlines(ctx context.Context, sc store.Scope, now time.Time, overdueOnly bool) ([]store.Deadline, error)
}

// PublicChecksPerMinute is how many public certificate checks one client
// address may make in a minute; more answer 429.
const PublicChecksPerMinute = 30

// workflowRoutes registers the routes of the register's procedure: result
// cards and their states, the council's protocol, NARK's registration and
// corrections, the public check of a certificate, the deadlines' daily
// summary, and the site's identity check at admission (identity.go).
func (s *Server) workflowRoutes() {
	s.route("GET /api/v1/exams/{exam}/cards", authBearer, s.listCards)
	s.route("POST /api/v1/exams/{exam}/submission", authBearer, s.submitCards)
	s.route("POST /api/v1/exams/{exam}/council-protocol", authBearer, s.uploadCouncilProtocol)
	s.route("POST /api/v1/exams/{exam}/registration", authBearer, s.registerCards)
	s.route("GET /api/v1/exams/{exam}/candidates/{candidate}/result/history", authBearer, s.cardHistory)
	s.route("POST /api/v1/exams/{exam}/candidates/{candidate}/result/correction", authBearer, s.correctCard)
	s.route("GET /api/v1/register/certificates", authNone, s.checkCertificates)
	s.route("GET /api/v1/deadlines/summary", authBearer, s.deadlineSummary)

	s.route("GET /api/v1/exams/{exam}/candidates/{candidate}/identity", authBearer, s.getIdentity)
	s.route("PUT /api/v1/exams/{exam}/candidates/{candidate}/identity", authBearer, s.setIdentity)
	s.route("POST /api/v1/exams/{exam}/candidates/{candidate}/identity/documents", authBearer, s.uploadIdentityDocument)
	s.route("GET /api/v1/exams/{exam}/candidates/{candidate}/identity/documents/{document}", authBearer, s.getIdentityDocument)
	s.route("POST /api/v1/exams/{exam}/candidates/{candidate}/identity/photo", authBearer, s.uploadIdentityPhoto)

	s.route("POST /api/v1/exam/consent", authCandidate, s.recordConsent)

	s.route("POST /api/v1/centers", authBearer, s.createCenter)
	s.route("POST /api/v1/sites", authBearer, s.createSite)
	s.accountRoutes()
}

// listCards handles GET /api/v1/exams/{exam}/cards: the exam's result
// cards with their states, by candidate.
func (s *Server) listCards(w http.ResponseWriter, r *http.Request, c *caller) error {
	o, err := s.examOwner(r, c)
	if err != nil {
		return err
	}
	cards, err := s.db.workflow.ExamCards(r.Context(), o.Exam)
	if err != nil {
		return err
	}
	out := []resultJSON{}
	for _, x := range cards {
		out = append(out, newResultJSON(x))
	}
	writeJSON(w, http.StatusOK, map[string]any{"exam": o.Exam, "cards": out})
	return nil
}

// submitCards handles POST /api/v1/exams/{exam}/submission: the center
// sends the exam's draft and returned cards to its council. Every admitted
// candidate needs a card (409 naming those without).
func (s *Server) submitCards(w http.ResponseWriter, r *http.Request, c *caller) error {
	o, err := s.examOwner(r, c, store.RoleCenter)
	if err != nil {
		return err
	}
	n, err := s.db.workflow.SubmitCards(r.Context(), o.Exam, c.user.ID, s.now())
	if err != nil {
		return fail(err, "exam")
	}
	if err := s.audit(r, c, "exam.submission", o.Exam, map[string]any{"cards": n}); err != nil {
		return err
	}
	return s.listCards(w, r, c)
}

// uploadCouncilProtocol handles POST /api/v1/exams/{exam}/council-protocol
// ?filename=: the council uploads the scan of its approval protocol (the
// body); the decision names it as protocol.document.
func (s *Server) uploadCouncilProtocol(w http.ResponseWriter, r *http.Request, c *caller) error {
	o, err := s.examOwner(r, c, store.RoleCouncil)
	if err != nil {
		return err
	}
	d := &store.Document{ExamID: o.Exam, Kind: "council_protocol", Filename: r.URL.Query().Get("filename")}
	if err := s.storeDocument(r, c, d, "exams/"+o.Exam); err != nil {
		return err
	}
	if err := s.audit(r, c, "council_protocol.upload", o.Exam, map[string]any{"document": d.ID, "sha256": d.SHA256}); err != nil {
		return err
	}
	w.Header().Set("Location", "/api/v1/documents/"+d.ID)
	writeJSON(w, http.StatusCreated, newDocumentJSON(*d))
	return nil
}

// registerCards handles POST /api/v1/exams/{exam}/registration
// {"candidates"}: NARK enters the exam's verified cards (those of
// candidates, or all) in the register.
func (s *Server) registerCards(w http.ResponseWriter, r *http.Request, c *caller) error {
	o, err := s.examOwner(r, c, store.RoleNARK)
	if err != nil {
		return err
	}
	var req struct {
		Candidates []string `json:"candidates"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	done, err := s.db.workflow.RegisterCards(r.Context(), o.Exam, req.Candidates, c.user.ID, s.now())
	if err != nil {
		return fail(err, "exam")
	}
	if err := s.audit(r, c, "exam.registration", o.Exam, map[string]any{"candidates": done}); err != nil {
		return err
	}
	return s.listCards(w, r, c)
}

type transitionJSON struct {
	From    string         `json:"from"`
	To      string         `json:"to"`
	Reason  string         `json:"reason,omitempty"`
	Changes map[string]any `json:"changes,omitempty"`
	At      time.Time      `json:"at"`
}

// cardHistory handles GET .../result/history: every state change and
// correction of the card, oldest first.
func (s *Server) cardHistory(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c)
	if err != nil {
		return err
	}
	list, err := s.db.workflow.CardHistory(r.Context(), exam, cand)
	if err != nil {
		return err
	}
	out := []transitionJSON{}
	for _, t := range list {
		out = append(out, transitionJSON{From: t.From, To: t.To, Reason: t.Reason, Changes: t.Changes, At: t.At.UTC()})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// correctCard handles POST .../result/correction {"certificate_number",
// "issued_on","conclusion","reason"}: NARK corrects a verified or
// registered card, for a reason; what changed is audited and kept in the
// card's history.
func (s *Server) correctCard(w http.ResponseWriter, r *http.Request, c *caller) error {
	exam, cand, _, err := s.examCandidateOwner(r, c, store.RoleNARK)
	if err != nil {
		return err
	}
	var req struct {
		CertificateNumber string `json:"certificate_number"`
		IssuedOn          date   `json:"issued_on"`
		Conclusion        string `json:"conclusion"`
		Reason            string `json:"reason"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	changes, err := s.db.workflow.CorrectCard(r.Context(), store.Correction{ExamID: exam, CandidateID: cand, CertificateNumber: req.CertificateNumber,
		IssuedOn: req.IssuedOn.Time, Conclusion: req.Conclusion, Reason: req.Reason, By: c.user.ID, At: s.now()})
	if err != nil {
		return fail(err, "result card")
	}
	s.kickOutbox()
	if err := s.audit(r, c, "result.correction", exam+"/"+cand, map[string]any{"reason": req.Reason, "changes": changes}); err != nil {
		return err
	}
	res, err := s.db.workflow.Result(r.Context(), exam, cand)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newResultJSON(res))
	return nil
}

type publicCertificateJSON struct {
	Number        string     `json:"number"`
	Holder        string     `json:"holder"`
	Qualification namedJSON  `json:"qualification"`
	Council       namedJSON  `json:"council"`
	Center        namedJSON  `json:"center"`
	IssuedOn      date       `json:"issued_on"`
	ValidUntil    date       `json:"valid_until"`
	State         string     `json:"state"`
	Revoked       bool       `json:"revoked"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
}

// checkCertificates handles GET /api/v1/register/certificates?number=|snils=:
// the public check of a certificate, without authentication. It answers
// the certificate, its holder's name, qualification, council, center,
// dates and state, and no other personal data; a client address may check
// PublicChecksPerMinute times a minute (429 with Retry-After beyond).
func (s *Server) checkCertificates(w http.ResponseWriter, r *http.Request, _ *caller) error {
	now := s.now()
	n, err := s.db.workflow.CountPublicCheck(r.Context(), s.clientAddr(r), now)
	if err != nil {
		return err
	}
	if n > PublicChecksPerMinute {
		retry := 60 - now.UTC().Second()
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		return errorf(http.StatusTooManyRequests, "too many checks from this address: try again in %d seconds", retry)
	}
	q := r.URL.Query()
	list, err := s.db.workflow.RegisterCertificates(r.Context(), q.Get("number"), q.Get("snils"))
	if err != nil {
		return fail(err, "certificate")
	}
	out := []publicCertificateJSON{}
	for _, p := range list {
		out = append(out, publicCertificateJSON{Number: p.Number, Holder: p.Holder,
			Qualification: namedJSON{p.Qualification, p.QualificationName}, Council: namedJSON{p.Council, p.CouncilName},
			Center: namedJSON{p.Center, p.CenterName}, IssuedOn: date{p.IssuedOn}, ValidUntil: date{p.ValidUntil},
			State: p.State, Revoked: p.RevokedAt != nil, RevokedAt: utcPtr(p.RevokedAt)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"certificates": out})
	return nil
}

type orgSummaryJSON struct {
	Kind     string `json:"kind"` // council or center
	ID       string `json:"id"`
	Pending  int    `json:"pending"`
	DueToday int    `json:"due_today"` // the last day is today (Moscow)
	Overdue  int    `json:"overdue"`
	// OldestOverdue is the due time of the longest overdue step.
	OldestOverdue *time.Time `json:"oldest_overdue,omitempty"`
}

// deadlineSummary handles GET /api/v1/deadlines/summary: today's (Moscow)
// summary of the pending steps the caller sees, per council and per
// center: how many are pending, due by the end of today, and overdue.
func (s *Server) deadlineSummary(w http.ResponseWriter, r *http.Request, c *caller) error {
	now := s.now()
	list, err := s.db.workflow.Deadlines(r.Context(), scopeOf(c.user), now, false)
	if err != nil {
		return err
	}
	today := now.In(store.Moscow())
	endOfToday := time.Date(today.Year(), today.Month(), today.Day()+1, 0, 0, 0, 0, store.Moscow())
	byOrg := map[[2]string]*orgSummaryJSON{}
	add := func(kind, id string, d store.Deadline) {
		k := [2]string{kind, id}
		o := byOrg[k]
		if o == nil {
			o = &orgSummaryJSON{Kind: kind, ID: id}
			byOrg[k] = o
		}
		o.Pending++
		switch {
		case d.Overdue:
			o.Overdue++
			if o.OldestOverdue == nil || d.Due.Before(*o.OldestOverdue) {
				due := d.Due.UTC()
				o.OldestOverdue = &due
			}
		case !d.Due.After(endOfToday):
			o.DueToday++
		}
	}
	for _, d := range list {
		add("council", d.CouncilID, d)
		add("center", d.CenterID, d)
	}
	out := []orgSummaryJSON{}
	for _, o := range byOrg {
		out = append(out, *o)
	}
	slices.SortFunc(out, func(a, b orgSummaryJSON) int {
		if a.Overdue != b.Overdue {
			return b.Overdue - a.Overdue
		}
		if a.Kind != b.Kind {
			if a.Kind < b.Kind {
				return -1
			}
			return 1
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	writeJSON(w, http.StatusOK, map[string]any{"date": today.Format(time.DateOnly), "time_zone": "Europe/Moscow", "organisations": out})
	return nil
}
