package api_test

import (
	"net/http"

	"github.com/nokstream/nokstream/registry/api"
	"github.com/nokstream/nokstream/registry/store"
)

// accountsMatrix is the expected access of the routes of accounts and
// organisations (accounts.go), merged into the access matrix. The world's
// users are no organisation's admins: only NARK manages accounts here
// (TestOrgAdminAccounts covers the admins).
var accountsMatrix = map[string]access{
	"GET /api/v1/users": {kind: kindRole, path: fixed("/api/v1/users?q=center&limit=5"), do: []string{store.RoleNARK}},
	// Reactivating an active account changes nothing the other rows need.
	"POST /api/v1/users/{login}/suspension": {kind: kindRole, path: fixed("/api/v1/users/center1/suspension"), do: []string{store.RoleNARK},
		body: jsonBody(map[string]any{"suspended": false})},
	"GET /api/v1/organisations": {kind: kindRole, path: fixed("/api/v1/organisations"),
		do: []string{store.RoleNARK, store.RoleCouncil, store.RoleCenter}},
	// Reactivating an active organisation changes nothing either.
	"POST /api/v1/organisations/{kind}/{id}/suspension": {kind: kindRole, path: fixed("/api/v1/organisations/center/center1/suspension"),
		do: []string{store.RoleNARK}, body: jsonBody(map[string]any{"suspended": false})},

	// Profiles and the privacy policy (policy.go).
	"POST /api/v1/auth/privacy-policy": {kind: kindSelf, staff: http.StatusOK, path: fixed("/api/v1/auth/privacy-policy"),
		body: jsonBody(map[string]any{"version": api.PrivacyPolicyVersion})},
	"GET /api/v1/auth/profile": {kind: kindSelf, staff: http.StatusOK, path: fixed("/api/v1/auth/profile")},
	"PUT /api/v1/auth/profile": {kind: kindSelf, staff: http.StatusOK, path: fixed("/api/v1/auth/profile"),
		body: jsonBody(map[string]any{"full_name": "Иванов Иван Иванович", "region": "Москва"})},
	// The candidate search: everyone's answer is filtered by scope.
	"POST /api/v1/candidates/search": {kind: kindList, path: fixed("/api/v1/candidates/search"), see: seeCandidate,
		body: jsonBody(map[string]any{"q": "фамилия", "limit": 10})},
	"GET /api/v1/users/{login}": {kind: kindRole, path: fixed("/api/v1/users/center1"), do: []string{store.RoleNARK}},
	"PUT /api/v1/users/{login}/profile": {kind: kindRole, path: fixed("/api/v1/users/center1/profile"), do: []string{store.RoleNARK},
		body: jsonBody(map[string]any{"position": "специалист"})},
}

var _ = func() bool {
	for route, a := range accountsMatrix {
		matrix[route] = a
	}
	return true
}()
