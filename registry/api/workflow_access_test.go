package api_test

import (
	"net/http"

	"github.com/nokstream/nokstream/registry/store"
)

// workflowMatrix is the expected access of the routes of the register's
// procedure (workflow.go), merged into the access matrix.
var workflowMatrix = map[string]access{
	"GET /api/v1/exams/{exam}/cards": {path: objPath("/api/v1/exams/%s/cards", kExam), see: seeExam},
	// The exam is not over at the matrix's time: a permitted submission is 409.
	"POST /api/v1/exams/{exam}/submission": {path: objPath("/api/v1/exams/%s/submission", kExam), see: seeExam, do: []string{store.RoleCenter}},
	"POST /api/v1/exams/{exam}/council-protocol": {path: objPath("/api/v1/exams/%s/council-protocol?filename=spk.pdf", kExam),
		see: seeExam, do: []string{store.RoleCouncil}, contentType: "application/pdf",
		body: func(*world, *org) any { return []byte("%PDF-1.4 council protocol") }},
	// Nothing is verified yet: a permitted registration is 409.
	"POST /api/v1/exams/{exam}/registration": {path: objPath("/api/v1/exams/%s/registration", kExam), see: seeExam, do: []string{store.RoleNARK},
		body: jsonBody(map[string]any{})},
	"GET /api/v1/exams/{exam}/candidates/{candidate}/result/history": {path: objPath("/api/v1/exams/%s/candidates/%s/result/history", kExam, kCand),
		see: seeExam},
	"POST /api/v1/exams/{exam}/candidates/{candidate}/result/correction": {path: objPath("/api/v1/exams/%s/candidates/%s/result/correction", kExam, kCand),
		see: seeExam, do: []string{store.RoleNARK}, body: jsonBody(map[string]any{"issued_on": "2025-03-05", "reason": "опечатка в дате"})},
	"GET /api/v1/register/certificates": {kind: kindPublic, path: fixed("/api/v1/register/certificates?number=CERT-1")},
	"GET /api/v1/deadlines/summary":     {kind: kindList, path: fixed("/api/v1/deadlines/summary"), see: seeExam},

	// The identity check: the expert sees the exam, never the papers.
	"GET /api/v1/exams/{exam}/candidates/{candidate}/identity": {path: objPath("/api/v1/exams/%s/candidates/%s/identity", kExam, kCand),
		see: seeExam, do: identityRoles},
	// cand has a result card: a permitted check is 409.
	"PUT /api/v1/exams/{exam}/candidates/{candidate}/identity": {path: objPath("/api/v1/exams/%s/candidates/%s/identity", kExam, kCand),
		see: seeExam, do: []string{store.RoleSite}, body: func(_ *world, o *org) any { return map[string]any{"confirmed": true, "document": o.document} }},
	"POST /api/v1/exams/{exam}/candidates/{candidate}/identity/documents": {path: objPath("/api/v1/exams/%s/candidates/%s/identity/documents?filename=p.pdf", kExam, kCand2),
		see: seeExam, do: []string{store.RoleSite}, contentType: "application/pdf", body: func(*world, *org) any { return []byte("%PDF-1.4 passport") }},
	"GET /api/v1/exams/{exam}/candidates/{candidate}/identity/documents/{document}": {
		path: objPath("/api/v1/exams/%s/candidates/%s/identity/documents/%s", kExam, kCand, kDocument), see: seeExam, do: identityRoles},
	"POST /api/v1/exams/{exam}/candidates/{candidate}/identity/photo": {path: objPath("/api/v1/exams/%s/candidates/%s/identity/photo", kExam, kCand2),
		see: seeExam, do: []string{store.RoleSite}, contentType: "image/jpeg", body: func(*world, *org) any { return []byte("\xff\xd8\xff photo") }},

	"POST /api/v1/exam/consent": {kind: kindCandidate, path: fixed("/api/v1/exam/consent"),
		body: jsonBody(map[string]any{"version": "recording-1", "page": "/ui/exam.html"})},

	// A council registers centers (with its own qualifications), a council
	// or center sites of its centers: naming chain 2's is 422.
	"POST /api/v1/centers": {kind: kindCreate, path: fixed("/api/v1/centers"), do: []string{store.RoleCouncil}, outside: http.StatusUnprocessableEntity,
		body: func(_ *world, o *org) any {
			return map[string]any{"id": o.center + "-new", "name": "Новый ЦОК", "qualifications": []string{o.qual}}
		}},
	// A council authorises any center for its own qualifications (a
	// multi-industry center): naming chain 2's qualification is 422. It
	// withdraws only its own authorisation of a center it sees. The
	// DELETE runs first (routes go in order) and the POST gives it back.
	"POST /api/v1/centers/{center}/authorisations": {kind: kindCreate, path: objPath("/api/v1/centers/%s/authorisations", kCenter),
		do: []string{store.RoleCouncil}, outside: http.StatusUnprocessableEntity,
		body: func(_ *world, o *org) any { return map[string]any{"qualifications": []string{o.qual}} }},
	"DELETE /api/v1/centers/{center}/authorisations/{qualification}": {path: objPath("/api/v1/centers/%s/authorisations/%s", kCenter, kQual),
		see: seeCenter, do: []string{store.RoleCouncil}},
	"POST /api/v1/sites": {kind: kindCreate, path: fixed("/api/v1/sites"), do: []string{store.RoleCouncil, store.RoleCenter},
		outside: http.StatusUnprocessableEntity,
		body: func(_ *world, o *org) any {
			return map[string]any{"id": o.site + "-new", "center": o.center, "name": "Новая ЭП"}
		}},
}

var identityRoles = []string{store.RoleNARK, store.RoleCouncil, store.RoleCenter, store.RoleSite}

// The rows join the matrix before any test runs (package variables are
// initialised after those they refer to).
var _ = func() bool {
	for route, a := range workflowMatrix {
		matrix[route] = a
	}
	return true
}()
